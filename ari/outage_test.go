package ari_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/internal/logtest"
)

// TestOutageLogsOnce: while Asterisk is down the client retries about every second
// (here every few milliseconds); the first failure is a warning, the next ones within
// the logging interval only debug lines, so a long outage does not flood the log.
func TestOutageLogsOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every attempt is refused
	var logs logtest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := ari.Dial(ctx, ari.Config{URL: "http://" + addr, Username: "u", Password: "p", App: "omlcrm",
		Logger: zerolog.New(&logs).Level(zerolog.DebugLevel), MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	count := func() (warn, debug int) {
		for _, l := range strings.Split(logs.String(), "\n") {
			if !strings.Contains(l, "ARI events websocket connect failed") {
				continue
			}
			switch {
			case strings.Contains(l, `"level":"warn"`):
				warn++
			case strings.Contains(l, `"level":"debug"`):
				debug++
			}
		}
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, d := count(); d < 19 && time.Now().Before(deadline); _, d = count() {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	if w, d := count(); w != 1 || d < 19 {
		t.Errorf("%d warning and %d debug lines, want 1 warning", w, d)
	}
}
