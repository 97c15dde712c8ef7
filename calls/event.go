package calls

import "time"

// Kind says what happened in an Event.
type Kind uint8

// The event kinds the state machine understands. Everything else is dropped by the adapters.
const (
	// KindChannel: a channel exists (Newchannel / ChannelCreated, or any event naming a
	// channel the tracker has not seen yet).
	KindChannel Kind = iota + 1
	// KindVar: Name=Value was set on Channel (VarSet / ChannelVarset).
	KindVar
	// KindDialAnswer: Channel (the caller) dialed Peer and Peer answered (DialEnd / Dial
	// with status ANSWER and a caller). Who is the agent is decided at bridge time.
	KindDialAnswer
	// KindAgentConnect: a queue connected Channel (the customer) to Peer (the agent).
	KindAgentConnect
	// KindBridgeEnter / KindBridgeLeave: Channel entered or left Bridge.
	KindBridgeEnter
	KindBridgeLeave
	// KindHangup: Channel is gone (Hangup / ChannelDestroyed), with Cause.
	KindHangup
	// KindAgentCalled: a queue rings Peer (an agent's leg) for Channel (the customer):
	// AMI AgentCalled, ARI a Dial beginning (no dial status yet).
	KindAgentCalled
	// KindDialEnd: Channel's dial of Peer ended without an answer; Value is the dial
	// status (CANCEL, NOANSWER, BUSY, CHANUNAVAIL, CONGESTION).
	KindDialEnd
)

// ChannelRef names a channel: ID is the Asterisk Uniqueid (AMI) or channel id (ARI, the
// same value); LinkedID is the call's Linkedid when the source reports it (AMI does, ARI
// does not).
type ChannelRef struct {
	ID       string
	Name     string
	LinkedID string
}

// Var is one channel variable as the source reported it (a leading "__" or "_" is kept;
// the tracker strips it).
type Var struct {
	Name  string
	Value string
}

// Event is the source-agnostic input of the state machine. Adapters (HandleAMI,
// HandleARI) build it; tests and other sources may feed it directly with Handle.
// Strings may point into a buffer the source reuses: the tracker copies what it keeps.
type Event struct {
	Kind    Kind
	At      time.Time // zero: the tracker's clock
	Channel ChannelRef
	Peer    ChannelRef // KindDialAnswer, KindAgentConnect
	Bridge  string     // KindBridgeEnter / KindBridgeLeave

	// KindVar
	Name, Value string

	// Vars and PeerVars carry channelvars (AMI ChanVariable / DestChanVariable, ARI
	// "channelvars") reported with any event; empty values mean "unset" and are ignored.
	Vars, PeerVars []Var

	// KindAgentConnect: the queue member name ("<agent id>_<name>") and the seconds the
	// caller waited (HoldTime).
	MemberName string
	HoldTime   time.Duration

	// KindHangup: the Q.850 hang-up cause and its text (AMI Cause / Cause-txt, ARI
	// cause / cause_txt).
	Cause     int
	CauseText string
}

// SnapshotChannel is one live channel in a Resync snapshot.
type SnapshotChannel struct {
	ChannelRef
	// Bridge is the bridge the channel is in, when the source says (AMI BridgeId).
	Bridge string
	// App is the dialplan application the channel runs (Queue, AppQueue, Dial, AppDial,
	// Stasis...): it tells the caller from the callee of a bridged pair.
	App  string
	Vars []Var
	// Created is when Asterisk created the channel, when the source says (AMI: now less
	// CoreShowChannel's Duration; ARI: creationtime); zero: unknown.
	Created time.Time
}
