package backoff

import (
	"math"
	"testing"
	"time"
)

func TestCeilingDoublesFromMinUpToMax(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for n, w := range want {
		if got := p.Ceiling(n); got != w*time.Millisecond {
			t.Errorf("Ceiling(%d) = %s, want %s", n, got, w*time.Millisecond)
		}
	}
	// Far past the cap (a daemon retrying for days) it neither overflows nor loops long.
	if got := p.Ceiling(math.MaxInt); got != time.Second {
		t.Errorf("Ceiling(MaxInt) = %s, want the cap", got)
	}
	huge := Policy{Min: time.Duration(math.MaxInt64 / 3), Max: time.Duration(math.MaxInt64)}
	if got := huge.Ceiling(10); got <= 0 {
		t.Errorf("Ceiling near the largest duration = %s, want positive", got)
	}
}

func TestMaxBelowMinCountsAsMin(t *testing.T) {
	p := Policy{Min: time.Second, Max: time.Millisecond}
	for n := 0; n < 4; n++ {
		if got := p.Ceiling(n); got != time.Second {
			t.Errorf("Ceiling(%d) = %s, want 1s", n, got)
		}
	}
}

// The pause is jittered between half the ceiling and the ceiling, and does vary (so that
// retriers started together spread out).
func TestDelayIsJitteredWithinHalfToFull(t *testing.T) {
	p := Policy{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for n := 0; n < 6; n++ {
		c := p.Ceiling(n)
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			d := p.Delay(n)
			if d < c/2 || d > c {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", n, d, c/2, c)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("Delay(%d) never varies: %v", n, seen)
		}
	}
	if got := (Policy{}).Delay(3); got != 0 {
		t.Errorf("zero policy Delay = %s, want 0", got)
	}
}

func TestRetrierCountsFailuresAndResets(t *testing.T) {
	r := New(Policy{Min: time.Millisecond, Max: 4 * time.Millisecond})
	var ceilings []time.Duration
	for i := 0; i < 4; i++ {
		if d := r.Next(); d > r.policy.Ceiling(i) || d < r.policy.Ceiling(i)/2 {
			t.Fatalf("pause %d = %s outside [%s, %s]", i, d, r.policy.Ceiling(i)/2, r.policy.Ceiling(i))
		}
		ceilings = append(ceilings, r.policy.Ceiling(r.Failures()-1))
	}
	if r.Failures() != 4 || ceilings[3] != 4*time.Millisecond {
		t.Errorf("failures = %d, ceilings %v", r.Failures(), ceilings)
	}
	r.Reset()
	if r.Failures() != 0 {
		t.Errorf("failures after Reset = %d", r.Failures())
	}
	if d := r.Next(); d > time.Millisecond {
		t.Errorf("first pause after Reset = %s, want at most Min", d)
	}
}
