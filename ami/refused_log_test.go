package ami_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/internal/logtest"
)

// Asterisk refusing the login is logged once (then every failedLogEvery), not at every
// reconnect attempt; the other attempts are at debug level.
func TestRefusedLoginIsNotLoggedAtEveryAttempt(t *testing.T) {
	srv := amitest.NewServer(t)
	var logs logtest.Buffer
	h := newHarness(t, srv, func(c *ami.Config) {
		c.Secret = "wrong"
		c.ReconnectMin, c.ReconnectMax = time.Millisecond, 5*time.Millisecond
		c.Logger = zerolog.New(&logs).Level(zerolog.InfoLevel) // the rest go to debug
	})
	ctx := h.ctx()
	for countActions(srv, "Login") < 6 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if n := countActions(srv, "Login"); n < 6 {
		t.Fatalf("%d login attempts, want at least 6", n)
	}
	h.client.Close()
	out := logs.String()
	if n := strings.Count(out, "cannot connect to Asterisk"); n != 1 {
		t.Errorf("%d lines for %d refused logins, want 1:\n%s", n, countActions(srv, "Login"), out)
	}
	if n := strings.Count(out, "reconnecting to Asterisk"); n != 1 {
		t.Errorf("%d reconnect lines, want 1:\n%s", n, out)
	}
}
