package ami

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Event names become label values only when they look like Asterisk's: a peer sending
// "Foo Bar" (or a 200-byte name) is counted as "other", so no label value has a space.
func TestEventLabelsAreSafe(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e := newEventCounters(m)
	long := make([]byte, 65)
	for i := range long {
		long[i] = 'A'
	}
	for _, n := range [][]byte{[]byte("Newchannel"), []byte("Foo Bar"), []byte("Var\tSet"), long, []byte("Agent-Called_2")} {
		e.inc(n)
	}
	for label, want := range map[string]float64{"Newchannel": 1, "Agent-Called_2": 1, "other": 3, "Foo Bar": 0} {
		if got := testutil.ToFloat64(m.events.WithLabelValues(label)); got != want {
			t.Errorf("events_total{event=%q} = %v, want %v", label, got, want)
		}
	}
}
