package ari

import "bytes"

// EventFilter decides, from an event message's raw JSON and without allocating, whether
// the client can skip it undecoded: its type is not among the wanted types, or it is a
// ChannelVarset whose variable AcceptVariable rejects. It is what the client runs for
// Config.EventTypes and Config.AcceptVariable; benchmarks use it to measure the same path.
type EventFilter struct {
	wanted    map[string]struct{} // nil: every type
	acceptVar func(name []byte) bool
}

// NewEventFilter returns the filter of the given types (nil: all) and variable check
// (nil: every ChannelVarset of a wanted type is decoded).
func NewEventFilter(types []string, acceptVariable func(name []byte) bool) *EventFilter {
	f := &EventFilter{acceptVar: acceptVariable}
	if types != nil {
		f.wanted = make(map[string]struct{}, len(types))
		for _, t := range types {
			f.wanted[t] = struct{}{}
		}
	}
	return f
}

var channelVarset = []byte("ChannelVarset")

// Skip reports whether data can be skipped, and the event type it was skipped for. It
// answers false whenever it is unsure (escapes, odd values: see peekType), and for
// invalid JSON, which must be decoded to be reported as malformed: the syntax check
// (validJSON) runs only for an event about to be skipped.
func (f *EventFilter) Skip(data []byte) (eventType []byte, skip bool) {
	t, skip, _ := f.scan(data)
	return t, skip
}

// Decode is Skip, then DecodeEvent of an event not skipped, with one scan of the top
// level for both (ev is nil when skipped is non-nil).
func (f *EventFilter) Decode(data []byte) (ev Event, skipped []byte, err error) {
	t, skip, hint := f.scan(data)
	if skip {
		return nil, t, nil
	}
	ev, err = decodeWithHint(data, hint)
	return ev, nil, err
}

// scan peeks at the top-level "type" (and a ChannelVarset's "variable" in the same pass)
// and decides; hint is the type for DecodeEvent's fast path (nil: unsure).
func (f *EventFilter) scan(data []byte) (eventType []byte, skip bool, hint []byte) {
	var key []byte
	if f.acceptVar != nil {
		key = variableKey
	}
	t, v, vok := peekTop(data, key)
	if len(t) == 0 {
		return nil, false, nil
	}
	if f.wanted != nil {
		if _, ok := f.wanted[string(t)]; !ok {
			return t, validJSON(data), t
		}
	}
	if vok && bytes.Equal(t, channelVarset) && !f.acceptVar(v) {
		return t, validJSON(data), t
	}
	return nil, false, t
}

var variableKey = []byte("variable")

// peekString returns the value of the top-level key (lower-case ASCII, as ARI spells its
// keys) when it appears exactly once, spelled exactly so, with a plain ASCII string value
// (no escapes); ok false otherwise ("unsure": encoding/json matches keys
// case-insensitively and keeps the last of repeated ones). It does not validate the JSON.
func peekString(data []byte, key []byte) (value []byte, ok bool) {
	_, value, ok = peekTop(data, key)
	return value, ok
}

// peekTop is peekType and peekString of key (nil: none) in one pass over the top level.
// typ is what peekType returns; a message peekType cannot follow gives nil for both.
func peekTop(data []byte, key []byte) (typ, value []byte, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, nil, false
	}
	i++
	found, typeOK := false, true
	for {
		i = skipSpace(data, i)
		if i >= len(data) {
			return nil, nil, false
		}
		switch data[i] {
		case '}':
			if !typeOK {
				typ = nil
			}
			return typ, value, found
		case ',':
			i++
			continue
		case '"':
		default:
			return nil, nil, false
		}
		end, escaped := scanString(data, i)
		if end < 0 || escaped {
			return nil, nil, false
		}
		k := data[i+1 : end-1]
		isType := string(k) == "type"
		if !isType && len(k) == 4 && bytes.EqualFold(k, typeKey) {
			typeOK = false
		}
		match := key != nil && bytes.Equal(k, key)
		if key != nil && !match && len(k) == len(key) && bytes.EqualFold(k, key) {
			found, key = false, nil // unsure from now on: never found
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, nil, false
		}
		i = skipSpace(data, i+1)
		if i >= len(data) {
			return nil, nil, false
		}
		if isType {
			switch data[i] {
			case '"':
				vend, vesc := scanString(data, i)
				if vend < 0 || vesc || !isASCII(data[i+1:vend-1]) {
					typeOK = false // non-ASCII: encoding/json may rewrite invalid UTF-8
					if vend < 0 {
						return nil, nil, false
					}
				} else {
					typ = data[i+1 : vend-1]
				}
				i = vend
				continue
			case 'n': // null leaves the type decoded so far unchanged, as in encoding/json
			default:
				typeOK = false
			}
		}
		if match {
			if found || data[i] != '"' {
				found, key = false, nil
			} else {
				vend, vesc := scanString(data, i)
				if vend < 0 {
					return nil, nil, false
				}
				if vesc || !isASCII(data[i+1:vend-1]) {
					key = nil
				} else {
					value, found = data[i+1:vend-1], true
				}
				i = vend
				continue
			}
		}
		if i = skipValue(data, i); i < 0 {
			return nil, nil, false
		}
	}
}
