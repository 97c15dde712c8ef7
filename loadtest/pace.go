package loadtest

import (
	"context"
	"fmt"
	"time"
)

// PaceResult says how a paced run went.
type PaceResult struct {
	Done    int           // calls of fn made
	Elapsed time.Duration // from the first scheduled call to the return
	// MaxLag is the longest a call started after its scheduled time: a generator that
	// cannot keep up shows here, not as a silently lower rate.
	MaxLag time.Duration
}

// Pace calls fn n times at rate calls per second, on the caller's goroutine, the i-th
// call scheduled at start + i/rate. A late call is made at once (the run catches up
// rather than dropping the rate), and its lateness is reported. It stops early when ctx
// ends. fn must return quickly: hand slow work to other goroutines.
func Pace(ctx context.Context, rate float64, n int, fn func(i int, scheduled time.Time)) (PaceResult, error) {
	if rate <= 0 || n < 0 {
		return PaceResult{}, fmt.Errorf("pace: rate %v and count %d must be positive", rate, n)
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	var res PaceResult
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				res.Elapsed = time.Since(start)
				return res, ctx.Err()
			case <-t.C:
			}
		} else if err := ctx.Err(); err != nil {
			res.Elapsed = time.Since(start)
			return res, err
		}
		res.MaxLag = max(res.MaxLag, time.Since(at))
		fn(i, at)
		res.Done++
	}
	res.Elapsed = time.Since(start)
	return res, nil
}
