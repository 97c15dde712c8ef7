package ari_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
	"github.com/omlcrm/oml-crm/internal/logtest"
)

const dialplanEvent = `{"type":"ChannelDialplan","timestamp":"2026-11-24T01:27:50.334+0000","dialplan_app":"Set","dialplan_app_data":"x=1","channel":{"id":"1795483670.1","name":"Local/7000@oml-inbound-000000e5;1","state":"Up","protocol_id":"","caller":{"name":"","number":""},"connected":{"name":"","number":""},"accountcode":"","dialplan":{"context":"oml-inbound","exten":"7000","priority":2,"app_name":"Set","app_data":"x=1"},"creationtime":"2026-11-24T01:27:50.334+0000","language":"en"},"asterisk_id":"02:fc:00:00:00:01","application":"omlcrm"}`

// dialFiltered dials a client with ServerFilter for types, logging from level on into
// logs.
func dialFiltered(t *testing.T, srv *aritest.Server, level zerolog.Level, types ...string) (*ari.Client, *recorder, *logtest.Buffer) {
	t.Helper()
	rec := newRecorder()
	cfg := rec.config(srv, t)
	cfg.EventTypes, cfg.ServerFilter = types, true
	logs := &logtest.Buffer{}
	cfg.Logger = zerolog.New(logs).Level(level)
	return dialRecorder(t, cfg), rec, logs
}

// waitHeld sends unwanted events until the fake reports one held back by the
// application's event filter (the client sets it beside its reader, shortly after the
// connect), and fails after a while.
func waitHeld(t *testing.T, srv *aritest.Server) {
	t.Helper()
	before := srv.EventsHeld()
	deadline := time.Now().Add(waitLong)
	for srv.EventsHeld() == before {
		if time.Now().After(deadline) {
			t.Fatal("no event held back by Asterisk's side: the event filter was not set")
		}
		send(t, srv, []byte(dialplanEvent))
		time.Sleep(5 * time.Millisecond)
	}
}

// With ServerFilter the client asks Asterisk, after every connect, for its EventTypes
// only: the fake (which applies the filter as Asterisk 22 does, and forgets it with the
// application when the websocket goes) holds the other types back, the wanted ones still
// arrive in order, and after a restart of Asterisk the filter is set again.
func TestServerEventFilter(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass, App: "omlcrm"})
	_, rec, logs := dialFiltered(t, srv, zerolog.DebugLevel, "ChannelVarset", "Dial")
	rec.expectState(t, ari.StateConnected)
	waitHeld(t, srv)
	send(t, srv, varset(1, "through"))
	if seqOf(t, rec.next(t)) != 1 {
		t.Fatal("wrong event")
	}
	app := getApplication(t, srv)
	if !strings.Contains(app, `"events_allowed":[{"type":"ChannelVarset"},{"type":"Dial"}],"events_disallowed":[]`) {
		t.Errorf("application after the filter: %s", app)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	rec.expectState(t, ari.StateDisconnected)
	rec.expectState(t, ari.StateConnected)
	waitHeld(t, srv)
	send(t, srv, varset(2, "after the restart"))
	if seqOf(t, rec.next(t)) != 2 {
		t.Fatal("wrong event")
	}
	if n := strings.Count(logs.String(), "ARI event filter set"); n != 2 {
		t.Errorf("%d filter-set log lines for 2 connects, want 2:\n%s", n, logs.String())
	}
}

// A read_only ari.conf user is refused the filter (403): logged once at info level however
// often the client reconnects, never retried, and the client filters on its side as
// before.
func TestServerEventFilterRefused(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass, App: "omlcrm", ReadOnly: true})
	c, rec, logs := dialFiltered(t, srv, zerolog.InfoLevel, "ChannelVarset")
	for i := 1; i <= 2; i++ {
		rec.expectState(t, ari.StateConnected)
		waitRequests(t, srv, uint64(i))
		send(t, srv, []byte(dialplanEvent))
		send(t, srv, varset(i, "through"))
		if seqOf(t, rec.next(t)) != i {
			t.Fatal("wrong event")
		}
		if i == 1 {
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			rec.expectState(t, ari.StateDisconnected)
		}
	}
	time.Sleep(200 * time.Millisecond) // room for a retry that must not come
	c.Close()                          // waits for the session's goroutines: every log line is written
	if n := srv.EventFilterRequests(); n != 2 {
		t.Errorf("%d filter requests for 2 connects refused, want 2 (no retry)", n)
	}
	if held := srv.EventsHeld(); held != 0 {
		t.Errorf("%d events held with the filter refused", held)
	}
	out := logs.String()
	if n := strings.Count(out, "Asterisk refused the ARI event filter"); n != 1 || !strings.Contains(out, `"level":"info"`) || !strings.Contains(out, "Write access denied") {
		t.Errorf("refusal logged %d times (want once, at info, with Asterisk's reason):\n%s", n, out)
	}
}

// waitRequests waits until the fake has received n event filter requests.
func waitRequests(t *testing.T, srv *aritest.Server, n uint64) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for srv.EventFilterRequests() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d event filter requests, want %d", srv.EventFilterRequests(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A failure that may pass (Asterisk answers 500) is retried until the filter is set: one
// warning (at the second failure: a first one may be the session ending), then one info
// line saying the filter is in force.
func TestServerEventFilterRetried(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass, App: "omlcrm"})
	srv.FailEventFilter(3, http.StatusInternalServerError)
	c, rec, logs := dialFiltered(t, srv, zerolog.InfoLevel, "ChannelVarset", "Dial")
	rec.expectState(t, ari.StateConnected)
	waitHeld(t, srv)
	c.Close()
	if n := srv.EventFilterRequests(); n != 4 {
		t.Errorf("%d filter requests, want 4 (3 failed, then set)", n)
	}
	out := logs.String()
	if n := strings.Count(out, "setting the ARI event filter failed"); n != 1 || !strings.Contains(out, `"level":"warn"`) {
		t.Errorf("failures logged %d times above debug, want once as a warning:\n%s", n, out)
	}
	if !strings.Contains(out, `"failed_attempts":3,"message":"ARI event filter set`) {
		t.Errorf("no info line once the filter is set:\n%s", out)
	}
}

// A filter Asterisk finds invalid (400) is a mistake here: logged as an error once, not
// retried (it would be refused again).
func TestServerEventFilterInvalid(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass, App: "omlcrm"})
	srv.FailEventFilter(5, http.StatusBadRequest)
	c, rec, logs := dialFiltered(t, srv, zerolog.InfoLevel, "ChannelVarset")
	rec.expectState(t, ari.StateConnected)
	waitRequests(t, srv, 1)
	time.Sleep(200 * time.Millisecond) // room for a retry that must not come
	c.Close()
	out := logs.String()
	if n := srv.EventFilterRequests(); n != 1 {
		t.Errorf("%d filter requests, want 1 (no retry)", n)
	}
	if strings.Count(out, "rejected the ARI event filter as invalid") != 1 || !strings.Contains(out, `"level":"error"`) {
		t.Errorf("want one error line:\n%s", out)
	}
}

// An Asterisk older than 16.3 has no eventFilter (404 Resource not found): said once,
// not retried.
func TestServerEventFilterUnsupported(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass, App: "omlcrm", NoEventFilter: true})
	c, rec, logs := dialFiltered(t, srv, zerolog.InfoLevel, "ChannelVarset")
	rec.expectState(t, ari.StateConnected)
	deadline := time.Now().Add(waitLong)
	for !strings.Contains(logs.String(), "eventFilter needs Asterisk 16.3") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning:\n%s", logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a retry that must not come
	c.Close()
	if n := strings.Count(logs.String(), "ARI event filter"); n != 1 {
		t.Errorf("%d log lines about the filter, want 1:\n%s", n, logs.String())
	}
	if n := srv.EventFilterRequests(); n != 1 {
		t.Errorf("%d filter requests, want 1 (no retry)", n)
	}
}

// Without ServerFilter, or with no EventTypes, nothing is asked of Asterisk.
func TestNoServerEventFilter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		types  []string
		filter bool
	}{{"off", []string{"ChannelVarset"}, false}, {"no types", nil, true}} {
		srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass, App: "omlcrm"})
		rec := newRecorder()
		cfg := rec.config(srv, t)
		cfg.EventTypes, cfg.ServerFilter = tc.types, tc.filter
		c := dialRecorder(t, cfg)
		rec.expectState(t, ari.StateConnected)
		send(t, srv, varset(1, "x"))
		if seqOf(t, rec.next(t)) != 1 {
			t.Fatal("wrong event")
		}
		c.Close() // a request it made would have been answered or cancelled by now
		if n := srv.EventFilterRequests(); n != 0 {
			t.Errorf("%s: %d event filter requests", tc.name, n)
		}
	}
}

func getApplication(t *testing.T, srv *aritest.Server) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL()+"/ari/applications/omlcrm", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(testUser, testPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET application: %d %s", resp.StatusCode, body)
	}
	return string(body)
}
