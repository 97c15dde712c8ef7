// Package workpool runs short hand-offs (one per connect, per ended call, per delivery
// attempt, per agent message) on goroutines that outlive one hand-off. A new goroutine
// starts with a small stack and grows it, copying, through the deep calls a hand-off
// makes (SQLite, JSON, logging): in the load test that growth was ~6 % of the daemon's
// CPU. A worker that finished waits a while for the next function before it exits, so
// its grown stack serves many.
//
// The pool adds no bound of its own: it runs at most as many workers as its callers
// have functions running at once (each caller bounds that already), and idle workers
// exit after the idle time.
package workpool

import (
	"context"
	"sync"
	"time"
)

// DefaultIdle is how long a worker waits for the next function before it exits.
const DefaultIdle = 30 * time.Second

// Pool runs functions on reusable goroutines. The zero value is not usable: use New.
// A nil *Pool runs each function on a goroutine of its own.
type Pool struct {
	work chan func() // unbuffered: a send succeeds only when a worker waits for it
	idle time.Duration
	quit chan struct{}

	// mu orders new workers with Close: a worker counted in wg after Close began
	// waiting would misuse the WaitGroup (an Add from zero racing its Wait).
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// New returns a pool whose idle workers exit after idle (DefaultIdle when ≤ 0).
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = DefaultIdle
	}
	return &Pool{work: make(chan func()), idle: idle, quit: make(chan struct{})}
}

// Go runs fn on an idle worker, or on a new one when none waits. It never blocks. After
// Close, fn still runs, on a goroutine that exits when fn returns.
func (p *Pool) Go(fn func()) {
	if p == nil {
		go fn()
		return
	}
	select {
	case p.work <- fn:
		return
	default:
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		go fn()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go p.worker(fn)
}

func (p *Pool) worker(fn func()) {
	defer p.wg.Done()
	var t *time.Timer
	for {
		fn()
		fn = nil // do not keep the finished function's captures alive while idle
		if t == nil {
			t = time.NewTimer(p.idle)
			defer t.Stop()
		} else {
			t.Reset(p.idle)
		}
		select {
		case fn = <-p.work:
		case <-t.C:
			return
		case <-p.quit:
			return
		}
	}
}

// Close makes idle workers exit, and busy ones once their function returns, and waits
// for them all or for ctx: it returns ctx's error when some were still busy then (they
// exit when done). Functions given to Go afterwards still run, not waited for.
func (p *Pool) Close(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }() // ends when the last worker does
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
