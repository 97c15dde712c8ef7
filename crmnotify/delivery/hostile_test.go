package delivery

import (
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
