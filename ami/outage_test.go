package ami_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/internal/logtest"
)

// TestOutageLogsOnce: while Asterisk is down the client retries about every second
// (here every millisecond); the first failure is an error line, the next ones within
// the logging interval only debug lines, so a long outage does not flood the log.
func TestOutageLogsOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every attempt is refused
	var logs logtest.Buffer
	m, err := ami.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := ami.Dial(ctx, ami.Config{Address: addr, Username: "u", Secret: "s", Logger: zerolog.New(&logs).Level(zerolog.DebugLevel),
		Metrics: m, ReconnectMin: time.Millisecond, ReconnectMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(m.ReconnectsCounter()) < 20 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	var errLines, debugLines int
	for _, l := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(l, "cannot connect to Asterisk") {
			continue
		}
		switch {
		case strings.Contains(l, `"level":"error"`):
			errLines++
		case strings.Contains(l, `"level":"debug"`):
			debugLines++
		}
	}
	if errLines != 1 || debugLines < 19 {
		t.Errorf("%d error and %d debug lines for %v attempts, want 1 error line", errLines, debugLines, testutil.ToFloat64(m.ReconnectsCounter())+1)
	}
}
