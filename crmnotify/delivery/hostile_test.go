package delivery

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// A CRM answering a huge expires_in must not overflow the token's lifetime into the
// past (which logged in once per delivery).
func TestHugeLoginLifetimeIsClamped(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		for i, huge := range []string{"1e300", "99999999999999999999", "9223372036"} {
			a := newAuthServer(t, false)
			a.duration = huge
			h := startQueue(t, testOptions(store))
			auth := a.auth(true, 0)
			auth.ID = 10 + i
			for range 3 {
				n := notification(t, a.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, auth)
				enqueue(t, h.q, n)
				h.waitStatus(t, n.ID, StatusDelivered)
			}
			if got := a.logins.Load(); got != 1 {
				t.Errorf("expires_in %s: %d logins for 3 deliveries, want 1", huge, got)
			}
			// Clamped to a day: renewed after it.
			h.clock.Advance(24*time.Hour + time.Second)
			n := notification(t, a.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, auth)
			enqueue(t, h.q, n)
			h.waitStatus(t, n.ID, StatusDelivered)
			if got := a.logins.Load(); got != 2 {
				t.Errorf("expires_in %s: %d logins a day later, want 2", huge, got)
			}
		}
	})
}

// A site's CRM gets at most MaxInFlightPerSite requests at once, however many
// deliveries are due (a CRM back from an outage), while other sites proceed; the
// per-site backlog and in-flight gauges show it.
func TestInFlightPerSiteBounded(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		gate := make(chan struct{})
		var once sync.Once
		openGate := func() { once.Do(func() { close(gate) }) }
		t.Cleanup(openGate) // before the CRM server closes, even on failure
		var inFlight, peak atomic.Int64
		c := newCRM(t, false, func(r *http.Request, n int) (int, http.Header, string) {
			if r.URL.Path != "/slow" {
				return 200, nil, "ok"
			}
			cur := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
			}
			<-gate
			return 200, nil, "ok"
		})
		opts := testOptions(store)
		opts.MaxInFlightPerSite = 3
		h := startQueue(t, opts)
		var slow []string
		for range 30 {
			n := notification(t, c.srv.URL+"/slow", catalog.MethodPOST, catalog.FormatJSON, nil)
			enqueue(t, h.q, n)
			slow = append(slow, n.ID)
		}
		for inFlight.Load() < 3 {
			time.Sleep(time.Millisecond)
		}
		// Another site is served while site 7 is at its bound.
		fast := notification(t, c.srv.URL+"/fast", catalog.MethodPOST, catalog.FormatJSON, nil)
		fast.Site.ID = 8
		enqueue(t, h.q, fast)
		h.waitStatus(t, fast.ID, StatusDelivered)

		h.q.refreshStats(context.Background())
		for _, g := range []struct {
			name string
			want float64
		}{{"omlcrm_delivery_site_backlog", 30}, {"omlcrm_delivery_site_in_flight", 3}} {
			if v := gaugeValue(t, h, g.name, "7"); v != g.want {
				t.Errorf("%s{site_id=7} = %v, want %v", g.name, v, g.want)
			}
		}
		if p := peak.Load(); p != 3 {
			t.Fatalf("%d requests at once to one site, want the bound 3", p)
		}
		openGate()
		for _, id := range slow {
			h.waitStatus(t, id, StatusDelivered)
		}
		if p := peak.Load(); p != 3 {
			t.Errorf("%d requests at once to one site, want the bound 3", p)
		}
	})
}

func gaugeValue(t *testing.T, h *harness, name, site string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "site_id" && l.GetValue() == site {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{site_id=%s} not exported", name, site)
	return 0
}
