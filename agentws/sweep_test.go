package agentws

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A single-instance hub that only hears ended calls (server-trigger campaigns never
// pop) forgets them on its timer.
func TestEndedCallsSweptOnTimer(t *testing.T) {
	th := newTestHub(t, Options{PopTTL: 20 * time.Millisecond, SweepInterval: 10 * time.Millisecond})
	for i := range 200 {
		if err := th.CallEnded(context.Background(), fmt.Sprintf("server-only-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ms := th.store.(*memoryStore)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ended := ms.sizes(); ended == 0 {
			break
		}
		if time.Now().After(deadline) {
			_, ended := ms.sizes()
			t.Fatalf("%d ended calls still remembered long after their TTL with no pop added", ended)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n, err := testutil.GatherAndCount(th.reg, "omlcrm_agentws_ended_calls", "omlcrm_agentws_pending_pops"); err != nil || n != 2 {
		t.Errorf("size metrics: %d %v", n, err)
	}
}

// The ended-calls memory is capped: the calls ended longest ago are forgotten first.
func TestEndedCallsCapped(t *testing.T) {
	th := newTestHub(t, Options{PopTTL: time.Hour, MaxEndedCalls: 10})
	for i := range 50 {
		if err := th.CallEnded(context.Background(), fmt.Sprintf("c-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ms := th.store.(*memoryStore)
	if _, ended := ms.sizes(); ended != 10 {
		t.Fatalf("%d ended calls remembered, want the cap 10", ended)
	}
	want := "# HELP omlcrm_agentws_ended_calls Ended calls remembered in memory (single instance) to refuse their late pops; bounded by the sweep and a cap.\n# TYPE omlcrm_agentws_ended_calls gauge\nomlcrm_agentws_ended_calls 10\n"
	if err := testutil.GatherAndCompare(th.reg, strings.NewReader(want), "omlcrm_agentws_ended_calls"); err != nil {
		t.Error(err)
	}
	// The latest ended call still refuses a late pop; the first is forgotten.
	if added, _ := ms.add(context.Background(), &pendingPop{ID: "p-49", AgentID: 1, CallID: "c-49", ExpiresAt: time.Now().Add(time.Hour)}); added {
		t.Error("late pop of the last ended call stored")
	}
	if added, _ := ms.add(context.Background(), &pendingPop{ID: "p-0", AgentID: 1, CallID: "c-0", ExpiresAt: time.Now().Add(time.Hour)}); !added {
		t.Error("pop of a call forgotten past the cap refused")
	}
}
