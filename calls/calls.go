// Package calls turns the raw Asterisk event stream (AMI or ARI, through two thin
// adapters into one internal event type) into facts: exactly one Connected per call and
// agent, and one Ended per call. It knows nothing of HTTP or databases.
package calls

import "time"

// Connected says a call reached an agent. It is emitted once per (call, agent).
type Connected struct {
	CallID           string // OMLUNIQUEID / OMLCALLID, else the Linkedid
	LinkedID         string
	AgentID          int // ominicontacto_app_agenteprofile.id; 0 when unresolved
	AgentChannel     string
	CustomerChannel  string
	CampaignID       int
	CampaignType     int // 1 manual, 2 dialer, 3 inbound, 4 preview
	Phone            string
	ContactID        string // OMLCODCLI as set; "-1" when none
	RecordingFile    string // base name with ".wav"
	CallWaitDuration time.Duration
	// Dialplan holds dialplan data; keys compare case-insensitively (use DialplanValue).
	Dialplan map[string]string
	At       time.Time
	// Missing names the fields that were still unknown after the lazy variable reads.
	Missing []string
	// Rang: a Ringing fact was emitted for this agent and call; this connect replaces it.
	Rang bool
}

// Ended says the last channel of a call hung up. Besides the call id it carries the
// call's journal (what end-of-call notifications report).
type Ended struct {
	CallID string
	At     time.Time
	// Start is when the call's first channel appeared.
	Start time.Time
	// Agents are the agents that talked, in connect order (empty: nobody answered);
	// consecutive different agents are transfers.
	Agents []AgentLeg
	// The call's identity as its channels set it (also for unanswered calls).
	CampaignID    int
	CampaignType  int
	Phone         string
	ContactID     string
	RecordingFile string // the last recording file name seen
	// HangupBy is HangupByCustomer or HangupByAgent ("" when unknown: the call ended
	// while the event stream was down); HangupCause is the Q.850 cause of that hang-up.
	HangupBy        string
	HangupCause     int
	HangupCauseText string
}
