package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/omlcrm/oml-crm/agentws"
)

// TestAgentsSpeakAsTheConsole: the load test's agents send the console's ack and ping
// byte for byte as oml-crm.js does (the hub answers those bytes on a shorter path, so
// any other spelling would measure a path real consoles do not take). Before this test
// they sent {"type":"ack","id":…,"replay":false} and {"type":"ping","id":"","replay":false}.
func TestAgentsSpeakAsTheConsole(t *testing.T) {
	got := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{agentws.Subprotocol}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		for _, m := range []string{`{"type":"hello"}`, `{"type":"crm.pop","id":"3f9a0c"}`} {
			if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
				return
			}
		}
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			select {
			case got <- string(data):
			default:
			}
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fleet, err := connectAgents(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), []byte(strings.Repeat("k", 32)), 1, 1,
		20*time.Millisecond, NewLedger(), newPopOwners(), newWorstArrivals(4))
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.close()
	want := map[string]bool{`{"type":"ack","id":"3f9a0c"}`: false, `{"type":"ping"}`: false}
	for seen := 0; seen < len(want); {
		select {
		case m := <-got:
			done, known := want[m]
			if !known {
				t.Fatalf("the agent sent %s; a console sends only %v", m, want)
			}
			if !done {
				want[m] = true
				seen++
			}
		case <-ctx.Done():
			t.Fatalf("the agent did not send all of %v (its last problem: %q)", want, fleet.lastError())
		}
	}
}
