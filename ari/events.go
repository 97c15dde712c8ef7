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
	// Timestamp is when Asterisk raised the event, parsed from "2026-11-24T01:23:00.263+0000".
	// It is the zero time when Asterisk sent none or sent text that is not a timestamp.
	Timestamp  time.Time `json:"-"`
	AsteriskID string    `json:"asterisk_id,omitempty"`
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
type ChannelCallerId struct { //nolint:revive // the name is ARI's event type
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

// newTyped returns an empty typed event for an ARI event type, or nil.
func newTyped(eventType string) Event {
	switch eventType {
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
func IsTyped(eventType string) bool { return newTyped(eventType) != nil }

// ErrMalformedEvent marks an event DecodeEvent could not decode.
var ErrMalformedEvent = errors.New("ari: malformed event")

// envelope is what every event must decode into: the common fields.
type envelope struct {
	Type        string   `json:"type"`
	Application string   `json:"application"`
	Timestamp   wireTime `json:"timestamp"`
	AsteriskID  string   `json:"asterisk_id"`
}

// wireTime decodes Asterisk's timestamp text; text that is not a timestamp gives the zero
// time rather than losing the event.
type wireTime struct{ t time.Time }

func (w *wireTime) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	w.t, _ = ParseTime(s)
	return nil
}

// DecodeEvent decodes one /ari/events message. Types with a typed form give that type (a
// pointer); every other type gives *Unknown, never an error. An error (wrapping
// ErrMalformedEvent) means the message is not a JSON object with a string "type", or a typed
// event has a field of the wrong JSON kind. DecodeEvent does not retain data.
func DecodeEvent(data []byte) (Event, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedEvent, err)
	}
	if env.Type == "" {
		return nil, fmt.Errorf("%w: no \"type\"", ErrMalformedEvent)
	}
	base := Base{Type: env.Type, Application: env.Application, Timestamp: env.Timestamp.t, AsteriskID: env.AsteriskID}
	ev := newTyped(env.Type)
	if ev == nil {
		return &Unknown{Base: base, Raw: bytes.Clone(data)}, nil
	}
	if err := json.Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformedEvent, env.Type, err)
	}
	*ev.EventBase() = base
	return ev, nil
}
