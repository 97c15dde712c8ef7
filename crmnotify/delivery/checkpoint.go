package delivery

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// SQLite's WAL checkpoints run off the commits. SQLite's own auto-checkpoint
// (wal_autocheckpoint, off on the writer connection) copies the WAL back into the
// database file, with two fsyncs, inside whichever commit crosses 1,000 WAL pages: that
// Enqueue or finish waited for it while holding the one writer connection. Instead a
// goroutine owned by the store checkpoints on a connection of its own, beside the
// writes (PASSIVE: it waits for no reader or writer), every walCheckpointEvery commits.
//
// A checkpoint running beside the writer cannot always leave the WAL fully copied (the
// writer appends meanwhile), and only a fully copied WAL is started again from its
// beginning by the next commit. So when the WAL has reached walRestartFrames pages, the
// goroutine checkpoints once more on the writer connection itself, between two writes:
// that one copies what is left since the last round (little), the next commit restarts
// the WAL, and the file stays bounded as with SQLite's own checkpoints. The bound is
// SQLite's default: a longer WAL costs every commit more (SQLite's WAL index probes
// grow with it: +4 % of a delivery's instructions at 2,000 pages, docs/benchmarks.md).
const (
	walCheckpointEvery = 100  // commits (about 450 pages of deliveries)
	walRestartFrames   = 1000 // pages (4 MiB with 4 KiB pages)
)

// walCheckpointer is the store's checkpointing goroutine and what feeds it.
type walCheckpointer struct {
	db            *sql.DB // its own connection, so that PASSIVE runs beside the writer's commits
	w             *sql.DB // the writer (one connection), for the round that restarts the WAL
	every         int64
	restartFrames int64
	log           zerolog.Logger

	commits atomic.Int64
	kick    chan struct{} // capacity 1: a round is due
	stop    context.CancelFunc
	done    chan struct{}
}

// startWALCheckpointer starts the goroutine; close stops it (before the databases close).
func startWALCheckpointer(db, w *sql.DB, every, restartFrames int64, log zerolog.Logger) *walCheckpointer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &walCheckpointer{db: db, w: w, every: every, restartFrames: restartFrames, log: log,
		kick: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go c.run(ctx)
	return c
}

// committed counts a commit of the writer and asks for a round every c.every commits.
func (c *walCheckpointer) committed() {
	if c.commits.Add(1)%c.every != 0 {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default: // a round is already due
	}
}

func (c *walCheckpointer) run(ctx context.Context) {
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		if err := c.round(ctx); err != nil && ctx.Err() == nil {
			// The next round tries again; the WAL only grows meanwhile.
			c.log.Warn().Err(err).Msg("SQLite WAL checkpoint (delivery queue)")
		}
	}
}

// round checkpoints beside the writer, then on the writer connection when the WAL has
// grown to restartFrames pages.
func (c *walCheckpointer) round(ctx context.Context) error {
	walPages, err := checkpoint(ctx, c.db)
	if err != nil {
		return err
	}
	if walPages < c.restartFrames {
		return nil
	}
	if _, err := checkpoint(ctx, c.w); err != nil {
		return fmt.Errorf("on the writer connection: %w", err)
	}
	return nil
}

// checkpoint runs a PASSIVE checkpoint on db and returns the WAL's length in pages.
func checkpoint(ctx context.Context, db *sql.DB) (int64, error) {
	var busy, walPages, copied int64
	if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &walPages, &copied); err != nil {
		return 0, fmt.Errorf("checkpoint the WAL: %w", err)
	}
	return walPages, nil
}

// close stops the goroutine and waits for it.
func (c *walCheckpointer) close() {
	c.stop()
	<-c.done
}
