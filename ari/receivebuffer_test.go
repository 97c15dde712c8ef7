package ari_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
	"github.com/omlcrm/oml-crm/internal/logtest"
	"github.com/omlcrm/oml-crm/internal/sockbuf"
)

// The client's connections (the events websocket) get Config.ReceiveBuffer; a size the
// kernel caps (net.core.rmem_max) is logged with what was granted, a size it grants is
// not, and 0 sets nothing.
func TestReceiveBuffer(t *testing.T) {
	rmemMax, ok := sockbuf.Max()
	if !ok {
		t.Skip("net.core.rmem_max unknown: the granted size is read back on Linux only")
	}
	if rmemMax >= 1<<30 {
		t.Skipf("net.core.rmem_max %d: no size above it to ask", rmemMax)
	}
	for _, tc := range []struct {
		asked  int
		capped bool
	}{
		{rmemMax * 2, true},
		{min(rmemMax, 128<<10), false},
		{0, false},
	} {
		srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass, App: "omlcrm"})
		rec := newRecorder()
		cfg := rec.config(srv, t)
		var logs logtest.Buffer
		cfg.Logger = zerolog.New(&logs).Level(zerolog.InfoLevel)
		cfg.ReceiveBuffer = tc.asked
		dialRecorder(t, cfg)
		rec.expectState(t, ari.StateConnected)
		got := logs.String()
		warned := strings.Contains(got, "asterisk.receive_buffer") && strings.Contains(got, `"granted":`+strconv.Itoa(rmemMax))
		if warned != tc.capped {
			t.Errorf("asked %d (rmem_max %d): capped warning %v, want %v; logs:\n%s", tc.asked, rmemMax, warned, tc.capped, got)
		}
	}
}
