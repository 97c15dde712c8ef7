package agentws

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/internal/logtest"
)

// A page retrying with bad credentials is logged once a minute per reason and host, not
// once per attempt; the metric still counts every refusal.
func TestRepeatedRefusalsAreLoggedOnce(t *testing.T) {
	th := newTestHub(t, Options{AllowedOrigins: []string{"https://console.example.com"}})
	var logs logtest.Buffer
	th.log = zerolog.New(&logs) // before any request: nothing reads it yet
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if _, status, err := dialRaw(ctx, th.wsURL(), "v1.garbage", nil, nil); err == nil || status != http.StatusUnauthorized {
			t.Fatalf("dial %d: status %d, %v; want 401", i, status, err)
		}
	}
	evil := http.Header{"Origin": {"https://evil.example.org"}}
	for i := 0; i < 3; i++ {
		if _, status, err := dialRaw(ctx, th.wsURL(), mustToken(t, 1), evil, nil); err == nil || status != http.StatusForbidden {
			t.Fatalf("dial %d: status %d, %v; want 403", i, status, err)
		}
	}
	out := logs.String()
	if n := strings.Count(out, `"reason":"credentials"`); n != 1 {
		t.Errorf("%d lines for 5 refused credentials, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, `"reason":"origin"`); n != 1 {
		t.Errorf("%d lines for 3 refused origins, want 1:\n%s", n, out)
	}
	if got := testutil.ToFloat64(th.metrics.refused.WithLabelValues("credentials")); got != 5 {
		t.Errorf("refused{credentials} = %v, want 5", got)
	}
}
