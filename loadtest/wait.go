package loadtest

import (
	"context"
	"time"
)

// shortWait is how much of a wait is slept with sleepShort rather than a timer: more
// than a timer's late wake-up (~1 ms), so the timer never takes the instant past at.
const shortWait = 2 * time.Millisecond

// waitUntil returns once the instant at has come, or with ctx's error when ctx ends
// first: a timer for all but the last shortWait (ctx is watched meanwhile), then short
// precise sleeps, so the generator writes what is due close to its scheduled instant
// instead of up to a millisecond after it.
func waitUntil(ctx context.Context, t *time.Timer, at time.Time) error {
	if d := time.Until(at) - shortWait; d > 0 {
		t.Reset(d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := time.Until(at)
		if d <= 0 {
			return nil
		}
		sleepShort(d)
	}
}
