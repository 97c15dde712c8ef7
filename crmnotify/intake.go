package crmnotify

import (
	"context"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/internal/workpool"
)

// Intake is the bounded hand-off between the tracker (which must not block on the
// network) and the dispatcher (which reads the catalog and writes the queue). Each
// connect is dispatched on a goroutine of its own (a pool's worker, reused), at most
// `workers` at a time; when all are
// busy the tracker waits, which slows the Asterisk socket (back-pressure) rather than
// dropping anything. A call's Ended is handed on only after its connects were.
type Intake struct {
	ctx       context.Context
	disp      *Dispatcher
	slots     chan struct{}
	onConnect func(calls.Connected, error)
	log       zerolog.Logger
	pool      *workpool.Pool

	mu       sync.Mutex
	inflight map[string]*sync.WaitGroup // call id → its connects being dispatched
	rings    map[string][]ringDone      // call id → its ringing pops (intake_phases.go)
	all      sync.WaitGroup
}

// DefaultIntakeWorkers bounds the connects dispatched at once (catalog reads, render, enqueue
// or pop); beyond it the tracker waits.
const DefaultIntakeWorkers = 256

// NewIntake hands connects to disp on at most workers goroutines at a time, taken
// from pool (nil: a new goroutine each), under ctx (cancelled only past the shutdown
// deadline). onConnect, if set, is told each connect's outcome.
func NewIntake(ctx context.Context, disp *Dispatcher, workers int, pool *workpool.Pool, onConnect func(calls.Connected, error), log zerolog.Logger) *Intake {
	return &Intake{ctx: ctx, disp: disp, slots: make(chan struct{}, workers), onConnect: onConnect, log: log,
		pool: pool, inflight: map[string]*sync.WaitGroup{}}
}

// Connected implements calls.Output.
func (in *Intake) Connected(c calls.Connected) {
	select {
	case in.slots <- struct{}{}:
	case <-in.ctx.Done():
		// Only past the shutdown deadline: the connect cannot be handed on any more.
		in.lost(c)
		return
	}
	in.mu.Lock()
	wg := in.inflight[c.CallID]
	if wg == nil {
		wg = &sync.WaitGroup{}
		in.inflight[c.CallID] = wg
	}
	wg.Add(1)
	in.all.Add(1)
	rings := in.ringsOf(c.CallID)
	in.mu.Unlock()
	in.pool.Go(func() {
		defer in.all.Done()
		defer func() { <-in.slots }()
		for _, r := range rings {
			<-r // the ringing pop this connect may replace goes first
		}
		err := in.disp.HandleConnected(in.ctx, c)
		wg.Done()
		if in.onConnect != nil {
			in.onConnect(c, err)
		}
	})
}

func (in *Intake) lost(c calls.Connected) {
	in.log.Error().Str("call_id", c.CallID).Int("campaign_id", c.CampaignID).Int("agent_id", c.AgentID).
		Str("outcome", OutcomeError).Str("stage", "intake").Msg("connect dropped: it arrived after the shutdown deadline")
	if in.onConnect != nil {
		in.onConnect(c, fmt.Errorf("call %s: connect arrived after the shutdown deadline: %w", c.CallID, in.ctx.Err()))
	}
}

// Ended implements calls.Output.
func (in *Intake) Ended(e calls.Ended) {
	in.mu.Lock()
	wg := in.inflight[e.CallID]
	delete(in.inflight, e.CallID)
	rings := in.forgetRings(e.CallID)
	in.all.Add(1)
	in.mu.Unlock()
	in.pool.Go(func() {
		defer in.all.Done()
		if wg != nil {
			wg.Wait()
		}
		for _, c := range rings {
			<-c
		}
		_ = in.disp.HandleEnded(in.ctx, e)
	})
}

// Wait waits for every hand-off to finish, or ctx; it returns how many connects were
// still being dispatched when ctx ended.
func (in *Intake) Wait(ctx context.Context) int {
	done := make(chan struct{})
	go func() {
		in.all.Wait()
		close(done)
	}()
	select {
	case <-done:
		return 0
	case <-ctx.Done():
		return len(in.slots)
	}
}
