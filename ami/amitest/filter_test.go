package amitest_test

import (
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
)

// filterCase: the rules a session adds, then which of the test events it still receives.
type filterCase struct {
	name  string
	rules []string
	want  []string // event names received, in order
}

// The test events: their whole text is what a rule is matched against.
var filterEvents = []string{
	"Event: Hangup\r\nPrivilege: call,all\r\nChannel: PJSIP/1001-00000001\r\nUniqueid: 1.1\r\n\r\n",
	"Event: HangupRequest\r\nPrivilege: call,all\r\nChannel: PJSIP/1001-00000001\r\n\r\n",
	"Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: Local/1@x-00000001;1\r\nApplication: Set\r\n\r\n",
	"Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: Local/1@x-00000001;1\r\nVariable: __OMLCAMPID\r\nValue: 7\r\n\r\n",
	"Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/1001-00000001\r\nVariable: BRIDGEPEER\r\nValue: PJSIP/2\r\n\r\n",
}

// TestFilterLikeAsterisk: a session's Filter rules select the events it is sent with
// Asterisk's semantics (manager.c should_send_event; glibc regexec over the whole event
// text, REG_EXTENDED without REG_NEWLINE).
func TestFilterLikeAsterisk(t *testing.T) {
	for _, tc := range []filterCase{
		{"no rule", nil, []string{"Hangup", "HangupRequest", "Newexten", "VarSet", "VarSet"}},
		{"include: unanchored substring", []string{"Event: Hangup"}, []string{"Hangup", "HangupRequest"}},
		{"include, any of them", []string{"Event: Newexten", "Variable: _*OML"}, []string{"Newexten", "VarSet"}},
		// A backslash before an ordinary character is that character in glibc: \r is the
		// letter r, so this rule matches none of the events (not a carriage return).
		{`\r is the letter r`, []string{`Event: Hangup\r`}, nil},
		{"[[:space:]] matches the line end", []string{"^Event: Hangup[[:space:]]"}, []string{"Hangup"}},
		// ^ is the start of the event text, not of a line; . matches CR and LF.
		{"^ is the event start", []string{"^Channel: PJSIP"}, nil},
		{". crosses lines", []string{"^Event: VarSet.*BRIDGEPEER"}, []string{"VarSet"}},
		{"$ is the event end", []string{"Uniqueid: 1.1[[:space:]]*$"}, []string{"Hangup"}},
		{"exclude only", []string{"!Event: VarSet"}, []string{"Hangup", "HangupRequest", "Newexten"}},
		{"include then exclude", []string{"Event: (Hangup|VarSet)", "!BRIDGEPEER", "!Request"}, []string{"Hangup", "VarSet"}},
		// Inside brackets a backslash is itself: [\r] is a backslash or an r.
		{"bracket backslash", []string{`^Event: Ha[\r]?ngup[[:space:]]`}, []string{"Hangup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := amitest.NewServer(t)
			s := dialRaw(t, srv)
			s.login(srv)
			for _, r := range tc.rules {
				s.send("Action: Filter", "ActionID: f", "Operation: Add", "Filter: "+r)
				if m := s.next(); m.Get("Response") != "Success" {
					t.Fatalf("rule %q: %q", r, m.Headers)
				}
			}
			if err := srv.Send([]byte(strings.Join(filterEvents, ""))); err != nil {
				t.Fatal(err)
			}
			// A Ping's answer marks the end of what was sent (replies are never filtered).
			s.send("Action: Ping", "ActionID: end")
			var got []string
			for {
				m := s.next()
				if m.Get("ActionID") == "end" {
					break
				}
				got = append(got, m.Event())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("rules %q: got %v, want %v", tc.rules, got, tc.want)
			}
			if held := srv.EventsHeld(); held != uint64(len(filterEvents)-len(tc.want)) {
				t.Errorf("rules %q: EventsHeld %d, want %d", tc.rules, held, len(filterEvents)-len(tc.want))
			}
		})
	}
}

// Filter's errors are Asterisk's; a session's rules are its own; Deny answers like a
// manager user without the action's write class.
func TestFilterErrorsAndScope(t *testing.T) {
	srv := amitest.NewServer(t)
	s := dialRaw(t, srv)
	s.login(srv)
	for _, tt := range []struct {
		headers []string
		want    string
	}{
		{[]string{"Operation: Remove", "Filter: x"}, "Unknown operation"},
		{[]string{"Operation: Add", "Filter: "}, "Filter was formatted incorrectly.  Check the syntax of the filter given."},
		{[]string{"Operation: Add", "Filter: !"}, "Filter was formatted incorrectly.  Check the syntax of the filter given."},
		{[]string{"Operation: Add", "Filter: (unclosed"}, "Filter did not compile.  Check the syntax of the filter given."},
	} {
		s.send(append([]string{"Action: Filter", "ActionID: e"}, tt.headers...)...)
		if m := s.next(); m.Get("Response") != "Error" || m.Get("Message") != tt.want {
			t.Errorf("%q: %q, want Error %q", tt.headers, m.Headers, tt.want)
		}
	}
	s.send("Action: Filter", "ActionID: f", "Operation: Add", "Filter: Event: Nothing")
	if m := s.next(); m.Get("Response") != "Success" {
		t.Fatalf("%q", m.Headers)
	}
	other := dialRaw(t, srv)
	other.login(srv)
	if err := srv.SendEvent(ami.Header{Key: "Event", Value: "Hangup"}); err != nil {
		t.Fatal(err)
	}
	if m := other.next(); m.Event() != "Hangup" {
		t.Fatalf("the other session got %q: a rule applies to its own session only", m.Headers)
	}

	srv.Deny("filter")
	other.send("Action: Filter", "ActionID: d", "Operation: Add", "Filter: x")
	if m := other.next(); m.Get("Response") != "Error" || m.Get("Message") != "Permission denied" {
		t.Fatalf("denied Filter: %q", m.Headers)
	}
}

// Sending through a session's Filter rules copies nothing: the events let through are
// written from the sent bytes (the load test's fake Asterisk allocated a copy of every
// write, 16 % of its allocations).
func TestFilterSendAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts under the race detector include its own")
	}
	srv := amitest.NewServer(t)
	s := dialRaw(t, srv)
	s.login(srv)
	s.send("Action: Filter", "ActionID: f", "Operation: Add", "Filter: !Event: VarSet")
	if m := s.next(); m.Get("Response") != "Success" {
		t.Fatalf("rule: %q", m.Headers)
	}
	raw := []byte(strings.Join(filterEvents, ""))
	allocs := testing.AllocsPerRun(200, func() {
		if err := srv.Send(raw); err != nil {
			t.Fatal(err)
		}
	})
	// What remains is the list of sessions Send takes.
	if allocs > 1 {
		t.Errorf("%.1f allocations per Send through a filter; want ≤ 1", allocs)
	}
}
