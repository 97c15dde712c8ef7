package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

func serve(t *testing.T, r *Registry) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/healthz", r.LivenessHandler())
	mux.Handle("/readyz", r.ReadinessHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func readyBody(t *testing.T, srv *httptest.Server) (int, map[string]string) {
	t.Helper()
	code, body := get(t, srv.URL+"/readyz")
	var m map[string]string
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	return code, m
}

func TestReadyzNamesEachMissingDependency(t *testing.T) {
	r := New()
	srv := serve(t, r)

	if code, m := readyBody(t, srv); code != 200 || len(m) != 0 {
		t.Fatalf("empty registry: %d %v, want 200 {}", code, m)
	}

	r.Require("asterisk")
	r.Require("catalog")
	code, m := readyBody(t, srv)
	if code != 503 || m["asterisk"] != notChecked || m["catalog"] != notChecked || len(m) != 2 {
		t.Fatalf("declared, not reported: %d %v", code, m)
	}

	r.SetError("asterisk", errors.New("dial tcp 127.0.0.1:5038: connect: connection refused"))
	r.Set("catalog", true, "")
	code, m = readyBody(t, srv)
	want := map[string]string{"asterisk": "dial tcp 127.0.0.1:5038: connect: connection refused"}
	if code != 503 || len(m) != 1 || m["asterisk"] != want["asterisk"] {
		t.Fatalf("asterisk down: %d %v, want 503 %v", code, m, want)
	}

	r.SetError("asterisk", nil)
	if code, m := readyBody(t, srv); code != 200 || len(m) != 0 {
		t.Fatalf("all up: %d %v, want 200 {}", code, m)
	}

	// Liveness does not care.
	r.Set("asterisk", false, "")
	if code, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz = %d %q", code, body)
	}
	if _, m := readyBody(t, srv); m["asterisk"] != "not ready" {
		t.Errorf("empty detail: %v, want a non-empty reason", m)
	}
}

func TestOptionalDependencyNeverBlocksReadiness(t *testing.T) {
	r := New()
	srv := serve(t, r)
	r.Optional("redis")
	r.Set("redis", false, "dial tcp 127.0.0.1:6379: connection refused")
	if code, m := readyBody(t, srv); code != 200 || len(m) != 0 {
		t.Fatalf("optional redis down: %d %v, want 200 {}", code, m)
	}
	code, body := get(t, srv.URL+"/readyz?verbose")
	var s Status
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	d := s.Dependencies["redis"]
	if code != 200 || !s.Ready || d.OK || d.Required || !strings.Contains(d.Detail, "6379") {
		t.Errorf("verbose = %d %s", code, body)
	}
}

func TestCheckFunctionsRunOnReadiness(t *testing.T) {
	r := New(WithCheckTimeout(50 * time.Millisecond))
	srv := serve(t, r)
	var mu sync.Mutex
	dbErr := errors.New(`failed to connect to host=127.0.0.1 user=omlcrm password=hunter2 database=omnileads`)
	r.Check("postgresql", func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return dbErr
	})
	code, m := readyBody(t, srv)
	if code != 503 || !strings.Contains(m["postgresql"], "host=127.0.0.1") {
		t.Fatalf("db down: %d %v", code, m)
	}
	if strings.Contains(m["postgresql"], "hunter2") {
		t.Errorf("password leaked in readyz: %q", m["postgresql"])
	}
	mu.Lock()
	dbErr = nil
	mu.Unlock()
	if code, m := readyBody(t, srv); code != 200 {
		t.Fatalf("db back: %d %v", code, m)
	}

	// A check that ignores its context cannot hang the probe.
	release := make(chan struct{})
	defer close(release)
	r.Check("stuck", func(context.Context) error { <-release; return nil })
	code, m = readyBody(t, srv)
	if code != 503 || !strings.Contains(m["stuck"], "deadline exceeded") {
		t.Fatalf("stuck check: %d %v", code, m)
	}
}

func TestRemove(t *testing.T) {
	r := New()
	r.Set("redis", false, "down")
	r.Remove("redis")
	if s := r.Status(context.Background()); !s.Ready || len(s.Dependencies) != 0 {
		t.Errorf("after Remove: %+v", s)
	}
}

func TestTransitionsAreLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	r := New(WithLogger(zerolog.New(&buf)))
	r.Require("asterisk")
	for i := 0; i < 3; i++ { // a reconnect loop reporting the same failure
		r.Set("asterisk", false, "connection refused")
	}
	r.Set("asterisk", true, "")
	r.Set("asterisk", true, "")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"level":"warn"`) || !strings.Contains(lines[0], "connection refused") ||
		!strings.Contains(lines[1], `"level":"info"`) || !strings.Contains(lines[1], `"dependency":"asterisk"`) {
		t.Errorf("log = %q, want one warning then one info", lines)
	}
}

func TestDependencyUpMetric(t *testing.T) {
	r := New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(r)
	r.Set("asterisk", true, "")
	r.Optional("redis")
	want := `# HELP omlcrm_dependency_up 1 when the dependency is ready, 0 when not (required: 1 when the daemon is unready without it).
# TYPE omlcrm_dependency_up gauge
omlcrm_dependency_up{dependency="asterisk",required="true"} 1
omlcrm_dependency_up{dependency="redis",required="false"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "omlcrm_dependency_up"); err != nil {
		t.Error(err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://oml:s3cr3t@db:5432/omnileads":       "postgres://oml:xxxxx@db:5432/omnileads",
		"redis://:pw@127.0.0.1:6379/0 refused":          "redis://:xxxxx@127.0.0.1:6379/0 refused",
		"host=db user=oml password='a b' dbname=x":      "host=db user=oml password=xxxxx dbname=x",
		"login failed: secret: abc":                     "login failed: secret: xxxxx",
		"dial tcp 127.0.0.1:5038: connection refused":   "dial tcp 127.0.0.1:5038: connection refused",
		"http://user@host/path has no password (fine)":  "http://user@host/path has no password (fine)",
		"Get \"http://127.0.0.1:8088/ari/events\": EOF": "Get \"http://127.0.0.1:8088/ari/events\": EOF",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
