package ari

import "testing"

// The skip path's metrics do not allocate once a type has been seen, and the per-type cache
// stays within the label cap whatever types a server invents.
func TestSkippedEventMetricsDoNotAllocate(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	typ := []byte("ChannelDialplan")
	m.skippedEvent(typ, 100)
	if allocs := testing.AllocsPerRun(1000, func() { m.skippedEvent(typ, 100) }); allocs != 0 {
		t.Errorf("%v allocations per skipped event", allocs)
	}
	for i := range 3 * maxTypeLabels {
		m.skippedEvent([]byte("Invented"+string(rune('A'+i%26))+string(rune('a'+i/26))), 10)
	}
	if len(m.skippedBy) > maxTypeLabels || len(m.types) > maxTypeLabels {
		t.Errorf("%d cached types, %d labels: over the cap %d", len(m.skippedBy), len(m.types), maxTypeLabels)
	}
}
