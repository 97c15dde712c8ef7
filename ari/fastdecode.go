package ari

import "unicode/utf8"

// fastDecode decodes the event types the call tracker keeps (calls.ARIEventTypes) in one
// pass over data, without reflection, into the struct encoding/json would fill for hint.
// It handles only the plain form Asterisk sends and gives up (ok false) on anything else,
// which DecodeEvent then decodes with encoding/json. When ok, the result is exactly what
// json.Unmarshal into the typed struct gives (without error) and its type is hint.
//
// It gives up on: any key that is not one of the object's struct tags spelled exactly (so
// a differently-cased key, which encoding/json would match, and an unknown key, which it
// would skip, go the slow way); a repeated key of a struct (encoding/json merges repeats); a string with a backslash escape, a control character or invalid UTF-8 (which
// encoding/json rejects or rewrites); null; a value of another JSON kind than the field's; an
// integer that is not plain digits (fraction, exponent, more than 18 digits, leading
// zero); anything after the top-level object but whitespace; any type it has no code for.
// Strings are copies: nothing returned aliases data.
func fastDecode(data, hint []byte) (Event, bool) {
	d := fastDecoder{data: data}
	var ev Event
	var ok bool
	switch string(hint) {
	case "ChannelVarset":
		e := &ChannelVarset{}
		ev, ok = e, d.object(func(key []byte) (uint32, bool) {
			switch string(key) {
			case "variable":
				return 1 << 4, d.str(&e.Variable)
			case "value":
				return 1 << 5, d.str(&e.Value)
			case "channel":
				return 1 << 6, d.channel(&e.Channel)
			}
			return d.base(&e.Base, key)
		})
	case "ChannelCreated":
		e := &ChannelCreated{}
		ev, ok = e, d.object(d.channelEvent(&e.Base, &e.Channel))
	case "StasisEnd":
		e := &StasisEnd{}
		ev, ok = e, d.object(d.channelEvent(&e.Base, &e.Channel))
	case "StasisStart":
		e := &StasisStart{}
		ev, ok = e, d.object(func(key []byte) (uint32, bool) {
			switch string(key) {
			case "args":
				return 1 << 4, d.strings(&e.Args)
			case "channel":
				return 1 << 5, d.channel(&e.Channel)
			case "replace_channel":
				return 1 << 6, d.channel(&e.ReplaceChannel)
			}
			return d.base(&e.Base, key)
		})
	case "ChannelDestroyed":
		e := &ChannelDestroyed{}
		ev, ok = e, d.object(func(key []byte) (uint32, bool) {
			switch string(key) {
			case "cause":
				n, ok := d.int()
				e.Cause = int(n)
				return 1 << 4, ok
			case "cause_txt":
				return 1 << 5, d.str(&e.CauseTxt)
			case "channel":
				return 1 << 6, d.channel(&e.Channel)
			}
			return d.base(&e.Base, key)
		})
	case "ChannelEnteredBridge":
		e := &ChannelEnteredBridge{}
		ev, ok = e, d.object(d.bridgeEvent(&e.Base, &e.Bridge, &e.Channel))
	case "ChannelLeftBridge":
		e := &ChannelLeftBridge{}
		ev, ok = e, d.object(d.bridgeEvent(&e.Base, &e.Bridge, &e.Channel))
	case "Dial":
		e := &DialEvent{}
		ev, ok = e, d.object(func(key []byte) (uint32, bool) {
			switch string(key) {
			case "caller":
				return 1 << 4, d.channel(&e.Caller)
			case "peer":
				return 1 << 5, d.channel(&e.Peer)
			case "forwarded":
				return 1 << 6, d.channel(&e.Forwarded)
			case "forward":
				return 1 << 7, d.str(&e.Forward)
			case "dialstring":
				return 1 << 8, d.str(&e.Dialstring)
			case "dialstatus":
				return 1 << 9, d.str(&e.Dialstatus)
			}
			return d.base(&e.Base, key)
		})
	default:
		return nil, false
	}
	if !ok || !d.end() || ev.EventType() != string(hint) {
		return nil, false
	}
	return ev, true
}

// channelEvent is the field function of an event made of the common fields and a channel.
func (d *fastDecoder) channelEvent(b *Base, ch *Channel) func(key []byte) (uint32, bool) {
	return func(key []byte) (uint32, bool) {
		if string(key) == "channel" {
			return 1 << 4, d.channel(ch)
		}
		return d.base(b, key)
	}
}

// bridgeEvent is the field function of an event made of the common fields, a bridge and
// a channel.
func (d *fastDecoder) bridgeEvent(b *Base, br *Bridge, ch *Channel) func(key []byte) (uint32, bool) {
	return func(key []byte) (uint32, bool) {
		switch string(key) {
		case "bridge":
			return 1 << 4, d.bridge(br)
		case "channel":
			return 1 << 5, d.channel(ch)
		}
		return d.base(b, key)
	}
}

// fastDecoder walks data; every method starts at (or skips to) the next non-space byte and
// answers false to give up.
type fastDecoder struct {
	data []byte
	i    int
}

// space skips whitespace. It is skipSpace written as a switch: calling skipSpace here
// measured +200 instructions per event on BenchmarkDecodeCapturesDaemon (callgrind).
func (d *fastDecoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// next skips space and returns the byte there (0 at the end).
func (d *fastDecoder) next() byte {
	d.space()
	if d.i >= len(d.data) {
		return 0
	}
	return d.data[d.i]
}

// end reports whether only space is left.
func (d *fastDecoder) end() bool {
	d.space()
	return d.i == len(d.data)
}

// object walks an object whose keys are struct fields. field is called for each key with
// the decoder at its value; it decodes the value and returns the field's bit (0 for none),
// or false to give up. A repeated bit gives up.
func (d *fastDecoder) object(field func(key []byte) (uint32, bool)) bool {
	if d.next() != '{' {
		return false
	}
	d.i++
	if d.next() == '}' {
		d.i++
		return true
	}
	var seen uint32
	for {
		key, ok := d.plain()
		if !ok || d.next() != ':' {
			return false
		}
		d.i++
		bit, ok := field(key)
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		switch d.next() {
		case ',':
			d.i++
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// plain returns the bytes of a string value (aliasing data) when it holds no escape and no
// control character and is valid UTF-8: then encoding/json decodes it to exactly these bytes.
func (d *fastDecoder) plain() ([]byte, bool) {
	if d.next() != '"' {
		return nil, false
	}
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.data); j++ {
		c := d.data[j]
		switch {
		case c == '"':
			s := d.data[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			d.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// str decodes a string into *p (a copy).
func (d *fastDecoder) str(p *string) bool {
	s, ok := d.plain()
	if ok {
		*p = string(s)
	}
	return ok
}

// int decodes an integer of at most 18 digits, which fits any int type here without
// overflow, in JSON's syntax (no leading zero) and with nothing that would make it a
// non-integer (fraction, exponent).
func (d *fastDecoder) int() (int64, bool) {
	d.space()
	neg := false
	if d.i < len(d.data) && d.data[d.i] == '-' {
		neg = true
		d.i++
	}
	start := d.i
	var n int64
	for d.i < len(d.data) && d.data[d.i] >= '0' && d.data[d.i] <= '9' {
		n = n*10 + int64(d.data[d.i]-'0')
		d.i++
	}
	digits := d.i - start
	if digits == 0 || digits > 18 || digits > 1 && d.data[start] == '0' {
		return 0, false
	}
	if d.i < len(d.data) {
		switch d.data[d.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
		default:
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

// strings decodes an array of strings; [] gives an empty non-nil slice, as encoding/json.
func (d *fastDecoder) strings(p *[]string) bool {
	if d.next() != '[' {
		return false
	}
	d.i++
	out := []string{}
	if d.next() == ']' {
		d.i++
		*p = out
		return true
	}
	for {
		var s string
		if !d.str(&s) {
			return false
		}
		out = append(out, s)
		switch d.next() {
		case ',':
			d.i++
		case ']':
			d.i++
			*p = out
			return true
		default:
			return false
		}
	}
}

// vars decodes an object of strings into a new map ({} gives an empty non-nil map, as
// encoding/json); a repeated key keeps its last value, as encoding/json.
func (d *fastDecoder) vars(p *map[string]string) bool {
	if d.next() != '{' {
		return false
	}
	d.i++
	m := map[string]string{}
	if d.next() == '}' {
		d.i++
		*p = m
		return true
	}
	for {
		k, ok := d.plain()
		if !ok || d.next() != ':' {
			return false
		}
		d.i++
		var v string
		if !d.str(&v) {
			return false
		}
		m[string(k)] = v
		switch d.next() {
		case ',':
			d.i++
		case '}':
			d.i++
			*p = m
			return true
		default:
			return false
		}
	}
}

// base decodes the fields every event has (bits 0 to 3); any other key gives up.
func (d *fastDecoder) base(b *Base, key []byte) (uint32, bool) {
	switch string(key) {
	case "type":
		return 1 << 0, d.str(&b.Type)
	case "application":
		return 1 << 1, d.str(&b.Application)
	case "timestamp":
		return 1 << 2, d.str(&b.TimestampText)
	case "asterisk_id":
		return 1 << 3, d.str(&b.AsteriskID)
	}
	return 0, false
}

func (d *fastDecoder) channel(c *Channel) bool {
	return d.object(func(key []byte) (uint32, bool) {
		switch string(key) {
		case "id":
			return 1 << 0, d.str(&c.ID)
		case "name":
			return 1 << 1, d.str(&c.Name)
		case "state":
			return 1 << 2, d.str(&c.State)
		case "protocol_id":
			return 1 << 3, d.str(&c.ProtocolID)
		case "caller":
			return 1 << 4, d.callerID(&c.Caller)
		case "connected":
			return 1 << 5, d.callerID(&c.Connected)
		case "accountcode":
			return 1 << 6, d.str(&c.Accountcode)
		case "dialplan":
			return 1 << 7, d.dialplan(&c.Dialplan)
		case "creationtime":
			return 1 << 8, d.str(&c.Creationtime)
		case "language":
			return 1 << 9, d.str(&c.Language)
		case "channelvars":
			return 1 << 10, d.vars(&c.ChannelVars)
		case "caller_rdnis":
			return 1 << 11, d.str(&c.CallerRDNIS)
		case "tenantid":
			return 1 << 12, d.str(&c.TenantID)
		}
		return 0, false
	})
}

func (d *fastDecoder) callerID(c *CallerID) bool {
	return d.object(func(key []byte) (uint32, bool) {
		switch string(key) {
		case "name":
			return 1 << 0, d.str(&c.Name)
		case "number":
			return 1 << 1, d.str(&c.Number)
		}
		return 0, false
	})
}

func (d *fastDecoder) dialplan(p *DialplanCEP) bool {
	return d.object(func(key []byte) (uint32, bool) {
		switch string(key) {
		case "context":
			return 1 << 0, d.str(&p.Context)
		case "exten":
			return 1 << 1, d.str(&p.Exten)
		case "priority":
			n, ok := d.int()
			p.Priority = n
			return 1 << 2, ok
		case "app_name":
			return 1 << 3, d.str(&p.AppName)
		case "app_data":
			return 1 << 4, d.str(&p.AppData)
		}
		return 0, false
	})
}

func (d *fastDecoder) bridge(b *Bridge) bool {
	return d.object(func(key []byte) (uint32, bool) {
		switch string(key) {
		case "id":
			return 1 << 0, d.str(&b.ID)
		case "technology":
			return 1 << 1, d.str(&b.Technology)
		case "bridge_type":
			return 1 << 2, d.str(&b.BridgeType)
		case "bridge_class":
			return 1 << 3, d.str(&b.BridgeClass)
		case "creator":
			return 1 << 4, d.str(&b.Creator)
		case "name":
			return 1 << 5, d.str(&b.Name)
		case "channels":
			return 1 << 6, d.strings(&b.Channels)
		case "creationtime":
			return 1 << 7, d.str(&b.Creationtime)
		case "video_mode":
			return 1 << 8, d.str(&b.VideoMode)
		case "video_source_id":
			return 1 << 9, d.str(&b.VideoSourceID)
		}
		return 0, false
	})
}
