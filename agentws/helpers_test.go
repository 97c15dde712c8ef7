package agentws

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
)

var testSecret = []byte("test-secret-0123456789abcdef")

// testHub is a hub served on 127.0.0.1 with its own metrics registry.
type testHub struct {
	*Hub
	srv *httptest.Server
	reg *prometheus.Registry
}

func newTestHub(t testing.TB, opts Options) *testHub {
	t.Helper()
	if opts.Auth == "" {
		opts.Auth = AuthToken
	}
	if opts.TokenSecret == nil {
		opts.TokenSecret = testSecret
	}
	if opts.Version == "" {
		opts.Version = "test"
	}
	opts.Logger = zerolog.Nop()
	if testing.Verbose() && os.Getenv("OMLCRM_TEST_LOG") != "" {
		opts.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	h, err := New(opts)
	if err != nil {
		t.Fatalf("new hub: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return &testHub{Hub: h, srv: srv, reg: reg}
}

func (th *testHub) wsURL() string { return "ws" + strings.TrimPrefix(th.srv.URL, "http") + "/ws" }

func mustToken(t testing.TB, agent int) string {
	t.Helper()
	tok, err := MintToken(testSecret, agent, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client is a test websocket client that collects server messages.
type client struct {
	t    testing.TB
	ws   *websocket.Conn
	msgs chan map[string]any
	err  chan error // the read error that ended the connection
}

// dialOpts dials the hub with token (in the subprotocol) and extra headers; it returns
// the HTTP status on a refused upgrade.
func dialRaw(ctx context.Context, url, token string, hdr http.Header, hc *http.Client) (*websocket.Conn, int, error) {
	protos := []string{Subprotocol}
	if token != "" {
		protos = append(protos, tokenSubprotocolPrefix+token)
	}
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protos, HTTPHeader: hdr, HTTPClient: hc})
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	return ws, status, err
}

func dialAgent(t testing.TB, th *testHub, agent int) *client {
	t.Helper()
	return dialURL(t, th.wsURL(), mustToken(t, agent), nil)
}

func dialURL(t testing.TB, url, token string, hdr http.Header) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, status, err := dialRaw(ctx, url, token, hdr, nil)
	if err != nil {
		t.Fatalf("dial %s: status %d: %v", url, status, err)
	}
	c := &client{t: t, ws: ws, msgs: make(chan map[string]any, 256), err: make(chan error, 1)}
	go func() {
		defer close(c.msgs)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				c.err <- err
				return
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				c.err <- err
				return
			}
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { ws.CloseNow() })
	hello := c.next()
	if hello["type"] != TypeHello {
		t.Fatalf("first message %v, want hello", hello)
	}
	return c
}

// next returns the next message, failing after 10 s.
func (c *client) next() map[string]any {
	c.t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			c.t.Fatalf("connection closed: %v", <-c.err)
		}
		return m
	case <-time.After(10 * time.Second):
		c.t.Fatal("no message within 10s")
	}
	return nil
}

func (c *client) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if err := c.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// sync sends a ping and returns every message received before the pong: with the hub's
// in-order queue this is exactly what was queued for this connection until now.
func (c *client) sync() []map[string]any {
	c.t.Helper()
	c.send(map[string]string{"type": TypePing})
	var before []map[string]any
	for {
		m := c.next()
		if m["type"] == TypePong {
			return before
		}
		before = append(before, m)
	}
}

// closed waits for the connection to end and returns its close error.
func (c *client) closed() error {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.msgs:
			if !ok {
				return <-c.err
			}
		case <-time.After(15 * time.Second):
			c.t.Fatal("connection still open after 15s")
			return nil
		}
	}
}

// notification builds a pop for agent on call with the given site trigger/target.
func notification(call string, agent int, trigger catalog.Trigger, target catalog.Target) crmnotify.Notification {
	site := &catalog.Site{ID: 7, Name: "crm", Trigger: trigger, Target: target, Method: catalog.MethodGET}
	return crmnotify.Notification{
		ID:          crmnotify.NotificationID(call, agent, site.ID),
		CallID:      call,
		AgentID:     agent,
		Campaign:    &catalog.Campaign{ID: 11, Name: "Ventas", Type: catalog.TypeInbound},
		Site:        site,
		Request:     crmnotify.Request{Method: "GET", URL: "https://crm.example.com/?idClient=1", Fields: []crmnotify.Field{{Name: "idClient", Value: "1"}}},
		ConnectedAt: time.Now(),
	}
}

func mustPop(t testing.TB, h *Hub, n crmnotify.Notification) {
	t.Helper()
	if err := h.Pop(context.Background(), n); err != nil {
		t.Fatalf("pop: %v", err)
	}
}

func closeStatus(err error) websocket.StatusCode {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}

// crmnotifyRequestPOST is a form POST with a value that would break naive HTML building.
func crmnotifyRequestPOST() crmnotify.Request {
	return crmnotify.Request{
		Method:      "POST",
		URL:         "https://crm.example.com/in",
		ContentType: "application/x-www-form-urlencoded",
		Body:        []byte("idClient=321&name=%3Cb%3E%22Zo%C3%AB%22%3C%2Fb%3E+%26+co"),
		Fields:      []crmnotify.Field{{Name: "idClient", Value: "321"}, {Name: "name", Value: `<b>"Zoë"</b> & co`}},
	}
}
