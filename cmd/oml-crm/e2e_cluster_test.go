package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/redistest"
)

// setConfig rewrites one fragment of the test's configuration file.
func setConfig(t *testing.T, path, old, new string) {
	t.Helper()
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(y, []byte(old)) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, bytes.Replace(y, []byte(old), []byte(new), 1), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Two instances watching the same Asterisk, sharing the PostgreSQL outbox and Redis (the
// high-availability set-up): each connect is delivered once and popped once, whichever
// instance the agent's page is connected to.
func TestE2ETwoInstances(t *testing.T) {
	redisURL, prefix := redistest.New(t, "omlcrm-e2e")
	s := newE2E(t, "ami")
	cfgA, cfgB := s.cfgPath, filepath.Join(t.TempDir(), "b.yaml")
	setConfig(t, cfgA, "delivery: {store: sqlite,", "delivery: {store: postgres, postgres_schema: oml_crm_ha, instance_id: a,")
	setConfig(t, cfgA, "agentws: {token_secret:", fmt.Sprintf("cluster: {redis_url: %q, redis_prefix: %q}\nagentws: {token_secret:", redisURL, prefix))
	listenB := freeAddr(t)
	y, _ := os.ReadFile(cfgA)
	y = bytes.Replace(y, []byte(s.cfg.Listen), []byte(listenB), 1)
	y = bytes.Replace(y, []byte("instance_id: a,"), []byte("instance_id: b,"), 1)
	if err := os.WriteFile(cfgB, y, 0o600); err != nil {
		t.Fatal(err)
	}
	a := startDaemonProc(t, s.bin, cfgA, s.cfg.Listen)
	b := startDaemonProc(t, s.bin, cfgB, listenB)
	a.waitReady()
	b.waitReady()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.ast.ami.WaitSessions(ctx, 2); err != nil {
		t.Fatal(err)
	}
	agent1 := dialAgent(t, a.base, e2eTokenSecret, 1) // on instance a
	agent2 := dialAgent(t, b.base, e2eTokenSecret, 2) // on instance b

	server := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, "T-ha-server")
	pop1 := simCall(s.ids, 11, catalog.TypePreview, e2eAgent1, "T-ha-pop1")
	pop2 := simCall(s.ids, 16, catalog.TypeInbound, e2eAgent2, "T-ha-pop2")
	s.ast.play(t, server, pop1, pop2)

	s.waitDelivered(t, server, 1, 3)
	if p := agent1.nextPop(t); p.CallID != pop1.CallID {
		t.Errorf("agent 1 (instance a) got a pop of call %s, want %s", p.CallID, pop1.CallID)
	}
	if p := agent2.nextPop(t); p.CallID != pop2.CallID {
		t.Errorf("agent 2 (instance b) got a pop of call %s, want %s", p.CallID, pop2.CallID)
	}
	// Both instances handled every connect...
	for _, d := range []*daemonProc{a, b} {
		waitFor(t, 10*time.Second, "both instances to dispatch every connect", func() bool {
			return d.metric(`omlcrm_connects_total{outcome="server"}`) == 1 && d.metric(`omlcrm_connects_total{outcome="popped"}`) == 2
		})
	}
	// ...and nothing arrived twice: a later call proves the earlier duplicates had time.
	marker := simCall(s.ids, 17, catalog.TypeManual, e2eAgent2, "T-ha-marker")
	s.ast.play(t, marker)
	s.waitDelivered(t, marker, 2, 5)
	agent1.noPop(t)
	agent2.noPop(t)
	// The instances share their state under cluster.redis_prefix (the calls' end markers).
	if keys, err := redistest.Keys(redisURL, prefix); err != nil || len(keys) == 0 {
		t.Errorf("no Redis key under cluster.redis_prefix %q", prefix)
	}
	if n := s.crm.attempts(crmnotify.NotificationID(server.CallID, 1, 3)); n != 1 {
		t.Errorf("the server delivery was sent %d times by two instances, want once", n)
	}
	a.stop()
	b.stop()
}

// redisGate is a TCP forwarder to Redis that can refuse service (connections are
// accepted and closed at once), standing in for a Redis that is down.
type redisGate struct {
	ln     net.Listener
	target string
	open   atomic.Bool
	wg     sync.WaitGroup
}

func newRedisGate(t *testing.T, redisURL string) *redisGate {
	t.Helper()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &redisGate{ln: ln, target: opt.Addr}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !g.open.Load() {
				c.Close()
				continue
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				g.pipe(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		g.wg.Wait()
	})
	return g
}

func (g *redisGate) pipe(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", g.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// url is the gate's Redis URL (the database of redisURL, through the gate).
func (g *redisGate) url(redisURL string) string {
	opt, _ := redis.ParseURL(redisURL)
	return fmt.Sprintf("redis://%s/%d", g.ln.Addr(), opt.DB)
}

// Redis down when a cluster-mode daemon starts: /readyz names it, the agent endpoints
// answer 503, a connect made meanwhile waits, and it pops once Redis is up.
func TestE2ERedisDownAtStart(t *testing.T) {
	redisURL, prefix := redistest.New(t, "omlcrm-e2e")
	gate := newRedisGate(t, redisURL)
	s := newE2E(t, "ami")
	setConfig(t, s.cfgPath, "agentws: {token_secret:", fmt.Sprintf("cluster: {redis_url: %q, redis_prefix: %q}\nagentws: {token_secret:", gate.url(redisURL), prefix))
	d := startDaemonProc(t, s.bin, s.cfgPath, s.cfg.Listen)
	waitFor(t, 15*time.Second, "/readyz to name redis", func() bool {
		code, body := httpGet(d.base + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"redis"`) && !strings.Contains(body, `"asterisk"`)
	})
	if code, _ := httpGet(d.base + "/oml-crm.js"); code != http.StatusServiceUnavailable {
		t.Errorf("/oml-crm.js while the hub waits for Redis = %d, want 503", code)
	}
	// A call in progress (connected, not hung up) while the hub waits for Redis.
	c := simCall(s.ids, 16, catalog.TypeInbound, e2eAgent1, "T-redis-late")
	s.ast.playUntilTalk(t, c, c.Params.Talk)

	gate.open.Store(true)
	d.waitReady()
	agent := dialAgent(t, d.base, e2eTokenSecret, 1)
	// The pop, made while Redis was down, is replayed to the agent when it connects.
	if p := agent.nextPop(t); p.CallID != c.CallID {
		t.Errorf("pop of call %s, want %s", p.CallID, c.CallID)
	}
	d.stop()
}
