package delivery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/backoff"
)

// result is what became of a delivery after one round of attempts (usually one HTTP
// request; two when a 401 made us log in again).
type result struct {
	status      Status
	next        time.Time     // when failed
	wait        time.Duration // when failed: from the attempt's end to next
	lastStatus  int
	lastError   string
	deliveredAt time.Time
	latency     time.Duration
}

// attempt runs one round of attempts for d, which this instance has claimed, and
// records the outcome.
func (q *Queue) attempt(d *Delivery) {
	ctx := q.workCtx
	// The delivery's id is the notification's: both names, so that one jq filter
	// follows a call from its connect line to its delivery lines.
	log := q.log.With().Str("delivery_id", d.ID).Str("notification_id", d.ID).Str("call_id", d.CallID).
		Int("campaign_id", d.CampaignID).Int("site_id", d.SiteID).Int("agent_id", d.AgentID).Logger()
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

	if d.Deferred != nil && !q.completeDeferred(ctx, d, now, log) {
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
		// The n-th failure: jittered so that a CRM coming back is not hit by every
		// queued delivery in the same instant.
		wait := backoff.Policy{Min: q.opts.MinBackoff, Max: q.opts.MaxBackoff}.Delay(n - 1)
		if last.retryAfter > wait {
			// Spread over a few seconds more (a tenth, at most 4 s), so that the
			// deliveries the CRM put off do not all come back in the same instant.
			wait = last.retryAfter + rand.N(min(last.retryAfter/10, 4*time.Second)+1)
		}
		r.next, r.wait = done.Add(wait), wait
		r.status = StatusFailed
		if r.next.After(d.ExpiresAt) {
			r.status = StatusDead
			r.lastError = fmt.Sprintf("maximum age %s reached after %d attempts; last error: %s", q.opts.MaxAge, n, last.Error)
		}
	}
	q.record(ctx, d, attempts, r, log)
}

// maxContactWait caps the pause between two tries to read a waiting delivery's contact,
// so that deliveries go out soon after a long OMniLeads database outage ends.
const maxContactWait = 30 * time.Second

// completeDeferred renders again a delivery queued without its contact. It reports true
// when d now holds the complete request (stored), false when d goes on waiting (recorded
// as failed without an HTTP attempt, retried later) or was dead-lettered.
func (q *Queue) completeDeferred(ctx context.Context, d *Delivery, now time.Time, log zerolog.Logger) bool {
	rctx, cancel := context.WithTimeout(ctx, q.opts.Timeout)
	req, err := q.opts.Rerender(rctx, *d.Deferred)
	cancel()
	if err == nil {
		if err := checkURL(req.URL); err != nil {
			q.record(ctx, d, nil, result{status: StatusDead, lastError: "rendered again with its contact: " + err.Error()}, log)
			return false
		}
		d.Method, d.URL, d.Header, d.ContentType, d.Body = req.Method, req.URL, req.Header.Clone(), req.ContentType, req.Body
		if err := q.store.setRequest(ctx, d, q.opts.InstanceID); err != nil {
			// The lease expires and the delivery is rendered again then.
			log.Error().Err(err).Msg("store the delivery rendered with its contact")
			return false
		}
		d.Deferred = nil
		log.Info().Dur("waited", now.Sub(d.CreatedAt)).Msg("the contact of a waiting delivery could be read: sending it")
		return true
	}
	r := result{status: StatusFailed, lastError: fmt.Sprintf("waiting for contact %d: %v", d.Deferred.ContactID, err)}
	if !errors.Is(err, crmnotify.ErrCatalogUnavailable) {
		// Not a transient failure (the campaign was deleted, its set-up no longer renders).
		r.status = StatusDead
		q.record(ctx, d, nil, r, log)
		return false
	}
	// Wait about half the time waited so far (a short outage costs little delay, a long
	// one few reads), within MinBackoff and maxContactWait, jittered.
	wait := min(max(now.Sub(d.CreatedAt)/2, q.opts.MinBackoff), maxContactWait, q.opts.MaxBackoff)
	wait = wait/2 + rand.N(wait/2+1)
	r.next = now.Add(wait)
	if r.next.After(d.ExpiresAt) {
		r.status = StatusDead
		r.lastError = fmt.Sprintf("maximum age %s reached while waiting for contact %d; last error: %v", q.opts.MaxAge, d.Deferred.ContactID, err)
	}
	if strings.HasPrefix(d.LastError, "waiting for contact") {
		// Said once when the wait began: an outage must not log every round of every
		// waiting delivery (its end, dead-lettering, is still logged).
		log = log.Level(zerolog.WarnLevel)
	}
	q.record(ctx, d, nil, r, log)
	return false
}

// record stores the attempts and the new state, then updates metrics and logs.
func (q *Queue) record(ctx context.Context, d *Delivery, attempts []attemptResult, r result, log zerolog.Logger) {
	recs := make([]Attempt, len(attempts))
	for i, a := range attempts {
		recs[i] = a.Attempt
	}
	if err := q.store.finish(ctx, d.ID, q.opts.InstanceID, recs, r); err != nil {
		// The lease expires and the delivery is attempted again (same idempotency key).
		if ctx.Err() == nil {
			q.noteWrite(err)
		}
		log.Error().Err(err).Msg("record delivery attempt")
		return
	}
	q.noteWrite(nil)
	// One line per outcome: delivered and retrying at info, dead at warn.
	attemptsSoFar := d.Attempts + len(recs)
	switch r.status {
	case StatusDelivered:
		q.metrics.outcomes.WithLabelValues(string(StatusDelivered)).Inc()
		q.metrics.connectToCRM.Observe(r.latency.Seconds())
		log.Info().Str("outcome", "delivered").Int("attempts", attemptsSoFar).Int("http_status", r.lastStatus).
			Float64("latency_ms", millis(r.latency)).Msg("delivered to the CRM")
	case StatusDead:
		q.metrics.outcomes.WithLabelValues(string(StatusDead)).Inc()
		log.Warn().Str("outcome", "dead").Int("attempts", attemptsSoFar).Int("http_status", r.lastStatus).Str("error", r.lastError).
			Msg("delivery dead-lettered: the CRM will not get this call (see oml-crm deliveries)")
	case StatusFailed:
		q.scheduleWake(r.next)
		log.Info().Str("outcome", "retrying").Int("attempts", attemptsSoFar).Int("http_status", r.lastStatus).Str("error", r.lastError).
			Time("next_attempt", r.next).Float64("retry_in_ms", millis(r.wait)).
			Msg("delivery attempt failed; will retry")
	}
}

// millis is d in milliseconds (log fields named *_ms).
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
