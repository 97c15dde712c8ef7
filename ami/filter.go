package ami

import "strings"

// VarSetFilter says which VarSet events a consumer keeps: those whose variable, after an
// optional "_" or "__" inheritance prefix, starts with one of Prefixes or equals one of
// Names, both compared case-insensitively.
type VarSetFilter struct {
	Prefixes []string
	Names    []string
}

// EventFilterRule returns one server-side Filter rule that lets through the events
// named in events (exact, case-sensitive names, as Asterisk spells them) and, when
// VarSet is among them, only the VarSets vars keeps. ok is false when no such rule can be
// written exactly (no names, or a name that is not made of letters, digits and '_'):
// send none then.
//
// The rule is a legacy eventfilter regex, which every Asterisk understands (the advanced
// `MatchCriteria` form exists only since 18.26, 20.11, 21.6 and 22.1, and an older
// Asterisk would ignore that header and read the pattern as a regex over the whole
// event). Asterisk matches it with POSIX regexec (REG_EXTENDED, no REG_NEWLINE) against
// the whole event text, `Event: <name>\r\nPrivilege: …\r\n…\r\n\r\n`: `^` is the start of
// that text, `.` also matches CR and LF, and a backslash escape such as `\r` is not a
// control character in glibc (it matches the letter r), so line ends are written
// `[[:space:]]`. It is one rule, so that Asterisk takes all of it or nothing: an accepted
// event rule beside a refused VarSet rule would drop every VarSet. Being an include rule,
// it widens any other include rule (manager.conf eventfilter, Config.Filters) and is
// narrowed by exclude rules. Letting a few unneeded events through is harmless (the
// client still filters by name and Accept); the rule must never hold back a needed one.
func EventFilterRule(events []string, vars VarSetFilter) (rule string, ok bool) {
	var names []string
	varSet := false
	for _, e := range events {
		if !plainName(e) {
			return "", false
		}
		if e == "VarSet" {
			varSet = true
			continue
		}
		names = append(names, e)
	}
	var b strings.Builder
	if len(names) > 0 {
		b.WriteString("^Event: (" + strings.Join(names, "|") + ")[[:space:]]")
	}
	if varSet {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString("^Event: VarSet[[:space:]]")
		if alts, exact := varAlternatives(vars); exact {
			// [[:space:]] before Variable: a line start (a value cannot hold a line break).
			b.WriteString(".*[[:space:]]Variable: _{0,2}(" + alts + ")")
		}
	}
	if b.Len() == 0 {
		return "", false
	}
	return b.String(), true
}

// varAlternatives is the regex alternation of vars' prefixes and names, each letter as a
// [Xx] pair; exact is false when a name holds a character this cannot spell (then every
// VarSet is let through).
func varAlternatives(vars VarSetFilter) (alts string, exact bool) {
	var parts []string
	for _, p := range vars.Prefixes {
		if !plainName(p) {
			return "", false
		}
		parts = append(parts, foldPattern(p))
	}
	for _, n := range vars.Names {
		if !plainName(n) {
			return "", false
		}
		parts = append(parts, foldPattern(n)+"[[:space:]]") // the line's CR ends the name
	}
	if len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, "|"), true
}

// plainName reports whether s is non-empty and made of ASCII letters, digits and '_'.
func plainName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// foldPattern spells a plain name case-insensitively for a POSIX ERE (which has no
// case-insensitive flag inside the pattern).
func foldPattern(s string) string {
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		lo, up := c|0x20, c&^0x20
		if 'a' <= lo && lo <= 'z' {
			b.WriteByte('[')
			b.WriteByte(up)
			b.WriteByte(lo)
			b.WriteByte(']')
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
