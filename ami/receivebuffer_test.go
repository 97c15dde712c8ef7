package ami_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/internal/logtest"
	"github.com/omlcrm/oml-crm/internal/sockbuf"
)

// The session's connection gets Config.ReceiveBuffer; a size the kernel caps
// (net.core.rmem_max) is logged with what was granted, a size it grants is not.
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
	} {
		var logs logtest.Buffer
		h := newHarness(t, amitest.NewServer(t), func(c *ami.Config) {
			c.ReceiveBuffer = tc.asked
			c.Logger = zerolog.New(&logs).Level(zerolog.InfoLevel)
		})
		h.connected()
		got := logs.String()
		warned := strings.Contains(got, "asterisk.receive_buffer") && strings.Contains(got, `"granted":`+strconv.Itoa(rmemMax))
		if warned != tc.capped {
			t.Errorf("asked %d (rmem_max %d): capped warning %v, want %v; logs:\n%s", tc.asked, rmemMax, warned, tc.capped, got)
		}
	}
}
