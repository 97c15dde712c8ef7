package ari

import (
	"testing"
	"time"
)

// TestReconnectDelayCapped: the reconnect wait is drawn from [delay/2, delay] with delay
// capped at MaxBackoff; by default that cap keeps the client back within a second of
// Asterisk accepting connections, however long it was down.
func TestReconnectDelayCapped(t *testing.T) {
	c := (&Config{}).withDefaults()
	if c.MaxBackoff > time.Second || c.MaxBackoff < c.MinBackoff {
		t.Fatalf("default MaxBackoff %s, want at most 1s (and at least MinBackoff %s)", c.MaxBackoff, c.MinBackoff)
	}
}
