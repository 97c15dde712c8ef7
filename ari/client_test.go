package ari_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
)

type stateChange struct {
	s   ari.State
	err error
}

// recorder collects what a client hands to its consumer.
type recorder struct {
	events chan ari.Event
	states chan stateChange
	hook   func(ari.Event) // runs in the Handler before recording
}

func newRecorder() *recorder {
	return &recorder{events: make(chan ari.Event, 50000), states: make(chan stateChange, 1000)}
}

func (r *recorder) config(srv *aritest.Server, t *testing.T) ari.Config {
	return ari.Config{
		URL: srv.URL(), Username: testUser, Password: testPass, App: "omlcrm", SubscribeAll: true,
		Handler: func(ev ari.Event) {
			if r.hook != nil {
				r.hook(ev)
			}
			r.events <- ev
		},
		OnState:    func(s ari.State, err error) { r.states <- stateChange{s, err} },
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Logger: zerolog.New(zerolog.NewTestWriter(t)),
	}
}

const waitLong = 10 * time.Second

func (r *recorder) nextState(t *testing.T) stateChange {
	t.Helper()
	select {
	case sc := <-r.states:
		return sc
	case <-time.After(waitLong):
		t.Fatal("no state change")
	}
	return stateChange{}
}

func (r *recorder) expectState(t *testing.T, want ari.State) stateChange {
	t.Helper()
	sc := r.nextState(t)
	if sc.s != want {
		t.Fatalf("state %v (%v), want %v", sc.s, sc.err, want)
	}
	return sc
}

func (r *recorder) next(t *testing.T) ari.Event {
	t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case <-time.After(waitLong):
		t.Fatal("no event")
	}
	return nil
}

func (r *recorder) noStateChange(t *testing.T) {
	t.Helper()
	select {
	case sc := <-r.states:
		t.Fatalf("unexpected state change %v (%v)", sc.s, sc.err)
	default:
	}
}

func dialRecorder(t *testing.T, cfg ari.Config) *ari.Client {
	t.Helper()
	c, err := ari.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func varset(seq int, value string) []byte {
	return fmt.Appendf(nil, `{"variable":"SEQ","value":"%d %s","type":"ChannelVarset","timestamp":"2026-11-24T01:27:50.334+0000","channel":{"id":"1795483670.%d","name":"Local/7000@oml-inbound-000000e5;1","state":"Up","protocol_id":"","caller":{"name":"","number":"3415551234"},"connected":{"name":"","number":""},"accountcode":"","dialplan":{"context":"oml-inbound","exten":"7000","priority":2,"app_name":"Set","app_data":"SEQ=%d"},"creationtime":"2026-11-24T01:27:50.334+0000","language":"en"},"asterisk_id":"02:fc:00:00:00:01","application":"omlcrm"}`, seq, value, seq, seq)
}

func seqOf(t *testing.T, ev ari.Event) int {
	t.Helper()
	vs, ok := ev.(*ari.ChannelVarset)
	if !ok {
		t.Fatalf("got %T, want *ari.ChannelVarset", ev)
	}
	var n int
	fmt.Sscanf(vs.Value, "%d", &n)
	return n
}

// send writes msg once exactly one client is registered on the server (the client may report
// StateConnected a moment before the server has registered its end).
func send(t *testing.T, srv *aritest.Server, msg []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := srv.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := srv.Send(ctx, msg); err != nil {
		t.Fatal(err)
	}
}

// TestEventsReplayInOrder replays a real capture and checks every event arrives, decoded the
// same as the line, in order.
func TestEventsReplayInOrder(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass, App: "omlcrm"})
	rec := newRecorder()
	dialRecorder(t, rec.config(srv, t))
	rec.expectState(t, ari.StateConnected)

	q := srv.EventsQueries()[0]
	if q.Get("app") != "omlcrm" || q.Get("subscribeAll") != "true" || q.Has("api_key") {
		t.Errorf("events query %v", q)
	}
	path := filepath.Join(captureDir(t), "oml-preview-click2call-observer.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := srv.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	n, err := srv.Replay(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if n != len(lines) {
		t.Fatalf("replayed %d of %d lines", n, len(lines))
	}
	for i, line := range lines {
		want, _ := ari.DecodeEvent(line)
		got := rec.next(t)
		if !sameEvent(want, got) {
			t.Fatalf("event %d: got %s %+v, want %s", i, got.EventType(), got, want.EventType())
		}
	}
	rec.noStateChange(t)
}

func sameEvent(a, b ari.Event) bool {
	if a.EventType() != b.EventType() || !a.EventBase().Timestamp.Equal(b.EventBase().Timestamp) {
		return false
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if ua, ok := a.(*ari.Unknown); ok {
		return bytes.Equal(ua.Raw, b.(*ari.Unknown).Raw)
	}
	return bytes.Equal(ja, jb)
}

func TestEventsAPIKey(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	rec := newRecorder()
	cfg := rec.config(srv, t)
	cfg.Username, cfg.Password, cfg.APIKey, cfg.SubscribeAll = "", "", testUser+":"+testPass, false
	dialRecorder(t, cfg)
	rec.expectState(t, ari.StateConnected)
	q := srv.EventsQueries()[0]
	if q.Get("api_key") != testUser+":"+testPass || q.Has("subscribeAll") {
		t.Errorf("events query %v", q)
	}
	send(t, srv, varset(1, "x"))
	if seqOf(t, rec.next(t)) != 1 {
		t.Fatal("wrong event")
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	rec := newRecorder()
	c := dialRecorder(t, rec.config(srv, t))
	rec.expectState(t, ari.StateConnected)
	send(t, srv, varset(1, "before"))
	if seqOf(t, rec.next(t)) != 1 {
		t.Fatal("wrong event")
	}

	addr := srv.Addr()
	srv.Stop()
	if sc := rec.expectState(t, ari.StateDisconnected); sc.err == nil {
		t.Error("disconnect without a cause")
	}
	if c.Connected() {
		t.Error("Connected() true while the server is down")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr {
		t.Fatalf("restarted on %s, not %s", srv.Addr(), addr)
	}
	rec.expectState(t, ari.StateConnected)
	send(t, srv, varset(2, "after"))
	if seqOf(t, rec.next(t)) != 2 {
		t.Fatal("wrong event")
	}
	if n := len(srv.EventsQueries()); n != 2 {
		t.Errorf("%d events connections, want 2", n)
	}
}

func TestAuthFailureThenSuccess(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: "other-password"})
	rec := newRecorder()
	c := dialRecorder(t, rec.config(srv, t))

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := c.WaitConnected(ctx)
	cancel()
	var he *ari.HTTPError
	if !errors.Is(err, ari.ErrUnauthorized) || !errors.As(err, &he) || he.Message != "Authentication required" {
		t.Fatalf("WaitConnected: %v, want the 401 with Asterisk's message", err)
	}
	if strings.Contains(err.Error(), testPass) {
		t.Errorf("error reveals the password: %v", err)
	}
	rec.noStateChange(t)

	srv.SetCredentials(testUser, testPass)
	ctx, cancel = context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	rec.expectState(t, ari.StateConnected)
}

func TestStallReconnects(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	rec := newRecorder()
	cfg := rec.config(srv, t)
	cfg.PingInterval, cfg.StallTimeout = 20*time.Millisecond, 100*time.Millisecond
	dialRecorder(t, cfg)
	rec.expectState(t, ari.StateConnected)

	srv.Stall(true)
	sc := rec.expectState(t, ari.StateDisconnected)
	if !errors.Is(sc.err, ari.ErrStalled) {
		t.Fatalf("disconnect cause %v, want ErrStalled", sc.err)
	}
	srv.Stall(false)
	// The client may meet the still-stalled server once more; it must end up connected.
	for sc = rec.nextState(t); sc.s != ari.StateConnected; sc = rec.nextState(t) {
	}
	send(t, srv, varset(1, "after stall"))
	if seqOf(t, rec.next(t)) != 1 {
		t.Fatal("wrong event")
	}
}

// TestSlowHandlerIsNotAStall: while Handler runs, pongs are not read; that must not be
// taken for a stalled Asterisk.
func TestSlowHandlerIsNotAStall(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	rec := newRecorder()
	cfg := rec.config(srv, t)
	cfg.PingInterval, cfg.StallTimeout = 10*time.Millisecond, 30*time.Millisecond
	rec.hook = func(ev ari.Event) {
		if seqOf(t, ev) == 1 {
			time.Sleep(20 * cfg.StallTimeout)
		}
	}
	dialRecorder(t, cfg)
	rec.expectState(t, ari.StateConnected)
	send(t, srv, varset(1, "slow"))
	send(t, srv, varset(2, "next"))
	if seqOf(t, rec.next(t)) != 1 || seqOf(t, rec.next(t)) != 2 {
		t.Fatal("events out of order")
	}
	rec.noStateChange(t)
	if n := len(srv.EventsQueries()); n != 1 {
		t.Fatalf("%d connections: the slow handler was taken for a stall", n)
	}
}

func TestOversizeMessageResetsConnection(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	reg := prometheus.NewRegistry()
	metrics, err := ari.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	cfg := rec.config(srv, t)
	cfg.MaxMessage = 2048
	cfg.Metrics = metrics
	dialRecorder(t, cfg)
	rec.expectState(t, ari.StateConnected)

	send(t, srv, varset(1, "fits"))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	_ = srv.Send(ctx, varset(2, strings.Repeat("x", 4096))) // the client may reset before the write ends
	sc := rec.expectState(t, ari.StateDisconnected)
	if sc.err == nil || !strings.Contains(sc.err.Error(), "MaxMessage") {
		t.Fatalf("disconnect cause %v, want a MaxMessage protocol error", sc.err)
	}
	rec.expectState(t, ari.StateConnected)
	if err := srv.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	send(t, srv, varset(3, "after"))
	if a, b := seqOf(t, rec.next(t)), seqOf(t, rec.next(t)); a != 1 || b != 3 {
		t.Fatalf("delivered %d, %d; want 1, 3", a, b)
	}
	if v := metricValue(t, reg, "omlcrm_ari_oversize_messages_total", nil); v != 1 {
		t.Errorf("oversize counter %v, want 1", v)
	}
	if v := metricValue(t, reg, "omlcrm_ari_reconnects_total", nil); v < 1 {
		t.Errorf("reconnects counter %v, want ≥ 1", v)
	}
}

// TestMalformedEventsAreSkipped: bad messages are logged and counted; the connection stays.
func TestMalformedEventsAreSkipped(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	reg := prometheus.NewRegistry()
	metrics, err := ari.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	cfg := rec.config(srv, t)
	cfg.Metrics = metrics
	dialRecorder(t, cfg)
	rec.expectState(t, ari.StateConnected)

	for _, bad := range []string{
		"not json at all",
		`{"type":5}`,
		`{"no":"type"}`,
		`{"type":"Dial","peer":"not a channel"}`,
		`{"type":"ChannelVarset","variable":"X"` + strings.Repeat(" ", 600), // truncated
	} {
		send(t, srv, []byte(bad))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := srv.SendBinary(ctx, []byte{0xff, 0x00}); err != nil {
		t.Fatal(err)
	}
	send(t, srv, []byte(`{"type":"BrandNewEvent","application":"omlcrm","timestamp":"2026-11-24T01:27:50.334+0000","thing":{"a":1}}`))
	send(t, srv, varset(1, "good"))

	unk, ok := rec.next(t).(*ari.Unknown)
	if !ok || unk.Type != "BrandNewEvent" || !strings.Contains(string(unk.Raw), `"thing":{"a":1}`) {
		t.Fatalf("unknown event %+v", unk)
	}
	if seqOf(t, rec.next(t)) != 1 {
		t.Fatal("wrong event")
	}
	rec.noStateChange(t)
	if n := len(srv.EventsQueries()); n != 1 {
		t.Errorf("%d connections; a bad event must not reconnect", n)
	}
	if v := metricValue(t, reg, "omlcrm_ari_malformed_events_total", nil); v != 6 {
		t.Errorf("malformed counter %v, want 6", v)
	}
	if v := metricValue(t, reg, "omlcrm_ari_events_total", map[string]string{"type": "ChannelVarset"}); v != 1 {
		t.Errorf("ChannelVarset counter %v, want 1", v)
	}
}

func TestDropMidMessageReconnects(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	rec := newRecorder()
	dialRecorder(t, rec.config(srv, t))
	rec.expectState(t, ari.StateConnected)

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := srv.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	msg := varset(1, strings.Repeat("y", 6000))
	if err := srv.SendPartial(ctx, msg, len(msg)/2); err != nil {
		t.Fatal(err)
	}
	rec.expectState(t, ari.StateDisconnected)
	rec.expectState(t, ari.StateConnected)
	send(t, srv, varset(2, "whole"))
	if seqOf(t, rec.next(t)) != 2 {
		t.Fatal("the half message was delivered")
	}
}

// TestBackPressure: while Handler is blocked the client reads nothing more, so the server's
// writes block; once released every event arrives, in order.
func TestBackPressure(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	rec := newRecorder()
	release := make(chan struct{})
	rec.hook = func(ev ari.Event) {
		if seqOf(t, ev) == 0 {
			<-release
		}
	}
	dialRecorder(t, rec.config(srv, t))
	rec.expectState(t, ari.StateConnected)

	ctx0, cancel0 := context.WithTimeout(context.Background(), waitLong)
	defer cancel0()
	if err := srv.WaitClients(ctx0, 1); err != nil {
		t.Fatal(err)
	}
	const total = 1500 // ~12 MB: about three times what loopback socket buffers held here
	pad := strings.Repeat("p", 8000)
	sent := make(chan error, 1)
	progress := make(chan int, total)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := range total {
			if err := srv.Send(ctx, varset(i, pad)); err != nil {
				sent <- err
				return
			}
			progress <- i
		}
		sent <- nil
	}()
	// Wait until the sender has stopped making progress while the handler is blocked.
	stuck := 0
	for last := -1; stuck < 5; {
		time.Sleep(50 * time.Millisecond)
		n := len(progress)
		if n == last {
			stuck++
		} else {
			stuck = 0
		}
		last = n
	}
	select {
	case err := <-sent:
		t.Fatalf("the server wrote all %d events while the handler was blocked (err %v): no back-pressure", total, err)
	default:
	}
	t.Logf("the server's writes blocked after %d of %d events", len(progress), total)
	close(release)
	for i := range total {
		if got := seqOf(t, rec.next(t)); got != i {
			t.Fatalf("event %d has sequence %d", i, got)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	rec.noStateChange(t)
}

func TestCloseAndContext(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	rec := newRecorder()
	c, err := ari.Dial(context.Background(), rec.config(srv, t))
	if err != nil {
		t.Fatal(err)
	}
	rec.expectState(t, ari.StateConnected)
	c.Close()
	if sc := rec.expectState(t, ari.StateDisconnected); !errors.Is(sc.err, ari.ErrClosed) {
		t.Errorf("close cause %v", sc.err)
	}
	if err := c.WaitConnected(context.Background()); !errors.Is(err, ari.ErrClosed) {
		t.Errorf("WaitConnected after Close: %v", err)
	}
	c.Close() // twice is fine
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := srv.WaitClients(ctx, 0); err != nil {
		t.Fatal(err)
	}

	// Ending the Dial context ends the loop too.
	dctx, dcancel := context.WithCancel(context.Background())
	c2, err := ari.Dial(dctx, rec.config(srv, t))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	rec.expectState(t, ari.StateConnected)
	dcancel()
	rec.expectState(t, ari.StateDisconnected)
	if err := c2.WaitConnected(context.Background()); !errors.Is(err, ari.ErrClosed) {
		t.Errorf("WaitConnected after the context ended: %v", err)
	}
}

func TestHandshakeRejected(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass, App: "only-this-app"})
	rec := newRecorder()
	c := dialRecorder(t, rec.config(srv, t))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.WaitConnected(ctx)
	var he *ari.HTTPError
	if !errors.As(err, &he) || he.Status != 400 || !strings.HasPrefix(he.Path, "/ari/events?app=omlcrm") {
		t.Fatalf("WaitConnected: %v, want a 400 on /ari/events", err)
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
