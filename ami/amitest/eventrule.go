package amitest

import (
	"bytes"
	"regexp"
	"strings"

	"github.com/omlcrm/oml-crm/ami"
)

// matcher is one compiled Filter rule: whether Asterisk's regexec finds the rule in an
// event's whole text.
type matcher interface {
	Match(ev []byte) bool
}

// compileRule compiles a legacy Filter pattern: the rule ami.EventFilterRule writes (the
// daemon's asterisk.ami.server_filter) gets a direct matcher, any other pattern Go's
// regexp with glibc's semantics (compileLegacyFilter). Both answer alike on every event
// (TestEventRuleMatchesLikeTheRegexp); the direct one costs a scan of the event instead
// of a backtracking walk of its `.*`, which was two thirds of the load test's CPU, taken
// from the daemon it measures on a two-core machine.
func compileRule(pattern string) (matcher, error) {
	re, err := compileLegacyFilter(pattern)
	if err != nil {
		return nil, err
	}
	if r, ok := parseEventRule(pattern); ok {
		return r, nil
	}
	return re, nil
}

var _ matcher = (*regexp.Regexp)(nil)

// eventRule is a pattern of ami.EventFilterRule's form:
//
//	^Event: (N1|N2|…)[[:space:]]
//	|^Event: VarSet[[:space:]]
//	|^Event: VarSet[[:space:]].*[[:space:]]Variable: _{0,2}(A1|A2|…)
//
// (the names part, the VarSet part, or both joined by '|'), each Ai a name spelled
// case-insensitively ([Xx] per letter, digits and '_' as themselves), optionally
// followed by [[:space:]] (a whole name rather than a prefix).
type eventRule struct {
	names  []string // event names (nil: none)
	varSet bool     // the VarSet part is present
	vars   []foldName
}

type foldName struct {
	lower     string // the name, lower case
	wholeName bool   // followed by [[:space:]]
}

const (
	ruleSpace   = "[[:space:]]"
	ruleNames   = "^Event: ("
	ruleVarSet  = "^Event: VarSet" + ruleSpace
	ruleVarTail = ".*" + ruleSpace + "Variable: _{0,2}("
)

// parseEventRule recognises a pattern of eventRule's form: what it reads must give the
// pattern back, byte for byte, through ami.EventFilterRule, so only the rules the daemon
// writes are taken, however that function changes.
func parseEventRule(p string) (*eventRule, bool) {
	r, ok := readEventRule(p)
	if !ok {
		return nil, false
	}
	var events []string
	events = append(events, r.names...)
	var vars ami.VarSetFilter
	if r.varSet {
		events = append(events, "VarSet")
		for _, v := range r.vars {
			if v.wholeName {
				vars.Names = append(vars.Names, v.lower)
			} else {
				vars.Prefixes = append(vars.Prefixes, v.lower)
			}
		}
	}
	if again, ok := ami.EventFilterRule(events, vars); !ok || again != p {
		return nil, false
	}
	return r, true
}

// readEventRule reads the parts of a pattern of eventRule's form.
func readEventRule(p string) (*eventRule, bool) {
	r := &eventRule{}
	if rest, ok := strings.CutPrefix(p, ruleNames); ok {
		end := strings.Index(rest, ")"+ruleSpace)
		if end <= 0 {
			return nil, false
		}
		r.names = strings.Split(rest[:end], "|")
		p = rest[end+1+len(ruleSpace):]
		if p == "" {
			return r, true
		}
		if p, ok = strings.CutPrefix(p, "|"); !ok {
			return nil, false
		}
	}
	rest, ok := strings.CutPrefix(p, ruleVarSet)
	if !ok {
		return nil, false
	}
	r.varSet = true
	if rest == "" {
		return r, true
	}
	alts, ok := strings.CutPrefix(rest, ruleVarTail)
	if !ok || !strings.HasSuffix(alts, ")") {
		return nil, false
	}
	for _, a := range strings.Split(alts[:len(alts)-1], "|") {
		whole := strings.HasSuffix(a, ruleSpace)
		name, ok := unfold(strings.TrimSuffix(a, ruleSpace))
		if !ok {
			return nil, false
		}
		r.vars = append(r.vars, foldName{lower: name, wholeName: whole})
	}
	return r, true
}

// unfold reads a name spelled by ami's foldPattern: [Xx] for each letter, digits and
// '_' as themselves. It returns the name in lower case.
func unfold(s string) (string, bool) {
	var b strings.Builder
	for len(s) > 0 {
		c := s[0]
		switch {
		case c == '[':
			if len(s) < 4 || s[3] != ']' || s[1] < 'A' || s[1] > 'Z' || s[2] != s[1]|0x20 {
				return "", false
			}
			b.WriteByte(s[2])
			s = s[4:]
		case '0' <= c && c <= '9' || c == '_':
			b.WriteByte(c)
			s = s[1:]
		default:
			return "", false
		}
	}
	return b.String(), b.Len() > 0
}

// isSpace is POSIX [[:space:]] in the C locale.
func isSpace(c byte) bool { return c == ' ' || '\t' <= c && c <= '\r' }

// Match reports whether the pattern matches somewhere in ev, as regexec does (without
// REG_NEWLINE: '^' is the start of ev, '.' any byte).
func (r *eventRule) Match(ev []byte) bool {
	rest, ok := bytes.CutPrefix(ev, []byte("Event: "))
	if !ok {
		return false
	}
	for _, n := range r.names {
		if len(rest) > len(n) && string(rest[:len(n)]) == n && isSpace(rest[len(n)]) {
			return true
		}
	}
	if !r.varSet {
		return false
	}
	// "Event: VarSet" and one space character.
	const head = len("Event: VarSet") + 1
	if len(ev) < head || string(ev[len("Event: "):head-1]) != "VarSet" || !isSpace(ev[head-1]) {
		return false
	}
	if len(r.vars) == 0 {
		return true
	}
	// .* then [[:space:]]Variable: — the space at any position from head on.
	for from := head; ; {
		i := bytes.Index(ev[from:], []byte("Variable: "))
		if i < 0 {
			return false
		}
		v := from + i // where "Variable: " starts; the space before it is at v-1
		from = v + 1
		if v-1 < head || !isSpace(ev[v-1]) {
			continue
		}
		at := v + len("Variable: ")
		for u := 0; u <= 2; u++ { // _{0,2}
			if u > 0 && (at+u > len(ev) || ev[at+u-1] != '_') {
				break
			}
			if r.varAt(ev[at+u:]) {
				return true
			}
		}
	}
}

// varAt reports whether one of the rule's variable names (any case) starts s, followed
// by a space character where the name must be whole.
func (r *eventRule) varAt(s []byte) bool {
	for _, n := range r.vars {
		if len(s) < len(n.lower) || !equalLower(s[:len(n.lower)], n.lower) {
			continue
		}
		if !n.wholeName || len(s) > len(n.lower) && isSpace(s[len(n.lower)]) {
			return true
		}
	}
	return false
}

// equalLower reports whether s, with ASCII letters lowered, is lower (whose letters are
// lower case; digits and '_' compare as themselves).
func equalLower(s []byte, lower string) bool {
	for i := range len(s) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c |= 0x20
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
