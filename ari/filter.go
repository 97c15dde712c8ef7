package ari

import (
	"bytes"
	"encoding/json"
)

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
// invalid JSON, which must be decoded to be reported as malformed: json.Valid runs only
// for an event about to be skipped.
func (f *EventFilter) Skip(data []byte) (eventType []byte, skip bool) {
	if f.wanted == nil && f.acceptVar == nil {
		return nil, false
	}
	t := peekType(data)
	if len(t) == 0 {
		return nil, false
	}
	if f.wanted != nil {
		if _, ok := f.wanted[string(t)]; !ok {
			return t, json.Valid(data)
		}
	}
	if f.acceptVar != nil && bytes.Equal(t, channelVarset) {
		if v, ok := peekString(data, variableKey); ok && !f.acceptVar(v) {
			return t, json.Valid(data)
		}
	}
	return nil, false
}

var variableKey = []byte("variable")

// peekString returns the value of the top-level key (lower-case ASCII, as ARI spells its
// keys) when it appears exactly once, spelled exactly so, with a plain ASCII string value
// (no escapes); ok false otherwise ("unsure": encoding/json matches keys
// case-insensitively and keeps the last of repeated ones). It does not validate the JSON.
func peekString(data []byte, key []byte) (value []byte, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i++
	found := false
	for {
		i = skipSpace(data, i)
		if i >= len(data) {
			return nil, false
		}
		switch data[i] {
		case '}':
			return value, found
		case ',':
			i++
			continue
		case '"':
		default:
			return nil, false
		}
		end, escaped := scanString(data, i)
		if end < 0 || escaped {
			return nil, false
		}
		k := data[i+1 : end-1]
		match := bytes.Equal(k, key)
		if !match && len(k) == len(key) && bytes.EqualFold(k, key) {
			return nil, false
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		i = skipSpace(data, i+1)
		if i >= len(data) {
			return nil, false
		}
		if match {
			if found || data[i] != '"' {
				return nil, false
			}
			vend, vesc := scanString(data, i)
			if vend < 0 || vesc || !isASCII(data[i+1:vend-1]) {
				return nil, false
			}
			value, found = data[i+1:vend-1], true
			i = vend
			continue
		}
		if i = skipValue(data, i); i < 0 {
			return nil, false
		}
	}
}
