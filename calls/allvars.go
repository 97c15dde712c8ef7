package calls

import (
	"context"
	"errors"
	"strings"
)

// ChannelVarReader is a VarReader that can also read every variable of a channel at
// once, under the names the dialplan set them with (AMI: Status with AllVariables).
// Asterisk's Getvar and ARI's variable endpoint match names case-sensitively, so a
// catalog that spells a variable "Omlcrmorigen" while the dialplan set "OmlcrmOrigen"
// reads nothing through them; with ChannelVars the lazy reads match names
// case-insensitively, as the live path does, and also collect every dialplan-data
// variable a live connect would carry.
type ChannelVarReader interface {
	VarReader
	ChannelVars(ctx context.Context, ch ChannelRef) ([]Var, error)
}

// findVar returns the value of name in vars, ignoring case and the "_"/"__" prefix,
// and the name as found (without the prefix).
func findVar(vars []Var, name string) (value, real string) {
	for _, v := range vars {
		if n, _ := stripInherit(v.Name); strings.EqualFold(n, name) {
			return v.Value, n
		}
	}
	return "", ""
}

// allVars returns a per-job cache of ChannelVars: ok is false when the reader has no
// ChannelVars or the read failed (the caller falls back to Getvar).
func (j *lazyJob) allVars(ctx context.Context) func(ch ChannelRef) ([]Var, bool) {
	cr, _ := j.t.vars.(ChannelVarReader)
	type entry struct {
		vars []Var
		ok   bool
	}
	cache := make(map[string]entry, 2)
	return func(ch ChannelRef) ([]Var, bool) {
		if cr == nil || ch.Name == "" && ch.ID == "" {
			return nil, false
		}
		key := ch.ID + "\x00" + ch.Name
		if e, done := cache[key]; done {
			return e.vars, e.ok
		}
		j.t.m.lazyReads.Inc()
		vars, err := cr.ChannelVars(ctx, ch)
		if err != nil && !errors.Is(err, context.Canceled) {
			j.t.m.lazyErrors.Inc()
		}
		e := entry{vars, err == nil}
		cache[key] = e
		return e.vars, e.ok
	}
}

// addDialplan adds the dialplan data of the customer's then the agent's channel as read
// with ChannelVars (names with a dialplan prefix or listed in OMLCUSTOMDIALPLANVARS),
// skipping names already known in any case, so a connect completed by lazy reads
// carries what a live one does.
func (j *lazyJob) addDialplan(all func(ChannelRef) ([]Var, bool)) {
	c := &j.p.c
	custom := splitVarList(j.custom)
	for _, ch := range [...]ChannelRef{j.cust, j.agent} {
		vars, ok := all(ch)
		if !ok {
			continue
		}
		for _, v := range vars {
			name, _ := stripInherit(v.Name)
			if v.Value == "" || !j.t.isDialplanName(name, custom) {
				continue
			}
			if _, known := c.DialplanValue(name); known {
				continue
			}
			if c.Dialplan == nil {
				c.Dialplan = make(map[string]string)
			}
			c.Dialplan[name] = v.Value
		}
	}
}

// isDialplanName: name starts with a dialplan prefix or is one of custom (any case).
func (t *Tracker) isDialplanName(name string, custom []string) bool {
	for _, p := range t.prefixes {
		if hasPrefixFold(name, p) {
			return true
		}
	}
	for _, n := range custom {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// maxSpellings bounds the remembered spellings of variable names.
const maxSpellings = 1024

// noteSpelling remembers how the dialplan spells a variable name that is not all upper
// case (seen in a VarSet / ChannelVarset), for reads by name after a reconnect. Lock held.
func (t *Tracker) noteSpelling(key, name string) {
	if key == name {
		return
	}
	if t.spelled == nil {
		t.spelled = make(map[string]string)
	}
	if t.spelled[key] == name {
		return
	}
	if _, ok := t.spelled[key]; !ok && len(t.spelled) >= maxSpellings {
		return
	}
	t.spelled[key] = strings.Clone(name)
}

// spellings returns the names to try, in order, for a case-sensitive read of name (AMI
// Getvar when Status is not available, ARI's variable endpoint, which has nothing like
// AllVariables): name itself, the spelling seen in the dialplan's own VarSets, upper case,
// then the usual capitalisations: "Omlcrmorigen" also tries "OmlcrmOrigen" (the prefix as
// configured, then the rest capitalised), "Omlcrmorigen" and "omlcrmorigen".
func (t *Tracker) spellings(name string) []string {
	out := []string{name}
	add := func(n string) {
		for _, o := range out {
			if o == n {
				return
			}
		}
		out = append(out, n)
	}
	key := upperASCII(name)
	t.mu.Lock()
	seen := t.spelled[key]
	t.mu.Unlock()
	if seen != "" {
		add(seen)
	}
	add(key)
	if !strings.HasPrefix(key, varPrefixOML) || t.isDialplanName(name, nil) {
		lower := strings.ToLower(name)
		for _, p := range t.prefixes {
			if hasPrefixFold(name, p) && len(name) > len(p) {
				rest := name[len(p):]
				add(p + capitalise(rest))
				add(p + strings.ToUpper(rest))
				add(p + strings.ToLower(rest))
			}
		}
		add(capitalise(name))
		add(lower)
	}
	return out
}

// capitalise: first letter upper case, the rest lower case.
func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + strings.ToLower(s[1:])
}
