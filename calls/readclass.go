package calls

import (
	"strings"
	"time"
)

// noVarSetWarnEvery rate-limits the warning that no VarSet event ever arrived.
const noVarSetWarnEvery = time.Hour

// varSetWatch infers, over AMI, a manager user without the `dialplan` read class: AMI
// cannot report a user's classes, but calls that connect while no VarSet event has ever
// arrived say it (VarSet is in that class). Every value then comes from lazy reads.
type varSetWatch struct {
	seen     bool      // a VarSet event arrived (any variable)
	connects uint64    // connects examined by tryConnect
	warned   time.Time // last warning
}

// checkVarSets warns (at most once per noVarSetWarnEvery) when a live AMI connect came
// while no VarSet was ever received. Lock held.
func (t *Tracker) checkVarSets(at time.Time) {
	w := &t.varSets
	if w.seen || (!w.warned.IsZero() && at.Sub(w.warned) < noVarSetWarnEvery) {
		return
	}
	w.warned = at
	t.m.noVarSets.Inc()
	t.log.Warn().Msg("calls: a call connected but Asterisk never sent a VarSet event: the AMI user (asterisk.ami.username) " +
		"evidently lacks the dialplan read class (manager.conf read = call,dialplan,agent,...) or asterisk.ami.events " +
		"leaves VarSet out; every value is then read on demand after the connect, which is slower and needs " +
		"the system class for Status/Getvar")
}

// unescapeAMI undoes the C escaping AMI applies to VarSet's Value (ast_escape_c:
// backslash, quotes, '?' and control characters), so values arrive exactly as the
// dialplan set them, as Getvar and ARI report them. Unknown sequences are kept.
func unescapeAMI(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch n := s[i]; n {
		case '\\', '\'', '"', '?':
			b.WriteByte(n)
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		default:
			b.WriteByte('\\')
			b.WriteByte(n)
		}
	}
	return b.String()
}
