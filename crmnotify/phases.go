package crmnotify

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// Phases of a call a notification is about. Connect is the original one; its ids are
// NotificationID's.
const (
	PhaseConnect     = "connect"
	PhaseRinging     = "ringing"
	PhaseDisposition = "disposition"
	PhaseCallEnd     = "call_end"
)

// PhaseNotificationID derives the stable id of (call, agent, site, phase): equal to
// NotificationID for PhaseConnect (so queued connects keep their Idempotency-Key), a
// distinct id for any other phase. A phase that may happen several times for one call
// and agent (a disposition edited) names its occurrence in phase ("disposition:812").
func PhaseNotificationID(callID string, agentID, siteID int, phase string) string {
	if phase == "" || phase == PhaseConnect {
		return NotificationID(callID, agentID, siteID)
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d\x00%s", callID, agentID, siteID, phase)))
	return hex.EncodeToString(h[:16])
}

// Disposition is what an agent saved (OMniLeads' trigger 4 "Calificación"): the values
// of the disposition parameter family.
type Disposition struct {
	ID             int    // ominicontacto_app_calificacioncliente.id
	Name           string // the option's nombre
	Subdisposition string // subcalificacion ("" when none)
	// FormJSON is the management form's answers as OMniLeads stores them
	// (RespuestaFormularioGestion.metadata), "" for a disposition without form.
	FormJSON string
}

// EncodeForm is the disposition parameter `form`: Django's urlsafe_base64_encode of the
// form JSON (URL-safe alphabet, no '=' padding), "" without a form.
func EncodeForm(formJSON string) string {
	if formJSON == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(formJSON))
}

// Transfer is one agent-to-agent hand-over of a call.
type Transfer struct {
	From, To int // agent ids (0: unresolved)
	At       time.Time
}

// CallEnd is a call's journal: the values of the call_end family.
type CallEnd struct {
	Answered           bool
	Start, Answer, End time.Time // Answer zero when nobody answered
	Agents             []int     // every agent that talked, in order
	Transfers          []Transfer
	HangupBy           string // "customer", "agent" or "" (unknown, e.g. recovered after a reconnect)
	HangupCause        int    // Q.850 cause (16 normal clearing); 0 unknown
	HangupCauseText    string
	Recording          string // the final recording file name
}

// WaitSeconds is from the start of the call to the answer (to the end when unanswered).
func (e *CallEnd) WaitSeconds() int {
	to := e.Answer
	if to.IsZero() {
		to = e.End
	}
	if to.Before(e.Start) {
		return 0
	}
	return int(to.Sub(e.Start).Round(time.Second) / time.Second)
}

// TalkSeconds is from the answer to the end (0 when unanswered).
func (e *CallEnd) TalkSeconds() int {
	if e.Answer.IsZero() || e.End.Before(e.Answer) {
		return 0
	}
	return int(e.End.Sub(e.Answer).Round(time.Second) / time.Second)
}

// callEndTime renders a journal time: UTC as DatetimeLayout, "" when unknown.
func callEndTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(DatetimeLayout)
}

func dispositionValue(in Input, source string) (string, bool, error) {
	d := in.Disposition
	switch source {
	case "id":
		if d == nil || d.ID == 0 {
			return "", false, nil
		}
		return strconv.Itoa(d.ID), true, nil
	case "name":
		if d == nil {
			return "", false, nil
		}
		return d.Name, false, nil
	case "subdisposition":
		if d == nil {
			return "", false, nil
		}
		return d.Subdisposition, false, nil
	case "form":
		if d == nil {
			return "", false, nil
		}
		return EncodeForm(d.FormJSON), false, nil
	}
	return "", false, fmt.Errorf("unknown disposition data %q (valid: %s): %w",
		source, strings.Join(catalog.DispositionSources, ", "), ErrMisconfigured)
}

func callEndValue(in Input, source string) (string, bool, error) {
	e := in.End
	if !containsString(catalog.CallEndSources, source) {
		return "", false, fmt.Errorf("unknown call_end data %q (valid: %s): %w",
			source, strings.Join(catalog.CallEndSources, ", "), ErrMisconfigured)
	}
	if e == nil {
		return "", false, nil
	}
	switch source {
	case "answered":
		return strconv.FormatBool(e.Answered), false, nil
	case "start":
		return callEndTime(e.Start), false, nil
	case "answer":
		return callEndTime(e.Answer), false, nil
	case "end":
		return callEndTime(e.End), false, nil
	case "wait_seconds":
		return strconv.Itoa(e.WaitSeconds()), true, nil
	case "talk_seconds":
		return strconv.Itoa(e.TalkSeconds()), true, nil
	case "agents":
		ids := make([]string, len(e.Agents))
		for i, a := range e.Agents {
			ids[i] = strconv.Itoa(a)
		}
		return strings.Join(ids, ","), false, nil
	case "hangup_by":
		return e.HangupBy, false, nil
	case "hangup_cause":
		if e.HangupCause == 0 {
			return "", false, nil
		}
		return strconv.Itoa(e.HangupCause), true, nil
	case "hangup_cause_text":
		return e.HangupCauseText, false, nil
	case "transfers":
		// A JSON array in one value, so every format carries the whole list.
		type tr struct {
			From int    `json:"from"`
			To   int    `json:"to"`
			At   string `json:"at"`
		}
		list := make([]tr, len(e.Transfers))
		for i, t := range e.Transfers {
			list[i] = tr{From: t.From, To: t.To, At: callEndTime(t.At)}
		}
		b, _ := json.Marshal(list)
		return string(b), false, nil
	default: // "recording"
		return e.Recording, false, nil
	}
}

// callEndDefaults are the call_end values appended to an end-of-call notification whose
// campaign configures no call_end parameter (always so with the OMniLeads catalog, whose
// schema has no such family): every source, named as the source.
func callEndDefaults(in Input, fields []Field, numeric []bool) ([]Field, []bool) {
	for _, src := range catalog.CallEndSources {
		v, num, _ := callEndValue(in, src)
		if i := fieldIndex(fields, src); i >= 0 {
			fields[i].Value, numeric[i] = v, num
			continue
		}
		fields = append(fields, Field{Name: src, Value: v})
		numeric = append(numeric, num)
	}
	return fields, numeric
}

func hasFamily(params []catalog.Param, f catalog.Family) bool {
	for _, p := range params {
		if p.Family == f {
			return true
		}
	}
	return false
}
