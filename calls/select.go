package calls

import (
	"bytes"

	"github.com/omlcrm/oml-crm/ami"
)

// AcceptAMI is an ami.Config.Accept for the tracker: it drops, before they are copied out
// of the read buffer, the VarSet events whose variable the tracker ignores (most of a
// real stream's VarSets: LOCAL(ARGn), BRIDGEPEER, dialplan temporaries), which HandleAMI
// would drop anyway. Every other event is accepted. It reads only the tracker's fixed
// options, so it needs no lock.
func (t *Tracker) AcceptAMI(v *ami.View) bool {
	if !bytes.Equal(v.Event(), []byte("VarSet")) {
		return true
	}
	return t.interestingBytes(v.Get("Variable"))
}

// AcceptVariable reports whether a variable set on a channel (name as Asterisk sends it,
// "_"/"__" inheritance prefix included) can matter to the tracker: the byte form of the
// check HandleAMI and HandleARI make, for filters that run before decoding.
func (t *Tracker) AcceptVariable(name []byte) bool { return t.interestingBytes(name) }

// interestingBytes is interesting(stripInherit(raw)) without converting raw to a string.
func (t *Tracker) interestingBytes(raw []byte) bool {
	name := raw
	if bytes.HasPrefix(name, []byte("__")) {
		name = name[2:]
	} else if bytes.HasPrefix(name, []byte("_")) {
		name = name[1:]
	}
	if hasPrefixFoldBytes(name, "OML") || (len(name) == len(varMixMonitor) && hasPrefixFoldBytes(name, varMixMonitor)) {
		return true
	}
	for _, p := range t.prefixes {
		if hasPrefixFoldBytes(name, p) {
			return true
		}
	}
	return false
}

// hasPrefixFoldBytes is hasPrefixFold for a byte slice (ASCII case-insensitive).
func hasPrefixFoldBytes(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		x, y := b[i], prefix[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
