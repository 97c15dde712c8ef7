package crmnotify

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	omlcrm "github.com/omlcrm/oml-crm"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/catalog/file"
	"github.com/omlcrm/oml-crm/internal/workpool"
)

// blockingSinks stand in for the queue and the hub; pops block until release is closed.
type blockingSinks struct {
	release chan struct{}
	mu      sync.Mutex
	events  []string
}

func (r *blockingSinks) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}

func (r *blockingSinks) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *blockingSinks) Enqueue(_ context.Context, n Notification) error {
	r.add("enqueue " + n.CallID)
	return nil
}

func (r *blockingSinks) Pop(_ context.Context, n Notification) error {
	<-r.release
	r.add("pop " + n.CallID)
	return nil
}

func (r *blockingSinks) CallEnded(_ context.Context, callID string) error {
	r.add("ended " + callID)
	return nil
}

func newTestIntake(t *testing.T, workers int, sinks *blockingSinks) *Intake {
	t.Helper()
	cat, err := file.Parse("demo.yaml", omlcrm.DemoCatalog)
	if err != nil {
		t.Fatal(err)
	}
	disp, err := NewDispatcher(DispatcherOptions{Catalog: cat, Server: sinks, Agents: sinks})
	if err != nil {
		t.Fatal(err)
	}
	pool := workpool.New(0)
	t.Cleanup(func() { _ = pool.Close(context.Background()) })
	return NewIntake(context.Background(), disp, workers, pool, nil, zerolog.Nop())
}

// A call's end reaches the hub only after its connects were handed on, however slow
// the hand-off.
func TestIntakeEndsAfterConnects(t *testing.T) {
	sinks := &blockingSinks{release: make(chan struct{})}
	in := newTestIntake(t, 4, sinks)
	// Campaign 1 pops (automatic trigger), campaign 2 is a server delivery.
	in.Connected(calls.Connected{CallID: "A", AgentID: 1, CampaignID: 1, ContactID: "1", At: time.Now()})
	in.Ended(calls.Ended{CallID: "A"})
	in.Connected(calls.Connected{CallID: "B", AgentID: 2, CampaignID: 2, ContactID: "2", At: time.Now()})
	in.Ended(calls.Ended{CallID: "B"})
	waitFor(t, 5*time.Second, "call B handed on and ended", func() bool { return len(sinks.got()) == 2 })
	if got := sinks.got(); got[0] != "enqueue B" || got[1] != "ended B" {
		t.Fatalf("before A's pop is released: %v, want [enqueue B, ended B]", got)
	}
	close(sinks.release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n := in.Wait(ctx); n != 0 {
		t.Fatalf("%d connects still in flight", n)
	}
	if got := sinks.got(); len(got) != 4 || got[2] != "pop A" || got[3] != "ended A" {
		t.Errorf("events %v, want A's pop before A's end", got)
	}
}

// With every worker busy, the tracker's Output waits (back-pressure) instead of dropping.
func TestIntakeBackPressure(t *testing.T) {
	sinks := &blockingSinks{release: make(chan struct{})}
	in := newTestIntake(t, 1, sinks)
	in.Connected(calls.Connected{CallID: "A", AgentID: 1, CampaignID: 1, At: time.Now()})
	second := make(chan struct{})
	go func() {
		in.Connected(calls.Connected{CallID: "B", AgentID: 1, CampaignID: 1, At: time.Now()})
		close(second)
	}()
	select {
	case <-second:
		t.Fatal("a second connect was accepted while the only worker is busy")
	case <-time.After(100 * time.Millisecond):
	}
	close(sinks.release)
	<-second
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in.Wait(ctx)
	if got := sinks.got(); len(got) != 2 {
		t.Errorf("events %v, want both pops", got)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
