package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrStoreUnwritable wraps an Enqueue refused because the outbox cannot be written (disk
// full, read-only, database down) and the memory buffer for that case is full too.
var ErrStoreUnwritable = errors.New("delivery store cannot be written and the hold buffer is full")

// When the outbox cannot be written, Enqueue holds the delivery in a bounded memory
// buffer (Options.HoldLimit) and answers nil: the sweeper writes the held deliveries
// as soon as the store takes writes again (each PollInterval), then attempts them as
// usual. Meanwhile Ping fails, naming the store and the count held, so /readyz reports
// it, and omlcrm_delivery_held shows it. A held delivery is only in memory: a kill -9
// while the disk is full loses it (it is logged as lost on a clean stop).

// rowError reports an insert refused for the row itself (a constraint, a value the
// database cannot store, e.g. invalid UTF-8 in PostgreSQL text), not for the store: such
// a delivery would never be written, so it is not held (it would block the others).
func rowError(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23") // data exception, integrity
	}
	var se interface{ Code() int }
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // SQLite primary result codes
		case 18, 19, 20, 25: // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_RANGE
			return true
		}
	}
	return false
}

// hold keeps d in memory after insert failed with cause; false when the buffer is full.
func (q *Queue) hold(d *Delivery, cause error) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.noteWriteLocked(cause)
	if len(q.held) >= q.opts.HoldLimit {
		q.metrics.holdRefused.Inc()
		return false
	}
	q.held = append(q.held, d)
	q.metrics.held.Set(float64(len(q.held)))
	if len(q.held) == 1 {
		q.log.Error().Err(cause).Str("delivery_id", d.ID).
			Msg("delivery store cannot be written: holding deliveries in memory until it can (/readyz not ready)")
	}
	return true
}

// noteWrite records the outcome of a write to the store: err (the store is failing)
// or nil (it takes writes again; the failure is over once nothing is held).
func (q *Queue) noteWrite(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.noteWriteLocked(err)
}

func (q *Queue) noteWriteLocked(err error) {
	if err != nil {
		if q.writeErr == nil {
			q.writeErrSince = q.clock.Now()
		}
		q.writeErr = err
		q.metrics.writeErrors.Inc()
		return
	}
	if len(q.held) == 0 {
		q.writeErr = nil
	}
}

// writeProblem is why the store is not ready for writes, nil when it is.
func (q *Queue) writeProblem() error {
	if err := q.store.fileGone(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.writeErr == nil {
		return nil
	}
	return fmt.Errorf("cannot write since %s (%d deliveries held in memory): %w",
		q.writeErrSince.UTC().Format(time.RFC3339), len(q.held), q.writeErr)
}

// flushHeld writes the held deliveries, oldest first, until one fails; each written one
// is attempted as if just enqueued.
func (q *Queue) flushHeld(ctx context.Context) {
	q.mu.Lock()
	batch := append([]*Delivery(nil), q.held...)
	q.mu.Unlock()
	written := 0
	for _, d := range batch {
		if ctx.Err() != nil {
			return
		}
		inserted, err := q.store.insert(ctx, d, q.opts.InstanceID, q.clock.Now().Add(q.opts.Lease))
		if err != nil {
			q.noteWrite(err)
			break
		}
		q.mu.Lock()
		q.held = q.held[1:] // only flushHeld removes, always the oldest
		q.metrics.held.Set(float64(len(q.held)))
		q.noteWriteLocked(nil)
		q.mu.Unlock()
		written++
		if !inserted {
			q.metrics.enqueued.WithLabelValues("duplicate").Inc()
			continue
		}
		q.metrics.enqueued.WithLabelValues("new").Inc()
		q.start(ctx, d)
	}
	if written > 0 {
		q.mu.Lock()
		left := len(q.held)
		q.mu.Unlock()
		q.log.Info().Int("deliveries", written).Int("still_held", left).Msg("delivery store writable again: held deliveries written")
	}
}

// heldCount is how many deliveries wait in memory for the store.
func (q *Queue) heldCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.held)
}
