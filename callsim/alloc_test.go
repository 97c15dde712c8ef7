package callsim

import (
	"runtime"
	"testing"
	"unsafe"
)

// A built call's steps take about their own size: they are built in the IDs' working
// space and copied out at their exact length (appended to the call's own slice they
// took 177 KB per inbound call, 2.7 times their 47 KB; the load test builds 200 calls a
// second and its collections were timed as the daemon's latency).
func TestBuildAllocatesAboutItsSteps(t *testing.T) {
	ids := NewIDs(1)
	for range 10 {
		Build(ids, Params{Scenario: InboundQueue})
	}
	const n = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var c *Call
	for range n {
		c = Build(ids, Params{Scenario: InboundQueue})
	}
	runtime.ReadMemStats(&after)
	steps := uint64(len(c.Steps)) * uint64(unsafe.Sizeof(Step{}))
	if cap(c.Steps) > len(c.Steps)+len(c.Steps)/8 {
		t.Errorf("steps: len %d, cap %d", len(c.Steps), cap(c.Steps))
	}
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > steps*3/2 {
		t.Errorf("%d bytes allocated per call for %d bytes of steps", per, steps)
	}
	// The working space keeps no call's strings once the call is built.
	for _, st := range ids.steps[:cap(ids.steps)] {
		if st.ch.name != "" || st.extra != nil {
			t.Fatal("the working space still holds a step")
		}
	}
}
