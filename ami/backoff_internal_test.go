package ami

import (
	"testing"
	"time"
)

// TestReconnectDelayCapped: however many attempts failed (a long outage), the default
// delay before the next one stays under a second, so the client is back within a second
// of Asterisk accepting logins.
func TestReconnectDelayCapped(t *testing.T) {
	for n := 0; n < 64; n++ {
		for range 50 {
			d := backoff(n, DefaultReconnectMin, DefaultReconnectMax)
			if d > time.Second || d < DefaultReconnectMin {
				t.Fatalf("delay after %d failures = %s, want between %s and 1s", n, d, DefaultReconnectMin)
			}
		}
	}
}
