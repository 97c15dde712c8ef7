package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/omlcrm/oml-crm/agentws"
)

// agentFleet is N websocket agents, each logged in with its own token, acknowledging
// every crm.pop as the agent page does, and recording when each pop arrived.
type agentFleet struct {
	pops   *Ledger
	owners *popOwners
	worst  *worstArrivals
	conns  []*websocket.Conn

	cancel context.CancelFunc
	wg     sync.WaitGroup

	received  atomic.Uint64 // crm.pop messages
	replayed  atomic.Uint64 // of which marked replay
	misrouted atomic.Uint64 // pops that reached an agent they were not for
	pings     atomic.Uint64 // console pings sent
	pongs     atomic.Uint64 // and answered
	ended     atomic.Uint64 // call.ended messages
	dropped   atomic.Uint64 // connections lost during the run
	errMu     sync.Mutex
	lastErr   string
}

// agentMessage is the part of a server message the fleet reads.
type agentMessage struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Replay bool   `json:"replay"`
}

// consoleMessage is what an agent sends, spelled as oml-crm.js writes it
// (JSON.stringify({type: "ack", id: …}), {type: "ping"}): the hub answers the console's
// exact bytes in the connection's reader, so other bytes would measure another path.
type consoleMessage struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// connectAgents opens n agent websockets (agents 1…n) to wsURL, at most parallel at a
// time, each authenticated with a token minted from secret, and waits for each hello.
// The fleet's readers, and its console pinger when ping > 0, run until close.
func connectAgents(ctx context.Context, wsURL string, secret []byte, n, parallel int, ping time.Duration, pops *Ledger, owners *popOwners, worst *worstArrivals) (*agentFleet, error) {
	rctx, cancel := context.WithCancel(context.Background())
	f := &agentFleet{pops: pops, owners: owners, worst: worst, conns: make([]*websocket.Conn, n), cancel: cancel}
	sem := make(chan struct{}, parallel)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for i := range n {
		agent := i + 1
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dialAgent(ctx, wsURL, secret, agent)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			f.conns[agent-1] = c
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		f.close()
		return nil, fmt.Errorf("connecting %d agents: %d failed, first: %w", n, len(errs), errs[0])
	}
	for i, c := range f.conns {
		agent := i + 1
		f.wg.Go(func() { f.read(rctx, agent, c) })
	}
	if ping > 0 {
		f.wg.Go(func() { f.consolePings(rctx, ping) })
	}
	return f, nil
}

// consolePings sends each agent the console's application ping every period, as
// oml-crm.js does, one agent at a time, evenly spread over the period: one goroutine
// rather than a timer per agent, so that the instrument stays light.
func (f *agentFleet) consolePings(ctx context.Context, period time.Duration) {
	ping, _ := json.Marshal(consoleMessage{Type: agentws.TypePing})
	t := time.NewTicker(max(period/time.Duration(len(f.conns)), time.Microsecond))
	defer t.Stop()
	for next := 0; ; next = (next + 1) % len(f.conns) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := f.conns[next].Write(ctx, websocket.MessageText, ping); err != nil {
			if ctx.Err() == nil {
				f.noteErr(fmt.Errorf("agent %d: console ping: %w", next+1, err))
			}
			continue
		}
		f.pings.Add(1)
	}
}

func dialAgent(ctx context.Context, wsURL string, secret []byte, agent int) (*websocket.Conn, error) {
	tok, err := agentws.MintToken(secret, agent, time.Now().Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{
		Subprotocols: []string{agentws.Subprotocol, "token." + tok},
	})
	if err != nil {
		return nil, fmt.Errorf("agent %d: dialing %s: %w", agent, wsURL, err)
	}
	c.SetReadLimit(1 << 20)
	_, data, err := c.Read(dctx)
	if err != nil {
		c.CloseNow()
		return nil, fmt.Errorf("agent %d: waiting for hello: %w", agent, err)
	}
	var m agentMessage
	if err := json.Unmarshal(data, &m); err != nil || m.Type != agentws.TypeHello {
		c.CloseNow()
		return nil, fmt.Errorf("agent %d: first message is %.200q, want a hello", agent, data)
	}
	return c, nil
}

// read receives agent's messages until the fleet closes: every pop is recorded in the
// ledger (first observation: latency; later ones: duplicates) and acknowledged.
func (f *agentFleet) read(ctx context.Context, agent int, c *websocket.Conn) {
	for {
		_, data, err := c.Read(ctx)
		at := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				f.dropped.Add(1)
				f.noteErr(fmt.Errorf("agent %d: connection lost: %w", agent, err))
			}
			return
		}
		var m agentMessage
		if err := json.Unmarshal(data, &m); err != nil {
			f.noteErr(fmt.Errorf("agent %d: undecodable message %.200q: %w", agent, data, err))
			continue
		}
		switch m.Type {
		case agentws.TypePop:
			f.received.Add(1)
			if m.Replay {
				f.replayed.Add(1)
			}
			if owner := f.owners.owner(m.ID); owner != 0 && owner != agent {
				f.misrouted.Add(1)
				f.noteErr(fmt.Errorf("pop %s for agent %d reached agent %d", m.ID, owner, agent))
			}
			if d, first := f.pops.Observe(m.ID, at); first {
				f.worst.note("pop", at, d)
			}
			ack, _ := json.Marshal(consoleMessage{Type: agentws.TypeAck, ID: m.ID})
			if err := c.Write(ctx, websocket.MessageText, ack); err != nil && ctx.Err() == nil {
				f.noteErr(fmt.Errorf("agent %d: acking pop %s: %w", agent, m.ID, err))
			}
		case agentws.TypeCallEnded:
			f.ended.Add(1)
		case agentws.TypePong:
			f.pongs.Add(1)
		case agentws.TypeError:
			f.noteErr(fmt.Errorf("agent %d: the hub refused a message: %.200s", agent, data))
		}
	}
}

func (f *agentFleet) noteErr(err error) {
	f.errMu.Lock()
	f.lastErr = err.Error()
	f.errMu.Unlock()
}

// lastError is the last problem an agent saw ("" when none).
func (f *agentFleet) lastError() string {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return f.lastErr
}

// close disconnects every agent and waits for the readers.
func (f *agentFleet) close() {
	f.cancel() // ends every Read, which closes its connection
	for _, c := range f.conns {
		if c != nil {
			c.CloseNow() // an error here means it was already closed
		}
	}
	f.wg.Wait()
}
