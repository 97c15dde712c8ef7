package delivery

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/catalog"
)

// outcomeLines returns the delivery outcome log lines of delivery id.
func outcomeLines(t *testing.T, h *harness, id string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["delivery_id"] == id && m["outcome"] != nil {
			out = append(out, m)
		}
	}
	return out
}

// Each attempt's outcome is one line (retrying and delivered at info, dead at warn)
// carrying the ids shared with the connect's line and durations in milliseconds.
func TestOneLogLinePerDeliveryOutcome(t *testing.T) {
	c := newCRM(t, false, func(r *http.Request, n int) (int, http.Header, string) {
		if strings.HasSuffix(r.URL.Path, "/dead") {
			return 422, nil, "no"
		}
		if n <= 2 {
			return 503, nil, "busy"
		}
		return 200, nil, "ok"
	})
	h := startQueue(t, testOptions("sqlite:"+t.TempDir()+"/q.db"))
	ok := notification(t, c.srv.URL+"/ok", catalog.MethodPOST, catalog.FormatJSON, nil)
	enqueue(t, h.q, ok)
	waitFor(t, "the delivered line", func() bool {
		ls := outcomeLines(t, h, ok.ID)
		return len(ls) > 0 && ls[len(ls)-1]["outcome"] == "delivered"
	})
	dead := notification(t, c.srv.URL+"/dead", catalog.MethodPOST, catalog.FormatJSON, nil)
	enqueue(t, h.q, dead)
	waitFor(t, "the dead line", func() bool { return len(outcomeLines(t, h, dead.ID)) == 1 })

	var got []string
	for _, l := range outcomeLines(t, h, ok.ID) {
		got = append(got, l["level"].(string)+" "+l["outcome"].(string))
		if l["call_id"] != ok.CallID || l["notification_id"] != ok.ID || l["campaign_id"] != float64(11) ||
			l["site_id"] != float64(7) || l["agent_id"] != float64(2) {
			t.Errorf("line lacks the call's ids: %v", l)
		}
		switch l["outcome"] {
		case "retrying":
			if ms, isNum := l["retry_in_ms"].(float64); !isNum || ms < 0 || l["next_attempt"] == nil || l["http_status"] != float64(503) {
				t.Errorf("retrying line = %v, want retry_in_ms, next_attempt and http_status 503", l)
			}
		case "delivered":
			if ms, isNum := l["latency_ms"].(float64); !isNum || ms < 0 {
				t.Errorf("delivered line = %v, want latency_ms", l)
			}
		}
	}
	if strings.Join(got, ", ") != "info retrying, info retrying, info delivered" {
		t.Errorf("outcome lines of a delivery that fails twice = %v", got)
	}
	if l := outcomeLines(t, h, dead.ID)[0]; l["level"] != "warn" || l["outcome"] != "dead" || l["http_status"] != float64(422) {
		t.Errorf("dead line = %v, want warn, outcome dead, http_status 422", l)
	}
}
