package calls_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/omlcrm/oml-crm/calls"
)

// phaseRecorder also keeps the ringing facts.
type phaseRecorder struct {
	recorder
	pmu     sync.Mutex
	rings   []calls.Ringing
	stopped []calls.RingStopped
}

func (r *phaseRecorder) Ringing(x calls.Ringing) {
	r.pmu.Lock()
	r.rings = append(r.rings, x)
	r.pmu.Unlock()
}

func (r *phaseRecorder) RingStopped(x calls.RingStopped) {
	r.pmu.Lock()
	r.stopped = append(r.stopped, x)
	r.pmu.Unlock()
}

// replay feeds a recording (AMI or ARI) to a tracker writing to a phaseRecorder.
func replay(t *testing.T, file string) (*phaseRecorder, []calls.Connected, []calls.Ended) {
	t.Helper()
	rec := &phaseRecorder{}
	tr, _ := startTracker(t, calls.Options{Output: rec, Resolver: extResolver{}})
	path := sharedFile(t, file)
	if strings.HasSuffix(file, ".jsonl") {
		for _, ev := range readARI(t, path) {
			tr.HandleARI(ev)
		}
	} else {
		for _, m := range readAMI(t, path) {
			tr.HandleAMI(m)
		}
	}
	settle(t, tr)
	c, e := rec.facts(t)
	return rec, c, e
}

func TestCallEndJournalAnsweredCustomerHangsUp(t *testing.T) {
	for _, file := range []string{"ami/oml-inbound-queue.ami", "ari/oml-inbound-queue-observer.jsonl"} {
		t.Run(file, func(t *testing.T) {
			_, conn, ended := replay(t, file)
			if len(conn) != 1 || len(ended) != 1 {
				t.Fatalf("%d connects, %d ends", len(conn), len(ended))
			}
			e := ended[0]
			if len(e.Agents) != 1 || e.Agents[0].AgentID != conn[0].AgentID || !e.Agents[0].At.Equal(conn[0].At) {
				t.Errorf("agents %+v, want the connect's agent %d at %v", e.Agents, conn[0].AgentID, conn[0].At)
			}
			if e.CampaignID != 7 || e.Phone != "3415551234" || e.RecordingFile == "" || !strings.HasSuffix(e.RecordingFile, ".wav") {
				t.Errorf("identity: campaign %d phone %q recording %q", e.CampaignID, e.Phone, e.RecordingFile)
			}
			if e.HangupBy != calls.HangupByCustomer || e.HangupCause != 16 || e.HangupCauseText != "Normal Clearing" {
				t.Errorf("hang-up: by %q cause %d %q, want customer 16 Normal Clearing", e.HangupBy, e.HangupCause, e.HangupCauseText)
			}
			if !e.Start.Before(e.Agents[0].At) || !e.Agents[0].At.Before(e.At) {
				t.Errorf("times: start %v answer %v end %v are not in order", e.Start, e.Agents[0].At, e.At)
			}
		})
	}
}

func TestCallEndJournalAgentHangsUp(t *testing.T) {
	_, _, ended := replay(t, "ami/oml-agent-hangup.ami")
	if len(ended) != 1 || ended[0].HangupBy != calls.HangupByAgent {
		t.Fatalf("ends %+v, want one hung up by the agent", ended)
	}
}

// A blind transfer: two agents in order, one transfer, the customer ends the call.
func TestCallEndJournalTransferred(t *testing.T) {
	_, conn, ended := replay(t, "ami/oml-blind-transfer.ami")
	if len(conn) != 2 || len(ended) != 1 {
		t.Fatalf("%d connects, %d ends", len(conn), len(ended))
	}
	e := ended[0]
	if len(e.Agents) != 2 || e.Agents[0].AgentID != conn[0].AgentID || e.Agents[1].AgentID != conn[1].AgentID || e.Agents[0].AgentID == e.Agents[1].AgentID {
		t.Errorf("agents %+v, want %d then %d", e.Agents, conn[0].AgentID, conn[1].AgentID)
	}
	if e.HangupBy == "" {
		t.Errorf("hang-up side unknown: %+v", e)
	}
	if e.CampaignID != conn[1].CampaignID {
		t.Errorf("campaign %d, want the last connect's %d (transfer campaign)", e.CampaignID, conn[1].CampaignID)
	}
}

// An abandoned call: nobody answered; the customer hung up; the rung agent's ringing is
// withdrawn with reason hangup.
func TestCallEndJournalAbandonedAndRingingWithdrawn(t *testing.T) {
	rec, conn, ended := replay(t, "ami/oml-abandon-ringing.ami")
	if len(conn) != 0 || len(ended) != 1 {
		t.Fatalf("%d connects, %d ends", len(conn), len(ended))
	}
	e := ended[0]
	if len(e.Agents) != 0 || e.HangupBy != calls.HangupByCustomer || e.CampaignID != 8 {
		t.Errorf("abandoned call journal %+v", e)
	}
	if len(rec.rings) != 1 || rec.rings[0].AgentID != 9 || rec.rings[0].CallID != e.CallID || rec.rings[0].CampaignID != 8 {
		t.Fatalf("rings %+v, want agent 9 rung once for call %s", rec.rings, e.CallID)
	}
	if len(rec.stopped) != 1 || rec.stopped[0].Reason != calls.RingHangup || rec.stopped[0].AgentID != 9 {
		t.Errorf("ring stops %+v, want agent 9's withdrawn for hangup", rec.stopped)
	}
}

// Answered: the agent's ring is promoted (the connect says Rang), nothing withdrawn.
func TestRingingPromotedToConnect(t *testing.T) {
	for _, file := range []string{"ami/oml-inbound-queue.ami", "ari/oml-inbound-queue-observer.jsonl"} {
		t.Run(file, func(t *testing.T) {
			rec, conn, _ := replay(t, file)
			if len(rec.rings) != 1 || len(conn) != 1 {
				t.Fatalf("rings %+v connects %d", rec.rings, len(conn))
			}
			if rec.rings[0].CallID != conn[0].CallID || !conn[0].Rang {
				t.Errorf("ring %+v, connect %+v: want the connect to replace the ring", rec.rings[0], conn[0])
			}
			if rec.rings[0].AgentID != conn[0].AgentID && rec.rings[0].Extension != strings.TrimPrefix(strings.SplitN(conn[0].AgentChannel, "@", 2)[0], "Local/") {
				t.Errorf("ring agent %d/%q, connect agent %d", rec.rings[0].AgentID, rec.rings[0].Extension, conn[0].AgentID)
			}
			if len(rec.stopped) != 0 {
				t.Errorf("withdrawn %+v, want none", rec.stopped)
			}
		})
	}
}

// A ringall queue rings two agents; agent 1 answers: its ring is promoted (the connect
// says Rang), agent 2's cancelled dial is withdrawn as answered elsewhere. A ring that
// times out (NOANSWER) is withdrawn as not answered.
func TestRingingAnsweredElsewhereAndNoAnswer(t *testing.T) {
	rec := &phaseRecorder{}
	tr, _ := startTracker(t, calls.Options{Output: rec})
	cust := calls.ChannelRef{ID: "100.1", Name: "PJSIP/trunk-01", LinkedID: "100.1"}
	a1 := calls.ChannelRef{ID: "100.2", Name: "Local/1001@oml-agent-01;1", LinkedID: "100.1"}
	a2 := calls.ChannelRef{ID: "100.3", Name: "Local/1002@oml-agent-02;1", LinkedID: "100.1"}
	a3 := calls.ChannelRef{ID: "100.4", Name: "Local/1003@oml-agent-03;1", LinkedID: "100.1"}
	vars := []calls.Var{{Name: "__OMLCAMPID", Value: "7"}, {Name: "__OMLCAMPTYPE", Value: "3"}, {Name: "__OMLCALLID", Value: "100.1"}}
	tr.Handle(calls.Event{Kind: calls.KindChannel, Channel: cust, Vars: vars})
	tr.Handle(calls.Event{Kind: calls.KindAgentCalled, Channel: cust, Peer: a3, MemberName: "3_agent3"})
	tr.Handle(calls.Event{Kind: calls.KindDialEnd, Channel: cust, Peer: a3, Value: "NOANSWER"})
	tr.Handle(calls.Event{Kind: calls.KindHangup, Channel: a3, Cause: 19})
	tr.Handle(calls.Event{Kind: calls.KindAgentCalled, Channel: cust, Peer: a1, MemberName: "1_agent1"})
	tr.Handle(calls.Event{Kind: calls.KindAgentCalled, Channel: cust, Peer: a2, MemberName: "2_agent2"})
	tr.Handle(calls.Event{Kind: calls.KindDialEnd, Channel: cust, Peer: a2, Value: "CANCEL"})
	tr.Handle(calls.Event{Kind: calls.KindHangup, Channel: a2, Cause: 26})
	tr.Handle(calls.Event{Kind: calls.KindAgentConnect, Channel: cust, Peer: a1, MemberName: "1_agent1"})
	tr.Handle(calls.Event{Kind: calls.KindBridgeEnter, Channel: cust, Bridge: "b1"})
	tr.Handle(calls.Event{Kind: calls.KindBridgeEnter, Channel: a1, Bridge: "b1"})
	settle(t, tr)
	if len(rec.rings) != 3 {
		t.Fatalf("rings %+v, want agents 3, 1 and 2", rec.rings)
	}
	reasons := map[int]string{}
	for _, s := range rec.stopped {
		reasons[s.AgentID] = s.Reason
	}
	if len(rec.stopped) != 2 || reasons[3] != calls.RingNoAnswer || reasons[2] != calls.RingAnsweredElsewhere {
		t.Errorf("ring stops %+v, want agent 3 no_answer and agent 2 answered_elsewhere", rec.stopped)
	}
	conn, _ := rec.facts(t)
	if len(conn) != 1 || conn[0].AgentID != 1 || !conn[0].Rang || conn[0].CampaignID != 7 {
		t.Errorf("connects %+v, want agent 1's, replacing its ring", conn)
	}
	// The customer is still there after the rings that failed: nobody hung up yet.
	tr.Handle(calls.Event{Kind: calls.KindHangup, Channel: a1, Cause: 16, CauseText: "Normal Clearing"})
	tr.Handle(calls.Event{Kind: calls.KindHangup, Channel: cust, Cause: 16})
	settle(t, tr)
	_, ended := rec.facts(t)
	if len(ended) != 1 || ended[0].HangupBy != calls.HangupByAgent || ended[0].HangupCause != 16 || len(ended[0].Agents) != 1 {
		t.Errorf("end %+v, want agent 1 hanging up (cause 16)", ended)
	}
}

// A call that ends while the event stream is down is ended by the resync after the
// reconnect, with its journal (the agent that talked); who hung up is unknown.
func TestCallEndRecoveredByResync(t *testing.T) {
	rec := &phaseRecorder{}
	tr, _ := startTracker(t, calls.Options{Output: rec, Resolver: extResolver{}})
	msgs := readAMI(t, sharedFile(t, "ami/oml-inbound-queue.ami"))
	// Play up to the connect, then "lose" the rest (the hang-ups).
	for _, m := range msgs {
		if m.Get("Event") == "Hangup" {
			break
		}
		tr.HandleAMI(m)
	}
	settle(t, tr)
	if c, e := rec.counts(); c != 1 || e != 0 {
		t.Fatalf("before the reconnect: %d connects, %d ends", c, e)
	}
	mark := tr.Mark()
	tr.ApplySnapshot(mark, nil) // the reconnect's listing: no channel alive
	settle(t, tr)
	conn, ended := rec.facts(t)
	if len(ended) != 1 || ended[0].CallID != conn[0].CallID || len(ended[0].Agents) != 1 || ended[0].Agents[0].AgentID != conn[0].AgentID ||
		ended[0].HangupBy != "" || ended[0].CampaignID != 7 {
		t.Errorf("end after resync %+v", ended)
	}
}

// The real SIP recordings (Set 3: PJSIP endpoints, one channel per leg) give the same
// journal and rings over AMI and ARI: an inbound call whose ring is promoted and that the
// customer ends (cause 16), a blind transfer (two agents, both rung and promoted), an
// abandoned call (ring withdrawn: the caller hung up) and a click-to-call (no ring, the
// agent hangs up). Over ARI the connect waits for the agent's id (read lazily from the
// extension) while the hang-ups are already known: the journal must still order them.
func TestCallEndAndRingingOnPJSIPRecordingsAMIAndARIAgree(t *testing.T) {
	type want struct {
		rings, connects, agents int
		stopped, by             string
		cause, campaign         int
	}
	cases := map[string]want{
		"inbound":  {rings: 1, connects: 1, agents: 1, by: calls.HangupByCustomer, cause: 16, campaign: 7},
		"transfer": {rings: 2, connects: 2, agents: 2, by: calls.HangupByCustomer, cause: 16, campaign: 9},
		"abandon":  {rings: 1, stopped: calls.RingHangup, by: calls.HangupByCustomer, cause: 0, campaign: 8},
	}
	for name, w := range cases {
		for _, file := range []string{"pjsip/" + name + ".ami", "pjsip/" + name + ".ari.jsonl"} {
			t.Run(file, func(t *testing.T) {
				rec, conn, ended := replay(t, file)
				if len(rec.rings) != w.rings || len(conn) != w.connects || len(ended) != 1 {
					t.Fatalf("rings %d connects %d ends %d", len(rec.rings), len(conn), len(ended))
				}
				for _, c := range conn {
					if !c.Rang {
						t.Errorf("connect of agent %d does not replace its ring", c.AgentID)
					}
				}
				stops := ""
				for _, s := range rec.stopped {
					stops += s.Reason
				}
				e := ended[0]
				if stops != w.stopped || len(e.Agents) != w.agents || e.HangupBy != w.by || e.HangupCause != w.cause ||
					e.CampaignID != w.campaign || !strings.HasSuffix(e.RecordingFile, ".wav") {
					t.Errorf("stops %q, end %+v", stops, e)
				}
			})
		}
	}
	for _, file := range []string{"pjsip/c2c.ami", "pjsip/c2c.ari.jsonl"} {
		rec, conn, ended := replay(t, file)
		if len(rec.rings) != 0 || len(conn) != 1 || conn[0].Rang || len(ended) != 1 || ended[0].HangupBy != calls.HangupByAgent {
			t.Errorf("%s: rings %d, connects %+v, ends %+v", file, len(rec.rings), conn, ended)
		}
	}
}
