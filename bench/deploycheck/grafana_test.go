package deploycheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/wxpayd/wxpayd/sink/clickhouse"
)

// The panel and target fields these checks read; the rest of Grafana's
// dashboard model passes through unread.
type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string `json:"refId"`
	Datasource *dsRef `json:"datasource"`
	Expr       string `json:"expr"`   // Prometheus
	RawSQL     string `json:"rawSql"` // ClickHouse
	EditorType string `json:"editorType"`
	Format     *int   `json:"format"`
}

type panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Datasource *dsRef   `json:"datasource"`
	Targets    []target `json:"targets"`
	Panels     []panel  `json:"panels"` // collapsed rows
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
}

type dashboard struct {
	File          string
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []json.RawMessage `json:"list"`
	} `json:"templating"`
}

// query is one target with where it is.
type query struct {
	Where string // file: panel title (refId)
	DS    dsRef
	Text  string
}

func loadDashboards(t testing.TB) []dashboard {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "grafana", "dashboards", "*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards in deploy/grafana/dashboards")
	}
	var out []dashboard
	for _, f := range files {
		b := readFile(t, f)
		if !json.Valid(b) {
			t.Fatalf("%s: not valid JSON", f)
		}
		var d dashboard
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.File = filepath.Base(f)
		out = append(out, d)
	}
	return out
}

func flatPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatPanels(p.Panels)...)
	}
	return out
}

// queries returns every target of every dashboard, with its data source
// (the target's own, else the panel's).
func queries(t testing.TB) []query {
	t.Helper()
	var out []query
	for _, d := range loadDashboards(t) {
		for _, p := range flatPanels(d.Panels) {
			for _, tg := range p.Targets {
				ds := p.Datasource
				if tg.Datasource != nil {
					ds = tg.Datasource
				}
				q := query{Where: fmt.Sprintf("%s: %q (%s)", d.File, p.Title, tg.RefID)}
				if ds != nil {
					q.DS = *ds
				}
				q.Text = tg.Expr
				if tg.RawSQL != "" {
					q.Text = tg.RawSQL
				}
				out = append(out, q)
			}
		}
	}
	return out
}

// provisionedDatasources reads the uid → type of deploy/grafana's data
// sources.
func provisionedDatasources(t testing.TB) map[string]string {
	t.Helper()
	var f struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name           string         `json:"name"`
			UID            string         `json:"uid"`
			Type           string         `json:"type"`
			Access         string         `json:"access,omitempty"`
			URL            string         `json:"url,omitempty"`
			IsDefault      bool           `json:"isDefault,omitempty"`
			Editable       bool           `json:"editable"`
			JSONData       map[string]any `json:"jsonData"`
			SecureJSONData map[string]any `json:"secureJsonData,omitempty"`
		} `json:"datasources"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, repoRoot(t), "deploy", "grafana", "provisioning", "datasources", "datasources.yaml"), &f); err != nil {
		t.Fatalf("datasources.yaml: %v", err)
	}
	out := map[string]string{}
	for _, d := range f.Datasources {
		out[d.UID] = d.Type
	}
	return out
}

const (
	promType = "prometheus"
	chType   = "grafana-clickhouse-datasource"
)

// promMetrics parses a PromQL expression with Prometheus's own parser and
// returns the metric names it selects and the job label values it
// matches on.
func promMetrics(expr string) (names []string, jobs []string, err error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, nil, err
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			switch {
			case m.Name == labels.MetricName && m.Type == labels.MatchEqual:
				name = m.Value
			case m.Name == labels.MetricName:
				err = fmt.Errorf("selector %s matches metric names by regexp: name them", vs)
			case m.Name == "job" && m.Type == labels.MatchEqual:
				jobs = append(jobs, m.Value)
			}
		}
		if name == "" {
			err = fmt.Errorf("selector %s has no metric name", vs)
		}
		names = append(names, name)
		return nil
	})
	return names, jobs, err
}

// dashboardJobs are the job label values the dashboards select.
func dashboardJobs(t testing.TB) map[string]bool {
	out := map[string]bool{}
	for _, q := range queries(t) {
		if q.DS.Type == promType {
			_, jobs, _ := promMetrics(q.Text)
			for _, j := range jobs {
				out[j] = true
			}
		}
	}
	return out
}

// dashboardMetrics maps every metric name a Prometheus query uses to the
// queries using it.
func dashboardMetrics(t testing.TB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, q := range queries(t) {
		if q.DS.Type != promType {
			continue
		}
		names, _, err := promMetrics(q.Text)
		if err != nil {
			t.Fatalf("%s: %v", q.Where, err)
		}
		for _, n := range names {
			out[n] = append(out[n], q.Where)
		}
	}
	return out
}

// The grafana-clickhouse-datasource macros (its pkg/macros) that work on
// every ClickHouse the schema supports: $__timeInterval expands to
// toStartOfInterval, which ClickHouse 18.16 lacks, so it is not listed.
var chMacros = map[string]bool{"timeFilter": true, "fromTime": true, "toTime": true, "interval_s": true,
	"timeFilter_ms": true, "fromTime_ms": true, "toTime_ms": true}

var (
	macroRE  = regexp.MustCompile(`\$__([A-Za-z_]+)`)
	objectRE = regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)`)
	createRE = regexp.MustCompile(`(?i)CREATE\s+(?:MATERIALIZED\s+)?(?:TABLE|VIEW)\s+IF\s+NOT\s+EXISTS\s+\{db\}\.([A-Za-z0-9_]+)`)
)

// schemaObjects are the tables and views the sink's migrations create.
func schemaObjects(t testing.TB) map[string]bool {
	t.Helper()
	ms, err := clickhouse.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range ms {
		for _, x := range createRE.FindAllStringSubmatch(m.SQL, -1) {
			out[x[1]] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("no tables found in the sink's migrations")
	}
	return out
}

// TestDashboards checks the dashboard files: valid JSON, unique uids and
// panel ids, panels inside the 24-column grid, every data source a
// provisioned one of the right type, no template variables to resolve,
// and at least one Prometheus and one ClickHouse dashboard.
func TestDashboards(t *testing.T) {
	dss := provisionedDatasources(t)
	if dss["prometheus"] != promType || dss["clickhouse"] != chType {
		t.Fatalf("provisioned data sources %v: want uid prometheus (%s) and uid clickhouse (%s)", dss, promType, chType)
	}
	uids := map[string]string{}
	kinds := map[string]int{}
	for _, d := range loadDashboards(t) {
		if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
			t.Errorf("%s: uid, title and schemaVersion required", d.File)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %s also in %s", d.File, d.UID, other)
		}
		uids[d.UID] = d.File
		if len(d.Templating.List) > 0 {
			t.Errorf("%s: template variables are not resolved by these checks; add support first", d.File)
		}
		ids := map[int]bool{}
		for _, p := range flatPanels(d.Panels) {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel id %d missing or repeated", d.File, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
				t.Errorf("%s: panel %q outside the grid: %+v", d.File, p.Title, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", d.File, p.Title)
			}
			for _, tg := range p.Targets {
				ds := p.Datasource
				if tg.Datasource != nil {
					ds = tg.Datasource
				}
				if ds == nil || dss[ds.UID] == "" || dss[ds.UID] != ds.Type {
					t.Errorf("%s: panel %q: data source %+v is not provisioned", d.File, p.Title, ds)
					continue
				}
				kinds[ds.Type]++
				switch ds.Type {
				case promType:
					if tg.Expr == "" {
						t.Errorf("%s: panel %q: empty expr", d.File, p.Title)
					}
				case chType:
					if tg.RawSQL == "" || tg.EditorType != "sql" || tg.Format == nil {
						t.Errorf("%s: panel %q: a ClickHouse target needs rawSql, editorType sql and a format", d.File, p.Title)
					}
				}
			}
		}
	}
	if kinds[promType] == 0 || kinds[chType] == 0 {
		t.Errorf("queries by data source type: %v; want Prometheus and ClickHouse dashboards", kinds)
	}
}

// TestDashboardPromQL parses every Prometheus query with Prometheus's
// parser and lists the metric names they use (metrics_test compares them
// with a live /metrics).
func TestDashboardPromQL(t *testing.T) {
	n := 0
	for _, q := range queries(t) {
		if q.DS.Type != promType {
			continue
		}
		n++
		names, _, err := promMetrics(q.Text)
		if err != nil {
			t.Errorf("%s: %v\n  %s", q.Where, err, q.Text)
			continue
		}
		for _, name := range names {
			if !strings.HasPrefix(name, "wxpayd_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
				t.Errorf("%s: metric %s is not wxpayd's", q.Where, name)
			}
		}
	}
	m := dashboardMetrics(t)
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	t.Logf("%d Prometheus queries use %d metrics: %s", n, len(names), strings.Join(names, " "))
}

// TestDashboardClickHouseSQL checks every ClickHouse query offline: only
// known macros, and every table it reads is one the sink's migrations
// create, named with its database. analytics_test runs them for real.
func TestDashboardClickHouseSQL(t *testing.T) {
	objects := schemaObjects(t)
	used := map[string]bool{}
	for _, q := range queries(t) {
		if q.DS.Type != chType {
			continue
		}
		for _, m := range macroRE.FindAllStringSubmatch(q.Text, -1) {
			if !chMacros[m[1]] {
				t.Errorf("%s: macro $__%s is not one these checks expand (or not available on ClickHouse 18.16)", q.Where, m[1])
			}
		}
		refs := objectRE.FindAllStringSubmatch(q.Text, -1)
		if len(refs) == 0 {
			t.Errorf("%s: reads no table", q.Where)
		}
		for _, r := range refs {
			db, name, ok := strings.Cut(r[1], ".")
			if !ok || db != "wxpayd" {
				t.Errorf("%s: %s: name tables as wxpayd.<table> (the sink's default database)", q.Where, r[1])
				continue
			}
			if !objects[name] {
				t.Errorf("%s: %s is not a table or view the sink's migrations create (%v)", q.Where, r[1], keys(objects))
			}
			used[name] = true
		}
	}
	t.Logf("tables and views used: %v of %v", keys(used), keys(objects))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
