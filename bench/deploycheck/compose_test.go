package deploycheck

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"

	"github.com/wxpayd/wxpayd/bench/sim"
)

func composeDir(t testing.TB) string { return filepath.Join(repoRoot(t), "deploy", "compose") }

// loadCompose loads compose files with compose-go exactly as `docker
// compose` does: the compose-spec JSON schema (unknown keys fail),
// interpolation from env only (not this process's environment), merging of
// overrides, normalisation and the consistency checks (undefined
// services, volumes, secrets, networks).
func loadCompose(dir string, env []string, profiles []string, files ...string) (*types.Project, error) {
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(dir, f))
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(env),
		cli.WithProfiles(profiles),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func mustLoadCompose(t testing.TB, env []string, files ...string) *types.Project {
	t.Helper()
	p, err := loadCompose(composeDir(t), env, nil, files...)
	if err != nil {
		t.Fatalf("compose-go: %v", err)
	}
	return p
}

// merchantEnv are the variables compose.merchant.yaml requires.
var merchantEnv = []string{
	"WXPAY_APPID=wx1234567890abcdef", "WXPAY_MCHID=1900000109", "WXPAY_MERCHANT_SERIAL=5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
	"WXPAY_PUBLIC_KEY_ID=PUB_KEY_ID_0000000000000000000000000000000000", "WXPAY_NOTIFY_URL=https://shop.example.com/wxpay/v3/notify",
}

func envOf(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// flagsOf parses "-name value" and "-name=value" pairs of a command line.
func flagsOf(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			v = args[i+1]
			i++
		}
		out[k] = v
	}
	return out
}

func runsBinary(s types.ServiceConfig, bin string) bool {
	return strings.Contains(strings.Join(s.Entrypoint, " "), "/usr/local/bin/"+bin)
}

func hostPort(t testing.TB, what, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %q: %v", what, addr, err)
	}
	return h, p
}

// TestComposeLoads loads the stack alone and with the merchant override,
// and proves the loader strict: each mistake below must fail.
func TestComposeLoads(t *testing.T) {
	p := mustLoadCompose(t, nil, "compose.yaml")
	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if got := strings.Join(names, " "); got != "clickhouse grafana kafka prometheus wxpayd-1 wxpayd-2 wxpayd-init wxpaysim wxpaysink" {
		t.Errorf("services: %s", got)
	}
	mustLoadCompose(t, merchantEnv, "compose.yaml", "compose.merchant.yaml")

	if _, err := loadCompose(composeDir(t), nil, nil, "compose.yaml", "compose.merchant.yaml"); err == nil ||
		!strings.Contains(err.Error(), "WXPAY_") {
		t.Errorf("the merchant override must refuse to load without its identity variables, got %v", err)
	}

	src := string(readFile(t, composeDir(t), "compose.yaml"))
	for _, tc := range []struct{ name, from, to string }{
		{"a misspelt key", "  read_only: true\n", "  read_onyl: true\n"},
		{"a bad enum value", "condition: service_completed_successfully", "condition: service_completed"},
		{"a dependency on no service", "    wxpaysim:\n      condition: service_healthy", "    wxpaysimm:\n      condition: service_healthy"},
		{"an undefined volume", "- wxpayd-2-data:/var/lib/wxpayd", "- wxpayd-3-data:/var/lib/wxpayd"},
		{"a bad duration", "stop_grace_period: 75s", "stop_grace_period: 75 seconds"},
		{"a wrong type", "      retries: 5\n", "      retries: five\n"},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			if !strings.Contains(src, tc.from) {
				t.Fatalf("compose.yaml no longer contains %q: update this test", tc.from)
			}
			dir := t.TempDir()
			if err := copyTree(composeDir(t), dir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(strings.Replace(src, tc.from, tc.to, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := loadCompose(dir, nil, nil, "compose.yaml"); err == nil {
				t.Fatal("accepted")
			} else {
				t.Logf("rejected: %v", err)
			}
		})
	}
}

// TestComposeHardened checks every service: pinned images, dropped
// capabilities, no-new-privileges, loopback-only published ports, health
// checks for what others wait on; and for the images built here:
// read-only root filesystem, /tmp as tmpfs, the image's non-root user, a
// Containerfile target that exists.
func TestComposeHardened(t *testing.T) {
	root := repoRoot(t)
	p := mustLoadCompose(t, nil, "compose.yaml")
	cf := parseContainerfile(t, filepath.Join(root, "deploy", "Containerfile"))
	user := cf.last(cf.stage("wxpayd"), "USER")
	for name, s := range p.Services {
		t.Run(name, func(t *testing.T) {
			if !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("cap_drop %v lacks ALL", s.CapDrop)
			}
			if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("security_opt %v lacks no-new-privileges:true", s.SecurityOpt)
			}
			for _, pt := range s.Ports {
				if pt.HostIP != "127.0.0.1" {
					t.Errorf("port %d published on %q: bind it to 127.0.0.1", pt.Target, pt.HostIP)
				}
			}
			if s.User == "" || strings.HasPrefix(s.User, "0") || strings.HasPrefix(s.User, "root") {
				if name != "kafka" { // the apache/kafka image runs as its own appuser
					t.Errorf("user %q: run as a non-root user", s.User)
				}
			}
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeBind {
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("bind mount source %s: %v", v.Source, err)
					}
					if !v.ReadOnly {
						t.Errorf("bind mount %s must be read-only", v.Source)
					}
				}
			}
			if s.Build == nil {
				if !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest") {
					t.Errorf("image %q must carry a pinned tag", s.Image)
				}
			} else {
				if filepath.Clean(s.Build.Context) != root || s.Build.Dockerfile != "deploy/Containerfile" {
					t.Errorf("build %s %s: want the repository root and deploy/Containerfile", s.Build.Context, s.Build.Dockerfile)
				}
				if cf.stage(s.Build.Target) == nil {
					t.Errorf("build target %q is not a Containerfile stage", s.Build.Target)
				}
				if img, _, _ := strings.Cut(s.Image, ":"); img != s.Build.Target {
					t.Errorf("image %s is built from target %s", s.Image, s.Build.Target)
				}
				if !s.ReadOnly {
					t.Error("read_only must be true")
				}
				if !slices.ContainsFunc(s.Tmpfs, func(x string) bool { return strings.HasPrefix(x, "/tmp") }) {
					t.Errorf("tmpfs %v lacks /tmp", s.Tmpfs)
				}
				if s.User != user {
					t.Errorf("user %q, the image's USER is %q", s.User, user)
				}
			}
			long := s.Restart != "no"
			if long && (s.HealthCheck == nil || s.HealthCheck.Disable) && name != "prometheus" && name != "grafana" {
				t.Error("a long-running service others depend on needs a healthcheck")
			}
			for dep, d := range s.DependsOn {
				ds, ok := p.Services[dep]
				if !ok {
					t.Errorf("depends on %s, not a service", dep)
					continue
				}
				switch d.Condition {
				case types.ServiceConditionHealthy:
					if ds.HealthCheck == nil || ds.HealthCheck.Disable {
						t.Errorf("waits for %s to be healthy; it has no healthcheck", dep)
					}
				case types.ServiceConditionCompletedSuccessfully:
					if ds.Restart != "no" {
						t.Errorf("waits for %s to complete; it restarts (%q)", dep, ds.Restart)
					}
				}
			}
		})
	}
}

// keygenEnv is the wxpay.env that wxpaysim keygen writes for a keys
// directory and options, from a real (fresh) identity.
func keygenEnv(t testing.TB, dir string, o sim.KeygenOptions) map[string]string {
	t.Helper()
	id, err := sim.NewIdentity(o)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(id.Env(dir, o)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}

var keygenArg = regexp.MustCompile(`wxpaysim keygen (.*)`)

// TestComposeWxpayd checks the wxpayd nodes: settings that exist, every
// required one (from compose, the keygen's wxpay.env and the flags),
// distinct valid shards, each node's notification URL pointing at itself,
// its own data volume, secret files on read-only mounts, and the identity
// the init service writes where the nodes and wxpaysim read it.
func TestComposeWxpayd(t *testing.T) {
	p := mustLoadCompose(t, nil, "compose.yaml")
	settings := wxpaydSettings(t)

	init := p.Services["wxpayd-init"]
	m := keygenArg.FindStringSubmatch(strings.Join(init.Command, " "))
	if m == nil {
		t.Fatal("wxpayd-init does not run wxpaysim keygen")
	}
	kg := flagsOf(strings.Fields(strings.SplitN(m[1], "\n", 2)[0]))
	keysDir := kg["dir"]
	simHost, simPort := hostPort(t, "keygen --sim-addr", kg["sim-addr"])
	if _, ok := p.Services[simHost]; !ok {
		t.Errorf("keygen --sim-addr %s: no such service", kg["sim-addr"])
	}
	simFlags := flagsOf(p.Services["wxpaysim"].Command)
	if _, port := hostPort(t, "wxpaysim --listen", simFlags["listen"]); port != simPort || simFlags["keys-dir"] != keysDir {
		t.Errorf("wxpaysim serves %v; keygen wrote for %s in %s", simFlags, kg["sim-addr"], keysDir)
	}
	mountedAt := func(s types.ServiceConfig, dir string) *types.ServiceVolumeConfig {
		for i, v := range s.Volumes {
			if v.Target == dir {
				return &s.Volumes[i]
			}
		}
		return nil
	}
	fromKeygen := keygenEnv(t, keysDir, sim.KeygenOptions{SimAddr: kg["sim-addr"], NotifyURL: kg["notify-url"]})
	initKeys := mountedAt(init, keysDir)
	if initKeys == nil || initKeys.Type != types.VolumeTypeVolume {
		t.Fatalf("wxpayd-init writes %s, which is not a named volume", keysDir)
	}

	shards := map[string]string{}
	dataVolumes := map[string]string{}
	nodes := 0
	for name, s := range p.Services {
		if !runsBinary(s, "wxpayd") {
			continue
		}
		nodes++
		t.Run(name, func(t *testing.T) {
			env := envOf(s)
			if !strings.Contains(strings.Join(s.Entrypoint, " "), ". "+keysDir+"/"+sim.FileEnv) {
				t.Errorf("entrypoint %q does not read %s/%s", s.Entrypoint, keysDir, sim.FileEnv)
			}
			if v := mountedAt(s, keysDir); v == nil || v.Source != initKeys.Source || !v.ReadOnly {
				t.Errorf("%s must be the init's volume %s, read-only", keysDir, initKeys.Source)
			}
			for k, v := range fromKeygen {
				if _, ok := env[k]; !ok {
					env[k] = v
				}
			}
			flags := flagsOf(s.Command)
			for f, v := range flags {
				found := false
				for n := range settings {
					if flagName(n) == f {
						env[n], found = v, true
					}
				}
				if !found {
					t.Errorf("-%s is not a wxpayd flag", f)
				}
			}
			for k := range envOf(s) {
				if _, ok := settings[k]; !ok && strings.HasPrefix(k, "WXPAY") {
					t.Errorf("%s is not a wxpayd setting", k)
				}
			}
			for _, r := range requiredWxpayd(t) {
				if env[r] == "" {
					t.Errorf("required setting %s is not set", r)
				}
			}
			if !hasWechatKey(env) {
				t.Error("no WeChat Pay key configured")
			}
			shard := env["WXPAYD_SHARD"]
			if !shardRE.MatchString(shard) {
				t.Errorf("shard %q", shard)
			} else if other, dup := shards[shard]; dup {
				t.Errorf("shard %s also used by %s", shard, other)
			}
			shards[shard] = name
			_, listenPort := hostPort(t, "WXPAYD_LISTEN", env["WXPAYD_LISTEN"])
			if !strings.HasPrefix(env["WXPAYD_LISTEN"], "0.0.0.0:") {
				t.Errorf("WXPAYD_LISTEN=%s: listen on all interfaces in a container", env["WXPAYD_LISTEN"])
			}
			notify := flags[flagName("WXPAY_NOTIFY_URL")]
			if want := "http://" + name + ":" + listenPort + "/wxpay/v3/notify"; notify != want {
				t.Errorf("notify URL %q, want %q: WeChat must notify the node that created the order", notify, want)
			}
			if s.Hostname != "" && s.Hostname != name {
				t.Errorf("hostname %s differs from the service name", s.Hostname)
			}
			data := mountedAt(s, env["WXPAYD_DATA_DIR"])
			if data == nil || data.Type != types.VolumeTypeVolume || data.ReadOnly {
				t.Errorf("WXPAYD_DATA_DIR=%s is not a writable named volume", env["WXPAYD_DATA_DIR"])
			} else if other, dup := dataVolumes[data.Source]; dup {
				t.Errorf("data volume %s shared with %s", data.Source, other)
			} else {
				dataVolumes[data.Source] = name
			}
			for k, v := range env {
				if !strings.HasSuffix(k, "_FILE") && k != "WXPAY_PLATFORM_CERT_FILES" {
					continue
				}
				for _, f := range strings.Split(v, ",") {
					ok := false
					for _, vol := range s.Volumes {
						if strings.HasPrefix(f, vol.Target+"/") && vol.ReadOnly {
							ok = true
						}
					}
					if !ok {
						t.Errorf("%s=%s is not on a read-only mount", k, f)
					}
				}
			}
			for _, want := range []string{"wxpayd-init", "kafka"} {
				if _, ok := s.DependsOn[want]; !ok {
					t.Errorf("does not wait for %s", want)
				}
			}
			brokerHost, brokerPort := hostPort(t, "WXPAYD_KAFKA_BROKERS", env["WXPAYD_KAFKA_BROKERS"])
			if kafka, ok := p.Services[brokerHost]; !ok || !strings.Contains(envOf(kafka)["KAFKA_ADVERTISED_LISTENERS"], brokerHost+":"+brokerPort) {
				t.Errorf("WXPAYD_KAFKA_BROKERS=%s is not the Kafka service's advertised listener", env["WXPAYD_KAFKA_BROKERS"])
			}
			// wxpayd's shutdown steps are bounded at 65 s in all (cmd/wxpayd).
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < 70*time.Second {
				t.Errorf("stop_grace_period %v: wxpayd's shutdown may take 65 s", s.StopGracePeriod)
			}
		})
	}
	if nodes < 2 {
		t.Errorf("%d wxpayd nodes, want two", nodes)
	}

	// wxpayd-init writes the admin token and the session secret into the
	// volume the nodes read them from.
	for name, s := range p.Services {
		if !runsBinary(s, "wxpayd") {
			continue
		}
		env := envOf(s)
		for _, k := range []string{"WXPAYD_ADMIN_TOKEN_FILE", "WXPAYD_SESSION_SECRET_FILE"} {
			dir, file := filepath.Split(env[k])
			v := mountedAt(s, filepath.Clean(dir))
			iv := mountedAt(init, filepath.Clean(dir))
			if v == nil || iv == nil || v.Source != iv.Source || !strings.Contains(strings.Join(init.Command, " "), file) {
				t.Errorf("%s: %s=%s is not written by wxpayd-init into the same volume", name, k, env[k])
			}
		}
	}

	// Kafka's KRaft cluster id must be a base64url UUID (16 bytes).
	id := envOf(p.Services["kafka"])["CLUSTER_ID"]
	if b, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(b) != 16 {
		t.Errorf("kafka CLUSTER_ID %q is not a base64url-encoded UUID: %v (%d bytes)", id, err, len(b))
	}
}

// TestComposeSinkAndObservability checks wxpaysink's settings and
// addresses, Prometheus's scrape targets against the services, Grafana's
// provisioning mounts and variables, and the ClickHouse users they log in
// as.
func TestComposeSinkAndObservability(t *testing.T) {
	p := mustLoadCompose(t, nil, "compose.yaml")
	allowed := sinkSettings(t)
	sinkSvc := p.Services["wxpaysink"]
	senv := envOf(sinkSvc)
	for k := range senv {
		if strings.HasPrefix(k, "WXPAY") && !allowed[k] {
			t.Errorf("wxpaysink: %s is not read by wxpaysink", k)
		}
	}
	if !runsBinary(sinkSvc, "wxpaysink") {
		t.Errorf("wxpaysink entrypoint %v", sinkSvc.Entrypoint)
	}
	if h, _ := hostPort(t, "WXPAYD_CLICKHOUSE_ADDR", senv["WXPAYD_CLICKHOUSE_ADDR"]); p.Services[h].Name == "" {
		t.Errorf("WXPAYD_CLICKHOUSE_ADDR host %s is not a service", h)
	}
	for name, s := range p.Services {
		if runsBinary(s, "wxpayd") && envOf(s)["WXPAYD_KAFKA_TOPIC"] != senv["WXPAYD_KAFKA_TOPIC"] {
			t.Errorf("%s publishes to %q, the sink reads %q", name, envOf(s)["WXPAYD_KAFKA_TOPIC"], senv["WXPAYD_KAFKA_TOPIC"])
		}
	}

	// ClickHouse users: the sink's and Grafana's exist, with passwords from
	// variables the clickhouse service sets to the same values.
	type chUser struct {
		XMLName  xml.Name
		Password struct {
			FromEnv string `xml:"from_env,attr"`
		} `xml:"password"`
	}
	var users struct {
		Users struct {
			List []chUser `xml:",any"`
		} `xml:"users"`
	}
	if err := xml.Unmarshal(readFile(t, composeDir(t), "clickhouse", "users.xml"), &users); err != nil {
		t.Fatalf("clickhouse/users.xml: %v", err)
	}
	chEnv := envOf(p.Services["clickhouse"])
	passwordVar := map[string]string{}
	for _, u := range users.Users.List {
		passwordVar[u.XMLName.Local] = u.Password.FromEnv
	}
	if v := passwordVar[senv["WXPAYD_CLICKHOUSE_USER"]]; v == "" || chEnv[v] != senv["WXPAYD_CLICKHOUSE_PASSWORD"] {
		t.Errorf("the sink's ClickHouse user %q and password do not match users.xml (from_env %q)", senv["WXPAYD_CLICKHOUSE_USER"], v)
	}

	// Prometheus: strict decode of the part we use, then every target.
	var prom struct {
		Global        map[string]string `json:"global"`
		RuleFiles     []string          `json:"rule_files"` // checked by TestAlertRules; mounted below
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			MetricsPath   string `json:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, composeDir(t), "prometheus.yml"), &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	for _, rf := range prom.RuleFiles {
		mounted := false
		for _, v := range p.Services["prometheus"].Volumes {
			mounted = mounted || v.Target == rf && v.Source == filepath.Join(composeDir(t), filepath.Base(rf)) && v.ReadOnly
		}
		if !mounted {
			t.Errorf("prometheus.yml loads %s, which compose.yaml does not mount read-only from deploy/compose", rf)
		}
	}
	listenPort := func(s types.ServiceConfig) string {
		env := envOf(s)
		for _, k := range []string{"WXPAYD_LISTEN", "WXPAYD_SINK_METRICS_ADDR"} {
			if v := env[k]; v != "" {
				_, port := hostPort(t, k, v)
				return port
			}
		}
		return ""
	}
	scraped := map[string]string{}
	for _, sc := range prom.ScrapeConfigs {
		if sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				h, port := hostPort(t, "target", target)
				s, ok := p.Services[h]
				if !ok {
					t.Errorf("job %s: target %s is not a service", sc.JobName, target)
					continue
				}
				if listenPort(s) != port {
					t.Errorf("job %s: target %s, but %s listens on %s", sc.JobName, target, h, listenPort(s))
				}
				scraped[h] = sc.JobName
			}
		}
	}
	for name, s := range p.Services {
		want := ""
		switch {
		case runsBinary(s, "wxpayd"):
			want = "wxpayd"
		case runsBinary(s, "wxpaysink"):
			want = "wxpaysink"
		}
		if want != "" && scraped[name] != want {
			t.Errorf("%s is not scraped by job %s (dashboards select that job)", name, want)
		}
	}
	if jobs := dashboardJobs(t); len(jobs) > 0 {
		for j := range jobs {
			found := false
			for _, sc := range prom.ScrapeConfigs {
				if sc.JobName == j {
					found = true
				}
			}
			if !found {
				t.Errorf("dashboards select job=%q, which prometheus.yml does not scrape", j)
			}
		}
	}

	// Grafana: provisioning and dashboards mounted where the provider
	// looks, every ${VAR} of the data sources set, hosts that are services.
	g := p.Services["grafana"]
	gdir := filepath.Join(repoRoot(t), "deploy", "grafana")
	var provTarget, dashTarget string
	for _, v := range g.Volumes {
		switch v.Source {
		case filepath.Join(gdir, "provisioning"):
			provTarget = v.Target
		case filepath.Join(gdir, "dashboards"):
			dashTarget = v.Target
		}
	}
	if provTarget != "/etc/grafana/provisioning" {
		t.Errorf("deploy/grafana/provisioning mounted at %q", provTarget)
	}
	var provider struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string         `json:"name"`
			Folder                string         `json:"folder"`
			Type                  string         `json:"type"`
			DisableDeletion       bool           `json:"disableDeletion"`
			AllowUIUpdates        bool           `json:"allowUiUpdates"`
			UpdateIntervalSeconds int            `json:"updateIntervalSeconds"`
			Options               map[string]any `json:"options"`
		} `json:"providers"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, gdir, "provisioning", "dashboards", "wxpayd.yaml"), &provider); err != nil {
		t.Fatal(err)
	}
	if len(provider.Providers) != 1 || provider.Providers[0].Options["path"] != dashTarget || dashTarget == "" {
		t.Errorf("the dashboard provider reads %v; deploy/grafana/dashboards is mounted at %q", provider.Providers, dashTarget)
	}
	genv := envOf(g)
	ds := string(readFile(t, gdir, "provisioning", "datasources", "datasources.yaml"))
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)\}`).FindAllStringSubmatch(ds, -1) {
		if genv[m[1]] == "" {
			t.Errorf("datasources.yaml uses ${%s}; grafana's environment does not set it", m[1])
		}
	}
	if h, _ := hostPort(t, "PROMETHEUS_URL", strings.TrimPrefix(genv["PROMETHEUS_URL"], "http://")); p.Services[h].Name == "" {
		t.Errorf("PROMETHEUS_URL %s is not a service", genv["PROMETHEUS_URL"])
	}
	if _, ok := p.Services[genv["CLICKHOUSE_HOST"]]; !ok {
		t.Errorf("CLICKHOUSE_HOST %s is not a service", genv["CLICKHOUSE_HOST"])
	}
	if v := passwordVar["grafana"]; v == "" || chEnv[v] != genv["GRAFANA_CLICKHOUSE_PASSWORD"] {
		t.Error("Grafana's ClickHouse user and password do not match users.xml")
	}
	if !strings.Contains(ds, "username: grafana") {
		t.Error("Grafana should read ClickHouse as the read-only grafana user")
	}
	if !strings.Contains(genv["GF_PLUGINS_PREINSTALL_SYNC"], "grafana-clickhouse-datasource") {
		t.Error("Grafana does not install grafana-clickhouse-datasource")
	}
}

// TestComposeMerchantOverride checks the production-like variant: wxpaysim
// and the development identity gone, secrets from compose secrets (files),
// every required setting present, WeChat's real API.
func TestComposeMerchantOverride(t *testing.T) {
	p := mustLoadCompose(t, merchantEnv, "compose.yaml", "compose.merchant.yaml")
	settings := wxpaydSettings(t)
	for _, gone := range []string{"wxpaysim", "wxpayd-init", "wxpayd-2"} {
		if _, ok := p.Services[gone]; ok {
			t.Errorf("%s still runs with real merchant keys", gone)
		}
	}
	s, ok := p.Services["wxpayd-1"]
	if !ok {
		t.Fatal("no wxpayd-1")
	}
	if len(s.Entrypoint) != 1 || s.Entrypoint[0] != "/usr/local/bin/wxpayd" {
		t.Errorf("entrypoint %v: run wxpayd itself, without the development wrapper", s.Entrypoint)
	}
	for dep := range s.DependsOn {
		if _, ok := p.Services[dep]; !ok {
			t.Errorf("depends on %s, which is disabled", dep)
		}
	}
	env := envOf(s)
	for f, v := range flagsOf(s.Command) {
		for n := range settings {
			if flagName(n) == f {
				env[n] = v
			}
		}
	}
	for _, r := range requiredWxpayd(t) {
		if env[r] == "" {
			t.Errorf("required setting %s is not set", r)
		}
	}
	if !hasWechatKey(env) {
		t.Error("no WeChat Pay key configured")
	}
	if base := env["WXPAY_API_BASE"]; base != "" && base != settings["WXPAY_API_BASE"].Default {
		t.Errorf("WXPAY_API_BASE=%s: with merchant keys, talk to WeChat Pay", base)
	}
	for _, v := range s.Volumes {
		if strings.HasPrefix(v.Target, "/etc/wxpayd/") {
			t.Errorf("development mount %s left in place", v.Target)
		}
	}
	secrets := map[string]bool{}
	for _, sec := range s.Secrets {
		target := sec.Target
		if target == "" {
			target = sec.Source
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		top, ok := p.Secrets[sec.Source]
		if !ok || top.File == "" {
			t.Errorf("secret %s is not a file-based top-level secret", sec.Source)
		}
		if !strings.HasPrefix(top.File, filepath.Join(composeDir(t), "secrets")+"/") {
			t.Errorf("secret %s from %s: keep merchant secrets in deploy/compose/secrets", sec.Source, top.File)
		}
		secrets[target] = true
	}
	for k, v := range env {
		if strings.HasSuffix(k, "_FILE") && !secrets[v] {
			t.Errorf("%s=%s is not a mounted compose secret", k, v)
		}
	}
	ign := string(readFile(t, composeDir(t), "secrets", ".gitignore"))
	if !strings.Contains(ign, "\n*\n") {
		t.Error("deploy/compose/secrets/.gitignore must ignore every file")
	}
}
