package delivery

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
)

// result is what became of a delivery after one round of attempts (usually one HTTP
// request; two when a 401 made us log in again).
type result struct {
	status      Status
	next        time.Time // when failed
	lastStatus  int
	lastError   string
	deliveredAt time.Time
	latency     time.Duration
}

// attempt runs one round of attempts for d, which this instance has claimed, and
// records the outcome.
func (q *Queue) attempt(d *Delivery) {
	ctx := q.workCtx
	log := q.log.With().Str("delivery", d.ID).Int("campaign", d.CampaignID).Int("site", d.SiteID).Str("call", d.CallID).Logger()
	now := q.clock.Now()
	if !now.Before(d.ExpiresAt) {
		// Due after its maximum age (the daemon was down, or the CRM asked to wait):
		// do not send a notification that old.
		r := result{status: StatusDead, lastStatus: d.LastStatus,
			lastError: fmt.Sprintf("maximum age %s reached before attempt %d", q.opts.MaxAge, d.Attempts+1)}
		if d.LastError != "" {
			r.lastError += "; last error: " + d.LastError
		}
		q.record(ctx, d, nil, r, log)
		return
	}

	var attempts []attemptResult
	if auth, err := q.authFor(ctx, d); err != nil {
		attempts = []attemptResult{{Attempt: Attempt{At: q.clock.Now(), Error: err.Error()}, class: classRetry}}
	} else {
		attempts = q.sender.send(ctx, d, auth, q.secretFor(d.SiteID), q.webhookKeysFor(d.SiteID))
	}
	if ctx.Err() != nil {
		// Shutting down mid-attempt: the lease expires and an instance tries again.
		return
	}
	last := attempts[len(attempts)-1]
	r := result{lastStatus: last.Status, lastError: last.Error}
	done := q.clock.Now()
	for _, a := range attempts {
		q.metrics.attempts.WithLabelValues(string(a.class)).Inc()
		q.metrics.attemptSeconds.Observe(a.Latency.Seconds())
	}
	switch last.class {
	case classSuccess:
		r.status = StatusDelivered
		r.deliveredAt = done
		r.latency = done.Sub(d.ConnectedAt)
	case classFinal:
		r.status = StatusDead
	default:
		n := d.Attempts + len(attempts)
		wait := q.backoff(n)
		if last.retryAfter > wait {
			wait = last.retryAfter
		}
		r.next = done.Add(wait)
		r.status = StatusFailed
		if r.next.After(d.ExpiresAt) {
			r.status = StatusDead
			r.lastError = fmt.Sprintf("maximum age %s reached after %d attempts; last error: %s", q.opts.MaxAge, n, last.Error)
		}
	}
	q.record(ctx, d, attempts, r, log)
}

// record stores the attempts and the new state, then updates metrics and logs.
func (q *Queue) record(ctx context.Context, d *Delivery, attempts []attemptResult, r result, log zerolog.Logger) {
	recs := make([]Attempt, len(attempts))
	for i, a := range attempts {
		recs[i] = a.Attempt
	}
	if err := q.store.finish(ctx, d.ID, q.opts.InstanceID, recs, r); err != nil {
		// The lease expires and the delivery is attempted again (same idempotency key).
		log.Error().Err(err).Msg("record delivery attempt")
		return
	}
	switch r.status {
	case StatusDelivered:
		q.metrics.outcomes.WithLabelValues(string(StatusDelivered)).Inc()
		q.metrics.connectToCRM.Observe(r.latency.Seconds())
		log.Debug().Int("attempts", d.Attempts+len(recs)).Dur("latency", r.latency).Msg("delivered")
	case StatusDead:
		q.metrics.outcomes.WithLabelValues(string(StatusDead)).Inc()
		log.Warn().Int("attempts", d.Attempts+len(recs)).Int("http_status", r.lastStatus).Str("error", r.lastError).Msg("delivery dead-lettered")
	case StatusFailed:
		q.scheduleWake(r.next)
		log.Info().Int("attempts", d.Attempts+len(recs)).Int("http_status", r.lastStatus).Str("error", r.lastError).Time("next_attempt", r.next).Msg("delivery attempt failed; will retry")
	}
}

// backoff is the delay after the n-th failed attempt: MinBackoff·2^(n-1), capped at
// MaxBackoff, jittered to between half and all of it so that a CRM coming back is not
// hit by every queued delivery in the same instant.
func (q *Queue) backoff(n int) time.Duration {
	d := q.opts.MinBackoff
	for i := 1; i < n && d < q.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, q.opts.MaxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}
