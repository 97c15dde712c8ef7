package agentws

import (
	"sync"
	"time"
)

// refusalLog rate-limits the log lines of refused upgrades: per refusal reason (a fixed
// set: origin, credentials, limit, unavailable), at most one line per interval, and that
// line says how many refusals of the reason were not logged since the previous one. A
// flood of bad requests then costs a few lines, not one each; omlcrm_agentws_refused_total
// still counts every refusal.
type refusalLog struct {
	every time.Duration
	now   func() time.Time

	mu       sync.Mutex
	byReason map[string]*refusalWindow // keyed by the fixed reasons: bounded
}

type refusalWindow struct {
	logged     time.Time // of the last line
	suppressed int       // refusals since, not logged
}

func newRefusalLog(every time.Duration) *refusalLog {
	return &refusalLog{every: every, now: time.Now, byReason: map[string]*refusalWindow{}}
}

// allow reports whether a refusal of reason is logged now and, if so, how many earlier
// ones its line stands for besides itself.
func (l *refusalLog) allow(reason string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.byReason[reason]
	if w == nil {
		w = &refusalWindow{}
		l.byReason[reason] = w
	}
	if !w.logged.IsZero() && now.Sub(w.logged) < l.every {
		w.suppressed++
		return false, 0
	}
	suppressed, w.suppressed, w.logged = w.suppressed, 0, now
	return true, suppressed
}
