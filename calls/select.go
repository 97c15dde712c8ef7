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

// interestingBytes is interesting(stripInherit(raw)) for a byte slice. It calls
// interesting itself, so the filter cannot drift from what the handlers keep; the string
// conversion of a name up to 32 bytes does not allocate (interesting keeps nothing).
func (t *Tracker) interestingBytes(raw []byte) bool {
	name := raw
	if bytes.HasPrefix(name, []byte("__")) {
		name = name[2:]
	} else if bytes.HasPrefix(name, []byte("_")) {
		name = name[1:]
	}
	return t.interesting(string(name))
}

// AMIVarSetFilter says which VarSets the tracker keeps, for a server-side filter
// (ami.EventFilterRule): the variables interesting keeps, i.e. OML*, MIXMONITOR_FILENAME
// and the dialplan prefixes, any case, with or without an inheritance prefix.
func (t *Tracker) AMIVarSetFilter() ami.VarSetFilter {
	return ami.VarSetFilter{
		Prefixes: append([]string{varPrefixOML}, t.prefixes...),
		Names:    []string{varMixMonitor},
	}
}
