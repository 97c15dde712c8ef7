package aritest_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/omlcrm/oml-crm/ari/aritest"
)

func put(t *testing.T, srv *aritest.Server, path, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, srv.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("u", "p")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, req)
}

func get(t *testing.T, srv *aritest.Server, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("u", "p")
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func event(typ string) []byte {
	return []byte(`{"type":"` + typ + `","timestamp":"2026-11-24T01:27:50.334+0000","asterisk_id":"02:fc:00:00:00:01","application":"omlcrm"}`)
}

// received sends each event, then a marker (StasisEnd) the filters here let through, and returns
// the types that arrived before the marker.
func received(t *testing.T, srv *aritest.Server, conn *websocket.Conn, types ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, typ := range append(types, "StasisEnd") {
		if err := srv.Send(ctx, event(typ)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		typ, _, _ := strings.Cut(strings.TrimPrefix(string(msg), `{"type":"`), `"`)
		if typ == "StasisEnd" {
			return got
		}
		got = append(got, typ)
	}
}

// The fake applies PUT /applications/{name}/eventFilter as Asterisk 22 does (its
// res/stasis/app.c and res_ari.c): what each body does to the lists, the status and
// message of each refusal, and which events then reach the websocket.
func TestEventFilterAsAsterisk(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: "u", Password: "p", App: "omlcrm"})
	const path = "/ari/applications/omlcrm/eventFilter"
	if code, body := put(t, srv, path, "application/json", `{"allowed":[{"type":"Dial"}]}`); code != 404 || body != aritest.BodyAppNotFound {
		t.Fatalf("no application yet: %d %s", code, body)
	}
	conn, _, err := dialEvents(t, srv, "?app=omlcrm&subscribeAll=true", basic("u", "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	// At once: Asterisk registers the application before it answers the upgrade.
	const noFilter = `"events_allowed":[],"events_disallowed":[]}`
	if code, body := get(t, srv, "/ari/applications/omlcrm"); code != 200 ||
		body != `{"name":"omlcrm","channel_ids":["__AST_CHANNEL_ALL_TOPIC"],"bridge_ids":["__AST_BRIDGE_ALL_TOPIC"],"endpoint_ids":["__AST_ENDPOINT_ALL_TOPIC"],"device_names":["__AST_DEVICE_STATE_ALL_TOPIC"],`+noFilter {
		t.Fatalf("GET application: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	all := []string{"Dial", "ChannelVarset", "ChannelDialplan", "StasisStart"}
	for _, tc := range []struct {
		name, contentType, body string
		code                    int
		reply                   string // the reply's end, or the error body
		pass                    []string
	}{
		{"allowed only", "application/json", `{"allowed":[{"type":"Dial"},{"type":"ChannelVarset"},{"type":"StasisEnd"}]}`, 200,
			`"events_allowed":[{"type":"Dial"},{"type":"ChannelVarset"},{"type":"StasisEnd"}],"events_disallowed":[]}`, []string{"Dial", "ChannelVarset"}},
		{"disallowed only keeps allowed", "application/json", `{"disallowed":[{"type":"Dial"}]}`, 200,
			`"events_allowed":[{"type":"Dial"},{"type":"ChannelVarset"},{"type":"StasisEnd"}],"events_disallowed":[{"type":"Dial"}]}`, []string{"ChannelVarset"}},
		{"empty object clears both", "application/json", `{}`, 200, noFilter, all},
		{"charset parameter", "Application/JSON; charset=utf-8", `{"allowed":[{"type":"StasisStart"},{"type":"StasisEnd"}]}`, 200,
			`"events_allowed":[{"type":"StasisStart"},{"type":"StasisEnd"}],"events_disallowed":[]}`, []string{"StasisStart"}},
		{"not JSON: no body, clears", "text/plain", `{"allowed":[{"type":"Dial"}]}`, 200, noFilter, all},
		{"array: both lists", "application/json", `[{"type":"Dial"}]`, 200,
			`"events_allowed":[{"type":"Dial"}],"events_disallowed":[{"type":"Dial"}]}`, nil},
		{"no content type: clears", "", ``, 200, noFilter, all},
		{"entry without type", "application/json", `{"allowed":[{"kind":"Dial"}]}`, 400, aritest.BodyInvalidFilter, all},
		{"empty type", "application/json", `{"allowed":[{"type":""}]}`, 400, aritest.BodyInvalidFilter, all},
		{"list not an array", "application/json", `{"allowed":{"type":"Dial"}}`, 400, aritest.BodyInvalidFilter, all},
		{"disallowed set before allowed is refused", "application/json", `{"disallowed":[{"type":"Dial"}],"allowed":5}`, 400,
			aritest.BodyInvalidFilter, []string{"ChannelVarset", "ChannelDialplan", "StasisStart"}},
		{"null: not an object or array", "application/json", `null`, 400, aritest.BodyBadRequestBody, []string{"ChannelVarset", "ChannelDialplan", "StasisStart"}},
		{"number: not an object or array", "application/json", ` 5`, 400, aritest.BodyBadRequestBody, []string{"ChannelVarset", "ChannelDialplan", "StasisStart"}},
		{"over 40,960 bytes", "application/json", `{"allowed":[` + strings.Repeat(`{"type":"Dial"},`, 3000) + `{"type":"Dial"}]}`, 413, aritest.BodyBodyTooLarge, []string{"ChannelVarset", "ChannelDialplan", "StasisStart"}},
		{"form", "application/x-www-form-urlencoded", `allowed=Dial`, 400, aritest.BodyInvalidFilter, []string{"ChannelVarset", "ChannelDialplan", "StasisStart"}},
		{"bad JSON", "application/json", `{"allowed":[`, 400, aritest.BodyBadRequestBody, []string{"ChannelVarset", "ChannelDialplan", "StasisStart"}},
	} {
		code, body := put(t, srv, path, tc.contentType, tc.body)
		if code != tc.code || !strings.HasSuffix(body, tc.reply) {
			t.Errorf("%s: %d %s, want %d …%s", tc.name, code, body, tc.code, tc.reply)
		}
		if tc.pass == nil { // nothing passes, the marker neither: count what was held
			before := srv.EventsHeld()
			for _, typ := range append(all, "StasisEnd") {
				if err := srv.Send(ctx, event(typ)); err != nil {
					t.Fatal(err)
				}
			}
			if d := srv.EventsHeld() - before; d != uint64(len(all)+1) {
				t.Errorf("%s: %d events held, want all %d", tc.name, d, len(all)+1)
			}
			continue
		}
		if got := received(t, srv, conn, all...); strings.Join(got, ",") != strings.Join(tc.pass, ",") {
			t.Errorf("%s: events through %v, want %v", tc.name, got, tc.pass)
		}
	}
	held := srv.EventsHeld()
	if held == 0 {
		t.Error("EventsHeld 0 after filtered sends")
	}
	if n := srv.EventFilterRequests(); n != 17 {
		t.Errorf("%d filter requests counted, want 17", n)
	}
	srv.FailEventFilter(1, http.StatusInternalServerError)
	if code, body := put(t, srv, path, "application/json", `{}`); code != 500 || body != aritest.BodyInternalError {
		t.Errorf("FailEventFilter: %d %s", code, body)
	}
	if code, _ := put(t, srv, path, "application/json", `{}`); code != 200 {
		t.Errorf("after the failure: %d", code)
	}
	conn.CloseNow()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := get(t, srv, "/ari/applications/omlcrm")
		if code == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the application outlived its last websocket")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := get(t, srv, "/ari/applications"); code != 200 || body != "[]" {
		t.Errorf("GET applications: %d %s", code, body)
	}
}

// An Asterisk before 16.3 has no eventFilter route; "yes" is as true as "true" for
// subscribeAll (ast_true).
func TestNoEventFilterRoute(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: "u", Password: "p", App: "omlcrm", NoEventFilter: true})
	conn, _, err := dialEvents(t, srv, "?app=omlcrm&subscribeAll=yes", basic("u", "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if code, body := put(t, srv, "/ari/applications/omlcrm/eventFilter", "application/json", `{"allowed":[{"type":"Dial"}]}`); code != 404 || body != aritest.BodyResourceNotFound {
		t.Errorf("PUT: %d %s", code, body)
	}
	if code, body := get(t, srv, "/ari/applications/omlcrm"); code != 200 || !strings.Contains(body, `"channel_ids":["__AST_CHANNEL_ALL_TOPIC"]`) {
		t.Errorf("GET: %d %s", code, body)
	}
}

// A read_only user gets 403 for every change, before routing, and still reads.
func TestReadOnlyUser(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: "u", Password: "p", App: "omlcrm", ReadOnly: true})
	conn, _, err := dialEvents(t, srv, "?app=omlcrm", basic("u", "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	for _, p := range []string{"/ari/applications/omlcrm/eventFilter", "/ari/no/such/route"} {
		if code, body := put(t, srv, p, "application/json", `{"allowed":[{"type":"Dial"}]}`); code != 403 || body != aritest.BodyWriteDenied {
			t.Errorf("PUT %s: %d %s", p, code, body)
		}
	}
	if code, body := get(t, srv, "/ari/applications/omlcrm"); code != 200 || !strings.HasPrefix(body, `{"name":"omlcrm","channel_ids":[],`) {
		t.Errorf("GET: %d %s", code, body)
	}
}
