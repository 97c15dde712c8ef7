package agentws

import (
	"container/list"
	"context"
	"sort"
	"sync"
	"time"
)

// pendingPop is a pop kept for replay until its call ends or it expires.
type pendingPop struct {
	ID        string
	AgentID   int
	CallID    string
	Target    string // "embedded" | "new_tab"
	ExpiresAt time.Time
	Payload   []byte // the crm.pop message of the latest revision
	Rev       int    // revision of Payload: a higher one replaces it
	Acked     bool
	Opened    bool
}

// replayable reports whether a reconnecting page must get p again at now: until it
// expires, unless a page acked it (the page is done with it: oml-crm.js acks a pop once
// it was opened in a new tab, its JSON sent, or the agent dismissed it — not when an
// embedded CRM is shown, because that iframe dies with a reloaded page) or it was opened
// in a new tab (the tab outlives the page).
func (p *pendingPop) replayable(now time.Time) bool {
	if !now.Before(p.ExpiresAt) || p.Acked {
		return false
	}
	return !(p.Opened && p.Target == "new_tab")
}

// markResult is what marking a pop acked/opened found.
type markResult int

const (
	markUnknown markResult = iota // no such pop for this agent (ended, expired, another agent's)
	markAgain                     // already marked
	markFirst                     // marked now
)

// popStore keeps pending pops for replay, deduplicates pop ids and remembers ended calls.
// The memory store serves one instance; the Redis store is shared by a cluster.
type popStore interface {
	// add stores p unless a pop with its id and the same or a higher revision exists or
	// its call ended; a higher revision replaces the stored payload (acked and opened
	// flags are kept; an update of an acked pop is stored but not delivered). It reports
	// whether p must be delivered.
	add(ctx context.Context, p *pendingPop) (bool, error)
	// live returns the agent's replayable pops at now, oldest first.
	live(ctx context.Context, agentID int, now time.Time) ([]pendingPop, error)
	// mark flags the agent's pop id acked (opened=false) or opened (opened=true).
	mark(ctx context.Context, agentID int, id string, opened bool) (markResult, error)
	// endCall forgets the call's pops, remembers the call as ended for ttl so that late
	// pops are refused, and returns the agents that had pops for it.
	endCall(ctx context.Context, callID string, ttl time.Duration) ([]int, error)
}

// memoryStore is the single-instance popStore. Expired entries are swept by the hub's
// timer (sweep) and, between two ticks, when a pop is added.
type memoryStore struct {
	maxPerAgent int
	maxEnded    int

	mu        sync.Mutex
	pops      map[string]*pendingPop      // by pop id; ≤ maxPerAgent per agent, swept at expiry
	byAgent   map[int]map[string]struct{} // agent → pop ids
	byCall    map[string]map[string]struct{}
	ended     map[string]*list.Element // call id → its entry in endedFIFO; at most maxEnded
	endedFIFO list.List                // of *endedCall, least recently ended first
	lastSweep time.Time
}

type endedCall struct {
	callID string
	until  time.Time // remembered until
}

func newMemoryStore(maxPerAgent, maxEnded int) *memoryStore {
	return &memoryStore{
		maxPerAgent: maxPerAgent,
		maxEnded:    maxEnded,
		pops:        map[string]*pendingPop{},
		byAgent:     map[int]map[string]struct{}{},
		byCall:      map[string]map[string]struct{}{},
		ended:       map[string]*list.Element{},
	}
}

// sizes returns how many pops and ended calls the store holds (metrics).
func (s *memoryStore) sizes() (pops, ended int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pops), len(s.ended)
}

// sweep drops expired pops and forgets ended calls past their memory.
func (s *memoryStore) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
}

const sweepEvery = 15 * time.Second

func (s *memoryStore) add(_ context.Context, p *pendingPop) (bool, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) > sweepEvery {
		s.sweepLocked(now)
	}
	if e, ok := s.ended[p.CallID]; ok && now.Before(e.Value.(*endedCall).until) {
		return false, nil
	}
	if old, ok := s.pops[p.ID]; ok {
		if p.Rev <= old.Rev {
			return false, nil
		}
		old.Payload, old.Rev = p.Payload, p.Rev
		// A page that acked the pop is done with it: the update is kept, not sent.
		return !old.Acked, nil
	}
	cp := *p
	s.pops[p.ID] = &cp
	ids := s.byAgent[p.AgentID]
	if ids == nil {
		ids = map[string]struct{}{}
		s.byAgent[p.AgentID] = ids
	}
	ids[p.ID] = struct{}{}
	calls := s.byCall[p.CallID]
	if calls == nil {
		calls = map[string]struct{}{}
		s.byCall[p.CallID] = calls
	}
	calls[p.ID] = struct{}{}
	// Bound what one agent can accumulate: drop the pops that expire first.
	for len(ids) > s.maxPerAgent {
		var oldest *pendingPop
		for id := range ids {
			if q := s.pops[id]; oldest == nil || q.ExpiresAt.Before(oldest.ExpiresAt) {
				oldest = q
			}
		}
		s.removeLocked(oldest)
	}
	return true, nil
}

func (s *memoryStore) live(_ context.Context, agentID int, now time.Time) ([]pendingPop, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []pendingPop
	for id := range s.byAgent[agentID] {
		p := s.pops[id]
		if !now.Before(p.ExpiresAt) {
			s.removeLocked(p)
			continue
		}
		if p.replayable(now) {
			out = append(out, *p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ExpiresAt.Before(out[j].ExpiresAt) })
	return out, nil
}

func (s *memoryStore) mark(_ context.Context, agentID int, id string, opened bool) (markResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pops[id]
	if !ok || p.AgentID != agentID || !time.Now().Before(p.ExpiresAt) {
		return markUnknown, nil
	}
	flag := &p.Acked
	if opened {
		flag = &p.Opened
	}
	if *flag {
		return markAgain, nil
	}
	*flag = true
	return markFirst, nil
}

func (s *memoryStore) endCall(_ context.Context, callID string, ttl time.Duration) ([]int, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.ended[callID]; ok {
		e.Value.(*endedCall).until = now.Add(ttl)
		s.endedFIFO.MoveToBack(e)
	} else {
		s.ended[callID] = s.endedFIFO.PushBack(&endedCall{callID: callID, until: now.Add(ttl)})
		// Bound the memory: past maxEnded, the calls ended longest ago are forgotten
		// first (a late pop of such a call would then be shown, never lost).
		for len(s.ended) > s.maxEnded {
			s.forgetEndedLocked(s.endedFIFO.Front())
		}
	}
	seen := map[int]bool{}
	var agents []int
	for id := range s.byCall[callID] {
		p := s.pops[id]
		if !seen[p.AgentID] {
			seen[p.AgentID] = true
			agents = append(agents, p.AgentID)
		}
		s.removeLocked(p)
	}
	sort.Ints(agents)
	return agents, nil
}

func (s *memoryStore) removeLocked(p *pendingPop) {
	delete(s.pops, p.ID)
	if ids := s.byAgent[p.AgentID]; ids != nil {
		delete(ids, p.ID)
		if len(ids) == 0 {
			delete(s.byAgent, p.AgentID)
		}
	}
	if ids := s.byCall[p.CallID]; ids != nil {
		delete(ids, p.ID)
		if len(ids) == 0 {
			delete(s.byCall, p.CallID)
		}
	}
}

func (s *memoryStore) sweepLocked(now time.Time) {
	s.lastSweep = now
	for _, p := range s.pops {
		if !now.Before(p.ExpiresAt) {
			s.removeLocked(p)
		}
	}
	for e := s.endedFIFO.Front(); e != nil; {
		next := e.Next()
		if !now.Before(e.Value.(*endedCall).until) {
			s.forgetEndedLocked(e)
		}
		e = next
	}
}

func (s *memoryStore) forgetEndedLocked(e *list.Element) {
	delete(s.ended, e.Value.(*endedCall).callID)
	s.endedFIFO.Remove(e)
}
