package ari

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event is one message of the /ari/events websocket. DecodeEvent returns a pointer to one of
// the typed events below (*StasisStart, *DialEvent, …) or *Unknown for every other type. Only the
// pointer types implement Event, so a type switch written with a value case
// (case ari.DialEvent:) does not compile.
type Event interface {
	// EventType is the event's "type" ("StasisStart", "Dial", …).
	EventType() string
	// EventBase returns the fields every event carries.
	EventBase() *Base
}

// Base holds the fields common to every ARI event.
type Base struct {
	Type        string `json:"type"`
	Application string `json:"application"`
	// Timestamp is when Asterisk raised the event, parsed from TimestampText. It is the zero
	// time when Asterisk sent none or sent text that is not a timestamp (the event is kept).
	Timestamp time.Time `json:"-"`
	// TimestampText is the timestamp as Asterisk wrote it ("2026-11-24T01:23:00.263+0000").
	TimestampText string `json:"timestamp"`
	AsteriskID    string `json:"asterisk_id,omitempty"`
}

// EventType returns the event's "type".
func (b *Base) EventType() string { return b.Type }

// EventBase returns b itself.
func (b *Base) EventBase() *Base { return b }

// Optional channels and bridges (a global ChannelVarset has no channel, a Dial may have no
// caller) are the zero value when Asterisk omits them: test Channel.ID != "".

// StasisStart: a channel entered a Stasis application (sent only to that application).
type StasisStart struct {
	Base
	// Args are the arguments of Stasis(app,arg1,arg2,…) or of the originate.
	Args           []string `json:"args"`
	Channel        Channel  `json:"channel"`
	ReplaceChannel Channel  `json:"replace_channel"`
}

// StasisEnd: a channel left its Stasis application.
type StasisEnd struct {
	Base
	Channel Channel `json:"channel"`
}

// ChannelCreated: a channel was created.
type ChannelCreated struct {
	Base
	Channel Channel `json:"channel"`
}

// ChannelDestroyed: a channel was hung up and destroyed.
type ChannelDestroyed struct {
	Base
	Cause    int     `json:"cause"`
	CauseTxt string  `json:"cause_txt"`
	Channel  Channel `json:"channel"`
}

// ChannelVarset: a channel (or, without channel, a global) variable was set. Inherited
// variables keep their "__" or "_" prefix in Variable.
type ChannelVarset struct {
	Base
	Variable string  `json:"variable"`
	Value    string  `json:"value"`
	Channel  Channel `json:"channel"`
}

// ChannelDialplan: a channel moved to another dialplan application.
type ChannelDialplan struct {
	Base
	DialplanApp     string  `json:"dialplan_app"`
	DialplanAppData string  `json:"dialplan_app_data"`
	Channel         Channel `json:"channel"`
}

// ChannelStateChange: a channel's state (Down, Ring, Up, …) changed.
type ChannelStateChange struct {
	Base
	Channel Channel `json:"channel"`
}

// ChannelEnteredBridge: a channel entered a bridge.
type ChannelEnteredBridge struct {
	Base
	Bridge  Bridge  `json:"bridge"`
	Channel Channel `json:"channel"`
}

// ChannelLeftBridge: a channel left a bridge.
type ChannelLeftBridge struct {
	Base
	Bridge  Bridge  `json:"bridge"`
	Channel Channel `json:"channel"`
}

// ChannelHangupRequest: a hangup was requested on a channel.
type ChannelHangupRequest struct {
	Base
	Cause   int     `json:"cause"`
	Soft    bool    `json:"soft"`
	Channel Channel `json:"channel"`
}

// ChannelConnectedLine: a channel's connected line changed.
type ChannelConnectedLine struct {
	Base
	Channel Channel `json:"channel"`
}

// ChannelCallerId: a channel's caller id changed.
type ChannelCallerId struct { // ARI spells it "Id"
	Base
	CallerPresentation    int     `json:"caller_presentation"`
	CallerPresentationTxt string  `json:"caller_presentation_txt"`
	Channel               Channel `json:"channel"`
}

// ChannelUserevent: a UserEvent was raised (dialplan UserEvent() or POST /events/user).
type ChannelUserevent struct {
	Base
	Eventname string  `json:"eventname"`
	Channel   Channel `json:"channel"`
	Bridge    Bridge  `json:"bridge"`
	// Userevent is the event's custom data as Asterisk sent it.
	Userevent json.RawMessage `json:"userevent"`
}

// DialEvent is ARI's "Dial" event (named DialEvent because Dial connects the client): the
// state of a dial attempt changed. Dialstatus is "" when the attempt starts and
// "ANSWER", "BUSY", "CANCEL", "NOANSWER", … when it ends. Caller is absent (ID "") when the
// dial was not made by a channel (an originate).
type DialEvent struct {
	Base
	Caller     Channel `json:"caller"`
	Peer       Channel `json:"peer"`
	Forwarded  Channel `json:"forwarded"`
	Forward    string  `json:"forward"`
	Dialstring string  `json:"dialstring"`
	Dialstatus string  `json:"dialstatus"`
}

// BridgeCreated: a bridge was created.
type BridgeCreated struct {
	Base
	Bridge Bridge `json:"bridge"`
}

// BridgeDestroyed: a bridge was destroyed.
type BridgeDestroyed struct {
	Base
	Bridge Bridge `json:"bridge"`
}

// BridgeBlindTransfer: a blind transfer was made (Channel is the transferer).
type BridgeBlindTransfer struct {
	Base
	Channel        Channel `json:"channel"`
	ReplaceChannel Channel `json:"replace_channel"`
	Transferee     Channel `json:"transferee"`
	Exten          string  `json:"exten"`
	Context        string  `json:"context"`
	Result         string  `json:"result"`
	IsExternal     bool    `json:"is_external"`
	Bridge         Bridge  `json:"bridge"`
}

// DeviceStateChanged: a device's state changed.
type DeviceStateChanged struct {
	Base
	DeviceState DeviceState `json:"device_state"`
}

// Unknown is any event without a typed form here. Raw is the event's complete JSON (a copy
// the consumer owns).
type Unknown struct {
	Base
	Raw json.RawMessage `json:"-"`
}

// newTyped returns an empty typed event for an ARI event type, or nil. It takes bytes so the
// decoder's fast path looks the type up without allocating.
func newTyped(eventType []byte) Event {
	switch string(eventType) {
	case "StasisStart":
		return &StasisStart{}
	case "StasisEnd":
		return &StasisEnd{}
	case "ChannelCreated":
		return &ChannelCreated{}
	case "ChannelDestroyed":
		return &ChannelDestroyed{}
	case "ChannelVarset":
		return &ChannelVarset{}
	case "ChannelDialplan":
		return &ChannelDialplan{}
	case "ChannelStateChange":
		return &ChannelStateChange{}
	case "ChannelEnteredBridge":
		return &ChannelEnteredBridge{}
	case "ChannelLeftBridge":
		return &ChannelLeftBridge{}
	case "ChannelHangupRequest":
		return &ChannelHangupRequest{}
	case "ChannelConnectedLine":
		return &ChannelConnectedLine{}
	case "ChannelCallerId":
		return &ChannelCallerId{}
	case "ChannelUserevent":
		return &ChannelUserevent{}
	case "Dial":
		return &DialEvent{}
	case "BridgeCreated":
		return &BridgeCreated{}
	case "BridgeDestroyed":
		return &BridgeDestroyed{}
	case "BridgeBlindTransfer":
		return &BridgeBlindTransfer{}
	case "DeviceStateChanged":
		return &DeviceStateChanged{}
	}
	return nil
}

// IsTyped reports whether DecodeEvent has a typed form for eventType.
func IsTyped(eventType string) bool { return newTyped([]byte(eventType)) != nil }

// ErrMalformedEvent marks an event DecodeEvent could not decode.
var ErrMalformedEvent = errors.New("ari: malformed event")

// DecodeEvent decodes one /ari/events message. Types with a typed form give that type (a
// pointer); every other type gives *Unknown, never an error. An error (wrapping
// ErrMalformedEvent) means the message is not a JSON object with a string "type", or a typed
// event has a field of the wrong JSON kind. DecodeEvent does not retain data.
//
// The result is exactly that of decoding the common fields with encoding/json, then the
// whole message into the struct of the type found. Two shortcuts give the same result: a
// quick scan naming a typed event saves the first pass (the full decode confirms it), and
// for the types the tracker keeps, fastDecode replaces encoding/json on the plain form
// Asterisk sends (anything else still goes through encoding/json).
func DecodeEvent(data []byte) (Event, error) {
	return decodeWithHint(data, peekType(data))
}

// decodeWithHint is DecodeEvent with the type already peeked (nil: unsure).
func decodeWithHint(data, hint []byte) (Event, error) {
	if hint != nil {
		if ev, ok := fastDecode(data, hint); ok {
			finishBase(ev.EventBase())
			return ev, nil
		}
	}
	return decodeJSON(data, hint)
}

// decodeJSON is decodeWithHint with encoding/json alone.
func decodeJSON(data, hint []byte) (Event, error) {
	if hint != nil {
		if ev := newTyped(hint); ev != nil {
			if err := json.Unmarshal(data, ev); err == nil && ev.EventType() == string(hint) {
				finishBase(ev.EventBase())
				return ev, nil
			}
		}
	}
	var base Base
	if err := json.Unmarshal(data, &base); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedEvent, err)
	}
	if base.Type == "" {
		return nil, fmt.Errorf("%w: no \"type\"", ErrMalformedEvent)
	}
	ev := newTyped([]byte(base.Type))
	if ev == nil {
		finishBase(&base)
		return &Unknown{Base: base, Raw: bytes.Clone(data)}, nil
	}
	if err := json.Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformedEvent, base.Type, err)
	}
	finishBase(ev.EventBase())
	return ev, nil
}

func finishBase(b *Base) {
	if b.TimestampText != "" {
		b.Timestamp, _ = ParseTime(b.TimestampText)
	}
}

// peekType returns the value of the last top-level "type" key when the message is an object
// and that value is a plain string (no escapes); nil otherwise. It is only a hint: it does
// not validate the JSON, and DecodeEvent confirms it with the real decoder.
//
// Only keys at nesting depth 1 are looked at (nested values are skipped whole, strings
// included). It answers nil ("unsure") whenever encoding/json could see a different type:
// a top-level key with escapes, a key that is "type" in another case (encoding/json matches
// keys case-insensitively), a "type" whose value is neither a plain ASCII string nor null,
// or a message it cannot follow.
func peekType(data []byte) []byte {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil
	}
	i++
	var found []byte
	for {
		i = skipSpace(data, i)
		if i >= len(data) {
			return nil
		}
		switch data[i] {
		case '}':
			return found
		case ',':
			i++
			continue
		case '"':
		default:
			return nil
		}
		end, escaped := scanString(data, i)
		if end < 0 || escaped {
			return nil
		}
		key := data[i+1 : end-1]
		isType := string(key) == "type"
		if !isType && len(key) == 4 && bytes.EqualFold(key, typeKey) {
			return nil
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return nil
		}
		i = skipSpace(data, i+1)
		if i >= len(data) {
			return nil
		}
		if isType {
			switch data[i] {
			case '"':
				vend, vesc := scanString(data, i)
				if vend < 0 || vesc || !isASCII(data[i+1:vend-1]) {
					return nil // non-ASCII: encoding/json may rewrite invalid UTF-8
				}
				found = data[i+1 : vend-1]
				i = vend
				continue
			case 'n': // null leaves the type decoded so far unchanged, as in encoding/json
			default:
				return nil
			}
		}
		if i = skipValue(data, i); i < 0 {
			return nil
		}
	}
}

var typeKey = []byte("type")

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// ScanEventType reads an event message's top-level "type" without decoding it: ok is true
// only when data is syntactically valid JSON and eventType is certainly the type DecodeEvent
// would find (the bytes alias data). ok false means "unsure, decode to know", not "invalid".
// It does not allocate.
func ScanEventType(data []byte) (eventType []byte, ok bool) {
	t := peekType(data)
	if len(t) == 0 || !validJSON(data) { // "type":"" is an error for DecodeEvent
		return nil, false
	}
	return t, true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// scanString takes data[i] == '"' and returns the index after the closing quote (-1 if
// none) and whether the string holds escapes.
func scanString(data []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, escaped
}

// skipValue returns the index after the value starting at data[i], or -1.
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		end, _ := scanString(data, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				end, _ := scanString(data, i)
				if end < 0 {
					return -1
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// PeekType is the event's top-level "type" read without decoding (see peekType), or nil
// when a scan cannot be sure of it: then decode the message to know. Fakes of Asterisk
// use it to apply an application's event filter at the cost of a scan.
func PeekType(data []byte) []byte { return peekType(data) }
