package disposition

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/omlcrm/oml-crm/agentws"
	"github.com/omlcrm/oml-crm/crmnotify"
)

// Posted is the body of POST /dispositions: a disposition an agent saved, for
// deployments without the OMniLeads database (file catalog). The agent is the one the
// bearer token names (an agent token, as minted by `oml-crm token`).
type Posted struct {
	// SaveID tells apart the saves of one disposition (each save fires, as in
	// OMniLeads); a retried post carries the same SaveID and is fired once. Empty: the
	// body's hash (an identical post is the same save).
	SaveID     string `json:"save_id"`
	CallID     string `json:"call_id"`
	CampaignID int    `json:"campaign_id"`
	ContactID  int    `json:"contact_id"`
	Phone      string `json:"phone"`
	// InteraccionCRM is the option's "Interacción CRM" (default true).
	InteraccionCRM *bool `json:"interaccion_crm"`
	Disposition    struct {
		ID             int    `json:"id"`
		Name           string `json:"name"`
		Subdisposition string `json:"subdisposition"`
		// Form is the management form's answers: a JSON object (or a string holding
		// one); rendered as Django's urlsafe base64 of its JSON text.
		Form json.RawMessage `json:"form"`
	} `json:"disposition"`
}

// maxPost bounds a posted disposition.
const maxPost = 64 << 10

// HTTPHandler serves POST /dispositions: 202 {"id"} when the notification was queued or
// popped, 200 {"ignored"} when nothing fires (no disposition site, no CRM interaction),
// 400 on a bad body, 401 without a valid agent token.
func HTTPHandler(tokenSecret []byte, handle Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			httpError(w, http.StatusMethodNotAllowed, "POST a disposition")
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		agentID, err := agentws.VerifyToken(tokenSecret, strings.TrimSpace(tok), time.Now())
		if !ok || err != nil {
			httpError(w, http.StatusUnauthorized, "an agent token is required (Authorization: Bearer <oml-crm token>)")
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxPost+1))
		if err != nil || len(body) > maxPost {
			httpError(w, http.StatusBadRequest, "the body is unreadable or larger than 64 KiB")
			return
		}
		var p Posted
		if err := json.Unmarshal(body, &p); err != nil {
			httpError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		if p.CallID == "" || p.CampaignID <= 0 || p.Disposition.ID <= 0 {
			httpError(w, http.StatusBadRequest, "call_id, campaign_id and disposition.id are required")
			return
		}
		form := ""
		if f := p.Disposition.Form; len(f) > 0 && string(f) != "null" {
			var s string
			if json.Unmarshal(f, &s) == nil {
				form = s
			} else {
				form = string(f)
			}
		}
		seq := p.SaveID
		if seq == "" {
			h := sha256.Sum256(body)
			seq = "http-" + hex.EncodeToString(h[:12])
		}
		ev := crmnotify.DispositionEvent{
			Seq: seq, CallID: p.CallID, AgentID: agentID, CampaignID: p.CampaignID, ContactID: p.ContactID,
			Phone: p.Phone, At: time.Now(), FiresCRM: p.InteraccionCRM == nil || *p.InteraccionCRM,
			Disposition: crmnotify.Disposition{ID: p.Disposition.ID, Name: p.Disposition.Name,
				Subdisposition: p.Disposition.Subdisposition, FormJSON: form},
		}
		n, err := handle(r.Context(), ev)
		switch {
		case errors.Is(err, crmnotify.ErrDispositionIgnored):
			writeJSON(w, http.StatusOK, map[string]string{"ignored": err.Error()})
		case err != nil:
			httpError(w, http.StatusServiceUnavailable, err.Error())
		default:
			writeJSON(w, http.StatusAccepted, map[string]string{"id": n.ID, "phase": n.Phase})
		}
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
