package crmnotify

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/catalog"
)

// Connect ids are unchanged by the phases (queued deliveries keep their
// Idempotency-Key); other phases get their own ids.
func TestCallEndAndDispositionIDsLeaveConnectIDsUnchanged(t *testing.T) {
	// sha256("1559667982.424\x002\x001")[:16] in hex, computed with Python: the id
	// NotificationID gave before phases existed.
	const connectID = "bc18111aa0901cb16f95485a80e90a14"
	if got := NotificationID("1559667982.424", 2, 1); got != connectID {
		t.Fatalf("NotificationID = %s, want %s", got, connectID)
	}
	for _, phase := range []string{"", PhaseConnect} {
		if got := PhaseNotificationID("1559667982.424", 2, 1, phase); got != connectID {
			t.Errorf("PhaseNotificationID(%q) = %s, want the connect id", phase, got)
		}
	}
	seen := map[string]string{connectID: "connect"}
	for _, phase := range []string{PhaseRinging, PhaseCallEnd, "disposition:1", "disposition:2"} {
		id := PhaseNotificationID("1559667982.424", 2, 1, phase)
		if prev, dup := seen[id]; dup {
			t.Errorf("phase %s has the id of %s", phase, prev)
		}
		seen[id] = phase
	}
}

// The disposition family: id, name, subdisposition and form as Django's
// urlsafe_base64_encode of the form JSON (no padding). The expected value was computed
// with Python: base64.urlsafe_b64encode(s.encode()).rstrip(b'\n=').
func TestDispositionFamilyRender(t *testing.T) {
	site := &catalog.Site{ID: 6, URL: "https://crm.example.com/dispo", Trigger: catalog.TriggerDisposition, Method: catalog.MethodGET}
	camp := &catalog.Campaign{ID: 18, Name: "D", Type: catalog.TypeDialer, Interaction: catalog.InteractionSite, Site: site,
		Params: []catalog.Param{
			{Family: catalog.FamilyDisposition, Source: "id", Name: "id"},
			{Family: catalog.FamilyDisposition, Source: "name", Name: "name"},
			{Family: catalog.FamilyDisposition, Source: "subdisposition", Name: "sub"},
			{Family: catalog.FamilyDisposition, Source: "form", Name: "form"},
		}}
	form := `{"producto": "Plan Oro ñ", "cuotas": "12?"}`
	req, err := Render(Input{Campaign: camp, Disposition: &Disposition{ID: 812, Name: "Venta", Subdisposition: "Contado", FormJSON: form}})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(strings.SplitN(req.URL, "?", 2)[1])
	if q.Get("id") != "812" || q.Get("name") != "Venta" || q.Get("sub") != "Contado" ||
		q.Get("form") != "eyJwcm9kdWN0byI6ICJQbGFuIE9ybyDDsSIsICJjdW90YXMiOiAiMTI_In0" {
		t.Errorf("rendered %s", req.URL)
	}
	// Outside the disposition phase the family renders empty, as OMniLeads does.
	req, err = Render(Input{Campaign: camp})
	if err != nil || !strings.HasSuffix(req.URL, "?id=&name=&sub=&form=") {
		t.Errorf("connect phase rendered %s, %v", req.URL, err)
	}
	camp.Params = append(camp.Params, catalog.Param{Family: catalog.FamilyDisposition, Source: "nope", Name: "x"})
	if _, err := Render(Input{Campaign: camp}); !errors.Is(err, ErrMisconfigured) {
		t.Errorf("unknown disposition source: %v", err)
	}
}

// The call_end family, and its defaults when the campaign names none (OMniLeads catalog).
func TestCallEndFamilyRender(t *testing.T) {
	start := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	end := &CallEnd{Answered: true, Start: start, Answer: start.Add(12 * time.Second), End: start.Add(72 * time.Second),
		Agents: []int{2, 1}, Transfers: []Transfer{{From: 2, To: 1, At: start.Add(40 * time.Second)}},
		HangupBy: "customer", HangupCause: 16, HangupCauseText: "Normal Clearing", Recording: "in-7.wav"}
	site := &catalog.Site{ID: 5, URL: "https://crm.example.com/end", Trigger: catalog.TriggerServer, Method: catalog.MethodPOST, Format: catalog.FormatJSON}
	camp := &catalog.Campaign{ID: 7, Name: "In", Type: catalog.TypeInbound, Interaction: catalog.InteractionSite, Site: site,
		Params: []catalog.Param{{Family: catalog.FamilyCall, Source: "call_id", Name: "call"}}}
	req, err := Render(Input{Campaign: camp, Call: CallData{CallID: "c1"}, End: end})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"call":"c1","answered":"true","start":"2026-11-24 10:00:00","answer":"2026-11-24 10:00:12","end":"2026-11-24 10:01:12",` +
		`"wait_seconds":"12","talk_seconds":"60","agents":"2,1","hangup_by":"customer","hangup_cause":"16","hangup_cause_text":"Normal Clearing",` +
		`"transfers":"[{\"from\":2,\"to\":1,\"at\":\"2026-11-24 10:00:40\"}]","recording":"in-7.wav"}`
	if string(req.Body) != want {
		t.Errorf("body\n got %s\nwant %s", req.Body, want)
	}
	// Named call_end parameters replace the defaults.
	camp.Params = append(camp.Params, catalog.Param{Family: catalog.FamilyCallEnd, Source: "talk_seconds", Name: "talk"})
	req, _ = Render(Input{Campaign: camp, Call: CallData{CallID: "c1"}, End: end})
	if string(req.Body) != `{"call":"c1","talk":"60"}` {
		t.Errorf("with a call_end parameter: %s", req.Body)
	}
	// Unanswered: wait runs to the end, talk is 0.
	un := &CallEnd{Start: start, End: start.Add(5 * time.Second), HangupBy: "customer"}
	if un.WaitSeconds() != 5 || un.TalkSeconds() != 0 {
		t.Errorf("unanswered wait %d talk %d", un.WaitSeconds(), un.TalkSeconds())
	}
}

// End-of-call notifications follow the site's opt-in (catalog or config override):
// off, answered only, or every call; they are server deliveries with their own id.
func TestCallEndDispatchFollowsTheSiteOptIn(t *testing.T) {
	f := newFixture(t)
	ended := func(agents ...int) calls.Ended {
		e := calls.Ended{CallID: "c-end", CampaignID: 11, Start: connectedAt, At: connectedAt.Add(time.Minute), HangupBy: "agent", HangupCause: 16}
		for _, a := range agents {
			e.Agents = append(e.Agents, calls.AgentLeg{AgentID: a, At: connectedAt.Add(10 * time.Second)})
		}
		return e
	}
	ctx := context.Background()
	_ = f.d.HandleEnded(ctx, ended(2)) // site 1 has no opt-in
	if len(f.sinks.enqueued) != 0 {
		t.Fatalf("enqueued %d without opt-in", len(f.sinks.enqueued))
	}
	f.d.SetCallEndSites(map[int]catalog.CallEndMode{1: catalog.CallEndAnswered})
	_ = f.d.HandleEnded(ctx, ended()) // unanswered: not with "answered"
	_ = f.d.HandleEnded(ctx, ended(2))
	if len(f.sinks.enqueued) != 1 {
		t.Fatalf("enqueued %d, want the answered call's end only", len(f.sinks.enqueued))
	}
	n := f.sinks.enqueued[0]
	if n.Phase != PhaseCallEnd || n.ID != PhaseNotificationID("c-end", 2, 1, PhaseCallEnd) || n.Request.Header.Get(HeaderPhase) != "call_end" ||
		!strings.Contains(n.Request.URL, "talk_seconds=50") || !strings.Contains(n.Request.URL, "hangup_by=agent") {
		t.Errorf("call end notification %s %s", n.ID, n.Request.URL)
	}
	f.d.SetCallEndSites(map[int]catalog.CallEndMode{1: catalog.CallEndAll})
	_ = f.d.HandleEnded(ctx, ended())
	if len(f.sinks.enqueued) != 2 || !strings.Contains(f.sinks.enqueued[1].Request.URL, "answered=false") {
		t.Errorf("unanswered call end with all: %d enqueued", len(f.sinks.enqueued))
	}
}

// HandleDisposition fires disposition-trigger sites only, for options with CRM
// interaction; each save (Seq) is its own notification.
func TestDispositionDispatch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ev := DispositionEvent{Seq: "1", CallID: "c-d", AgentID: 2, CampaignID: 16, FiresCRM: true,
		Disposition: Disposition{ID: 5, Name: "Venta"}}
	n, err := f.d.HandleDisposition(ctx, ev)
	if err != nil || n.Phase != PhaseDisposition || len(f.sinks.enqueued) != 1 {
		t.Fatalf("disposition: %+v %v (enqueued %d)", n, err, len(f.sinks.enqueued))
	}
	ev.Seq = "2"
	n2, _ := f.d.HandleDisposition(ctx, ev)
	if n2.ID == n.ID {
		t.Error("a second save has the first one's id")
	}
	ev.FiresCRM = false
	if _, err := f.d.HandleDisposition(ctx, ev); !errors.Is(err, ErrDispositionIgnored) {
		t.Errorf("option without CRM interaction: %v", err)
	}
	ev.FiresCRM, ev.CampaignID = true, 11 // a server (connect) site
	if _, err := f.d.HandleDisposition(ctx, ev); !errors.Is(err, ErrDispositionIgnored) {
		t.Errorf("campaign without a disposition site: %v", err)
	}
	if len(f.sinks.enqueued) != 2 {
		t.Errorf("enqueued %d, want 2", len(f.sinks.enqueued))
	}
}
