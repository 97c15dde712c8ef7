package ami_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/internal/logtest"
)

func TestEventFilterRuleText(t *testing.T) {
	rule, ok := ami.EventFilterRule([]string{"Hangup", "VarSet", "UserEvent"}, ami.VarSetFilter{Prefixes: []string{"OML", "x_1"}, Names: []string{"MIX"}})
	want := "^Event: (Hangup|UserEvent)[[:space:]]|^Event: VarSet[[:space:]].*[[:space:]]Variable: _{0,2}([Oo][Mm][Ll]|[Xx]_1|[Mm][Ii][Xx][[:space:]])"
	if !ok || rule != want {
		t.Errorf("rule %q, %v\nwant %q", rule, ok, want)
	}
	// A variable name the rule cannot spell: every VarSet is let through.
	if rule, ok := ami.EventFilterRule([]string{"VarSet"}, ami.VarSetFilter{Prefixes: []string{"A.B"}}); !ok || rule != "^Event: VarSet[[:space:]]" {
		t.Errorf("rule %q, %v", rule, ok)
	}
	for _, events := range [][]string{nil, {}, {"Hangup", "Bad-Name"}, {"Hangup|.*"}} {
		if rule, ok := ami.EventFilterRule(events, ami.VarSetFilter{}); ok {
			t.Errorf("%q: rule %q, want none", events, rule)
		}
	}
}

// The rule, sent as a Filter and applied by the fake Asterisk as Asterisk applies it, lets
// through exactly the named events and the VarSets of the kept variables.
func TestEventFilterRuleOnTheWire(t *testing.T) {
	rule, ok := ami.EventFilterRule([]string{"Newchannel", "Hangup", "VarSet", "UserEvent"},
		ami.VarSetFilter{Prefixes: []string{"OML", "Crm"}, Names: []string{"MIXMONITOR_FILENAME"}})
	if !ok {
		t.Fatal("no rule")
	}
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, func(c *ami.Config) { c.Filters = []string{rule} })
	h.connected()
	waitFilters(t, h, srv, 1)

	varSet := func(name string) string {
		return "Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/1-00000001\r\nVariable: " + name + "\r\nValue: v\r\nUniqueid: 1.1\r\n\r\n"
	}
	event := func(name string) string { return "Event: " + name + "\r\nPrivilege: call,all\r\nUniqueid: 1.1\r\n\r\n" }
	stream := []struct {
		raw  string
		want string // "" = filtered out by Asterisk
	}{
		{event("Newchannel"), "Newchannel"},
		{event("Newexten"), ""},
		{event("Hangup"), "Hangup"},
		{event("HangupRequest"), ""},
		{event("SoftHangupRequest"), ""},
		{event("UserEvent"), "UserEvent"},
		{varSet("OMLCAMPID"), "OMLCAMPID"},
		{varSet("__OMLCALLID"), "__OMLCALLID"},
		{varSet("_omlx"), "_omlx"},
		{varSet("__crm_TICKET"), "__crm_TICKET"},
		{varSet("___OMLX"), ""}, // three underscores: not an inheritance prefix
		{varSet("BRIDGEPEER"), ""},
		{varSet("LOCAL(ARG1)"), ""},
		{varSet("MIXMONITOR_FILENAME"), "MIXMONITOR_FILENAME"},
		{varSet("mixmonitor_filename"), "mixmonitor_filename"},
		{varSet("MIXMONITOR_FILENAME2"), ""},
		{varSet("XOML"), ""},
	}
	var raw strings.Builder
	var want []string
	for _, e := range stream {
		raw.WriteString(e.raw)
		if e.want != "" {
			want = append(want, e.want)
		}
	}
	raw.WriteString(event("Newchannel")) // the end marker
	want = append(want, "Newchannel")
	if err := srv.Send([]byte(raw.String())); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < len(want) {
		m := h.event()
		if m.Event() == "VarSet" {
			got = append(got, m.Get("Variable"))
		} else {
			got = append(got, m.Event())
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("received %v\nwant     %v", got, want)
	}
	h.noMoreEvents()
}

// A manager user without write = system: Asterisk answers Filter with Permission denied.
// That is logged once at info level (expected with the documented
// manager.conf stanza, not a fault), however many sessions; the session's other rules are
// not sent; every event still arrives (the client filters on its side).
func TestFilterPermissionDenied(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Deny("Filter")
	var logs logtest.Buffer
	h := newHarness(t, srv, func(c *ami.Config) {
		c.Filters = []string{"^Event: Hangup[[:space:]]", "!Event: Newexten"}
		c.Logger = zerolog.New(&logs).Level(zerolog.InfoLevel)
	})
	h.connected()
	ctx := h.ctx()
	for countActions(srv, "Filter") < 1 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.SendEvent(ami.Header{Key: "Event", Value: "Newexten"}); err != nil {
		t.Fatal(err)
	}
	if m := h.event(); m.Event() != "Newexten" {
		t.Fatalf("got %q", m.Headers)
	}
	// A new session is denied again, and not logged again.
	srv.DropSessions()
	if err := h.state(ami.StateDisconnected); err == nil {
		t.Fatal("disconnected without a cause")
	}
	h.connected()
	for countActions(srv, "Filter") < 2 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if err := h.client.Ping(ctx); err != nil { // the Filter's answer was read before the Ping's
		t.Fatal(err)
	}
	h.client.Close()
	if n := countActions(srv, "Filter"); n != 2 {
		t.Errorf("%d Filter actions over two sessions, want 2 (the denied session's next rule is not sent)", n)
	}
	out := logs.String()
	if n := strings.Count(out, "Permission denied"); n != 1 || !strings.Contains(out, `"level":"info"`) {
		t.Errorf("%d Permission denied lines, want 1 at info:\n%s", n, out)
	}
}

// waitFilters waits until the server accepted n Filter rules (they are sent after login,
// beside the events).
func waitFilters(t *testing.T, h *harness, srv *amitest.Server, n int) {
	t.Helper()
	ctx := h.ctx()
	for len(srv.Filters()) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("filters %q, want %d", srv.Filters(), n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
