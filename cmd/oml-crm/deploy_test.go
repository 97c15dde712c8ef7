package main

// The monitoring files shipped in deploy/ against what the daemon really serves: every
// omlcrm_ metric the Grafana dashboard and the Prometheus rules query exists on /metrics,
// every label value an alert selects on is served, and the metric names and labels follow
// the house rules (no stutter, no spaces, omlcrm_build_info).

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// series is one sample line of /metrics: its name and labels.
type series struct {
	name   string
	labels map[string]string
}

var (
	sampleRe = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	labelRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

func parseMetrics(text string) []series {
	var out []series
	for _, line := range strings.Split(text, "\n") {
		m := sampleRe.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		s := series{name: m[1], labels: map[string]string{}}
		for _, l := range labelRe.FindAllStringSubmatch(m[2], -1) {
			s.labels[l[1]] = l[2]
		}
		out = append(out, s)
	}
	return out
}

// servedMetrics scrapes the two configurations between them serving every part: the demo
// (AMI, file catalog, SQLite queue, traffic) and `run` with ARI, the OMniLeads database
// and Redis (all unreachable: their metrics and dependencies still register).
func servedMetrics(t *testing.T) []series {
	t.Helper()
	bin := buildBinary(t)
	scrape := func(cmd *exec.Cmd, base string, ready func(string) bool) string {
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}()
		var body string
		waitFor(t, 60*time.Second, cmd.Args[1]+" serving /metrics", func() bool {
			code, b := httpGet(base + "/metrics")
			body = b
			return code == 200 && ready(b)
		})
		return body
	}

	demoAddr := freeAddr(t)
	demo := exec.Command(bin, "demo", "--rate", "10", "--listen", demoAddr)
	demo.Dir = t.TempDir()
	// Calls went through both paths: a delivery finished and a pop was sent.
	demoText := scrape(demo, "http://"+demoAddr, func(b string) bool {
		return metricValue(b, `omlcrm_delivery_finished_total{outcome="delivered"}`) > 0 &&
			metricValue(b, `omlcrm_agentws_pops_sent_total`) > 0
	})

	runAddr := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "run.yaml")
	dead := deadAddr(t)
	body := fmt.Sprintf(`log: {level: warn, format: json}
http: {listen: %q}
asterisk: {source: ari, ari: {url: "http://%s", username: u, password: p}}
catalog: {source: omldb}
database: {url: "postgres://nobody@%s/omnileads?sslmode=disable"}
delivery: {store: sqlite, sqlite_path: %q}
agentws: {token_secret: "0123456789abcdef0123456789abcdef"}
cluster: {redis_url: "redis://%s"}
`, runAddr, dead, dead, filepath.Join(t.TempDir(), "q.db"), dead)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	runText := scrape(exec.Command(bin, "run", "--config", cfg), "http://"+runAddr, func(b string) bool {
		return strings.Contains(b, `dependency="redis"`) && strings.Contains(b, `dependency="catalog_db"`)
	})
	return append(parseMetrics(demoText), parseMetrics(runText)...)
}

// metricValue is the value of one exposed sample (name{labels} as printed), 0 if absent.
func metricValue(text, sample string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return 0
}

var (
	metricNameRe = regexp.MustCompile(`\bomlcrm_[a-zA-Z0-9_]*[a-zA-Z0-9]\b`)
	// A selector with its braces: omlcrm_x{a="b", c=~"d"}.
	selectorRe = regexp.MustCompile(`\b(omlcrm_[a-zA-Z0-9_]+)\{([^}]*)\}`)
	// Equality matchers only (not =~, !=, !~).
	equalRe = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"$]*)"`)
)

func TestDeployMonitoringMatchesMetrics(t *testing.T) {
	served := servedMetrics(t)
	names := map[string]bool{}
	for _, s := range served {
		names[s.name] = true
	}

	// House rules on what is served.
	if !names["omlcrm_build_info"] {
		t.Error("omlcrm_build_info missing from /metrics")
	}
	for _, s := range served {
		if s.name == "omlcrm_build_info" {
			for _, l := range []string{"version", "revision", "goversion"} {
				if _, ok := s.labels[l]; !ok {
					t.Errorf("omlcrm_build_info lacks the %s label", l)
				}
			}
		}
		for k, v := range s.labels {
			if strings.Contains(v, " ") {
				t.Errorf("label value with a space: %s{%s=%q}", s.name, k, v)
			}
		}
	}
	for n := range names {
		parts := strings.Split(n, "_")
		for i := 1; i+1 < len(parts); i++ {
			if parts[i] == parts[i+1] {
				t.Errorf("stutter in metric name %s", n)
			}
		}
	}

	root := pgtest.ModuleRoot(t)
	var queries []string // every PromQL expression shipped

	// The dashboard: every string under expr / query / definition.
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "oml-crm.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana/oml-crm.json: %v", err)
	}
	var walk func(v any, q bool)
	walk = func(v any, q bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(x, q || k == "expr" || k == "query" || k == "definition")
			}
		case []any:
			for _, x := range v {
				walk(x, q)
			}
		case string:
			if q {
				queries = append(queries, v)
			}
		}
	}
	walk(dash, false)
	if len(queries) < 10 {
		t.Fatalf("the dashboard has %d queries", len(queries))
	}

	// The alert rules.
	raw, err = os.ReadFile(filepath.Join(root, "deploy", "prometheus", "oml-crm-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("deploy/prometheus/oml-crm-rules.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			queries = append(queries, r.Expr)
		}
	}

	var missing []string
	for _, q := range queries {
		for _, n := range metricNameRe.FindAllString(q, -1) {
			if !names[n] {
				missing = append(missing, n)
			}
		}
		// Each equality matcher of a selector matches a served series (an alert on
		// dependency="catalog db" or outcome="dead" that is never exported would be
		// silent forever).
		for _, sel := range selectorRe.FindAllStringSubmatch(q, -1) {
			want := map[string]string{}
			for _, m := range equalRe.FindAllStringSubmatch(sel[2], -1) {
				want[m[1]] = m[2]
			}
			if !hasSeries(served, sel[1], want) {
				missing = append(missing, sel[0])
			}
		}
	}
	sort.Strings(missing)
	for i, m := range missing {
		if i == 0 || m != missing[i-1] {
			t.Errorf("queried but not on /metrics: %s", m)
		}
	}
}

func hasSeries(served []series, name string, want map[string]string) bool {
	for _, s := range served {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
