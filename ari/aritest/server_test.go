package aritest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/omlcrm/oml-crm/ari/aritest"
)

func dialEvents(t *testing.T, srv *aritest.Server, query string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return websocket.Dial(ctx, srv.URL()+"/ari/events"+query, &websocket.DialOptions{HTTPHeader: header})
}

func basic(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

// TestReplayByteForByte: every non-empty line of a .jsonl arrives as one message, unchanged
// (line ends, LF or CRLF, removed).
func TestReplayByteForByte(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: "u", Password: "p", App: "omlcrm"})
	conn, _, err := dialEvents(t, srv, "?app=omlcrm&subscribeAll=true", basic("u", "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	n, err := srv.Replay(ctx, "testdata/stream.jsonl")
	if err != nil || n != 4 {
		t.Fatalf("replayed %d, %v; want 4", n, err)
	}
	file, _ := os.ReadFile("testdata/stream.jsonl")
	var want [][]byte
	for _, l := range bytes.Split(file, []byte("\n")) {
		if l = bytes.TrimSuffix(l, []byte("\r")); len(l) > 0 {
			want = append(want, l)
		}
	}
	for i, w := range want {
		typ, got, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.MessageText || !bytes.Equal(got, w) {
			t.Fatalf("message %d: %s\nwant %s", i, got, w)
		}
	}
	if q := srv.EventsQueries(); len(q) != 1 || q[0].Get("subscribeAll") != "true" {
		t.Errorf("queries %v", q)
	}
}

func TestEventsRejections(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: "u", Password: "p", App: "omlcrm"})
	for _, tc := range []struct {
		query  string
		header http.Header
		status int
		body   string
	}{
		{"?app=omlcrm", nil, 401, aritest.BodyAuthRequired},
		{"?app=omlcrm", basic("u", "wrong"), 401, aritest.BodyAuthRequired},
		{"?app=omlcrm&api_key=u:wrong", nil, 401, aritest.BodyAuthRequired},
		{"", basic("u", "p"), 400, aritest.BodyAppRequired},
		{"?app=someone-else", basic("u", "p"), 400, aritest.BodyAppRequired},
	} {
		_, resp, err := dialEvents(t, srv, tc.query, tc.header)
		if err == nil || resp == nil {
			t.Fatalf("%s: connected, want %d", tc.query, tc.status)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || string(body) != tc.body {
			t.Errorf("%s: %d %s, want %d %s", tc.query, resp.StatusCode, body, tc.status, tc.body)
		}
		if tc.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.query)
		}
	}
	conn, _, err := dialEvents(t, srv, "?app=omlcrm&api_key=u:p", nil)
	if err != nil {
		t.Fatalf("api_key: %v", err)
	}
	conn.CloseNow()
}

func TestRestartKeepsPort(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{})
	addr := srv.Addr()
	conn, _, err := dialEvents(t, srv, "?app=a", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.Read(ctx); err == nil {
		t.Fatal("the old connection survived the restart")
	}
	if srv.Addr() != addr || srv.Clients() != 0 {
		t.Fatalf("after restart: addr %s (was %s), %d clients", srv.Addr(), addr, srv.Clients())
	}
	if err := srv.Send(ctx, []byte(`{}`)); err != aritest.ErrNoClient {
		t.Errorf("Send without clients: %v", err)
	}
	conn2, _, err := dialEvents(t, srv, "?app=a", nil)
	if err != nil {
		t.Fatalf("reconnect on the same port: %v", err)
	}
	conn2.CloseNow()
}
