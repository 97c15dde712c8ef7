package ami_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
)

// BenchmarkClientEvents measures events delivered to Handler end to end: amitest
// replaying the BenchmarkAMIRead stream over TCP on 127.0.0.1, the client reading,
// parsing and dispatching. Both run on this machine's two cores. "all" hands every event
// to Handler; "filtered" keeps only Hangup (1 in 9) with EventNames, the others being
// skipped unparsed.
func BenchmarkClientEvents(b *testing.B) {
	const blockEvents = 20_000
	block := ami.BenchBlock(blockEvents)
	for _, tc := range []struct {
		name  string
		names []string
	}{{"all", nil}, {"filtered", []string{"Hangup"}}} {
		perBlock := blockEvents
		if tc.names != nil {
			perBlock = bytes.Count(block, []byte("Event: Hangup\r\n"))
		}
		b.Run(tc.name, func(b *testing.B) {
			srv, err := amitest.New()
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			var handled atomic.Int64
			c, err := ami.Dial(context.Background(), ami.Config{
				Address: srv.Addr(), Username: srv.Username(), Secret: srv.Secret(),
				EventNames: tc.names,
				Handler:    func(m *ami.Message) { handled.Add(1) },
			})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.WaitConnected(ctx); err != nil {
				b.Fatal(err)
			}
			if err := srv.WaitSessions(ctx, 1); err != nil {
				b.Fatal(err)
			}
			base := handled.Load()
			b.SetBytes(int64(len(block) / blockEvents))
			b.ReportAllocs()
			b.ResetTimer()
			sent, want := 0, base
			for sent < b.N {
				n, err := srv.Replay(bytes.NewReader(block))
				if err != nil {
					b.Fatal(err)
				}
				sent += n
				want += int64(perBlock)
			}
			deadline := time.Now().Add(time.Minute)
			for handled.Load() < want && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			if got := handled.Load(); got < want {
				b.Fatalf("handled %d of %d events", got-base, want-base)
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "sent-events/s")
		})
	}
}
