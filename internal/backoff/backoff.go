// Package backoff computes the pauses between retries of the same thing (reconnecting
// to Asterisk, re-attempting a CRM delivery, reopening a database): exponential from a
// minimum, capped, and jittered so that many retriers (daemons restarted together,
// deliveries queued while a CRM was down) do not retry in the same instant.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff: the ceiling of retry n (0-based) is Min·2ⁿ, capped at
// Max; the pause is drawn uniformly between half the ceiling and the ceiling.
type Policy struct {
	Min time.Duration // ceiling of the first pause; must be positive
	Max time.Duration // cap of the ceiling; below Min counts as Min
}

// Ceiling is the longest pause before retry n (0 = after the first failure).
func (p Policy) Ceiling(n int) time.Duration {
	limit := max(p.Max, p.Min)
	d := p.Min
	for i := 0; i < n && d < limit; i++ {
		if d > limit/2 {
			return limit // doubling would pass the cap (or overflow)
		}
		d *= 2
	}
	return min(d, limit)
}

// Delay is the pause before retry n (0 = after the first failure): between half the
// ceiling and the ceiling.
func (p Policy) Delay(n int) time.Duration {
	d := p.Ceiling(n)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Retrier counts the consecutive failures of one retry loop. The zero value is not
// usable: build it with New. It is not safe for concurrent use (one loop owns it).
type Retrier struct {
	policy   Policy
	failures int
}

// New returns a Retrier that has seen no failure yet.
func New(p Policy) *Retrier { return &Retrier{policy: p} }

// Next records a failure and returns the pause before the next try.
func (r *Retrier) Next() time.Duration {
	d := r.policy.Delay(r.failures)
	r.failures++
	return d
}

// Reset forgets the failures (after a success, or a long healthy session): the next
// pause is the shortest again.
func (r *Retrier) Reset() { r.failures = 0 }

// Failures is the number of failures since the last Reset.
func (r *Retrier) Failures() int { return r.failures }
