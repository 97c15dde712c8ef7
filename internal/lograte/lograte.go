// Package lograte keeps a repeated log line from flooding the log: the first line of a
// key is written, further lines of the same key within an interval are only counted, and
// the next line written for that key says how many were suppressed. Keys name what is
// repeated (a broken contact database, Asterisk refusing the login, a refused agent
// page), so one noisy source does not hide the others.
package lograte

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// SuppressedField is the log field that counts the lines of the key suppressed since
// the last one written.
const SuppressedField = "suppressed"

// overflowKey collects the keys beyond the limiter's bound: they share one budget.
const overflowKey = "\x00overflow"

// Limiter decides which lines of each key are written. It is safe for concurrent use.
type Limiter struct {
	every   time.Duration
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	keys map[string]*window
}

type window struct {
	written    time.Time // when the last line of the key was written
	suppressed int       // lines of the key counted since
}

// New returns a Limiter that writes at most one line per key every interval, and tracks
// at most maxKeys keys (beyond them, new keys share one budget).
func New(every time.Duration, maxKeys int) *Limiter {
	return NewWithClock(every, maxKeys, time.Now)
}

// NewWithClock is New with the clock it reads (tests move it by hand).
func NewWithClock(every time.Duration, maxKeys int, now func() time.Time) *Limiter {
	return &Limiter{every: every, maxKeys: max(maxKeys, 1), now: now, keys: map[string]*window{}}
}

// Allow reports whether a line of key may be written now, and how many lines of the key
// were suppressed since the last one written (to be logged with it).
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.keys[key]
	if w == nil {
		if len(l.keys) >= l.maxKeys {
			l.prune(now)
		}
		if len(l.keys) >= l.maxKeys {
			key = overflowKey
			w = l.keys[key]
		}
		if w == nil {
			w = &window{}
			l.keys[key] = w
		}
	}
	if !w.written.IsZero() && now.Sub(w.written) < l.every {
		w.suppressed++
		return false, 0
	}
	suppressed = w.suppressed
	w.written, w.suppressed = now, 0
	return true, suppressed
}

// prune forgets the keys whose interval is over and that have nothing to report.
func (l *Limiter) prune(now time.Time) {
	for k, w := range l.keys {
		if w.suppressed == 0 && now.Sub(w.written) >= l.every {
			delete(l.keys, k)
		}
	}
}

// Event returns ev with the count of suppressed lines when the line of key may be
// written, or nil (on which zerolog's methods and Msg do nothing) when it is suppressed:
//
//	lim.Event(log.Warn(), key).Err(err).Msg("...")
func (l *Limiter) Event(ev *zerolog.Event, key string) *zerolog.Event {
	if ev == nil {
		return nil // level disabled: neither written nor counted
	}
	ok, n := l.Allow(key)
	if !ok {
		return ev.Discard()
	}
	if n > 0 {
		ev = ev.Int(SuppressedField, n)
	}
	return ev
}
