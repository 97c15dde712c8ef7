package calls_test

import (
	"context"
	"sync"
	"testing"

	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/callsim"
)

// indexOf returns the index of the n-th (1-based) step named event.
func indexOf(t *testing.T, steps []callsim.Timed, event string, n int) int {
	t.Helper()
	for i, s := range steps {
		if s.Step.Event() == event {
			n--
			if n == 0 {
				return i
			}
		}
	}
	t.Fatalf("no %s in the call", event)
	return -1
}

// TestReconnectMidCall: the connection to Asterisk drops in the middle of calls and
// comes back; the tracker resynchronises from the live channel list (CoreShowChannels /
// GET /ari/channels). A Connected emitted before the drop is not emitted again; a
// connect that happened while the stream was down is emitted (AMI: its listing says
// which channels share a bridge); calls that ended meanwhile end.
func TestReconnectMidCall(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			var (
				mu sync.Mutex
				tr *calls.Tracker
				f  *feed
			)
			resync := func() {
				mu.Lock()
				defer mu.Unlock()
				if tr != nil {
					tr.RequestResync()
				}
			}
			rec := &recorder{}
			ready := make(chan struct{})
			lister := func(ctx context.Context) ([]calls.SnapshotChannel, error) {
				<-ready // f is set
				return f.lister(ctx)
			}
			trk, _ := startTracker(t, calls.Options{Output: rec, Lister: lister})
			mu.Lock()
			tr = trk
			mu.Unlock()
			f = src.start(t, trk, sourceOpts{onConnected: resync})
			close(ready)
			// The resync at the first connect lists nothing yet: let it finish before
			// the calls start (with a real Asterisk the listing is never stale).
			waitFor(t, "the first resync", func() bool { return trk.Stats().Resyncs >= 1 })

			ids := callsim.NewIDs(simBase.Unix())
			// a: connected before the drop, still talking after it.
			a := callsim.Build(ids, callsim.Params{Scenario: callsim.InboundQueue, Agent: callsim.Agent{ID: 1}, ContactID: "11"})
			// b: rings before the drop, connects while the stream is down (AMI only).
			b := callsim.Build(ids, callsim.Params{Scenario: callsim.DialerQueue, Agent: callsim.Agent{ID: 2}, ContactID: "22"})
			// c: connected before the drop, hangs up while the stream is down.
			c := callsim.Build(ids, callsim.Params{Scenario: callsim.Preview, Agent: callsim.Agent{ID: 3}, ContactID: "33"})
			as, bs, cs := callsim.Interleave([]*callsim.Call{a}, 0), callsim.Interleave([]*callsim.Call{b}, 0), callsim.Interleave([]*callsim.Call{c}, 0)
			aCut := indexOf(t, as, "BridgeEnter", 2) + 1
			bCut := indexOf(t, bs, "AgentCalled", 1)
			bResume := indexOf(t, bs, "BridgeEnter", 2) + 1
			cCut := indexOf(t, cs, "BridgeEnter", 2) + 1

			f.send(t, as[:aCut])
			f.send(t, cs[:cCut])
			withB := src.name == "ami"
			if withB {
				f.send(t, bs[:bCut])
			}
			waitFor(t, "the first two Connected", func() bool { n, _ := rec.counts(); return n == 2 })

			// Asterisk restarts its manager / the websocket drops; meanwhile b
			// connects and c hangs up. The listing shows a and b.
			live := []*callsim.Call{a}
			if withB {
				live = append(live, b)
			}
			f.setLive(t, live...)
			before := trk.Stats().Resyncs
			f.restart(t)
			waitFor(t, "the resync after the reconnect", func() bool { return trk.Stats().Resyncs > before })
			want := 2
			if withB {
				want = 3
			}
			waitFor(t, "c's Ended and b's Connected", func() bool { n, e := rec.counts(); return n == want && e == 1 })

			f.send(t, as[aCut:])
			all := []*callsim.Call{a, c}
			if withB {
				f.send(t, bs[bResume:])
				all = append(all, b)
			}
			waitFor(t, "every call's Ended", func() bool { _, e := rec.counts(); return e == len(all) })
			if withB {
				// b's queue hold time was only in the AgentConnect missed while down.
				rec.mu.Lock()
				for i := range rec.connected {
					if c := &rec.connected[i]; c.CallID == b.CallID {
						if len(c.Missing) != 1 || c.Missing[0] != calls.FieldCallWaitDuration {
							t.Errorf("recovered connect of b: Missing %v, want [CallWaitDuration]", c.Missing)
						}
						c.Missing = nil
					}
				}
				rec.mu.Unlock()
			}
			checkSim(t, rec, all...)
			if s := trk.Stats(); s.Channels != 0 || s.Calls != 0 || s.Bridges != 0 {
				t.Errorf("state left: %+v", s)
			}
		})
	}
}
