package workpool

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Functions given one after another, each once the previous one's worker is idle
// again, all run on that one worker.
func TestSequentialFunctionsShareOneWorker(t *testing.T) {
	p := New(time.Minute)
	defer p.Close(context.Background())
	done := make(chan struct{})
	for i := 0; i < 50; i++ {
		p.Go(func() { done <- struct{}{} })
		<-done
		waitFor(t, func() bool { return idleWorkers() == 1 })
	}
	if got := started(p); got != 1 {
		t.Fatalf("50 sequential functions ran on %d workers, want 1", got)
	}
}

func TestConcurrentFunctionsGetTheirOwnWorkers(t *testing.T) {
	p := New(time.Minute)
	defer p.Close(context.Background())
	const n = 8
	var running sync.WaitGroup
	running.Add(n)
	release := make(chan struct{})
	for i := 0; i < n; i++ {
		p.Go(func() { running.Done(); <-release })
	}
	running.Wait() // all n run at once: none waited for another
	close(release)
}

func TestIdleWorkersExit(t *testing.T) {
	p := New(20 * time.Millisecond)
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		p.Go(wg.Done)
	}
	wg.Wait()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	} // nothing left to wait for
}

func TestCloseWaitsForRunningFunctionsAndEndsIdleOnes(t *testing.T) {
	p := New(time.Hour)
	var finished atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{})
	p.Go(func() { close(started); <-release; finished.Add(1) })
	p.Go(func() {}) // becomes idle (a second worker, or the same one later)
	<-started
	closed := make(chan struct{})
	go func() { _ = p.Close(context.Background()); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a function was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the running function finished (idle worker kept?)")
	}
	if finished.Load() != 1 {
		t.Fatal("the running function did not finish")
	}
}

func TestCloseGivesUpAtItsDeadline(t *testing.T) {
	p := New(time.Hour)
	release := make(chan struct{})
	p.Go(func() { <-release })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Close with a busy worker past its deadline: %v, want %v", err, context.DeadlineExceeded)
	}
	close(release)
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("Close once the worker finished: %v", err)
	}
}

func TestGoAfterCloseStillRuns(t *testing.T) {
	p := New(time.Hour)
	_ = p.Close(context.Background())
	done := make(chan struct{})
	p.Go(func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a function given after Close never ran")
	}
	if err := p.Close(context.Background()); err != nil { // twice is fine
		t.Fatal(err)
	}
}

func TestNilPoolRunsOnPlainGoroutines(t *testing.T) {
	var p *Pool
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// started counts the workers p has started: the WaitGroup's counter is not readable, so
// count through a probe that blocks every idle worker at once.
func started(p *Pool) int {
	n := 0
	block := make(chan struct{})
	var got sync.WaitGroup
	for {
		got.Add(1)
		taken := false
		select {
		case p.work <- func() { got.Done(); <-block }:
			taken = true
		case <-time.After(20 * time.Millisecond):
		}
		if !taken {
			got.Done()
			break
		}
		n++
	}
	got.Wait()
	close(block)
	return n
}

// idleWorkers counts the goroutines parked in a worker's wait for the next function.
func idleWorkers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, "workpool.(*Pool).worker(") {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// deep uses about n KiB of stack, as a hand-off through SQLite and JSON does.
//
//go:noinline
func deep(n int) byte {
	var b [1024]byte
	b[n%1024] = byte(n)
	if n == 0 {
		return b[0]
	}
	return deep(n-1) + b[n%1024]
}

// BenchmarkHandOff compares one hand-off that needs ~64 KiB of stack on a new goroutine
// and on the pool (docs/benchmarks.md, "Goroutines per hand-off").
func BenchmarkHandOff(b *testing.B) {
	b.Run("go", func(b *testing.B) {
		done := make(chan struct{})
		for b.Loop() {
			go func() { deep(64); done <- struct{}{} }()
			<-done
		}
	})
	b.Run("pool", func(b *testing.B) {
		p := New(time.Minute)
		defer p.Close(context.Background())
		done := make(chan struct{})
		for b.Loop() {
			p.Go(func() { deep(64); done <- struct{}{} })
			<-done
		}
	})
}
