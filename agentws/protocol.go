package agentws

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
)

// Subprotocol is the websocket subprotocol the hub speaks. A client may offer a second
// subprotocol "token.<token>" to carry its credentials (browsers cannot set headers on a
// websocket); the hub never selects that one.
const Subprotocol = "omlcrm.v1"

// tokenSubprotocolPrefix prefixes a token carried in Sec-WebSocket-Protocol.
const tokenSubprotocolPrefix = "token."

// Message types, server → client.
const (
	TypeHello     = "hello"      // {agent_id, server_version}
	TypePop       = "crm.pop"    // see PopMessage
	TypeCallEnded = "call.ended" // {call_id}
	// TypePopWithdrawn {id, reason}: remove that pop's card (a ringing pop that did not
	// become the agent's connect); reason no_answer | answered_elsewhere | hangup.
	TypePopWithdrawn = "pop.withdrawn"
	TypePopOpened    = "pop.opened" // {id}: another connection of this agent opened the pop
	TypePong         = "pong"       // answer to ping
	TypeError        = "error"      // {error}: the last client message was refused
)

// Message types, client → server.
const (
	// TypeAck {id}: the page is done with the pop (opened in a tab that outlives the
	// page, its JSON sent, or dismissed): it is not replayed on reconnect any more. Until
	// then, a pop of a call in progress is replayed when the agent's page reconnects.
	TypeAck    = "ack"
	TypeOpened = "opened" // {id}: the CRM was opened (iframe, tab or button click)
	TypePing   = "ping"   // → pong
)

// PopMessage is the crm.pop message: everything the browser needs to open the CRM.
type PopMessage struct {
	Type      string      `json:"type"`
	ID        string      `json:"id"`
	CallID    string      `json:"call_id"`
	Campaign  PopCampaign `json:"campaign"`
	Trigger   string      `json:"trigger"` // "agent" | "automatic"
	Target    string      `json:"target"`  // "embedded" | "new_tab"
	Request   PopRequest  `json:"request"`
	ExpiresAt time.Time   `json:"expires_at"`
	Replay    bool        `json:"replay,omitempty"` // re-sent on (re)connect
	Opened    bool        `json:"opened,omitempty"` // already opened by this agent (replay only)
	// Rev is the pop's revision: 0 (omitted) first; a crm.pop with a known id and a
	// higher rev replaces that card if the agent has not opened it yet.
	Rev int `json:"rev,omitempty"`
	// Incomplete is true when some values could not be obtained yet (Missing names
	// them, e.g. "contact"); an update with a higher Rev follows once they can.
	Incomplete bool     `json:"incomplete,omitempty"`
	Missing    []string `json:"missing,omitempty"`
	// Phase is the call phase: "connect" (omitted), "ringing" or "disposition".
	Phase string `json:"phase,omitempty"`
	// Replaces is the id of the ringing pop this pop supersedes (the client swaps the card).
	Replaces string `json:"replaces,omitempty"`
	// FrameRefused: the embedded site is known to refuse framing (X-Frame-Options, CSP
	// frame-ancestors); the client offers "Open CRM in a tab" instead of an iframe.
	FrameRefused bool `json:"frame_refused,omitempty"`
}

// PopCampaign identifies the campaign of a pop.
type PopCampaign struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"` // manual | dialer | inbound | preview
}

// PopRequest is the rendered CRM request. Fields are [name, value] pairs in parameter
// order; the browser rebuilds the query or form from them. Body is the rendered body
// for JSON and text/plain POSTs, which the browser sends as is.
type PopRequest struct {
	Method      string      `json:"method"`
	URL         string      `json:"url"`
	ContentType string      `json:"content_type,omitempty"`
	Fields      [][2]string `json:"fields"`
	Body        string      `json:"body,omitempty"`
}

// clientMessage is any client → server message.
type clientMessage struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// ErrNotPoppable wraps the refusal of a notification the hub cannot deliver.
var ErrNotPoppable = errors.New("notification cannot be popped to an agent")

// buildPop validates n and builds its crm.pop message.
func buildPop(n crmnotify.Notification, expiresAt time.Time) (PopMessage, error) {
	switch {
	case n.ID == "":
		return PopMessage{}, fmt.Errorf("%w: empty id", ErrNotPoppable)
	case n.AgentID <= 0:
		return PopMessage{}, fmt.Errorf("%w %s: agent id %d", ErrNotPoppable, n.ID, n.AgentID)
	case n.CallID == "":
		return PopMessage{}, fmt.Errorf("%w %s: empty call id", ErrNotPoppable, n.ID)
	case n.Site == nil:
		return PopMessage{}, fmt.Errorf("%w %s: no site", ErrNotPoppable, n.ID)
	case n.Site.Trigger != catalog.TriggerAgent && n.Site.Trigger != catalog.TriggerAutomatic &&
		!(n.Site.Trigger == catalog.TriggerDisposition && n.Phase == crmnotify.PhaseDisposition):
		return PopMessage{}, fmt.Errorf("%w %s: site %d trigger is %s (want agent or automatic, or disposition in the disposition phase)",
			ErrNotPoppable, n.ID, n.Site.ID, n.Site.Trigger)
	case n.Site.Target != catalog.TargetEmbedded && n.Site.Target != catalog.TargetNewTab:
		return PopMessage{}, fmt.Errorf("%w %s: site %d target is %q (want embedded or new_tab)",
			ErrNotPoppable, n.ID, n.Site.ID, n.Site.Target)
	case n.Request.URL == "":
		return PopMessage{}, fmt.Errorf("%w %s: site %d request has no URL", ErrNotPoppable, n.ID, n.Site.ID)
	}
	method := strings.ToUpper(n.Request.Method)
	if method != "GET" && method != "POST" {
		return PopMessage{}, fmt.Errorf("%w %s: site %d method %q", ErrNotPoppable, n.ID, n.Site.ID, n.Request.Method)
	}
	m := PopMessage{
		Type:      TypePop,
		ID:        n.ID,
		CallID:    n.CallID,
		Trigger:   n.Site.Trigger.String(),
		Target:    n.Site.Target.String(),
		ExpiresAt: expiresAt.UTC(),
		Rev:       n.Rev,
		Missing:   n.Missing,
		Replaces:  n.Replaces,
		Request: PopRequest{
			Method:      method,
			URL:         n.Request.URL,
			ContentType: n.Request.ContentType,
			Fields:      make([][2]string, len(n.Request.Fields)),
		},
	}
	m.Incomplete = len(n.Missing) > 0
	if n.Phase != "" && n.Phase != crmnotify.PhaseConnect {
		m.Phase = n.Phase
	}
	if n.Campaign != nil {
		m.Campaign = PopCampaign{ID: n.Campaign.ID, Name: n.Campaign.Name, Type: n.Campaign.Type.String()}
	}
	for i, f := range n.Request.Fields {
		m.Request.Fields[i] = [2]string{f.Name, f.Value}
	}
	if method == "POST" {
		switch mediaType(n.Request.ContentType) {
		case "application/json", "text/plain":
			m.Request.Body = string(n.Request.Body)
		}
	}
	return m, nil
}

// mediaType is the lower-cased media type of a Content-Type, without parameters.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}
