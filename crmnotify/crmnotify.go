// Package crmnotify turns a call connected to an agent into the HTTP request the
// campaign's CRM expects (Render, a pure function), and carries it: server-trigger sites
// through the durable delivery queue (package crmnotify/delivery), agent and automatic
// sites to the agent's browser (package agentws).
package crmnotify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// CallData is what the call itself tells about the connect (from calls.Connected).
type CallData struct {
	CallID           string // OMniLeads call id (OMLUNIQUEID / OMLCALLID)
	AgentID          int
	Phone            string
	ContactID        string // as the dialplan set it (OMLCODCLI): "-1" when unknown
	RecFilename      string // recording base name, with ".wav" when known
	CallWaitDuration string // seconds, as a decimal string; "" when unknown
	At               time.Time
	// Dialplan holds dialplan data (Omlcrm* variables, OMLCUSTOMDIALPLANVARS headers).
	// Keys are matched case-insensitively.
	Dialplan map[string]string
}

// Input is everything Render needs. Contact and Agent may be nil (no contact identified,
// agent unknown): their parameters render empty.
type Input struct {
	Campaign *catalog.Campaign // with Site, Params and ContactDatabase
	Contact  *catalog.Contact
	Agent    *catalog.Agent
	Call     CallData
	// Disposition is set for the disposition phase (the disposition family's values).
	Disposition *Disposition
	// End is set for the call_end phase (the call_end family's values).
	End *CallEnd
}

// Field is one rendered (name, value) pair, in parameter order.
type Field struct {
	Name  string
	Value string
}

// Request is the rendered CRM request: exactly what is sent (server trigger) or what the
// browser is asked to open (agent/automatic triggers).
type Request struct {
	Method string // "GET" or "POST"
	// URL is the final URL: holders filled and, for GET, the query appended.
	URL string
	// Header holds headers the request needs beyond Content-Type (none today; delivery
	// adds auth, idempotency and signature headers).
	Header http.Header
	// ContentType is the full Content-Type of Body ("" for GET), with the multipart
	// boundary when multipart.
	ContentType string
	// Body is the POST body; nil for GET.
	Body []byte
	// Fields are the non-holder parameters in order (what went into the query or body),
	// for the browser client, which rebuilds the form itself.
	Fields []Field
}

// Notification is one rendered CRM invocation for one (call, agent, site): what the
// dispatcher hands to the delivery queue (server trigger) or to the agent hub
// (agent/automatic triggers).
type Notification struct {
	// ID is stable for (call, agent, site): NotificationID. Deliveries and pops are
	// deduplicated by it, also across instances.
	ID          string
	CallID      string
	AgentID     int
	Campaign    *catalog.Campaign // ID, Name, Type are what consumers show
	Site        *catalog.Site     // Trigger, Target, Auth, ID (signing secrets are keyed by site id)
	Request     Request
	ConnectedAt time.Time // when the call connected (calls.Connected.At): latency is measured from here
	// Missing names the values that could not be obtained yet ("contact": the OMniLeads
	// database did not answer): a pop goes out marked incomplete and is updated later
	// (Rev+1); a server delivery waits, durably, until Deferred can be rendered again.
	Missing []string
	// Deferred is set with Missing: what is needed to render the request again (Rerender).
	Deferred *Deferred
	// Rev is the revision of a pop: 0 for the first send, higher for an update of the
	// same pop (same ID) that replaces it.
	Rev int
	// Phase is the call phase notified: PhaseConnect ("" is connect too), PhaseRinging,
	// PhaseDisposition or PhaseCallEnd. ID derives from it (PhaseNotificationID).
	Phase string
	// Replaces is the id of the ringing pop this connect pop supersedes ("" when none).
	Replaces string
}

// NotificationID derives the stable id of (call, agent, site): the same inputs give the
// same id on every instance and every retry.
func NotificationID(callID string, agentID, siteID int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", callID, agentID, siteID)))
	return hex.EncodeToString(h[:16])
}
