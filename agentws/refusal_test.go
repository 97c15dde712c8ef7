package agentws

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/internal/lograte"
	"github.com/omlcrm/oml-crm/internal/logtest"
)

// 2,000 refused /ws requests write one log line per reason and interval, and the next
// line counts the ones not logged; the metric counts them all.
func TestRefusalLoggingRateLimited(t *testing.T) {
	var logs logtest.Buffer
	reg := prometheus.NewRegistry()
	h, err := New(Options{Auth: AuthToken, TokenSecret: testSecret, Logger: zerolog.New(&logs), Registerer: reg, RefusalLogInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	h.refusals = lograte.NewWithClock(time.Hour, 256, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	srv := httptest.NewServer(h)
	defer func() { h.Close(); srv.Close() }()

	refuse := func(n int) {
		for range n {
			resp, err := http.Get(srv.URL + "/ws?token=v1.1.1.forged")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("forged token: %d", resp.StatusCode)
			}
		}
	}
	refuse(2000)
	lines := refusalLines(t, logs.String())
	if len(lines) != 1 || lines[0]["suppressed"] != nil {
		t.Fatalf("2000 refusals within the interval wrote %d lines: %v", len(lines), lines)
	}
	mu.Lock()
	now = now.Add(time.Hour + time.Second)
	mu.Unlock()
	refuse(1)
	lines = refusalLines(t, logs.String())
	if len(lines) != 2 || lines[1]["suppressed"] != float64(1999) {
		t.Fatalf("after the interval: %v, want a second line with suppressed=1999", lines)
	}
	if v := testutil.ToFloat64(h.metrics.refused.WithLabelValues("credentials")); v != 2001 {
		t.Errorf("refused_total{credentials} = %v, want 2001", v)
	}
}

func refusalLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if !strings.Contains(l, "websocket refused") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}
