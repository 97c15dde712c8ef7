package loadtest

import (
	"sync"
	"time"
)

// Ledger matches what a run expects to be delivered (a pop to an agent, a request to the
// CRM) with what was observed, by notification id. The first observation of an id
// records its latency from the expected time; later ones count as duplicates; ids
// observed without being expected count as unexpected; ids never observed are lost.
// Memory grows with the number of expected ids, which a bounded run bounds.
type Ledger struct {
	latency *Recorder

	mu         sync.Mutex
	expected   map[string]*entry
	duplicates uint64
	unexpected uint64
}

type entry struct {
	at   time.Time
	seen uint32
}

// NewLedger returns an empty ledger recording latencies into its own Recorder.
func NewLedger() *Ledger {
	return &Ledger{latency: NewRecorder(), expected: map[string]*entry{}}
}

// Expect registers id as due, counting latency from at (the connect time). Call it
// before the traffic that causes the observation is sent. Expecting an id again keeps
// the first time.
func (l *Ledger) Expect(id string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.expected[id]; !ok {
		l.expected[id] = &entry{at: at}
	}
}

// Observe records that id arrived at at. It returns the latency and true on the first
// observation of an expected id.
func (l *Ledger) Observe(id string, at time.Time) (time.Duration, bool) {
	l.mu.Lock()
	e, ok := l.expected[id]
	if !ok {
		l.unexpected++
		l.mu.Unlock()
		return 0, false
	}
	e.seen++
	if e.seen > 1 {
		l.duplicates++
		l.mu.Unlock()
		return 0, false
	}
	d := at.Sub(e.at)
	l.mu.Unlock()
	l.latency.Record(d)
	return d, true
}

// LedgerTotals are a ledger's counts.
type LedgerTotals struct {
	Expected   uint64
	Delivered  uint64 // expected ids observed at least once
	Lost       uint64 // expected ids never observed
	Duplicates uint64 // observations beyond the first
	Unexpected uint64 // observations of ids never expected
}

// Totals counts the ledger; call it once the run has drained.
func (l *Ledger) Totals() LedgerTotals {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := LedgerTotals{Expected: uint64(len(l.expected)), Duplicates: l.duplicates, Unexpected: l.unexpected}
	for _, e := range l.expected {
		if e.seen > 0 {
			t.Delivered++
		}
	}
	t.Lost = t.Expected - t.Delivered
	return t
}

// Latency is the recorder of first-observation latencies.
func (l *Ledger) Latency() *Recorder { return l.latency }

// Missing returns up to n expected ids never observed (for the failure message).
func (l *Ledger) Missing(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id, e := range l.expected {
		if len(out) == n {
			break
		}
		if e.seen == 0 {
			out = append(out, id)
		}
	}
	return out
}
