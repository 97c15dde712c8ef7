package main

// The monitoring files shipped in deploy/ against what the daemon really serves: every
// omlcrm_ metric the Grafana dashboard and the Prometheus rules query exists on /metrics,
// every label value an alert selects on is served, and the metric names and labels follow
// the house rules (no stutter, no spaces, omlcrm_build_info).

import (
	"debug/elf"
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
	dead := freeAddr(t)
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

// The Debian package that deploy/debian/build-deb makes holds what the README promises,
// and its unit points at files the package installs. (Installing it needs root: CI does,
// with dpkg -i, systemd-analyze verify and dpkg --purge.)
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package: skipped with -short")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dpkg-deb missing (apt-get install dpkg)")
		}
		t.Skip("dpkg-deb not installed")
	}
	root := pgtest.ModuleRoot(t)
	out := t.TempDir()
	build := exec.Command(filepath.Join(root, "deploy", "debian", "build-deb"), out)
	build.Dir = root
	build.Env = append(os.Environ(), "VERSION=1.2.3~test", "GO="+filepath.Join(runtimeGOROOT(), "bin", "go"))
	deb, err := build.Output()
	if err != nil {
		t.Fatalf("build-deb: %v\n%s", err, exitStderr(err))
	}
	path := strings.TrimSpace(string(deb))
	if filepath.Base(path) != "oml-crm_1.2.3~test_"+debArch(t)+".deb" {
		t.Errorf("package file %s", path)
	}
	field := func(name string) string {
		b, err := exec.Command("dpkg-deb", "-f", path, name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", name, err)
		}
		return strings.TrimSpace(string(b))
	}
	if field("Package") != "oml-crm" || field("Version") != "1.2.3~test" || field("Depends") != "" {
		t.Errorf("control: Package %q Version %q Depends %q", field("Package"), field("Version"), field("Depends"))
	}
	list, err := exec.Command("dpkg-deb", "-c", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{} // path → mode
	for _, line := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		f := strings.Fields(line)
		files[strings.TrimPrefix(f[len(f)-1], ".")] = f[0]
	}
	for p, mode := range map[string]string{
		"/usr/bin/oml-crm":                                  "-rwxr-xr-x",
		"/lib/systemd/system/oml-crm.service":               "-rw-r--r--",
		"/etc/oml-crm/oml-crm.yaml":                         "-rw-r--r--", // 0640 root:oml-crm after postinst
		"/usr/share/doc/oml-crm/README.md":                  "-rw-r--r--",
		"/usr/share/doc/oml-crm/copyright":                  "-rw-r--r--",
		"/usr/share/doc/oml-crm/docs/operations.md":         "-rw-r--r--",
		"/usr/share/doc/oml-crm/docs/omnileads.md":          "-rw-r--r--",
		"/usr/share/doc/oml-crm/examples/oml-crm-rules.yml": "-rw-r--r--",
	} {
		if got, ok := files[p]; !ok || got != mode {
			t.Errorf("%s: %q in the package, want %s", p, got, mode)
		}
	}

	// The control area: conffile, maintainer scripts that parse.
	ctl := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-e", path, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v %s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(b)) != "/etc/oml-crm/oml-crm.yaml" {
		t.Errorf("conffiles = %q", b)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if out, err := exec.Command("sh", "-n", filepath.Join(ctl, s)).CombinedOutput(); err != nil {
			t.Errorf("%s does not parse: %v %s", s, err, out)
		}
	}

	// The unit, as packaged.
	fs := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", path, fs).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v %s", err, out)
	}
	unit, err := os.ReadFile(filepath.Join(fs, "lib", "systemd", "system", "oml-crm.service"))
	if err != nil {
		t.Fatal(err)
	}
	directives := map[string][]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			directives[k] = append(directives[k], v)
		}
	}
	for k, want := range map[string]string{
		"Type": "notify", "User": "oml-crm", "StateDirectory": "oml-crm", "RestartPreventExitStatus": "2",
		"ExecStart": "/usr/bin/oml-crm run --config /etc/oml-crm/oml-crm.yaml",
	} {
		if got := directives[k]; len(got) != 1 || got[0] != want {
			t.Errorf("unit %s=%v, want %s", k, got, want)
		}
	}
	for _, d := range strings.Fields(strings.Join(directives["Documentation"], " ")) {
		p, ok := strings.CutPrefix(d, "file://")
		if _, inPkg := files[p]; !ok || !inPkg {
			t.Errorf("unit Documentation=%s is not a file of the package", d)
		}
	}
	// The packaged binary is static (no ELF interpreter) and reports the package version.
	bin := filepath.Join(fs, "usr", "bin", "oml-crm")
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the packaged binary is dynamically linked (CGO_ENABLED=0 expected)")
		}
	}
	ef.Close()
	v, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "oml-crm 1.2.3~test, revision ") {
		t.Errorf("packaged oml-crm version: %q, %v", v, err)
	}
}

func debArch(t *testing.T) string {
	b, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
