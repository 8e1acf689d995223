package deploycheck

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The API groups deploy/k8s may use. A kind outside them fails the test:
// add the group here deliberately.
var k8sScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

type k8sObject struct {
	Where string // file#document
	GVK   schema.GroupVersionKind
	Name  string
	Obj   runtime.Object
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeK8s strict-decodes one YAML document the way the API server does
// with fieldValidation=Strict: YAML duplicate keys, unknown fields and
// fields of the wrong case are errors (sigs.k8s.io/json is the
// case-sensitive decoder Kubernetes itself uses). It returns nil, nil for
// an empty document.
func decodeK8s(doc []byte) (runtime.Object, schema.GroupVersionKind, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, schema.GroupVersionKind{}, fmt.Errorf("YAML: %w", err)
	}
	if string(js) == "null" {
		return nil, schema.GroupVersionKind{}, nil
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, schema.GroupVersionKind{}, err
	}
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	obj, err := k8sScheme.New(gvk)
	if err != nil {
		return nil, gvk, fmt.Errorf("%s: not a kind of the allowed API groups: %w", gvk, err)
	}
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return nil, gvk, fmt.Errorf("%s: %w", gvk.Kind, err)
	}
	if len(strict) > 0 {
		var msgs []string
		for _, e := range strict {
			msgs = append(msgs, e.Error())
		}
		return nil, gvk, fmt.Errorf("%s: strict decoding: %s", gvk.Kind, strings.Join(msgs, "; "))
	}
	return obj, gvk, nil
}

func k8sFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	var out []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			out = append(out, f)
		}
	}
	return out
}

func loadK8s(t testing.TB) []k8sObject {
	t.Helper()
	var out []k8sObject
	for _, f := range k8sFiles(t) {
		for i, doc := range docSeparator.Split(string(readFile(t, f)), -1) {
			where := fmt.Sprintf("%s#%d", filepath.Base(f), i+1)
			obj, gvk, err := decodeK8s([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if obj == nil {
				continue
			}
			m, ok := obj.(metav1.Object)
			if !ok || m.GetName() == "" {
				t.Fatalf("%s: %s without metadata.name", where, gvk.Kind)
			}
			out = append(out, k8sObject{Where: where, GVK: gvk, Name: m.GetName(), Obj: obj})
		}
	}
	return out
}

func find[T runtime.Object](objs []k8sObject, name string) T {
	var zero T
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok && o.Name == name {
			return v
		}
	}
	return zero
}

func all[T runtime.Object](objs []k8sObject) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestK8sManifestsStrictDecode decodes every document of every manifest
// into its k8s.io/api type, strictly, and checks the set of objects.
func TestK8sManifestsStrictDecode(t *testing.T) {
	objs := loadK8s(t)
	have := map[string]bool{}
	for _, o := range objs {
		key := o.GVK.Kind + "/" + o.Name
		if have[key] {
			t.Errorf("%s: %s defined twice", o.Where, key)
		}
		have[key] = true
	}
	for _, want := range []string{
		"Namespace/wxpayd", "ConfigMap/wxpayd-config", "Service/wxpayd-headless", "Service/wxpayd",
		"StatefulSet/wxpayd", "PodDisruptionBudget/wxpayd", "ConfigMap/wxpaysink-config",
		"Service/wxpaysink-metrics", "Deployment/wxpaysink", "PodDisruptionBudget/wxpaysink",
		"NetworkPolicy/wxpayd", "NetworkPolicy/wxpaysink",
	} {
		if !have[want] {
			t.Errorf("missing %s", want)
		}
	}
	keys := make([]string, 0, len(have))
	for k := range have {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("%d objects: %s", len(keys), strings.Join(keys, " "))
}

// TestK8sStrictDecodeRejectsMistakes proves the decoder is strict: each
// mistake below, made in the real wxpayd.yaml, must fail.
func TestK8sStrictDecodeRejectsMistakes(t *testing.T) {
	src := string(readFile(t, repoRoot(t), "deploy", "k8s", "wxpayd.yaml"))
	for _, tc := range []struct{ name, from, to string }{
		{"a misspelt field", "  replicas: 3\n", "  replica: 3\n"},
		{"a field in the wrong case", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true"},
		{"an unknown field", "  minReadySeconds: 10\n", "  minReadySeconds: 10\n  maxReadySeconds: 10\n"},
		{"a duplicated key", "  minReadySeconds: 10\n", "  minReadySeconds: 10\n  minReadySeconds: 11\n"},
		{"a value of the wrong type", "  replicas: 3\n", "  replicas: three\n"},
		{"a field at the wrong level", "      automountServiceAccountToken: false\n", "      automountServiceAccountToken: false\n      runAsNonRoot: true\n"},
		{"an unknown kind", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(src, tc.from) {
				t.Fatalf("wxpayd.yaml no longer contains %q: update this test", tc.from)
			}
			bad := strings.Replace(src, tc.from, tc.to, 1)
			for _, doc := range docSeparator.Split(bad, -1) {
				if _, _, err := decodeK8s([]byte(doc)); err != nil {
					t.Logf("rejected: %v", err)
					return
				}
			}
			t.Fatal("accepted")
		})
	}
}

// workload is a pod template with where it comes from.
type workload struct {
	Kind, Name string
	Replicas   int32
	Selector   *metav1.LabelSelector
	Pod        corev1.PodTemplateSpec
}

func workloads(objs []k8sObject) []workload {
	var out []workload
	for _, s := range all[*appsv1.StatefulSet](objs) {
		out = append(out, workload{"StatefulSet", s.Name, ptrOr(s.Spec.Replicas, 1), s.Spec.Selector, s.Spec.Template})
	}
	for _, d := range all[*appsv1.Deployment](objs) {
		out = append(out, workload{"Deployment", d.Name, ptrOr(d.Spec.Replicas, 1), d.Spec.Selector, d.Spec.Template})
	}
	return out
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestK8sHardenedPods checks every pod template: non-root, read-only root
// filesystem, no privilege escalation, all capabilities dropped,
// RuntimeDefault seccomp, no service-account token, requests and limits,
// probes on named ports that exist, and a selector matching its labels.
func TestK8sHardenedPods(t *testing.T) {
	objs := loadK8s(t)
	cf := parseContainerfile(t, filepath.Join(repoRoot(t), "deploy", "Containerfile"))
	uid, _, _ := strings.Cut(cf.last(cf.stage("wxpayd"), "USER"), ":")
	imageUID, _ := strconv.ParseInt(uid, 10, 64)
	wls := workloads(objs)
	if len(wls) == 0 {
		t.Fatal("no workloads")
	}
	for _, w := range wls {
		t.Run(w.Kind+"/"+w.Name, func(t *testing.T) {
			p := w.Pod.Spec
			if w.Selector == nil || !selects(w.Selector.MatchLabels, w.Pod.Labels) {
				t.Errorf("selector %v does not match the template labels %v", w.Selector, w.Pod.Labels)
			}
			if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
				t.Error("automountServiceAccountToken must be false (the pods do not call the API server)")
			}
			psc := p.SecurityContext
			if psc == nil || !ptrOr(psc.RunAsNonRoot, false) || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext must set runAsNonRoot and seccompProfile RuntimeDefault: %+v", psc)
			}
			if len(p.InitContainers) > 0 {
				t.Errorf("init containers are not checked here; add them to this test")
			}
			for _, c := range p.Containers {
				sc := c.SecurityContext
				switch {
				case sc == nil:
					t.Fatalf("%s: no securityContext", c.Name)
				case !ptrOr(sc.RunAsNonRoot, false) && !ptrOr(psc.RunAsNonRoot, false):
					t.Errorf("%s: runAsNonRoot", c.Name)
				case ptrOr(sc.RunAsUser, ptrOr(psc.RunAsUser, 0)) != imageUID:
					t.Errorf("%s: runAsUser %d, the image's USER is %d", c.Name, ptrOr(sc.RunAsUser, 0), imageUID)
				case !ptrOr(sc.ReadOnlyRootFilesystem, false):
					t.Errorf("%s: readOnlyRootFilesystem must be true", c.Name)
				case ptrOr(sc.AllowPrivilegeEscalation, true):
					t.Errorf("%s: allowPrivilegeEscalation must be false", c.Name)
				case ptrOr(sc.Privileged, false):
					t.Errorf("%s: privileged", c.Name)
				case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0:
					t.Errorf("%s: capabilities must drop ALL and add none: %+v", c.Name, sc.Capabilities)
				case sc.SeccompProfile == nil && psc.SeccompProfile == nil:
					t.Errorf("%s: no seccomp profile", c.Name)
				}
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
					if req.IsZero() || lim.IsZero() {
						t.Errorf("%s: %s request and limit required (have %v / %v)", c.Name, r, req.String(), lim.String())
					} else if req.Cmp(lim) > 0 {
						t.Errorf("%s: %s request %s above its limit %s", c.Name, r, req.String(), lim.String())
					}
				}
				if c.Image != "wxpayd" && (!strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":latest")) {
					t.Errorf("%s: image %q: the kustomization sets wxpayd's tag; any other image must be pinned", c.Name, c.Image)
				}
				ports := map[string]int32{}
				for _, cp := range c.Ports {
					ports[cp.Name] = cp.ContainerPort
				}
				if c.LivenessProbe == nil || c.ReadinessProbe == nil {
					t.Errorf("%s: liveness and readiness probes required", c.Name)
				}
				for _, pr := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
					if pr == nil {
						continue
					}
					if pr.HTTPGet == nil {
						t.Errorf("%s: probes are HTTP GETs here", c.Name)
						continue
					}
					if _, ok := ports[pr.HTTPGet.Port.StrVal]; !ok {
						t.Errorf("%s: probe port %s is not a named container port", c.Name, pr.HTTPGet.Port.String())
					}
				}
				// Writable paths are volumes; /tmp is one.
				mounts := map[string]bool{}
				for _, m := range c.VolumeMounts {
					mounts[m.MountPath] = true
				}
				if !mounts["/tmp"] {
					t.Errorf("%s: no /tmp volume under a read-only root filesystem", c.Name)
				}
			}
		})
	}
}

// containerEnv resolves a container's environment: env entries and every
// envFrom ConfigMap (which must exist among the manifests). Values from
// valueFrom are given as "<valueFrom>".
func containerEnv(t testing.TB, objs []k8sObject, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil || ef.Prefix != "" {
			t.Fatalf("%s: only envFrom configMapRef without prefix is checked here", c.Name)
		}
		cm := find[*corev1.ConfigMap](objs, ef.ConfigMapRef.Name)
		if cm == nil {
			t.Fatalf("%s: envFrom ConfigMap %s is not among the manifests", c.Name, ef.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("%s: %s set both in a ConfigMap and in env", c.Name, e.Name)
		}
		env[e.Name] = e.Value
		if e.ValueFrom != nil {
			env[e.Name] = "<valueFrom>"
		}
	}
	return env
}

var k8sVarRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// TestK8sWxpayd checks wxpayd's StatefulSet against what wxpayd needs:
// real settings only, every required one, secrets as files from Secret
// volumes, the data volume from volumeClaimTemplates at WXPAYD_DATA_DIR,
// the listen port, /healthz and /readyz, a shard per ordinal, the headless
// Service, the PodDisruptionBudget and a grace period above shutdown's
// bounds.
func TestK8sWxpayd(t *testing.T) {
	objs := loadK8s(t)
	settings := wxpaydSettings(t)
	ss := find[*appsv1.StatefulSet](objs, "wxpayd")
	if ss == nil {
		t.Fatal("no StatefulSet wxpayd")
	}
	if len(ss.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(ss.Spec.Template.Spec.Containers))
	}
	c := ss.Spec.Template.Spec.Containers[0]
	env := containerEnv(t, objs, c)

	for k := range env {
		if _, ok := settings[k]; !ok && (strings.HasPrefix(k, "WXPAY_") || strings.HasPrefix(k, "WXPAYD_")) && k != "WXPAYD_POD_INDEX" {
			t.Errorf("%s is not a wxpayd setting (docs/configuration.md)", k)
		}
	}
	if _, ok := settings["WXPAYD_POD_INDEX"]; ok {
		t.Error("WXPAYD_POD_INDEX became a real setting: rename the helper variable")
	}
	for _, r := range requiredWxpayd(t) {
		if env[r] == "" {
			t.Errorf("required setting %s is not set", r)
		}
	}
	if !hasWechatKey(env) {
		t.Error("no WeChat Pay key configured (public key + id, platform certificates, or refresh)")
	}

	// Flags: names of settings, $(VAR) references defined, shard per ordinal.
	flags := map[string]string{}
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		for _, m := range k8sVarRef.FindAllStringSubmatch(a, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("argument %q refers to $(%s), which the container does not define", a, m[1])
			}
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		k, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		found := false
		for name := range settings {
			if flagName(name) == k {
				found = true
				flags[name] = v
			}
		}
		if !found {
			t.Errorf("argument %q is not a wxpayd flag", a)
		}
	}
	var podIndexFromLabel bool
	for _, e := range c.Env {
		if e.Name == "WXPAYD_POD_INDEX" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.labels['apps.kubernetes.io/pod-index']" {
			podIndexFromLabel = true
		}
	}
	shardExpr := flags["WXPAYD_SHARD"]
	if shardExpr == "" || !podIndexFromLabel {
		t.Errorf("the shard must come from the StatefulSet ordinal (flag %q, pod-index label %v)", shardExpr, podIndexFromLabel)
	} else {
		start := int32(0)
		if ss.Spec.Ordinals != nil {
			start = ss.Spec.Ordinals.Start
		}
		seen := map[string]bool{}
		for i := start; i < start+ptrOr(ss.Spec.Replicas, 1); i++ {
			shard := strings.ReplaceAll(shardExpr, "$(WXPAYD_POD_INDEX)", strconv.Itoa(int(i)))
			if !shardRE.MatchString(shard) || seen[shard] {
				t.Errorf("pod wxpayd-%d would get shard %q: not 2 characters of [0-9A-Z], or not unique", i, shard)
			}
			seen[shard] = true
		}
		if start == 1 && strings.ReplaceAll(shardExpr, "$(WXPAYD_POD_INDEX)", "1") != settings["WXPAYD_SHARD"].Default {
			t.Errorf("the first pod's shard should be wxpayd's default %q", settings["WXPAYD_SHARD"].Default)
		}
	}
	// Cluster mode: the shard and member lists must name exactly the pods
	// the StatefulSet runs, or orders of a missing shard cannot be reached.
	replicas := int(ptrOr(ss.Spec.Replicas, 1))
	if replicas > 1 {
		start := 0
		if ss.Spec.Ordinals != nil {
			start = int(ss.Spec.Ordinals.Start)
		}
		var wantShards, wantMembers []string
		for i := start; i < start+replicas; i++ {
			wantShards = append(wantShards, strings.ReplaceAll(shardExpr, "$(WXPAYD_POD_INDEX)", strconv.Itoa(i)))
			wantMembers = append(wantMembers, fmt.Sprintf("wxpayd-%d.%s:7947", i, ss.Spec.ServiceName))
		}
		flag := func(name string) string {
			for _, a := range c.Args {
				if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
					return v
				}
			}
			return ""
		}
		if got := flag("wxpayd-cluster-shards"); got != strings.Join(wantShards, ",") {
			t.Errorf("-wxpayd-cluster-shards=%q, want %q for %d replicas", got, strings.Join(wantShards, ","), replicas)
		}
		if got := flag("wxpayd-cluster-members"); got != strings.Join(wantMembers, ",") {
			t.Errorf("-wxpayd-cluster-members=%q, want %q for %d replicas", got, strings.Join(wantMembers, ","), replicas)
		}
		if !strings.Contains(flag("wxpayd-cluster-listen"), "."+ss.Spec.ServiceName+":7946") {
			t.Errorf("-wxpayd-cluster-listen=%q must name the pod through %s", flag("wxpayd-cluster-listen"), ss.Spec.ServiceName)
		}
	}

	// Secrets as files.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	vols := map[string]corev1.Volume{}
	for _, v := range ss.Spec.Template.Spec.Volumes {
		vols[v.Name] = v
	}
	for k, v := range env {
		if !strings.HasSuffix(k, "_FILE") && k != "WXPAY_PLATFORM_CERT_FILES" {
			continue
		}
		for _, path := range strings.Split(v, ",") {
			ok := false
			for _, m := range c.VolumeMounts {
				vol := vols[m.Name]
				if !strings.HasPrefix(path, m.MountPath+"/") || vol.Secret == nil {
					continue
				}
				if !m.ReadOnly {
					t.Errorf("%s: secret volume %s mounted writable", k, m.Name)
				}
				if vol.Secret.DefaultMode == nil || *vol.Secret.DefaultMode&0o007 != 0 {
					t.Errorf("%s: secret volume %s must not be world-readable (defaultMode)", k, m.Name)
				}
				rel := strings.TrimPrefix(path, m.MountPath+"/")
				for _, it := range vol.Secret.Items {
					if it.Path == rel {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s=%s: secret %s maps no item to %q (list items explicitly)", k, path, vol.Secret.SecretName, rel)
				}
				ok = true
			}
			if !ok {
				t.Errorf("%s=%s is not a file of a mounted Secret", k, path)
			}
		}
	}
	if g := ss.Spec.Template.Spec.SecurityContext.FSGroup; g == nil || *g != ptrOr(ss.Spec.Template.Spec.SecurityContext.RunAsGroup, -1) {
		t.Error("fsGroup must equal runAsGroup so the secret files (0440) and the data volume are the process's")
	}

	// The data volume.
	var dataMount *corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if m.MountPath == env["WXPAYD_DATA_DIR"] {
			dataMount = &m
		}
	}
	if dataMount == nil {
		t.Fatalf("WXPAYD_DATA_DIR=%s is not a volume mount", env["WXPAYD_DATA_DIR"])
	}
	var claim *corev1.PersistentVolumeClaim
	for i := range ss.Spec.VolumeClaimTemplates {
		if ss.Spec.VolumeClaimTemplates[i].Name == dataMount.Name {
			claim = &ss.Spec.VolumeClaimTemplates[i]
		}
	}
	if claim == nil {
		t.Fatalf("the data mount %s is not a volumeClaimTemplate: every pod needs its own durable volume", dataMount.Name)
	}
	if _, isPodVolume := vols[dataMount.Name]; isPodVolume {
		t.Errorf("volume %s is both a pod volume and a claim template", dataMount.Name)
	}
	if len(claim.Spec.AccessModes) != 1 || claim.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("data claim access modes %v, want ReadWriteOnce", claim.Spec.AccessModes)
	}
	if q := claim.Spec.Resources.Requests[corev1.ResourceStorage]; q.Cmp(resource.MustParse("1Gi")) < 0 {
		t.Errorf("data claim requests %s", q.String())
	}
	if p := ss.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType ||
		p.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Error("payment state must outlive the StatefulSet: retain claims when deleted and when scaled")
	}

	// Listening, probes.
	_, port, _ := strings.Cut(env["WXPAYD_LISTEN"], ":")
	if !strings.HasPrefix(env["WXPAYD_LISTEN"], "0.0.0.0:") {
		t.Errorf("WXPAYD_LISTEN=%s: in a pod wxpayd must listen on all interfaces", env["WXPAYD_LISTEN"])
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if strconv.Itoa(int(ports["http"])) != port {
		t.Errorf("container port http=%d, WXPAYD_LISTEN port %s", ports["http"], port)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("liveness probe must GET /healthz")
	}
	if c.StartupProbe == nil || c.StartupProbe.HTTPGet == nil || c.StartupProbe.HTTPGet.Path != "/healthz" {
		t.Error("startup probe must GET /healthz (recovery can take a while)")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("readiness probe must GET /readyz")
	}
	// wxpayd's shutdown steps are bounded at 15+20+10+5+5+10 s (cmd/wxpayd).
	const shutdownBound = 65
	pre := int64(0)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		pre = c.Lifecycle.PreStop.Sleep.Seconds
	}
	if g := ptrOr(ss.Spec.Template.Spec.TerminationGracePeriodSeconds, 30); g < shutdownBound+pre {
		t.Errorf("terminationGracePeriodSeconds %d below wxpayd's shutdown bound %d s + preStop %d s", g, shutdownBound, pre)
	}

	// The headless Service and the PodDisruptionBudget.
	hs := find[*corev1.Service](objs, ss.Spec.ServiceName)
	if hs == nil || hs.Spec.ClusterIP != corev1.ClusterIPNone || !selects(hs.Spec.Selector, ss.Spec.Template.Labels) {
		t.Errorf("serviceName %q must be a headless Service selecting the pods", ss.Spec.ServiceName)
	}
	var pdb *policyv1.PodDisruptionBudget
	for _, p := range all[*policyv1.PodDisruptionBudget](objs) {
		if p.Spec.Selector != nil && selects(p.Spec.Selector.MatchLabels, ss.Spec.Template.Labels) {
			pdb = p
		}
	}
	if pdb == nil || pdb.Spec.MinAvailable == nil {
		t.Error("no PodDisruptionBudget with minAvailable for wxpayd")
	}
}

// TestK8sSink checks the sink's Deployment: its settings are ones
// wxpaysink reads, brokers and ClickHouse are set, the metrics port is the
// one it listens on, and the ClickHouse password comes from a Secret.
func TestK8sSink(t *testing.T) {
	objs := loadK8s(t)
	allowed := sinkSettings(t)
	d := find[*appsv1.Deployment](objs, "wxpaysink")
	if d == nil {
		t.Fatal("no Deployment wxpaysink")
	}
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.Command) == 0 || filepath.Base(c.Command[0]) != "wxpaysink" {
		t.Errorf("command %v must run wxpaysink", c.Command)
	}
	env := containerEnv(t, objs, c)
	for k := range env {
		if (strings.HasPrefix(k, "WXPAYD_") || strings.HasPrefix(k, "WXPAY_")) && !allowed[k] {
			t.Errorf("%s is not read by wxpaysink", k)
		}
	}
	for _, k := range []string{"WXPAYD_KAFKA_BROKERS", "WXPAYD_CLICKHOUSE_ADDR", "WXPAYD_SINK_METRICS_ADDR"} {
		if env[k] == "" {
			t.Errorf("%s not set", k)
		}
	}
	for _, e := range c.Env {
		if e.Name == "WXPAYD_CLICKHOUSE_PASSWORD" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Error("WXPAYD_CLICKHOUSE_PASSWORD must come from a Secret")
		}
	}
	if wx := find[*corev1.ConfigMap](objs, "wxpayd-config"); wx != nil && wx.Data["WXPAYD_KAFKA_TOPIC"] != env["WXPAYD_KAFKA_TOPIC"] {
		t.Errorf("wxpayd publishes to %q, the sink reads %q", wx.Data["WXPAYD_KAFKA_TOPIC"], env["WXPAYD_KAFKA_TOPIC"])
	}
	_, port, _ := strings.Cut(env["WXPAYD_SINK_METRICS_ADDR"], ":")
	ok := false
	for _, p := range c.Ports {
		if p.Name == "metrics" && strconv.Itoa(int(p.ContainerPort)) == port {
			ok = true
		}
	}
	if !ok || !strings.HasPrefix(env["WXPAYD_SINK_METRICS_ADDR"], "0.0.0.0:") {
		t.Errorf("WXPAYD_SINK_METRICS_ADDR=%s must be 0.0.0.0 on the container port named metrics", env["WXPAYD_SINK_METRICS_ADDR"])
	}
	if ptrOr(d.Spec.Replicas, 1) < 2 {
		t.Error("run at least two sink replicas (a consumer group) so a PDB can keep one")
	}
}

// TestK8sReferences checks that Services, PodDisruptionBudgets and
// NetworkPolicies select pods that exist and name ports they serve, that
// scrape annotations name the metrics port, and that the kustomization
// lists exactly the manifests.
func TestK8sReferences(t *testing.T) {
	objs := loadK8s(t)
	wls := workloads(objs)
	podFor := func(sel map[string]string) *workload {
		for i := range wls {
			if selects(sel, wls[i].Pod.Labels) {
				return &wls[i]
			}
		}
		return nil
	}
	portsOf := func(w *workload) map[string]int32 {
		out := map[string]int32{}
		for _, c := range w.Pod.Spec.Containers {
			for _, p := range c.Ports {
				out[p.Name] = p.ContainerPort
			}
		}
		return out
	}
	for _, s := range all[*corev1.Service](objs) {
		w := podFor(s.Spec.Selector)
		if w == nil {
			t.Errorf("Service %s selects no pods", s.Name)
			continue
		}
		ports := portsOf(w)
		for _, p := range s.Spec.Ports {
			if _, ok := ports[p.TargetPort.StrVal]; !ok || p.TargetPort.StrVal == "" {
				t.Errorf("Service %s: targetPort %s is not a named port of %s", s.Name, p.TargetPort.String(), w.Name)
			}
		}
	}
	for _, p := range all[*policyv1.PodDisruptionBudget](objs) {
		w := podFor(p.Spec.Selector.MatchLabels)
		if w == nil {
			t.Errorf("PodDisruptionBudget %s selects no pods", p.Name)
			continue
		}
		if p.Spec.MinAvailable == nil || p.Spec.MaxUnavailable != nil {
			t.Errorf("PodDisruptionBudget %s: use minAvailable", p.Name)
		} else if p.Spec.MinAvailable.IntValue() > int(w.Replicas) {
			t.Errorf("PodDisruptionBudget %s: minAvailable %s above %d replicas", p.Name, p.Spec.MinAvailable.String(), w.Replicas)
		}
	}
	for _, np := range all[*networkingv1.NetworkPolicy](objs) {
		w := podFor(np.Spec.PodSelector.MatchLabels)
		if w == nil {
			t.Errorf("NetworkPolicy %s selects no pods", np.Name)
			continue
		}
		byNum := map[int32]bool{}
		for _, n := range portsOf(w) {
			byNum[n] = true
		}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port == nil || !byNum[int32(p.Port.IntValue())] {
					t.Errorf("NetworkPolicy %s opens a port %s that %s does not serve", np.Name, p.Port.String(), w.Name)
				}
			}
		}
	}
	for _, w := range wls {
		a := w.Pod.Annotations
		if a["prometheus.io/scrape"] != "true" {
			t.Errorf("%s: no prometheus.io/scrape annotation", w.Name)
			continue
		}
		ok := false
		for _, n := range portsOf(&w) {
			if strconv.Itoa(int(n)) == a["prometheus.io/port"] {
				ok = true
			}
		}
		if !ok || a["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: scrape annotations %v do not name a container port and /metrics", w.Name, a)
		}
	}
	if ns := find[*corev1.Namespace](objs, "wxpayd"); ns == nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Error("the namespace must enforce the restricted Pod Security Standard")
	}

	// The kustomization: a small file, strict-decoded into the fields used.
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Namespace  string   `json:"namespace"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name    string `json:"name"`
			NewName string `json:"newName,omitempty"`
			NewTag  string `json:"newTag,omitempty"`
		} `json:"images"`
	}
	dir := filepath.Join(repoRoot(t), "deploy", "k8s")
	if err := yaml.UnmarshalStrict(readFile(t, dir, "kustomization.yaml"), &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	var files []string
	for _, f := range k8sFiles(t) {
		files = append(files, filepath.Base(f))
	}
	sort.Strings(files)
	res := append([]string{}, k.Resources...)
	sort.Strings(res)
	if strings.Join(res, " ") != strings.Join(files, " ") {
		t.Errorf("kustomization resources %v, manifests %v", res, files)
	}
	images := map[string]bool{}
	for _, im := range k.Images {
		if im.NewTag == "" || im.NewTag == "latest" {
			t.Errorf("kustomization image %s: pin newTag", im.Name)
		}
		images[im.Name] = true
	}
	for _, w := range wls {
		for _, c := range w.Pod.Spec.Containers {
			if c.Image == "wxpayd" && !images["wxpayd"] {
				t.Errorf("%s uses image wxpayd, which the kustomization does not set", w.Name)
			}
		}
	}
	if k.Namespace != "wxpayd" {
		t.Errorf("kustomization namespace %q", k.Namespace)
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err == nil {
		t.Log("deploy/k8s/README.md exists; deploy/README.md is the documented place")
	}
}
