package lograte

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/internal/logtest"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newTestLimiter(every time.Duration, maxKeys int) (*Limiter, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(every, maxKeys)
	l.now = c.now
	return l, c
}

func TestFirstLineWrittenRepeatsCountedAndReported(t *testing.T) {
	l, c := newTestLimiter(time.Minute, 10)
	if ok, n := l.Allow("db 5"); !ok || n != 0 {
		t.Fatalf("first line: %v, %d; want written, none suppressed", ok, n)
	}
	for i := 0; i < 7; i++ {
		c.add(time.Second)
		if ok, _ := l.Allow("db 5"); ok {
			t.Fatalf("repeat %d within the interval written", i)
		}
	}
	// Another key is not held back by the first.
	if ok, _ := l.Allow("db 6"); !ok {
		t.Error("a different key was suppressed")
	}
	c.add(time.Minute)
	if ok, n := l.Allow("db 5"); !ok || n != 7 {
		t.Errorf("after the interval: %v, %d; want written with 7 suppressed", ok, n)
	}
	if ok, n := l.Allow("db 5"); ok || n != 0 {
		t.Errorf("right after: %v, %d; want suppressed", ok, n)
	}
	c.add(time.Minute)
	if ok, n := l.Allow("db 5"); !ok || n != 1 {
		t.Errorf("next interval: %v, %d; want written with 1 suppressed", ok, n)
	}
}

// The map stays bounded whatever the number of keys: keys beyond the bound share one
// budget, and keys with nothing to report are forgotten once their interval is over.
func TestKeysAreBounded(t *testing.T) {
	l, c := newTestLimiter(time.Minute, 3)
	written := 0
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Allow(strings.Repeat("k", i+1)); ok {
			written++
		}
	}
	if len(l.keys) > 4 { // three keys and the overflow budget
		t.Errorf("%d keys tracked, want at most 4", len(l.keys))
	}
	if written != 4 {
		t.Errorf("%d of 1000 distinct keys written within one interval, want 4 (3 keys + 1 overflow line)", written)
	}
	c.add(time.Minute)
	if ok, n := l.Allow("fresh"); !ok || n != 0 {
		t.Errorf("a new key after the interval: %v, %d; want written (expired keys pruned)", ok, n)
	}
	if ok, n := l.Allow("another"); !ok || n != 0 {
		t.Errorf("%v %d", ok, n)
	}
	// The overflow budget reports what it swallowed.
	var sawOverflow bool
	for i := 0; i < 5; i++ {
		if ok, n := l.Allow("x" + strings.Repeat("y", i)); ok && n == 996 {
			sawOverflow = true
		}
	}
	if !sawOverflow {
		t.Errorf("the overflow budget never reported its 996 suppressed lines; keys %d", len(l.keys))
	}
}

func TestEventWritesOneLineWithSuppressedCount(t *testing.T) {
	var buf logtest.Buffer
	log := zerolog.New(&buf)
	l, c := newTestLimiter(time.Minute, 10)
	for i := 0; i < 5; i++ {
		l.Event(log.Warn(), "refused").Str("reason", "credentials").Msg("websocket refused")
	}
	c.add(2 * time.Minute)
	l.Event(log.Warn(), "refused").Str("reason", "credentials").Msg("websocket refused")
	// A disabled level is neither written nor counted.
	quiet := log.Level(zerolog.ErrorLevel)
	l.Event(quiet.Warn(), "quiet").Msg("x")
	if ok, n := l.Allow("quiet"); !ok || n != 0 {
		t.Errorf("a disabled-level event was counted: %v %d", ok, n)
	}

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	var first, second map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &first)
	_ = json.Unmarshal([]byte(lines[1]), &second)
	if _, has := first[SuppressedField]; has || first["reason"] != "credentials" {
		t.Errorf("first line = %v, want no suppressed count", first)
	}
	if second[SuppressedField] != float64(4) || second["reason"] != "credentials" {
		t.Errorf("second line = %v, want suppressed 4", second)
	}
}

func TestConcurrentUse(t *testing.T) {
	l := New(time.Hour, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := 0
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 500; i++ {
				if ok, _ := l.Allow("same"); ok {
					mu.Lock()
					written++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if written != 1 {
		t.Errorf("%d lines of one key written within the interval by 8 goroutines, want 1", written)
	}
}
