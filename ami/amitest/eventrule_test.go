package amitest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/callsim"
	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// eventRules are rules of ami.EventFilterRule's form: the daemon's own (default events,
// the tracker's variables) and variants of each part.
func eventRules(t *testing.T) []string {
	t.Helper()
	var rules []string
	for _, tc := range []struct {
		events []string
		vars   ami.VarSetFilter
	}{
		{config.DefaultAMIEvents, ami.VarSetFilter{Prefixes: []string{"OML", "CRM_"}, Names: []string{"MIXMONITOR_FILENAME"}}},
		{config.DefaultAMIEvents, ami.VarSetFilter{}},
		{[]string{"Hangup", "HangupRequest", "Newchannel"}, ami.VarSetFilter{}},
		{[]string{"VarSet"}, ami.VarSetFilter{Names: []string{"BRIDGEPEER", "_x1"}}},
		{[]string{"VarSet"}, ami.VarSetFilter{Prefixes: []string{"__OML", "Dial"}}},
	} {
		r, ok := ami.EventFilterRule(tc.events, tc.vars)
		if !ok {
			t.Fatalf("no rule for %v %+v", tc.events, tc.vars)
		}
		rules = append(rules, r)
	}
	return rules
}

// eventTexts are events to test rules on: every event of the recorded Asterisk 22
// sessions, every step of every simulated call, and edits of them around what the rules
// look at (case, underscores, spaces, a "Variable: " inside a value, a cut text).
func eventTexts(t *testing.T) [][]byte {
	t.Helper()
	var evs [][]byte
	dir := filepath.Join(pgtest.SharedDir(t), "testdata", "ami")
	files, err := filepath.Glob(filepath.Join(dir, "*.ami"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in %s: %v", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range bytes.SplitAfter(b, []byte("\r\n\r\n")) {
			if bytes.HasPrefix(m, []byte("Event:")) {
				evs = append(evs, m)
			}
		}
	}
	ids := callsim.NewIDs(1)
	for s := callsim.Scenario(1); ; s++ {
		if strings.HasPrefix(s.String(), "scenario(") {
			break
		}
		c := callsim.Build(ids, callsim.Params{Scenario: s})
		for i := range c.Steps {
			if b := c.Steps[i].AppendAMI(nil); len(b) > 0 {
				evs = append(evs, b)
			}
		}
	}
	base := len(evs)
	edits := []func(string) string{
		strings.ToLower,
		strings.ToUpper,
		func(s string) string { return strings.Replace(s, "Variable: ", "Variable: _", 1) },
		func(s string) string { return strings.Replace(s, "Variable: ", "Variable: __", 1) },
		func(s string) string { return strings.Replace(s, "Variable: ", "Variable: ___", 1) },
		func(s string) string { return strings.Replace(s, "\r\nVariable: ", "\tVariable: ", 1) },
		func(s string) string { return strings.Replace(s, "\r\nVariable: ", "Variable: ", 1) },
		func(s string) string { return strings.Replace(s, "Event: VarSet\r\n", "Event: VarSet \r\n", 1) },
		func(s string) string { return strings.Replace(s, "Event: VarSet\r\n", "Event: VarSetX\r\n", 1) },
		func(s string) string { return strings.Replace(s, "Event: Hangup\r\n", "Event: Hangup\t", 1) },
		func(s string) string { return strings.Replace(s, "Value: ", "Value: x\r\nVariable: OMLX\r\n", 1) },
		func(s string) string { return strings.Replace(s, "Variable: OML", "Variable: oMl", 1) },
		func(s string) string { return strings.Replace(s, "FILENAME\r\n", "FILENAMES\r\n", 1) },
		func(s string) string { return strings.Replace(s, "FILENAME\r\n", "FILENAME", 1) + "" },
		func(s string) string { return s[:len(s)/2] },
		func(s string) string { return "Event: VarSet\r\nVariable: OML" },
		func(s string) string { return " " + s },
	}
	for i, ev := range evs[:base] {
		if i%5 != 0 { // a fifth of them: the regexp is slow
			continue
		}
		for _, e := range edits {
			evs = append(evs, []byte(e(string(ev))))
		}
	}
	return evs
}

// The direct matcher of ami.EventFilterRule's rules answers as the regexp does on every
// event.
func TestEventRuleMatchesLikeTheRegexp(t *testing.T) {
	evs := eventTexts(t)
	for _, rule := range eventRules(t) {
		fast, ok := parseEventRule(rule)
		if !ok {
			t.Fatalf("rule not recognised: %s", rule)
		}
		re, err := compileLegacyFilter(rule)
		if err != nil {
			t.Fatal(err)
		}
		matched := 0
		for _, ev := range evs {
			want := re.Match(ev)
			if got := fast.Match(ev); got != want {
				t.Fatalf("rule %s\nevent %q\ndirect %v, regexp %v", rule, ev, got, want)
			}
			if want {
				matched++
			}
		}
		// Both answers occur, or the comparison shows little.
		if matched == 0 || matched == len(evs) {
			t.Errorf("rule %s matched %d of %d events", rule, matched, len(evs))
		}
		t.Logf("%d of %d events match %s", matched, len(evs), rule)
	}
}

// Only the exact form is taken; anything else keeps the regexp.
func TestEventRuleRecognisesOnlyItsForm(t *testing.T) {
	for _, p := range []string{
		"Event: Hangup",
		"^Event: (Hangup)",
		"^Event: (Hangup)[[:space:]]|Event: VarSet",
		"^Event: (Hang.p)[[:space:]]",
		"^Event: VarSet[[:space:]].*[[:space:]]Variable: _{0,2}([Oo]x)",
		"^Event: VarSet[[:space:]].*[[:space:]]Variable: _{0,2}([oO][Mm])",
		"^Event: VarSet[[:space:]].*[[:space:]]Variable: _{0,2}([Oo][Mm]",
		"^Event: VarSet[[:space:]].*[[:space:]]Variable: (OML)",
		"^Event: (Hangup)[[:space:]]|^Event: VarSet[[:space:]]x",
	} {
		if r, ok := parseEventRule(p); ok {
			t.Errorf("%q recognised as %+v", p, r)
		}
		m, err := compileRule(p)
		if err != nil {
			continue // not a pattern at all (the Filter action refuses it)
		}
		if _, isRule := m.(*eventRule); isRule {
			t.Errorf("%q compiled to the direct matcher", p)
		}
	}
}
