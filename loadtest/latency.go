// Package loadtest holds the measuring parts of oml-crm's load test: a lock-free latency
// recorder with bounded memory (log-linear buckets, under 1% error), a ledger that turns
// "expected" and "observed" notifications into latencies, lost and duplicated counts,
// process sampling (RSS, goroutines) and the summary tables printed at the end of a run
// and pasted into docs/benchmarks.md. The traffic itself (fake Asterisk, websocket
// agents, local CRM) is wired by the loadtest subcommand.
package loadtest

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits sets the recorder's precision: 2^subBits buckets per power of two, so a
// bucket is at most 1/128 (0.8%) wider than its lower bound. Values below 256ns are exact.
const (
	subBits    = 7
	subBuckets = 1 << subBits
	numBuckets = (64 - subBits) * subBuckets
)

// Recorder records durations into fixed log-linear buckets. Record is lock-free and
// allocation-free; memory is fixed (about 116 KiB) whatever the number of samples. The
// zero value is not ready: use NewRecorder.
//
// Negative durations are recorded as they are, never clamped: a latency below zero means
// the two clocks of a measurement disagree, and hiding it would hide that. They have their
// own buckets (by magnitude) and rank below every positive value.
type Recorder struct {
	counts [numBuckets]atomic.Uint64
	neg    [numBuckets]atomic.Uint64 // negative samples, by magnitude
	count  atomic.Uint64
	nneg   atomic.Uint64
	sum    atomic.Int64 // nanoseconds; overflows only after ~292 years of total latency
	min    atomic.Int64
	max    atomic.Int64
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	r := &Recorder{}
	r.min.Store(math.MaxInt64)
	r.max.Store(math.MinInt64)
	return r
}

func bucketOf(v uint64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - subBits
	mantissa := v >> shift // in [subBuckets, 2*subBuckets)
	return (shift+1)*subBuckets + int(mantissa-subBuckets)
}

// bucketUpper is the largest value that falls into bucket i.
func bucketUpper(i int) uint64 {
	if i < 2*subBuckets {
		return uint64(i)
	}
	shift := i/subBuckets - 1
	mantissa := uint64(subBuckets + i%subBuckets)
	return (mantissa+1)<<shift - 1
}

// Record adds one duration, negative ones included (see Recorder).
func (r *Recorder) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		m := uint64(math.MaxInt64) // the magnitude of MinInt64 does not fit: it takes the last bucket
		if v != math.MinInt64 {
			m = uint64(-v)
		}
		r.neg[bucketOf(m)].Add(1)
		r.nneg.Add(1)
	} else {
		r.counts[bucketOf(uint64(v))].Add(1)
	}
	r.count.Add(1)
	r.sum.Add(v)
	for {
		m := r.min.Load()
		if v >= m || r.min.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := r.max.Load()
		if v <= m || r.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Merge adds other's samples to r (e.g. per-worker recorders into one).
func (r *Recorder) Merge(other *Recorder) {
	n := other.count.Load()
	if n == 0 {
		return
	}
	for i := range other.counts {
		if c := other.counts[i].Load(); c != 0 {
			r.counts[i].Add(c)
		}
		if c := other.neg[i].Load(); c != 0 {
			r.neg[i].Add(c)
		}
	}
	r.count.Add(n)
	r.nneg.Add(other.nneg.Load())
	r.sum.Add(other.sum.Load())
	if v := other.min.Load(); v < r.min.Load() {
		r.min.Store(v)
	}
	if v := other.max.Load(); v > r.max.Load() {
		r.max.Store(v)
	}
}

// Count is the number of recorded samples.
func (r *Recorder) Count() uint64 { return r.count.Load() }

// Negative is the number of samples below zero.
func (r *Recorder) Negative() uint64 { return r.nneg.Load() }

// Quantile returns the q-quantile (0 < q ≤ 1) as the upper bound of the bucket holding
// it, capped at the maximum: it never under-reports by more than the bucket width and
// never over-reports beyond the largest sample. 0 when empty.
func (r *Recorder) Quantile(q float64) time.Duration {
	n := r.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	max := r.max.Load()
	var seen uint64
	// Negative samples first, largest magnitude first; a negative bucket reports the
	// magnitude's lower bound, so it never under-reports either.
	if r.nneg.Load() > 0 {
		for i := len(r.neg) - 1; i >= 0; i-- {
			seen += r.neg[i].Load()
			if seen >= rank {
				lo := uint64(0)
				if i > 0 {
					lo = bucketUpper(i-1) + 1
				}
				return time.Duration(min(-int64(lo), max))
			}
		}
	}
	for i := range r.counts {
		seen += r.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(int64(bucketUpper(i)), max))
		}
	}
	return time.Duration(max) // counts raced ahead of count: the tail is the max
}

// Summary is a snapshot of a recorder.
type Summary struct {
	Count uint64
	// Negative counts samples below zero (they are in Min, Mean and the quantiles too).
	Negative uint64 `json:",omitempty"`
	Min      time.Duration
	Mean     time.Duration
	P50      time.Duration
	P90      time.Duration
	P99      time.Duration
	P999     time.Duration
	Max      time.Duration
}

// Summary returns the count, min, mean, p50/p90/p99/p99.9 and max.
func (r *Recorder) Summary() Summary {
	n := r.count.Load()
	if n == 0 {
		return Summary{}
	}
	return Summary{
		Count:    n,
		Negative: r.nneg.Load(),
		Min:      time.Duration(r.min.Load()),
		Mean:     time.Duration(r.sum.Load() / int64(n)),
		P50:      r.Quantile(0.50),
		P90:      r.Quantile(0.90),
		P99:      r.Quantile(0.99),
		P999:     r.Quantile(0.999),
		Max:      time.Duration(r.max.Load()),
	}
}
