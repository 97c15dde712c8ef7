package ami_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// waitLimit bounds every wait in these tests; reaching it is a failure, not a timing
// assertion.
const waitLimit = 15 * time.Second

type stateChange struct {
	state ami.State
	err   error
}

// harness is a client wired to a fake Asterisk, recording what the client reports.
type harness struct {
	t      *testing.T
	srv    *amitest.Server
	client *ami.Client
	events chan *ami.Message
	states chan stateChange
}

func newHarness(t *testing.T, srv *amitest.Server, tweak func(*ami.Config)) *harness {
	t.Helper()
	h := &harness{t: t, srv: srv, events: make(chan *ami.Message, 20000), states: make(chan stateChange, 100)}
	cfg := ami.Config{
		Address:      srv.Addr(),
		Username:     srv.Username(),
		Secret:       srv.Secret(),
		Handler:      func(m *ami.Message) { h.events <- m.Clone() },
		OnState:      func(s ami.State, err error) { h.states <- stateChange{s, err} },
		ReconnectMin: 10 * time.Millisecond,
		ReconnectMax: 200 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := ami.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h.client = c
	return h
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	h.t.Cleanup(cancel)
	return ctx
}

// state waits for the next state change.
func (h *harness) state(want ami.State) error {
	h.t.Helper()
	select {
	case sc := <-h.states:
		if sc.state != want {
			h.t.Fatalf("state %v (%v), want %v", sc.state, sc.err, want)
		}
		return sc.err
	case <-time.After(waitLimit):
		h.t.Fatalf("no state change to %v", want)
	}
	return nil
}

// event waits for the next event the Handler receives.
func (h *harness) event() *ami.Message {
	h.t.Helper()
	select {
	case m := <-h.events:
		return m
	case <-time.After(waitLimit):
		h.t.Fatal("no event")
	}
	return nil
}

// connected waits for the session and swallows the FullyBooted that follows the login.
func (h *harness) connected() {
	h.t.Helper()
	if err := h.state(ami.StateConnected); err != nil {
		h.t.Fatalf("connected with error %v", err)
	}
	if ev := h.event(); ev.Event() != "FullyBooted" {
		h.t.Fatalf("first event %q, want FullyBooted", ev.Event())
	}
}

func (h *harness) noMoreEvents() {
	h.t.Helper()
	select {
	case m := <-h.events:
		h.t.Fatalf("unexpected event %q", m.Headers)
	default:
	}
}

func capturePath(t testing.TB, name string) string {
	return filepath.Join(pgtest.SharedDir(t), "testdata", "ami", name)
}

// unsolicited returns the raw bytes of a capture's events that Replay sends.
func unsolicited(t *testing.T, path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := ami.NewReader(bytes.NewReader(data), ami.Limits{})
	if _, err := r.ReadBanner(); err != nil {
		t.Fatal(err)
	}
	var out []string
	var m ami.Message
	for {
		if err := r.ReadMessage(&m); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		_, hasID := m.Lookup("ActionID")
		if !m.IsResponse() && !hasID && m.Event() != "FullyBooted" && m.Event() != "SuccessfulAuth" {
			out = append(out, m.Raw())
		}
	}
}

func TestClientReplaysCaptureByteForByteInOrder(t *testing.T) {
	for _, name := range []string{"oml-inbound-queue.ami", "oml-busy-50-calls.ami"} {
		t.Run(name, func(t *testing.T) {
			srv := amitest.NewServer(t)
			h := newHarness(t, srv, nil)
			h.connected()
			path := capturePath(t, name)
			want := unsolicited(t, path)
			sent, err := srv.ReplayFile(path)
			if err != nil || sent != len(want) {
				t.Fatalf("replayed %d events (%v), want %d", sent, err, len(want))
			}
			for i, raw := range want {
				if got := h.event(); got.Raw() != raw {
					t.Fatalf("event %d:\n%q\nwant\n%q", i, got.Raw(), raw)
				}
			}
			h.noMoreEvents()
		})
	}
}

func TestClientSlowHandlerLosesNothing(t *testing.T) {
	srv := amitest.NewServer(t)
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	path := capturePath(t, "busy-40-calls.ami")
	want := unsolicited(t, path)
	h := newHarness(t, srv, func(c *ami.Config) {
		c.EventNames = nil
		c.Handler = func(m *ami.Message) {
			if m.Event() == "FullyBooted" {
				return
			}
			if len(got)%500 == 0 {
				time.Sleep(5 * time.Millisecond) // a slow consumer: back-pressure, not loss
			}
			mu.Lock()
			got = append(got, m.Raw())
			if len(got) == len(want) {
				close(done)
			}
			mu.Unlock()
		}
	})
	if err := h.state(ami.StateConnected); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ReplayFile(path); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("received %d of %d events", len(got), len(want))
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Fatal("events differ from the capture")
	}
}

func TestClientMD5Login(t *testing.T) {
	srv := amitest.NewServer(t, amitest.WithCredentials("crm", "s3cret"))
	h := newHarness(t, srv, func(c *ami.Config) { c.AuthMD5 = true; c.Events = []string{"call", "dialplan", "agent"} })
	h.connected()
	var login *ami.Message
	var challenged bool
	for _, a := range srv.Actions() {
		switch a.Get("Action") {
		case "Challenge":
			challenged = a.Get("AuthType") == "MD5"
		case "Login":
			login = a
		}
	}
	if !challenged || login == nil {
		t.Fatal("no MD5 challenge before the login")
	}
	if _, ok := login.Lookup("Secret"); ok || len(login.Get("Key")) != 32 || login.Get("Events") != "call,dialplan,agent" {
		t.Fatalf("login %q", login.Headers)
	}
	if !strings.HasPrefix(h.client.Banner(), "Asterisk Call Manager/") {
		t.Fatalf("banner %q", h.client.Banner())
	}
}

func TestClientActions(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.SetVar("", "OMLRECPATH", "/opt/asterisk/var/spool/asterisk/monitor")
	chans := []amitest.Channel{
		{Name: "Local/3415551234@oml-customer-00000000;1", Uniqueid: "1795483380.0", Vars: map[string]string{"OMLCAMPID": "7", "OMLCRM_ticket": "T-123"}},
		{Name: "Local/1001@oml-agent-00000001;1", Uniqueid: "1795483380.2", Linkedid: "1795483380.0"},
		{Name: "Local/1001@oml-agent-00000001;2", Uniqueid: "1795483380.3", Linkedid: "1795483380.0"},
	}
	srv.SetChannels(chans...)
	srv.SetCommand("queue show q8", "q8 has 0 calls (max unlimited)", "   Members: ", "", "")
	h := newHarness(t, srv, nil)
	h.connected()
	ctx := h.ctx()
	c := h.client

	for _, tt := range []struct{ channel, variable, want string }{
		{"", "OMLRECPATH", "/opt/asterisk/var/spool/asterisk/monitor"},
		{chans[0].Name, "OMLCAMPID", "7"},
		{chans[0].Name, "OMLCRM_ticket", "T-123"},
		{chans[0].Name, "UNSET", ""},
	} {
		if got, err := c.Getvar(ctx, tt.channel, tt.variable); err != nil || got != tt.want {
			t.Fatalf("Getvar(%q, %q) = %q, %v; want %q", tt.channel, tt.variable, got, err, tt.want)
		}
	}
	var ae *ami.ActionError
	if _, err := c.Getvar(ctx, "Local/none-0;1", "OMLCAMPID"); !errors.As(err, &ae) || ae.Message != "No such channel" {
		t.Fatalf("missing channel: %v", err)
	}
	if _, err := c.Getvar(ctx, chans[0].Name, ""); !errors.As(err, &ae) || ae.Message != "No variable specified" {
		t.Fatalf("no variable: %v", err)
	}

	out, err := c.Command(ctx, "queue show q8")
	if err != nil || !reflect.DeepEqual(out, []string{"q8 has 0 calls (max unlimited)", "   Members: ", "", ""}) {
		t.Fatalf("Command = %q, %v", out, err)
	}
	out, err = c.Command(ctx, "no such cli command")
	if !errors.As(err, &ae) || len(out) != 1 || !strings.HasPrefix(out[0], "No such command 'no such cli command'") {
		t.Fatalf("unknown command = %q, %v", out, err)
	}

	list, err := c.CoreShowChannels(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("CoreShowChannels: %d, %v", len(list), err)
	}
	for i, m := range list {
		if m.Event() != "CoreShowChannel" || m.Get("Channel") != chans[i].Name || m.Get("Uniqueid") != chans[i].Uniqueid {
			t.Fatalf("channel %d: %q", i, m.Headers)
		}
	}
	resp, err := c.Action(ctx, "CoreShowChannels")
	if err != nil || resp.Complete == nil || resp.Complete.Get("ListItems") != "3" || resp.Get("EventList") != "start" {
		t.Fatalf("list response %v, %v", resp, err)
	}

	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err = c.Action(ctx, "NoSuchAction")
	if !errors.As(err, &ae) || !strings.HasPrefix(ae.Message, "Invalid/unknown command: NoSuchAction") || resp == nil {
		t.Fatalf("unknown action: %v", err)
	}
	// Headers that would change the framing, or our own ActionID, are refused unsent.
	for _, bad := range [][]ami.Header{
		{{Key: "Variable", Value: "X\r\nAction: Originate"}},
		{{Key: "Bad:Key", Value: "x"}},
		{{Key: "ActionID", Value: "mine"}},
	} {
		if _, err := c.Action(ctx, "Getvar", bad...); err == nil {
			t.Fatalf("header %q accepted", bad)
		}
	}
	if _, err := c.Action(ctx, "Get\r\nvar"); err == nil {
		t.Fatal("action name with a line break accepted")
	}
	// List items never reach Handler.
	h.noMoreEvents()
}

func TestClientConcurrentActions(t *testing.T) {
	srv := amitest.NewServer(t)
	const workers, each = 8, 40
	for w := range workers {
		for i := range each {
			srv.SetVar("", varName(w, i), varName(i, w))
		}
	}
	h := newHarness(t, srv, nil)
	h.connected()
	ctx := h.ctx()
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				v, err := h.client.Getvar(ctx, "", varName(w, i))
				if err == nil && v != varName(i, w) {
					err = errors.New("Getvar " + varName(w, i) + " = " + v)
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func varName(a, b int) string { return "V_" + string(rune('A'+a)) + "_" + string(rune('A'+b)) }

func TestClientEventNames(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.SetChannels(amitest.Channel{Name: "Local/1@x-1;1", Uniqueid: "1.1"})
	h := newHarness(t, srv, func(c *ami.Config) { c.EventNames = []string{"FullyBooted", "Hangup", "AgentConnect"} })
	h.connected()
	for _, name := range []string{"Newchannel", "Hangup", "VarSet", "Hangup"} {
		if err := srv.SendEvent(ami.Header{Key: "Event", Value: name}, ami.Header{Key: "Uniqueid", Value: name}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if m := h.event(); m.Event() != "Hangup" {
			t.Fatalf("got %q", m.Event())
		}
	}
	// A list action still gets its events, which are not among EventNames.
	if list, err := h.client.CoreShowChannels(h.ctx()); err != nil || len(list) != 1 {
		t.Fatalf("CoreShowChannels with EventNames: %d, %v", len(list), err)
	}
	// The event name filter also applies when Event is not the first header.
	if err := srv.Send([]byte("Privilege: call,all\r\nEvent: Newchannel\r\n\r\nPrivilege: call,all\r\nEvent: AgentConnect\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if m := h.event(); m.Event() != "AgentConnect" {
		t.Fatalf("got %q", m.Event())
	}
	h.noMoreEvents()
}

func TestClientFilters(t *testing.T) {
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, func(c *ami.Config) { c.Filters = []string{"Event: Hangup", "(unclosed", "!Event: RTCP*"} })
	h.connected()
	// Filters are sent after login; the rejected one is logged and the session goes on.
	ctx := h.ctx()
	for len(srv.Filters()) < 2 {
		select {
		case <-ctx.Done():
			t.Fatalf("filters %q", srv.Filters())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if got := srv.Filters(); !reflect.DeepEqual(got, []string{"Event: Hangup", "!Event: RTCP*"}) {
		t.Fatalf("filters %q", got)
	}
	if err := h.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClientReconnectsAfterServerRestart(t *testing.T) {
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, nil)
	h.connected()
	addr := srv.Addr()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr {
		t.Fatalf("restart moved the server from %s to %s", addr, srv.Addr())
	}
	if err := h.state(ami.StateDisconnected); err == nil {
		t.Fatal("disconnected without a cause")
	}
	h.connected()
	if err := srv.SendEvent(ami.Header{Key: "Event", Value: "Hangup"}); err != nil {
		t.Fatal(err)
	}
	if h.event().Event() != "Hangup" || srv.Logins() != 2 {
		t.Fatalf("after the restart: logins %d", srv.Logins())
	}
	// Asterisk down for a while: the client keeps trying, then comes back by itself.
	srv.Down()
	h.state(ami.StateDisconnected)
	if _, err := h.client.Getvar(h.ctx(), "", "X"); !errors.Is(err, ami.ErrNotConnected) {
		t.Fatalf("action while down: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // let a few attempts fail
	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	h.connected()
}

func TestClientLoginFailureThenSuccess(t *testing.T) {
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, func(c *ami.Config) { c.Secret = "wrong" })
	err := h.state(ami.StateDisconnected) // the first failure is reported
	var le *ami.LoginError
	if !errors.As(err, &le) || le.Message != "Authentication failed" || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("first failure: %v", err)
	}
	srv.SetCredentials(srv.Username(), "wrong")
	h.connected()
}

func TestClientStallPingReconnect(t *testing.T) {
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, func(c *ami.Config) {
		c.PingInterval = 100 * time.Millisecond
		c.StallTimeout = 100 * time.Millisecond
	})
	h.connected()
	// An idle but healthy Asterisk answers the keep-alive Pings: no reconnect.
	ctx := h.ctx()
	for countActions(srv, "Ping") < 3 {
		select {
		case <-ctx.Done():
			t.Fatal("no keep-alive Pings while idle")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if srv.Logins() != 1 || len(h.states) != 0 {
		t.Fatalf("idle session reconnected: %d logins", srv.Logins())
	}
	srv.Stall()
	if err := h.state(ami.StateDisconnected); !errors.Is(err, ami.ErrStalled) {
		t.Fatalf("stall reported as %v", err)
	}
	srv.Resume()
	h.connected()
}

func TestClientActionsFailCleanly(t *testing.T) {
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, func(c *ami.Config) { c.ActionTimeout = 200 * time.Millisecond })
	h.connected()
	ctx := h.ctx()

	srv.Stall()
	if _, err := h.client.Getvar(ctx, "", "X"); !errors.Is(err, ami.ErrActionTimeout) {
		t.Fatalf("unanswered action: %v", err)
	}
	// A caller's own deadline wins over ActionTimeout.
	short, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.client.Getvar(short, "", "X"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled action: %v", err)
	}

	// In flight when the connection drops: fails with ErrDisconnected, not a timeout.
	errc := make(chan error, 1)
	go func() {
		_, err := h.client.Action(context.Background(), "Getvar", ami.Header{Key: "Variable", Value: "INFLIGHT"}, ami.Header{Key: "X", Value: "y"})
		errc <- err
	}()
	for !sentAction(srv, "INFLIGHT") {
		time.Sleep(5 * time.Millisecond)
	}
	srv.DropSessions()
	if err := <-errc; !errors.Is(err, ami.ErrDisconnected) {
		t.Fatalf("in-flight action: %v", err)
	}
	h.state(ami.StateDisconnected)
	srv.Resume()
	h.connected()
	if _, err := h.client.Getvar(ctx, "", "X"); err != nil {
		t.Fatalf("after reconnect: %v", err)
	}
}

func countActions(srv *amitest.Server, action string) int {
	n := 0
	for _, a := range srv.Actions() {
		if a.Get("Action") == action {
			n++
		}
	}
	return n
}

func sentAction(srv *amitest.Server, variable string) bool {
	for _, a := range srv.Actions() {
		if a.Get("Variable") == variable {
			return true
		}
	}
	return false
}

func TestClientLimitsReconnect(t *testing.T) {
	tests := []struct {
		name  string
		tweak func(*ami.Config)
		send  func(*amitest.Server)
		what  string
	}{
		{"line", nil, func(s *amitest.Server) { s.SendLongLine(200_000) }, "line"},
		{"message", func(c *ami.Config) { c.MaxMessage = 4096 }, func(s *amitest.Server) {
			hs := []ami.Header{{Key: "Event", Value: "VarSet"}}
			for range 50 {
				hs = append(hs, ami.Header{Key: "Variable", Value: strings.Repeat("v", 100)})
			}
			s.SendEvent(hs...)
		}, "message"},
		{"headers", func(c *ami.Config) { c.MaxHeaders = 16 }, func(s *amitest.Server) {
			hs := []ami.Header{{Key: "Event", Value: "VarSet"}}
			for range 20 {
				hs = append(hs, ami.Header{Key: "ChanVariable", Value: "A=1"})
			}
			s.SendEvent(hs...)
		}, "headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := amitest.NewServer(t)
			h := newHarness(t, srv, tt.tweak)
			h.connected()
			tt.send(srv)
			err := h.state(ami.StateDisconnected)
			var le *ami.LimitError
			if !errors.As(err, &le) || le.What != tt.what || le.Size <= le.Max {
				t.Fatalf("got %v, want a %s limit error", err, tt.what)
			}
			h.connected() // reconnected
			if err := srv.SendEvent(ami.Header{Key: "Event", Value: "Hangup"}); err != nil {
				t.Fatal(err)
			}
			if m := h.event(); m.Event() != "Hangup" {
				t.Fatalf("after reconnect: %q", m.Event())
			}
		})
	}
}

func TestClientSurvivesGarbage(t *testing.T) {
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, nil)
	h.connected()
	if err := srv.SendGarbage(); err != nil {
		t.Fatal(err)
	}
	if err := srv.SendEvent(ami.Header{Key: "Event", Value: "Hangup"}, ami.Header{Key: "Cause", Value: "16"}); err != nil {
		t.Fatal(err)
	}
	if m := h.event(); m.Event() != "Hangup" || m.Get("Cause") != "16" {
		t.Fatalf("after garbage: %q", m.Headers)
	}
	if srv.Logins() != 1 || len(h.states) != 0 {
		t.Fatal("garbage broke the session")
	}
}

func TestClientCloseMidMessage(t *testing.T) {
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, nil)
	h.connected()
	srv.CloseMidMessage()
	if err := h.state(ami.StateDisconnected); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut message reported as %v", err)
	}
	h.connected()
	h.noMoreEvents() // the half message never reached Handler
}

func TestClientDialSemantics(t *testing.T) {
	if _, err := ami.Dial(context.Background(), ami.Config{Username: "u"}); err == nil || !strings.Contains(err.Error(), "Address") {
		t.Fatalf("empty address: %v", err)
	}
	if _, err := ami.Dial(context.Background(), ami.Config{Address: "127.0.0.1:1", Username: "u", Secret: "a\nb"}); err == nil || strings.Contains(err.Error(), "a\nb") {
		t.Fatalf("secret with a line break: %v", err)
	}
	// Nothing listens: Dial still returns a client; the failure comes through OnState.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	states := make(chan stateChange, 10)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := ami.Dial(ctx, ami.Config{Address: addr, Username: "u", Secret: "s",
		OnState: func(s ami.State, err error) { states <- stateChange{s, err} }})
	if err != nil {
		t.Fatal(err)
	}
	sc := <-states
	if sc.state != ami.StateDisconnected || sc.err == nil || !strings.Contains(sc.err.Error(), addr) {
		t.Fatalf("first failure: %v %v", sc.state, sc.err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ami.ErrNotConnected) {
		t.Fatalf("Ping while down: %v", err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer wcancel()
	if err := c.WaitConnected(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConnected: %v", err)
	}
	cancel() // ending Dial's context stops the loop
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestClientClose(t *testing.T) {
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, nil)
	h.connected()
	if err := h.client.WaitConnected(h.ctx()); err != nil {
		t.Fatal(err)
	}
	h.client.Close()
	if err := h.state(ami.StateDisconnected); !errors.Is(err, ami.ErrClosed) {
		t.Fatalf("close reported as %v", err)
	}
	h.client.Close() // idempotent
	logoff := false
	for _, a := range srv.Actions() {
		logoff = logoff || a.Get("Action") == "Logoff"
	}
	if !logoff {
		t.Fatal("Close did not log off")
	}
	if err := h.client.Ping(context.Background()); !errors.Is(err, ami.ErrNotConnected) {
		t.Fatalf("Ping after Close: %v", err)
	}
	if h.client.State() != ami.StateDisconnected || ami.StateConnected.String() != "connected" {
		t.Fatal("state after Close")
	}
}

func TestClientMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	metrics, err := ami.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ami.NewMetrics(reg); err == nil {
		t.Fatal("registering twice succeeded")
	}
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, func(c *ami.Config) { c.Metrics = metrics; c.EventNames = []string{"FullyBooted"} })
	h.connected()
	for range 3 {
		srv.SendEvent(ami.Header{Key: "Event", Value: "Newexten"})
	}
	if err := h.client.Ping(h.ctx()); err != nil { // answered after the events: they were read
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(metrics.EventsCounter("Newexten")); got != 3 {
		t.Fatalf("events_total{Newexten} = %v (skipped events count too)", got)
	}
	if testutil.ToFloat64(metrics.EventsCounter("FullyBooted")) != 1 {
		t.Fatal("FullyBooted not counted")
	}
	srv.Restart()
	h.state(ami.StateDisconnected)
	h.connected()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	n, err := testutil.GatherAndCount(reg, "omlcrm_ami_action_duration_seconds", "omlcrm_ami_read_bytes_total", "omlcrm_ami_reconnects_total", "omlcrm_ami_connected")
	if err != nil || n < 4 {
		t.Fatalf("metrics present: %d, %v", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader("# HELP omlcrm_ami_connected 1 while the client is logged in to Asterisk, else 0.\n# TYPE omlcrm_ami_connected gauge\nomlcrm_ami_connected 1\n"), "omlcrm_ami_connected"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(metrics.ReconnectsCounter()); got < 1 {
		t.Fatalf("reconnects %v", got)
	}
}
