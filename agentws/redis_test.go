package agentws

import (
	"context"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/internal/redistest"
)

// TestRedisFanout runs two hubs sharing a real Redis: an agent connected to hub B gets a
// pop published on hub A exactly once (also when both hubs pop it), is replayed the pop on
// hub A after a reload, and hears call.ended and pop.opened across instances.
func TestRedisFanout(t *testing.T) {
	url, prefix := redistest.New(t, "omlcrm-test")
	a := newTestHub(t, Options{RedisURL: url, RedisPrefix: prefix})
	b := newTestHub(t, Options{RedisURL: url, RedisPrefix: prefix})

	onB := dialAgent(t, b, 21)
	otherOnA := dialAgent(t, a, 22)
	n := notification("call-x", 21, catalog.TriggerAgent, catalog.TargetEmbedded)
	mustPop(t, a.Hub, n)
	mustPop(t, b.Hub, n) // the other instance saw the same call
	mustPop(t, a.Hub, n)
	m := onB.next()
	if m["type"] != TypePop || m["id"] != n.ID {
		t.Fatalf("agent on hub B got %v", m)
	}
	if got := onB.sync(); len(got) != 0 {
		t.Fatalf("duplicate delivery: %v", got)
	}
	// Hub A hears the pops above through Redis, asynchronously; once it delivers a later
	// one, it has handled them (one channel: Redis keeps its messages in order). Without
	// this the reload below could meet a late live copy instead of the replay (1 run in
	// ~100 did).
	later := notification("call-y", 22, catalog.TriggerAgent, catalog.TargetEmbedded)
	mustPop(t, b.Hub, later)
	if m := otherOnA.next(); m["type"] != TypePop || m["id"] != later.ID {
		t.Fatalf("agent 22 on hub A got %v, want its own pop and never agent 21's", m)
	}
	if got := otherOnA.sync(); len(got) != 0 {
		t.Fatalf("agent 22 got agent 21's pop: %v", got)
	}

	// The agent reloads and lands on hub A: the pop is replayed from Redis.
	onB.ws.Close(websocket.StatusNormalClosure, "reload")
	onA := dialAgent(t, a, 21)
	got := onA.sync()
	if len(got) != 1 || got[0]["id"] != n.ID || got[0]["replay"] != true {
		t.Fatalf("replay on hub A: %v", got)
	}
	// A second tab on hub B; opening in the tab on A closes the button on B.
	tabB := dialAgent(t, b, 21)
	if got := tabB.sync(); len(got) != 1 {
		t.Fatalf("second tab replay: %v", got)
	}
	onA.send(map[string]string{"type": TypeAck, "id": n.ID})
	onA.send(map[string]string{"type": TypeOpened, "id": n.ID})
	onA.sync()
	if m := tabB.next(); m["type"] != TypePopOpened || m["id"] != n.ID {
		t.Fatalf("tab on B got %v, want pop.opened", m)
	}
	if v := testutil.ToFloat64(a.metrics.popsOpened) + testutil.ToFloat64(b.metrics.popsOpened); v != 1 {
		t.Errorf("pops_opened %v", v)
	}

	// The call ends on hub B: both tabs hear it, nothing is replayed any more.
	if err := b.CallEnded(context.Background(), "call-x"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{onA, tabB} {
		if m := c.next(); m["type"] != TypeCallEnded || m["call_id"] != "call-x" {
			t.Fatalf("got %v, want call.ended", m)
		}
	}
	late := dialAgent(t, b, 21)
	if got := late.sync(); len(got) != 0 {
		t.Fatalf("replayed after call.ended: %v", got)
	}
	mustPop(t, a.Hub, n) // a late duplicate of the ended call
	if got := late.sync(); len(got) != 0 {
		t.Fatalf("pop of an ended call delivered: %v", got)
	}
}
