package deploycheck

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"
)

// alertsFile is the Prometheus rule file of the compose stack.
const alertsFile = "alerts.yml"

// ruleFile is Prometheus's rule file format (model/rulefmt), decoded
// strictly: a misspelt or unknown field fails, as it fails Prometheus.
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `json:"alert,omitempty"`
			Record      string            `json:"record,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// promTemplateDefs are the variables Prometheus defines before an alert's
// template (rules/alerting.go).
const promTemplateDefs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}" +
	"{{$externalURL := .ExternalURL}}{{$value := .Value}}"

// promTemplateFuncs are the template functions of Prometheus's alert
// templates that the rules may use (template/template.go); here only
// their names matter, to parse the templates.
var promTemplateFuncs = template.FuncMap{}

func init() {
	for _, f := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage",
		"humanizeTimestamp", "title", "toUpper", "toLower", "reReplaceAll", "match", "query", "first", "label",
		"value", "sortByLabel", "args", "safeHtml", "externalURL", "pathPrefix", "stripPort", "stripDomain",
		"graphLink", "tableLink", "parseDuration", "toTime"} {
		promTemplateFuncs[f] = func(...any) any { return nil }
	}
}

// loadRules decodes deploy/compose/alerts.yml strictly and checks it as
// Prometheus does when it loads it: groups named and unique, each rule an
// alert or a record with an expression that parses, a for: that is a
// duration, and templates that parse. It returns the file and the metrics
// the rules read, with the alerts that read them.
func loadRules(t testing.TB) (ruleFile, map[string][]string) {
	t.Helper()
	var f ruleFile
	if err := yaml.UnmarshalStrict(readFile(t, composeDir(t), alertsFile), &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	if len(f.Groups) == 0 {
		t.Fatalf("%s: no groups", alertsFile)
	}
	metrics := map[string][]string{}
	groups := map[string]bool{}
	for _, g := range f.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("%s: group name %q empty or repeated", alertsFile, g.Name)
		}
		groups[g.Name] = true
		if len(g.Rules) == 0 {
			t.Errorf("%s: group %s has no rules", alertsFile, g.Name)
		}
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if (r.Alert == "") == (r.Record == "") {
				t.Errorf("%s: a rule must be an alert or a record, not both or neither: %q", alertsFile, name)
			}
			names, _, err := promMetrics(r.Expr)
			if err != nil {
				t.Errorf("%s: %s: expr: %v", alertsFile, name, err)
			}
			for _, n := range names {
				metrics[n] = append(metrics[n], alertsFile+": "+name)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: %s: for %q: %v", alertsFile, name, r.For, err)
				}
			}
			for k, v := range r.Annotations {
				if _, err := template.New(k).Funcs(promTemplateFuncs).Parse(promTemplateDefs + v); err != nil {
					t.Errorf("%s: %s: annotation %s: %v", alertsFile, name, k, err)
				}
			}
		}
	}
	return f, metrics
}

// ruleMetrics returns the metrics the alert rules read, for
// TestDashboardMetricsExistInWxpayd to check on wxpayd's live /metrics
// with the dashboards' own.
func ruleMetrics(t testing.TB) map[string][]string {
	t.Helper()
	_, m := loadRules(t)
	return m
}

// TestAlertRules checks the alert rules: they load as Prometheus loads
// them (loadRules); each is an alert with a severity of page or ticket, a
// summary and a description, and a for: of at least 5 minutes so that one
// scrape does not page; they read only wxpayd_* metrics; prometheus.yml
// loads the file where compose.yaml mounts it (TestComposeSinkAndObservability
// checks the mount); and the reconciliation's discrepancies and its lag
// have alerts.
func TestAlertRules(t *testing.T) {
	f, metrics := loadRules(t)
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("%s: recording rule %s: only alerts belong here", alertsFile, r.Record)
				continue
			}
			n++
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("%s: %s: severity %q, want page or ticket", alertsFile, r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: %s: needs a summary and a description", alertsFile, r.Alert)
			}
			if d, _ := time.ParseDuration(r.For); d < 5*time.Minute {
				t.Errorf("%s: %s: for %q, want at least 5m", alertsFile, r.Alert, r.For)
			}
		}
	}
	var names []string
	for m := range metrics {
		names = append(names, m)
		if !strings.HasPrefix(m, "wxpayd_") {
			t.Errorf("%s reads %s, not a wxpayd metric", alertsFile, m)
		}
	}
	sort.Strings(names)
	if len(metrics["wxpayd_reconcile_discrepancies"]) == 0 || len(metrics["wxpayd_reconcile_last_date"]) == 0 {
		t.Errorf("no alert reads wxpayd_reconcile_discrepancies and wxpayd_reconcile_last_date (read: %v)", names)
	}
	var prom struct {
		RuleFiles []string `json:"rule_files"`
	}
	if err := yaml.Unmarshal(readFile(t, composeDir(t), "prometheus.yml"), &prom); err != nil {
		t.Fatal(err)
	}
	if len(prom.RuleFiles) != 1 || prom.RuleFiles[0] != filepath.Join("/etc/prometheus", alertsFile) {
		t.Errorf("prometheus.yml rule_files %v, want [/etc/prometheus/%s]", prom.RuleFiles, alertsFile)
	}
	t.Logf("%d alerts over %v", n, names)
}
