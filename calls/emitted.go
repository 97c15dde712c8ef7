package calls

import (
	"strconv"
	"time"
)

// emittedSet remembers which (call, agent) pairs got their Connected, so a re-bridge,
// a Local channel optimisation or a Resync after reconnect never emits one twice. An
// agent is remembered under every identity known at connect time (agent id, extension,
// agent channel) so a later sighting under another one still matches.
//
// Bound: a key lives EmittedTTL (default 6 h, longer than any call) after it was added,
// and at most EmittedMax keys (default 262,144, about 25 MB) are kept, oldest dropped
// first. Keys are added in time order, so expiry is a FIFO pop.
type emittedSet struct {
	ttl  time.Duration
	max  int
	keys map[string]struct{}
	fifo []emittedKey
	head int
}

type emittedKey struct {
	key string
	at  time.Time
}

func newEmittedSet(ttl time.Duration, max int) *emittedSet {
	return &emittedSet{ttl: ttl, max: max, keys: make(map[string]struct{})}
}

func (s *emittedSet) len() int { return len(s.keys) }

// seenOrAdd reports whether the pair was already emitted; either way it remembers every
// identity given.
func (s *emittedSet) seenOrAdd(callID string, agentID int, ext, agentChan string, at time.Time) bool {
	s.expire(at)
	var keys [3]string
	n := 0
	if agentID > 0 {
		keys[n] = callID + "\x00a" + strconv.Itoa(agentID)
		n++
	}
	if ext != "" {
		keys[n] = callID + "\x00x" + ext
		n++
	}
	keys[n] = callID + "\x00c" + agentChan
	n++
	seen := false
	for _, k := range keys[:n] {
		if _, ok := s.keys[k]; ok {
			seen = true
		}
	}
	for _, k := range keys[:n] {
		if _, ok := s.keys[k]; !ok {
			s.keys[k] = struct{}{}
			s.fifo = append(s.fifo, emittedKey{key: k, at: at})
		}
	}
	s.expire(at)
	return seen
}

func (s *emittedSet) expire(now time.Time) {
	for s.head < len(s.fifo) {
		e := s.fifo[s.head]
		if len(s.keys) <= s.max && now.Sub(e.at) < s.ttl {
			break
		}
		delete(s.keys, e.key)
		s.fifo[s.head] = emittedKey{}
		s.head++
	}
	if s.head > 1024 && s.head*2 > len(s.fifo) {
		n := copy(s.fifo, s.fifo[s.head:])
		clear(s.fifo[n:])
		s.fifo = s.fifo[:n]
		s.head = 0
	}
}

// wasAgent reports whether agentChan was emitted as the agent of call callID.
func (s *emittedSet) wasAgent(callID, agentChan string) bool {
	_, ok := s.keys[callID+"\x00c"+agentChan]
	return ok
}
