package agentws

import (
	"context"
	"fmt"
	"net"
	"net/http"
	runtimemetrics "runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/workpool"
)

func TestTokenAuth(t *testing.T) {
	th := newTestHub(t, Options{AllowedOrigins: []string{"https://console.example.com", "*.oml.example.net"}})
	ctx := context.Background()
	valid := mustToken(t, 42)
	expired, _ := MintToken(testSecret, 42, time.Now().Add(-time.Second))
	otherKey, _ := MintToken([]byte("another-secret-0123456789"), 42, time.Now().Add(time.Hour))
	// Tamper with the agent id of a valid token: the signature no longer matches.
	tampered := strings.Replace(valid, "v1.42.", "v1.43.", 1)

	cases := []struct {
		name   string
		url    string
		token  string
		origin string
		want   int // 0 = upgraded
	}{
		{"valid subprotocol token", th.wsURL(), valid, "", 0},
		{"valid query token", th.wsURL() + "?token=" + valid, "", "", 0},
		{"same origin", th.wsURL(), valid, th.srv.URL, 0},
		{"allowed origin", th.wsURL(), valid, "https://console.example.com", 0},
		{"allowed host pattern", th.wsURL(), valid, "https://a.oml.example.net", 0},
		{"no credentials", th.wsURL(), "", "", http.StatusUnauthorized},
		{"expired", th.wsURL(), expired, "", http.StatusUnauthorized},
		{"tampered agent", th.wsURL(), tampered, "", http.StatusUnauthorized},
		{"other secret", th.wsURL(), otherKey, "", http.StatusUnauthorized},
		{"garbage", th.wsURL(), "v1.x", "", http.StatusUnauthorized},
		{"wrong origin", th.wsURL(), valid, "https://evil.example.org", http.StatusForbidden},
		{"wrong scheme for origin", th.wsURL(), valid, "http://console.example.com", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			ws, status, err := dialRaw(ctx, tc.url, tc.token, hdr, nil)
			if tc.want != 0 {
				if err == nil {
					ws.CloseNow()
					t.Fatalf("upgraded; want HTTP %d", tc.want)
				}
				if status != tc.want {
					t.Fatalf("status %d, want %d (%v)", status, tc.want, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: status %d: %v", status, err)
			}
			defer ws.CloseNow()
			if ws.Subprotocol() != Subprotocol {
				t.Errorf("subprotocol %q, want %q (the token must never be echoed)", ws.Subprotocol(), Subprotocol)
			}
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"agent_id":42,"server_version":"test","type":"hello"}`; string(b) != want {
				t.Errorf("hello %s, want %s", b, want)
			}
		})
	}
	if got := testutil.ToFloat64(th.metrics.refused.WithLabelValues("origin")); got != 2 {
		t.Errorf("refused{origin} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(th.metrics.refused.WithLabelValues("credentials")); got != 5 {
		t.Errorf("refused{credentials} = %v, want 5", got)
	}
}

func TestPopMessage(t *testing.T) {
	th := newTestHub(t, Options{})
	c := dialAgent(t, th, 3)
	n := notification("call-1", 3, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	n.Site.Method = catalog.MethodPOST
	n.Request = crmnotifyRequestPOST()
	mustPop(t, th.Hub, n)
	m := c.next()
	if m["type"] != TypePop || m["id"] != n.ID || m["call_id"] != "call-1" || m["trigger"] != "automatic" || m["target"] != "embedded" {
		t.Fatalf("pop %v", m)
	}
	camp := m["campaign"].(map[string]any)
	if camp["id"] != 11.0 || camp["name"] != "Ventas" || camp["type"] != "inbound" {
		t.Errorf("campaign %v", camp)
	}
	req := m["request"].(map[string]any)
	if req["method"] != "POST" || req["url"] != "https://crm.example.com/in" || req["content_type"] != "application/x-www-form-urlencoded" {
		t.Errorf("request %v", req)
	}
	if got := fmt.Sprint(req["fields"]); got != "[[idClient 321] [name <b>\"Zoë\"</b> & co]]" {
		t.Errorf("fields %s", got)
	}
	exp, err := time.Parse(time.RFC3339Nano, m["expires_at"].(string))
	if err != nil || !exp.Equal(n.ConnectedAt.Add(2*time.Minute).Truncate(time.Nanosecond)) {
		t.Errorf("expires_at %v (%v), want ConnectedAt+2m", m["expires_at"], err)
	}
	c.send(map[string]string{"type": TypeAck, "id": n.ID})
	c.sync()
	if got := testutil.ToFloat64(th.metrics.popsSent); got != 1 {
		t.Errorf("pops_sent %v", got)
	}
	if got := testutil.ToFloat64(th.metrics.popsAcked); got != 1 {
		t.Errorf("pops_acked %v", got)
	}

	// Notifications the hub cannot pop are refused with a reason.
	bad := notification("call-2", 3, catalog.TriggerServer, catalog.TargetNone)
	if err := th.Pop(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "trigger is server") {
		t.Errorf("server-trigger pop: %v", err)
	}
	// A pop whose TTL passed is dropped.
	old := notification("call-3", 3, catalog.TriggerAgent, catalog.TargetEmbedded)
	old.ConnectedAt = time.Now().Add(-time.Hour)
	mustPop(t, th.Hub, old)
	if got := c.sync(); len(got) != 0 {
		t.Errorf("expired pop delivered: %v", got)
	}
}

// TestRoutingIsolation connects 500 agents at once and pops one call to each: every agent
// gets its own pop and nothing else.
func TestRoutingIsolation(t *testing.T) {
	const agents = 500
	th := newTestHub(t, Options{})
	clients := make([]*client, agents+1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for a := 1; a <= agents; a++ {
		wg.Add(1)
		go func(a int) {
			defer wg.Done()
			c := dialAgent(t, th, a)
			mu.Lock()
			clients[a] = c
			mu.Unlock()
		}(a)
	}
	wg.Wait()
	if th.Connections() != agents {
		t.Fatalf("%d connections, want %d", th.Connections(), agents)
	}
	for a := 1; a <= agents; a++ {
		wg.Add(1)
		go func(a int) {
			defer wg.Done()
			mustPop(t, th.Hub, notification(fmt.Sprintf("call-%d", a), a, catalog.TriggerAutomatic, catalog.TargetNewTab))
		}(a)
	}
	wg.Wait()
	for a := 1; a <= agents; a++ {
		got := clients[a].sync()
		if len(got) != 1 || got[0]["call_id"] != fmt.Sprintf("call-%d", a) {
			t.Fatalf("agent %d received %v, want exactly its own pop", a, got)
		}
	}
}

func TestReplay(t *testing.T) {
	th := newTestHub(t, Options{})
	embedded := notification("call-r", 5, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	newTab := notification("call-r", 5, catalog.TriggerAgent, catalog.TargetNewTab)
	newTab.Site = &catalog.Site{ID: 8, Trigger: catalog.TriggerAgent, Target: catalog.TargetNewTab}
	newTab.ID = "tab-pop"
	other := notification("call-o", 6, catalog.TriggerAutomatic, catalog.TargetEmbedded)

	// Popped while the agent has no page open: delivered on connect.
	mustPop(t, th.Hub, embedded)
	mustPop(t, th.Hub, newTab)
	mustPop(t, th.Hub, other)
	c := dialAgent(t, th, 5)
	got := c.sync()
	if len(got) != 2 || got[0]["replay"] != true || got[1]["replay"] != true {
		t.Fatalf("on connect got %v, want the agent's 2 pops replayed", got)
	}
	ids := []any{got[0]["id"], got[1]["id"]}
	// The embedded CRM is shown (opened, not acked: its iframe dies with the page); the
	// new-tab pop is opened (its tab outlives the page).
	c.send(map[string]string{"type": TypeOpened, "id": embedded.ID})
	c.send(map[string]string{"type": TypeOpened, "id": newTab.ID})
	c.sync()
	c.ws.Close(websocket.StatusNormalClosure, "reload")

	// Page reload mid-call: the unacked embedded pop comes back, marked opened; the pop
	// opened in a new tab does not (the tab is still there).
	c = dialAgent(t, th, 5)
	got = c.sync()
	if len(got) != 1 || got[0]["id"] != embedded.ID || got[0]["opened"] != true {
		t.Fatalf("after reload got %v (first time %v), want only the embedded pop, opened", got, ids)
	}
	if v := testutil.ToFloat64(th.metrics.popsReplayed); v != 3 {
		t.Errorf("pops_replayed %v, want 3", v)
	}

	// Acked (the page is done with it): never replayed again.
	acked := notification("call-r", 5, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	acked.ID = "acked-pop"
	mustPop(t, th.Hub, acked)
	if got := c.sync(); len(got) != 1 || got[0]["id"] != acked.ID {
		t.Fatalf("live pop: got %v", got)
	}
	c.send(map[string]string{"type": TypeAck, "id": acked.ID})
	c.sync()
	c.ws.Close(websocket.StatusNormalClosure, "reload")
	c = dialAgent(t, th, 5)
	got = c.sync()
	if len(got) != 1 || got[0]["id"] != embedded.ID {
		t.Fatalf("after acking %s and reloading got %v, want only the unacked embedded pop", acked.ID, got)
	}

	// The call ends: the open page is told, and nothing is replayed any more.
	if err := th.CallEnded(context.Background(), "call-r"); err != nil {
		t.Fatal(err)
	}
	got = c.sync()
	if len(got) != 1 || got[0]["type"] != TypeCallEnded || got[0]["call_id"] != "call-r" {
		t.Fatalf("got %v, want call.ended", got)
	}
	c.ws.Close(websocket.StatusNormalClosure, "reload")
	c = dialAgent(t, th, 5)
	if got := c.sync(); len(got) != 0 {
		t.Fatalf("after call.ended a reload got %v", got)
	}
	// A pop of the ended call arriving late is not delivered.
	late := notification("call-r", 5, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	late.ID = "late"
	mustPop(t, th.Hub, late)
	if got := c.sync(); len(got) != 0 {
		t.Fatalf("late pop of an ended call delivered: %v", got)
	}
}

func TestDuplicatePopDeliveredOnce(t *testing.T) {
	th := newTestHub(t, Options{})
	c := dialAgent(t, th, 9)
	n := notification("call-d", 9, catalog.TriggerAgent, catalog.TargetEmbedded)
	mustPop(t, th.Hub, n)
	mustPop(t, th.Hub, n)
	if got := c.sync(); len(got) != 1 {
		t.Fatalf("got %d messages, want 1: %v", len(got), got)
	}
	if v := testutil.ToFloat64(th.metrics.popsDropped.WithLabelValues("duplicate")); v != 1 {
		t.Errorf("pops_dropped{duplicate} %v", v)
	}
}

func TestTwoTabsOpened(t *testing.T) {
	th := newTestHub(t, Options{})
	tab1 := dialAgent(t, th, 4)
	tab2 := dialAgent(t, th, 4)
	n := notification("call-t", 4, catalog.TriggerAgent, catalog.TargetEmbedded)
	mustPop(t, th.Hub, n)
	for i, tab := range []*client{tab1, tab2} {
		if m := tab.next(); m["id"] != n.ID {
			t.Fatalf("tab %d got %v", i+1, m)
		}
	}
	tab1.send(map[string]string{"type": TypeOpened, "id": n.ID})
	if got := tab1.sync(); len(got) != 0 {
		t.Errorf("the opening tab got %v", got)
	}
	got := tab2.sync()
	if len(got) != 1 || got[0]["type"] != TypePopOpened || got[0]["id"] != n.ID {
		t.Fatalf("other tab got %v, want pop.opened", got)
	}
	// Another agent's opened is ignored: it cannot close agent 4's buttons.
	intruder := dialAgent(t, th, 99)
	intruder.send(map[string]string{"type": TypeOpened, "id": n.ID})
	intruder.sync()
	if got := tab2.sync(); len(got) != 0 {
		t.Errorf("intruder's opened reached agent 4: %v", got)
	}
	if v := testutil.ToFloat64(th.metrics.popsOpened); v != 1 {
		t.Errorf("pops_opened %v", v)
	}
}

func TestBadClientMessages(t *testing.T) {
	th := newTestHub(t, Options{MaxBadMessages: 4, MaxFrame: 512})
	c := dialAgent(t, th, 1)
	ctx := context.Background()
	for _, tc := range []struct {
		typ  websocket.MessageType
		data string
		want string
	}{
		{websocket.MessageText, `not json`, "message is not a JSON object"},
		{websocket.MessageText, `{"type":"launch"}`, `unknown message type "launch"`},
		{websocket.MessageBinary, `{"type":"ping"}`, "binary messages are not accepted"},
	} {
		if err := c.ws.Write(ctx, tc.typ, []byte(tc.data)); err != nil {
			t.Fatal(err)
		}
		m := c.next()
		if m["type"] != TypeError || m["error"] != tc.want {
			t.Errorf("%q: got %v, want error %q", tc.data, m, tc.want)
		}
	}
	// The fourth invalid message closes the connection with a reason.
	c.send(map[string]string{"id": "x"})
	err := c.closed()
	if closeStatus(err) != websocket.StatusPolicyViolation || closeReason(err) != "too many invalid messages" {
		t.Fatalf("close %v, want policy violation 'too many invalid messages'", err)
	}

	// A frame over MaxFrame closes with 1009.
	c = dialAgent(t, th, 1)
	c.send(map[string]string{"type": "ping", "id": strings.Repeat("x", 600)})
	if err := c.closed(); closeStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("close %v, want 1009", err)
	}
	// The client sees the library's 1009 before the hub's reader records why the
	// connection ended: wait for it, else Close could win and count a shutdown.
	for deadline := time.Now().Add(10 * time.Second); th.Connections() != 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	th.Close()
	if v := testutil.ToFloat64(th.metrics.disconnects.WithLabelValues("invalid_messages")); v != 1 {
		t.Errorf("disconnects{invalid_messages} %v", v)
	}
	if v := testutil.ToFloat64(th.metrics.disconnects.WithLabelValues("frame_too_large")); v != 1 {
		t.Errorf("disconnects{frame_too_large} %v", v)
	}
}

// TestSlowClientClosed: a client that stops reading is disconnected once its send queue
// fills, with a reason, instead of being buffered without bound.
func TestSlowClientClosed(t *testing.T) {
	th := newTestHub(t, Options{SendQueue: 4, WriteTimeout: 2 * time.Second})
	// A client socket with a tiny receive buffer that never reads.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = conn.(*net.TCPConn).SetReadBuffer(4096)
		}
		return conn, err
	}}}
	ws, status, err := dialRaw(context.Background(), th.wsURL(), mustToken(t, 2), nil, hc)
	if err != nil {
		t.Fatalf("dial: %d %v", status, err)
	}
	defer ws.CloseNow()
	big := strings.Repeat("x", 32<<10)
	slow := func() float64 { return testutil.ToFloat64(th.metrics.disconnects.WithLabelValues("slow_client")) }
	for i := 0; i < 2000 && slow() == 0; i++ {
		n := notification(fmt.Sprintf("call-s%d", i), 2, catalog.TriggerAutomatic, catalog.TargetEmbedded)
		n.Request.URL = "https://crm.example.com/?pad=" + big
		mustPop(t, th.Hub, n)
		if i%50 == 49 {
			time.Sleep(10 * time.Millisecond) // let the writer block on the full socket
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for slow() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if slow() != 1 {
		t.Fatalf("slow client not disconnected (connections: %d)", th.Connections())
	}
	for th.Connections() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if th.Connections() != 0 {
		t.Fatalf("slow client still registered")
	}
}

func TestIdleTimeout(t *testing.T) {
	th := newTestHub(t, Options{PingInterval: 50 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	// A client that never reads cannot answer pings.
	ws, _, err := dialRaw(context.Background(), th.wsURL(), mustToken(t, 2), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	// A client that reads (and so answers pings) stays.
	alive := dialAgent(t, th, 3)
	idle := func() float64 { return testutil.ToFloat64(th.metrics.disconnects.WithLabelValues("idle_timeout")) }
	deadline := time.Now().Add(10 * time.Second)
	for idle() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if idle() != 1 {
		t.Fatal("silent client not closed")
	}
	time.Sleep(400 * time.Millisecond) // more than IdleTimeout: the reading client survives it
	if got := alive.sync(); len(got) != 0 {
		t.Fatalf("unexpected %v", got)
	}
	if idle() != 1 {
		t.Errorf("idle disconnects %v, want 1", idle())
	}
}

func TestCloseSendsGoingAway(t *testing.T) {
	th := newTestHub(t, Options{})
	c := dialAgent(t, th, 1)
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.closed(); closeStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("close %v, want going away", err)
	}
	if err := th.Pop(context.Background(), notification("c", 1, catalog.TriggerAgent, catalog.TargetEmbedded)); err != ErrClosed {
		t.Fatalf("pop after close: %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Auth: "ldap"}, `agentws.auth "ldap"`},
		{Options{Auth: AuthToken, TokenSecret: []byte("short")}, "agentws.token_secret"},
		{Options{Auth: AuthDjangoSession}, "OMniLeads database"},
		{Options{Auth: AuthToken, TokenSecret: testSecret, PingInterval: time.Minute, IdleTimeout: time.Second}, "agentws.idle_timeout"},
		{Options{Auth: AuthToken, TokenSecret: testSecret, RedisURL: "mysql://x"}, "cluster.redis_url"},
	} {
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to name %q", tc.opts.Auth, err, tc.want)
		}
	}
}

// TestSetPopTTL: a TTL changed while running (SIGHUP) applies to the pops made
// afterwards; pops made before keep their expiry.
func TestSetPopTTL(t *testing.T) {
	th := newTestHub(t, Options{PopTTL: time.Minute})
	before := notification("call-ttl-1", 4, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	before.ConnectedAt = time.Now().Add(-30 * time.Second)
	mustPop(t, th.Hub, before)

	th.SetPopTTL(10 * time.Second)
	if got := th.PopTTL(); got != 10*time.Second {
		t.Fatalf("PopTTL() = %s after SetPopTTL(10s)", got)
	}
	// Connected 30 s ago: within the old minute, past the new 10 s.
	late := notification("call-ttl-2", 4, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	late.ConnectedAt = time.Now().Add(-30 * time.Second)
	mustPop(t, th.Hub, late)
	if got := testutil.ToFloat64(th.metrics.popsDropped.WithLabelValues("expired")); got != 1 {
		t.Errorf("pops dropped as expired = %v, want 1 (the pop made after SetPopTTL)", got)
	}
	fresh := notification("call-ttl-3", 4, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	mustPop(t, th.Hub, fresh)

	c := dialAgent(t, th, 4)
	got := map[any]map[string]any{}
	for _, m := range c.sync() {
		got[m["id"]] = m
	}
	if len(got) != 2 || got[before.ID] == nil || got[fresh.ID] == nil {
		t.Fatalf("replayed %v, want the pop made before the change and the fresh one", got)
	}
	for n, ttl := range map[*crmnotify.Notification]time.Duration{&before: time.Minute, &fresh: 10 * time.Second} {
		exp, err := time.Parse(time.RFC3339Nano, got[n.ID]["expires_at"].(string))
		if err != nil || !exp.Equal(n.ConnectedAt.Add(ttl)) {
			t.Errorf("pop %s expires_at %v (%v), want ConnectedAt+%s", n.ID, got[n.ID]["expires_at"], err, ttl)
		}
	}

	th.SetPopTTL(0)
	if got := th.PopTTL(); got != 2*time.Minute {
		t.Errorf("PopTTL() = %s after SetPopTTL(0), want the 2m default", got)
	}
}

// TestPopsReuseGoroutines: with a worker pool, a connection's writer runs on the
// pool's goroutines, so pops one after another (each acked) start no goroutine of
// their own in the daemon (before: one writer per pop). Counted with the runtime's
// goroutines-created counter.
func TestPopsReuseGoroutines(t *testing.T) {
	pool := workpool.New(0)
	th := newTestHub(t, Options{Goroutines: pool})
	t.Cleanup(func() { _ = pool.Close(context.Background()) })
	c := dialAgent(t, th, 3)
	pop := func(i int) {
		n := notification(fmt.Sprintf("call-%d", i), 3, catalog.TriggerAutomatic, catalog.TargetEmbedded)
		mustPop(t, th.Hub, n)
		if m := c.next(); m["id"] != n.ID {
			t.Fatalf("pop %d: got %v", i, m)
		}
		c.send(map[string]string{"type": TypeAck, "id": n.ID})
		c.sync()
	}
	for i := range 5 { // workers started
		pop(i)
	}
	const n = 100
	before := goroutinesCreated()
	for i := range n {
		pop(5 + i)
	}
	if created := goroutinesCreated() - before; created > n/4 {
		t.Errorf("%d pops started %d goroutines; want them on the pool's workers (≤ %d)", n, created, n/4)
	}
}

// goroutinesCreated reads the runtime's count of goroutines started so far.
func goroutinesCreated() uint64 {
	s := []runtimemetrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	runtimemetrics.Read(s)
	return s[0].Value.Uint64()
}

// A connection that carried a message each way within the ping interval (here the
// console's own ping and the hub's pong) is not pinged: it is alive and every proxy saw
// traffic both ways. A quiet one is pinged every interval, and both stay open.
func TestPingsOnlyQuietConnections(t *testing.T) {
	const interval = 150 * time.Millisecond
	th := newTestHub(t, Options{PingInterval: interval, IdleTimeout: 2 * time.Second})
	var busyPings, quietPings atomic.Int32
	dial := func(agent int, pings *atomic.Int32) *websocket.Conn {
		ws, _, err := websocket.Dial(context.Background(), th.wsURL(), &websocket.DialOptions{
			Subprotocols: []string{Subprotocol, tokenSubprotocolPrefix + mustToken(t, agent)},
			OnPingReceived: func(context.Context, []byte) bool {
				pings.Add(1)
				return true // answered with a pong by the library
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		return ws
	}
	busy, quiet := dial(1, &busyPings), dial(2, &quietPings)
	// The quiet page only reads (so it answers pings).
	go func() {
		for {
			if _, _, err := quiet.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	read := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, b, err := busy.Read(ctx)
		if err != nil {
			t.Fatalf("busy page: %v", err)
		}
		return string(b)
	}
	if m := read(); !strings.Contains(m, `"type":"hello"`) {
		t.Fatalf("first message %s", m)
	}
	for end := time.Now().Add(10 * interval); time.Now().Before(end); {
		if err := busy.Write(context.Background(), websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		if m := read(); !strings.Contains(m, `"type":"pong"`) {
			t.Fatalf("answer to the console's ping: %s", m)
		}
		time.Sleep(interval / 5)
	}
	sent := testutil.ToFloat64(th.metrics.pings.WithLabelValues("sent"))
	skipped := testutil.ToFloat64(th.metrics.pings.WithLabelValues("skipped"))
	if q := quietPings.Load(); q < 5 {
		t.Errorf("the quiet page got %d pings in 10 intervals, want one per interval", q)
	}
	// Scheduling on a loaded machine may leave one period without the exchange.
	if b := busyPings.Load(); b > 1 {
		t.Errorf("the busy page got %d pings in 10 intervals, want none", b)
	}
	if sent < float64(quietPings.Load()) || skipped < 5 {
		t.Errorf("omlcrm_agentws_pings_total sent %v, skipped %v; want the quiet page's %d pings sent and the busy page's skipped",
			sent, skipped, quietPings.Load())
	}
	if n := th.Connections(); n != 2 {
		t.Errorf("%d connections open, want both", n)
	}
}

// The console's ping is answered with the same pong whatever its JSON spelling: the
// exact bytes oml-crm.js sends take a short path in the reader, the rest the decoder.
func TestConsolePingForms(t *testing.T) {
	th := newTestHub(t, Options{})
	c := dialAgent(t, th, 1)
	for _, ping := range []string{`{"type":"ping"}`, `{ "type": "ping" }`, `{"type":"ping","id":"x"}`, `{"id":"x","type":"ping"}`} {
		if err := c.ws.Write(context.Background(), websocket.MessageText, []byte(ping)); err != nil {
			t.Fatal(err)
		}
		if m := c.next(); len(m) != 1 || m["type"] != TypePong {
			t.Errorf("%s answered with %v, want exactly {\"type\":\"pong\"}", ping, m)
		}
	}
}

// TestConsoleAckForms acks pops with the console's exact bytes (recorded in the
// reader) and with other spellings (the decoding path): each counts once, a repeat or an
// unknown id counts nothing, an escaped id names the same pop, a too-long one is refused.
func TestConsoleAckForms(t *testing.T) {
	th := newTestHub(t, Options{})
	c := dialAgent(t, th, 1)
	acked := func() float64 { return testutil.ToFloat64(th.metrics.popsAcked) }
	pop := func(call string) string {
		n := notification(call, 1, catalog.TriggerAutomatic, catalog.TargetEmbedded)
		mustPop(t, th.Hub, n)
		if m := c.next(); m["type"] != TypePop || m["id"] != n.ID {
			t.Fatalf("pop %v", m)
		}
		return n.ID
	}
	write := func(msg string) {
		if err := c.ws.Write(context.Background(), websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	for i, form := range []string{
		`{"type":"ack","id":"%s"}`,           // the console's bytes
		`{ "type": "ack", "id": "%s" }`,      // spaces
		`{"id":"%s","type":"ack"}`,           // keys swapped
		`{"type":"ack","id":"%s","extra":1}`, // another field
	} {
		id := pop(fmt.Sprintf("call-form-%d", i))
		before := acked()
		write(fmt.Sprintf(form, id))
		write(fmt.Sprintf(form, id)) // a repeat counts nothing
		if got := c.sync(); len(got) != 0 {
			t.Errorf("%s: answered %v", form, got)
		}
		if got := acked() - before; got != 1 {
			t.Errorf("%s: pops acked +%v, want +1", form, got)
		}
	}
	// An id the decoding path unescapes names the same pop as its plain spelling.
	id := pop("call-escaped")
	before := acked()
	write(fmt.Sprintf(`{"type":"ack","id":"\u%04x%s"}`, id[0], id[1:]))
	c.sync()
	if got := acked() - before; got != 1 {
		t.Errorf("escaped id: pops acked +%v, want +1", got)
	}
	write(`{"type":"ack","id":"` + id + `"}`)
	c.sync()
	if got := acked() - before; got != 1 {
		t.Errorf("escaped then plain id: pops acked +%v, want +1", got)
	}
	// Unknown ids are not errors (a page may ack a pop whose call just ended).
	before = acked()
	write(`{"type":"ack","id":"no-such-pop"}`)
	if got := c.sync(); len(got) != 0 || acked() != before {
		t.Errorf("unknown id: answered %v, pops acked +%v", got, acked()-before)
	}
	// Too long an id is refused whichever the spelling.
	write(`{"type":"ack","id":"` + strings.Repeat("x", maxPopIDLen+1) + `"}`)
	if got := c.sync(); len(got) != 1 || got[0]["type"] != TypeError || got[0]["error"] != "ack needs the pop id" {
		t.Errorf("too long an id: answered %v", got)
	}
}

// TestConsoleAckInReader: the console's exact ack is recorded by the connection's
// reader, with no hand-off (with no pool, each hand-off would start a goroutine; before
// this change 30 acks started at least 30).
func TestConsoleAckInReader(t *testing.T) {
	th := newTestHub(t, Options{}) // no Goroutines pool: a hand-off is a new goroutine
	c := dialAgent(t, th, 1)
	var ids []string
	for i := range 30 { // within the pops kept per agent
		n := notification(fmt.Sprintf("call-%d", i), 1, catalog.TriggerAutomatic, catalog.TargetEmbedded)
		mustPop(t, th.Hub, n)
		if m := c.next(); m["id"] != n.ID {
			t.Fatalf("pop %v", m)
		}
		ids = append(ids, n.ID)
	}
	c.sync()
	started := goroutinesCreated()
	for _, id := range ids {
		if err := c.ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"ack","id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	c.sync() // the reader handles messages in order: every ack is recorded now
	if n := goroutinesCreated() - started; n >= 10 {
		t.Errorf("30 acks started %d goroutines, want < 10 (the reader records them)", n)
	}
	if got := testutil.ToFloat64(th.metrics.popsAcked); got != 30 {
		t.Errorf("pops acked %v, want 30", got)
	}
}

// BenchmarkConsoleAck is one pop to a loopback websocket and the console's ack of it,
// both ends in this process (allocations per pop and ack).
func BenchmarkConsoleAck(b *testing.B) {
	// Every pop is kept until acked: the acks trail the pops by a few.
	th := newTestHub(b, Options{Goroutines: workpool.New(0), MaxPendingPerAgent: b.N + 1})
	c := dialAgent(b, th, 1)
	ctx := context.Background()
	ns := make([]crmnotify.Notification, b.N)
	for i := range ns {
		ns[i] = notification(fmt.Sprintf("call-%d", i), 1, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		mustPop(b, th.Hub, ns[i])
		if m := c.next(); m["id"] != ns[i].ID {
			b.Fatalf("pop %v", m)
		}
		if err := c.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ack","id":"`+ns[i].ID+`"}`)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.sync()
	if got := testutil.ToFloat64(th.metrics.popsAcked); got != float64(b.N) {
		b.Fatalf("pops acked %v, want %d", got, b.N)
	}
}

// BenchmarkConsolePing is one exchange of the console's ping and the hub's pong over a
// loopback websocket, both ends in this process (allocations per exchange).
func BenchmarkConsolePing(b *testing.B) {
	th := newTestHub(b, Options{})
	c := dialAgent(b, th, 1)
	ping := []byte(`{"type":"ping"}`)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.ws.Write(ctx, websocket.MessageText, ping); err != nil {
			b.Fatal(err)
		}
		if m := c.next(); m["type"] != TypePong {
			b.Fatalf("answer %v", m)
		}
	}
}
