package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/omlcrm/oml-crm/agentws"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/callsim"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/loadtest"
)

// demoPhases is the demo's view of the phases besides connect: the dispositions its
// simulated agents post (for campaigns whose site fires at disposition), the end-of-call
// notifications and the ringing pops, counted for the summary.
type demoPhases struct {
	base, secret string
	cat          catalog.Catalog

	posts sync.WaitGroup // disposition posts in flight

	// Counters, guarded by the report's mutex.
	expectedEnds  int
	endsQueued    int
	endsDelivered int
	dispPosted    int
	dispDelivered int
	dispFailed    int
	ringing       int
	withdrawn     int
}

// phases returns the report's phase tracker, creating it on first use.
func (r *demoReport) phaseState() *demoPhases {
	if r.phases == nil {
		r.phases = &demoPhases{}
	}
	return r.phases
}

// setPhases gives the report what posting dispositions needs.
func (r *demoReport) setPhases(base, secret string, cat catalog.Catalog) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.phaseState()
	p.base, p.secret, p.cat = base, secret, cat
}

// waitPosts waits for the disposition posts still in flight (each bounded by its
// 10 s timeout), so none outlives the demo.
func (r *demoReport) waitPosts() {
	r.mu.Lock()
	p := r.phaseState()
	r.mu.Unlock()
	p.posts.Wait()
}

// expectPhases counts the end-of-call notifications a played call should produce.
func (r *demoReport) expectPhases(c *callsim.Call) {
	p := r.phaseState()
	if p.cat == nil {
		return
	}
	camp, err := p.cat.Campaign(context.Background(), c.CampaignID)
	if err != nil || camp.Site == nil || !camp.Interaction.UsesSite() {
		return
	}
	switch camp.Site.CallEnd {
	case catalog.CallEndAll:
		p.expectedEnds++
	case catalog.CallEndAnswered:
		if len(c.Expected) > 0 {
			p.expectedEnds++
		}
	}
}

// afterConnect posts a disposition for a connect whose site fires at disposition: the
// agent saves "Venta" with a management form, as an agent console would.
func (r *demoReport) afterConnect(c calls.Connected, skip *crmnotify.SkippedError) {
	p := r.phaseState()
	if skip == nil || skip.Reason != crmnotify.SkipTriggerNotOnCall || p.base == "" {
		return
	}
	p.dispPosted++
	p.posts.Add(1)
	go func() {
		defer p.posts.Done()
		if err := p.postDisposition(c); err != nil {
			r.mu.Lock()
			p.dispFailed++
			fmt.Fprintf(r.out, "%s: disposition → FAILED: %v\n", r.head(c.CallID, c.CampaignID, c.AgentID), err)
			r.mu.Unlock()
		}
	}()
}

func (p *demoPhases) postDisposition(c calls.Connected) error {
	tok, err := agentws.MintToken([]byte(p.secret), c.AgentID, time.Now().Add(time.Hour))
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{
		"call_id": c.CallID, "campaign_id": c.CampaignID, "contact_id": atoiOr0(c.ContactID), "phone": c.Phone,
		"disposition": map[string]any{"id": 1, "name": "Venta", "subdisposition": "Contado",
			"form": map[string]string{"producto": "Plan Oro", "cuotas": "12"}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/dispositions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /dispositions answered %s", resp.Status)
	}
	return nil
}

func atoiOr0(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// phaseNotified counts a phase notification handed to the queue or the hub (r.mu held).
func (r *demoReport) phaseNotified(n crmnotify.Notification) {
	p := r.phaseState()
	switch n.Phase {
	case crmnotify.PhaseCallEnd:
		p.endsQueued++
	case crmnotify.PhaseRinging:
		p.ringing++
	}
}

// phaseArrived prints a phase notification's arrival (r.mu held); false for a connect.
func (r *demoReport) phaseArrived(note *demoNote, verb string, lat time.Duration) bool {
	n := note.n
	p := r.phaseState()
	what := ""
	switch n.Phase {
	case crmnotify.PhaseCallEnd:
		p.endsDelivered++
		what = "call end (end-of-call notification)"
	case crmnotify.PhaseDisposition:
		p.dispDelivered++
		what = "disposition"
	case crmnotify.PhaseRinging:
		what = "ringing"
	default:
		return false
	}
	fmt.Fprintf(r.out, "call %s campaign %d (%s) agent %d: %s → %s %s\n",
		n.CallID, n.Campaign.ID, n.Campaign.Type, n.AgentID, what, verb, loadtest.FormatDuration(lat))
	return true
}

// phasesSettled: every expected end-of-call notification was queued and every posted
// disposition answered (r.mu held).
func (r *demoReport) phasesSettled() bool {
	p := r.phaseState()
	return p.endsQueued >= p.expectedEnds && p.dispDelivered+p.dispFailed >= p.dispPosted
}

// phasesSummary prints the phases' line of the summary (r.mu held).
func (r *demoReport) phasesSummary() {
	p := r.phaseState()
	fmt.Fprintf(r.out, "phases summary: %d dispositions delivered (of %d posted), %d end-of-call notifications delivered (of %d expected), %d ringing pops (%d withdrawn)\n",
		p.dispDelivered, p.dispPosted, p.endsDelivered, p.expectedEnds, p.ringing, p.withdrawn)
}

// Withdraw passes a ringing pop's withdrawal on to the hub, counting it.
func (o observedAgents) Withdraw(ctx context.Context, agentID int, popID, reason string) error {
	o.rep.mu.Lock()
	o.rep.phaseState().withdrawn++
	o.rep.mu.Unlock()
	if ps, ok := o.next.(crmnotify.PhaseSink); ok {
		return ps.Withdraw(ctx, agentID, popID, reason)
	}
	return nil
}
