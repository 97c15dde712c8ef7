package crmnotify

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// maxPopUpdates bounds the incomplete pops waiting for their contact (one per call and
// agent during an OMniLeads database outage); past it new ones are not updated.
const maxPopUpdates = 10000

// popUpdates holds the pops sent incomplete, by notification id, until their contact can
// be read (then Run pops them again with Rev+1), their call ends or their time is up.
type popUpdates struct {
	mu      sync.Mutex
	pending map[string]*popUpdate
}

type popUpdate struct {
	n     Notification
	until time.Time
	log   zerolog.Logger
}

func (u *popUpdates) add(n Notification, until time.Time, log zerolog.Logger) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pending == nil {
		u.pending = map[string]*popUpdate{}
	}
	if len(u.pending) >= maxPopUpdates {
		log.Warn().Int("pending", len(u.pending)).Msg("too many incomplete pops waiting for their contact: this one will not be updated")
		return
	}
	u.pending[n.ID] = &popUpdate{n: n, until: until, log: log}
}

func (u *popUpdates) dropCall(callID string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, p := range u.pending {
		if p.n.CallID == callID {
			delete(u.pending, id)
		}
	}
}

func (u *popUpdates) snapshot() []*popUpdate {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]*popUpdate, 0, len(u.pending))
	for _, p := range u.pending {
		out = append(out, p)
	}
	return out
}

// done forgets p unless a newer entry replaced it meanwhile.
func (u *popUpdates) done(p *popUpdate) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pending[p.n.ID] == p {
		delete(u.pending, p.n.ID)
	}
}

// PendingUpdates is the number of incomplete pops waiting for their contact.
func (d *Dispatcher) PendingUpdates() int {
	d.updates.mu.Lock()
	defer d.updates.mu.Unlock()
	return len(d.updates.pending)
}

// Run updates the pops that went out incomplete (their contact could not be read) until
// ctx is done: every UpdateInterval it tries to render each again, and pops the complete
// request under the same id with Rev+1, which the agent's page shows instead of the
// incomplete card if the agent has not opened it yet. It returns when ctx is done.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.updateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.updatePops(ctx)
		}
	}
}

func (d *Dispatcher) updatePops(ctx context.Context) {
	for _, p := range d.updates.snapshot() {
		if ctx.Err() != nil {
			return
		}
		if !d.now().Before(p.until) {
			d.updates.done(p)
			p.log.Info().Msg("the contact of an incomplete pop could not be read before the pop expired: it stays incomplete")
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		req, err := Rerender(rctx, d.catalog, *p.n.Deferred)
		cancel()
		switch {
		case errors.Is(err, ErrCatalogUnavailable):
			continue // next tick
		case err != nil:
			d.updates.done(p)
			p.log.Warn().Err(err).Msg("cannot render the update of an incomplete pop: it stays incomplete")
			continue
		}
		n := p.n
		n.Request, n.Missing, n.Deferred, n.Rev = req, nil, nil, p.n.Rev+1
		if err := d.agents.Pop(ctx, n); err != nil {
			p.log.Warn().Err(err).Msg("cannot hand the update of an incomplete pop to the agent hub; retrying")
			continue
		}
		d.updates.done(p)
		p.log.Info().Int("rev", n.Rev).Msg("incomplete pop updated with its contact")
	}
}
