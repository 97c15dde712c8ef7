package ami

import (
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/internal/backoff"
)

// TestReconnectDelayCapped: however many attempts failed (a long outage), the default
// delay before the next one stays under a second, so the client is back within a second
// of Asterisk accepting logins.
func TestReconnectDelayCapped(t *testing.T) {
	for n := 0; n < 64; n++ {
		for range 50 {
			d := backoff.Policy{Min: DefaultReconnectMin, Max: DefaultReconnectMax}.Delay(n)
			if d > time.Second || d <= 0 {
				t.Fatalf("delay after %d failures = %s, want more than 0 and at most 1s", n, d)
			}
		}
	}
}
