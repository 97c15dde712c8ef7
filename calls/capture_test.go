package calls_test

import (
	"context"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/calls"
)

// captureCase is one real Asterisk 22 recording from ../shared/testdata and the facts
// it must produce.
type captureCase struct {
	file  string
	want  []want
	ended []string // CallIDs, in order
}

func runCapture(t *testing.T, c captureCase) {
	t.Helper()
	tr, rec := startTracker(t, calls.Options{Resolver: extResolver{}})
	path := sharedFile(t, c.file)
	if strings.HasSuffix(c.file, ".jsonl") {
		for _, ev := range readARI(t, path) {
			tr.HandleARI(ev)
		}
	} else {
		for _, m := range readAMI(t, path) {
			tr.HandleAMI(m)
		}
	}
	settle(t, tr)
	got, ended := rec.facts(t)
	if len(got) != len(c.want) {
		t.Fatalf("%s: %d Connected, want %d: %+v", c.file, len(got), len(c.want), got)
	}
	for i := range got {
		checkConnected(t, got[i], c.want[i])
	}
	var endedIDs []string
	for _, e := range ended {
		endedIDs = append(endedIDs, e.CallID)
	}
	if strings.Join(endedIDs, ",") != strings.Join(c.ended, ",") {
		t.Errorf("%s: Ended %v, want %v", c.file, endedIDs, c.ended)
	}
	if s := tr.Stats(); s.Channels != 0 || s.Calls != 0 || s.Bridges != 0 || s.Pending != 0 {
		t.Errorf("%s: state left after the capture: %+v", c.file, s)
	}
}

// Set 2 (oml-*) and Set 1 inbound calls through a queue: AgentConnect.
func TestCaptureInboundQueue(t *testing.T) {
	for _, c := range []captureCase{
		{"ami/oml-inbound-queue.ami", []want{{"1795483380.0", "1795483380.0", 1, "Local/1001@oml-agent-00000001;1", "Local/3415551234@oml-customer-00000000;1",
			7, 3, "3415551234", "321321321", "in-7-20261124-3415551234-1795483380.0.wav", set2Dialplan("T-123")}}, []string{"1795483380.0"}},
		{"ami/oml-agent-hangup.ami", []want{{"1795483436.20", "1795483436.20", 2, "Local/1002@oml-agent-0000000b;1", "Local/3415552222@oml-customer-0000000a;1",
			7, 3, "3415552222", "555", "in-7-20261124-3415552222-1795483436.20.wav", set2Dialplan("T-123")}}, []string{"1795483436.20"}},
		{"ami/oml-inbound-queue-chanvars.ami", []want{{"1795483670.458", "1795483670.458", 21, "Local/1021@oml-agent-000000e6;1", "Local/3415551234@oml-customer-000000e5;1",
			7, 3, "3415551234", "321321321", "in-7-20261124-3415551234-1795483670.458.wav", set2Dialplan("T-123")}}, []string{"1795483670.458"}},
		// Set 1: OMLUNIQUEID (the customer's ;2) differs from the Linkedid, the agent
		// leg has no OMLAGENTID: resolved from extension 1001.
		{"ami/inbound-queue.ami", []want{{"1795481044.1", "1795481044.0", 1, "Local/1001@oml-agent-phone-00000001;1", "Local/4149014@oml-inbound-00000000;2",
			7, 3, "4149014", "321321321", "in-7-20261124-4149014-1795481044.1.wav", set1Dialplan("T-528")}}, []string{"1795481044.1"}},
		{"ami/actions.ami", []want{{"1795483460.30", "1795483460.30", 4, "Local/1004@oml-agent-00000010;1", "Local/3415554444@oml-customer-0000000f;1",
			7, 3, "3415554444", "888", "in-7-20261124-3415554444-1795483460.30.wav", set2Dialplan("T-123")}}, []string{"1795483460.30"}},
	} {
		t.Run(c.file, func(t *testing.T) { runCapture(t, c) })
	}
}

func TestCaptureDialerQueue(t *testing.T) {
	for _, c := range []captureCase{
		{"ami/oml-dialer-queue.ami", []want{{"1795483392.4", "1795483392.4", 101, "Local/1101@oml-agent-00000003;1", "Local/1155667788@oml-customer-00000002;1",
			9, 2, "1155667788", "42", "dialer-9-20261124-1155667788-1795483392.4.wav", set2Dialplan("T-123")}}, []string{"1795483392.4"}},
		{"ami/dialer-queue.ami", []want{{"1795481062.5", "1795481062.4", 3, "Local/1003@oml-agent-phone-00000003;1", "Local/1155667788@oml-dialer-00000002;2",
			9, 2, "1155667788", "42", "dialer-9-20261124-1155667788-1795481062.5.wav", set1Dialplan("T-526")}}, []string{"1795481062.5"}},
	} {
		t.Run(c.file, func(t *testing.T) { runCapture(t, c) })
	}
}

// Preview click-to-call: DialEnd ANSWER with a Channel (the agent's mother channel),
// then BridgeEnter of both; the Originate's own DialEnd (no Channel) is not a connect.
func TestCapturePreview(t *testing.T) {
	for _, c := range []captureCase{
		{"ami/oml-preview-click2call.ami", []want{{"1795483485.34", "1795483485.34", 2, "Local/1002@oml-agent-00000011;1", "Local/4149014@oml-customer-00000012;1",
			115, 4, "4149014", "4149", "prev-115-20261124-2-4149014-1795483485.34.wav", set2Dialplan("T-123")}}, []string{"1795483485.34"}},
		{"ami/preview-originate.ami", []want{{"1795481072.9", "1795481072.8", 2, "Local/4149014@oml-agent-out-00000004;2", "Local/4149014@oml-customer-00000005;1",
			115, 4, "4149014", "321321321", "prev-115-20261124-4149014-1795481072.9.wav", set1Dialplan("T-726")}}, []string{"1795481072.9"}},
		{"ari/oml-preview-click2call-observer.jsonl", []want{{"1795483640.454", "1795483640.454", 2, "Local/1002@oml-agent-000000e3;1", "Local/4149014@oml-customer-000000e4;1",
			115, 4, "4149014", "4149", "prev-115-20261124-2-4149014-1795483640.454.wav", set2Dialplan("T-123")}}, []string{"1795483640.454"}},
		{"ari/preview.jsonl", []want{{"1795481241.335", "1795481241.334", 2, "Local/4149014@oml-agent-out-000000a7;2", "Local/4149014@oml-customer-000000a8;1",
			115, 4, "4149014", "321321321", "prev-115-20261124-4149014-1795481241.335.wav", set1Dialplan("T-241")}}, []string{"1795481241.335"}},
	} {
		t.Run(c.file, func(t *testing.T) { runCapture(t, c) })
	}
}

func TestCaptureManual(t *testing.T) {
	for _, c := range []captureCase{
		{"ami/oml-manual-click2call.ami", []want{{"1795483497.38", "1795483497.38", 1, "Local/1001@oml-agent-00000013;1", "Local/3415559876@oml-customer-00000014;1",
			11, 1, "3415559876", "-1", "mc-11-20261124-1-3415559876-1795483497.38.wav", set2Dialplan("T-123")}}, []string{"1795483497.38"}},
		{"ami/manual-originate.ami", []want{{"1795481084.13", "1795481084.12", 1, "Local/3415551234@oml-agent-out-00000006;2", "Local/3415551234@oml-customer-00000007;1",
			11, 1, "3415551234", "-1", "out-11-20261124-3415551234-1795481084.13.wav", set1Dialplan("T-643")}}, []string{"1795481084.13"}},
	} {
		t.Run(c.file, func(t *testing.T) { runCapture(t, c) })
	}
}

// Abandoned calls (the customer hangs up while the agent rings): only Ended.
func TestCaptureAbandon(t *testing.T) {
	for _, c := range []captureCase{
		{"ami/oml-abandon-ringing.ami", nil, []string{"1795483428.16"}},
		{"ami/inbound-abandon.ami", nil, []string{"1795481095.17"}},
	} {
		t.Run(c.file, func(t *testing.T) { runCapture(t, c) })
	}
}

// Blind transfer to a second agent: a second Connected for the new agent, same call;
// the transfer queue's campaign (OMLCAMPTRANSFERID) is the second one's campaign.
func TestCaptureBlindTransfer(t *testing.T) {
	for _, c := range []captureCase{
		{"ami/oml-blind-transfer.ami", []want{
			{"1795483444.24", "1795483444.24", 3, "Local/1003@oml-agent-0000000d;1", "Local/3415553333@oml-customer-0000000c;1",
				7, 3, "3415553333", "777", "in-7-20261124-3415553333-1795483444.24.wav", set2Dialplan("T-123")},
			{"1795483444.24", "1795483444.24", 102, "Local/1102@oml-agent-0000000e;1", "Local/3415553333@oml-customer-0000000c;1",
				9, 3, "3415553333", "777", "in-7-20261124-3415553333-1795483444.24.wav", set2Dialplan("T-123")},
		}, []string{"1795483444.24"}},
		{"ami/transfer-to-queue.ami", []want{
			{"1795481108.19", "1795481108.18", 2, "Local/1002@oml-agent-phone-0000000a;1", "Local/4149014@oml-inbound-00000009;2",
				7, 3, "4149014", "321321321", "in-7-20261124-4149014-1795481108.19.wav", set1Dialplan("T-736")},
			{"1795481108.19", "1795481108.18", 3, "Local/1003@oml-agent-phone-0000000b;1", "Local/4149014@oml-inbound-00000009;2",
				7, 3, "4149014", "321321321", "in-7-20261124-4149014-1795481108.19.wav", set1Dialplan("T-736")},
		}, []string{"1795481108.19"}},
		{"ari/transfer.jsonl", []want{
			{"1795481259.339", "1795481259.338", 115, "Local/1115@oml-agent-phone-000000aa;1", "Local/4149014@oml-inbound-000000a9;2",
				7, 3, "4149014", "321321321", "in-7-20261124-4149014-1795481259.339.wav", set1Dialplan("T-965")},
			{"1795481259.339", "1795481259.338", 218, "Local/1218@oml-agent-phone-000000ab;1", "Local/4149014@oml-inbound-000000a9;2",
				7, 3, "4149014", "321321321", "in-7-20261124-4149014-1795481259.339.wav", set1Dialplan("T-965")},
		}, []string{"1795481259.339"}},
	} {
		t.Run(c.file, func(t *testing.T) { runCapture(t, c) })
	}
}

// ARI (subscribeAll observer and the Stasis controller itself): the inbound captures.
func TestCaptureInboundARI(t *testing.T) {
	stasis := want{"1795483613.447", "", 3, "Local/1003@oml-agent-000000e0;1", "Local/7500@oml-stasis-000000df;2",
		75, 3, "4149014", "-1", "in-75-20261124-4149014-1795483613.447.wav", set2Dialplan("T-7500")}
	for _, c := range []captureCase{
		{"ari/oml-inbound-queue-observer.jsonl", []want{{"1795483626.450", "1795483626.450", 20, "Local/1020@oml-agent-000000e2;1", "Local/3415551234@oml-customer-000000e1;1",
			7, 3, "3415551234", "321321321", "in-7-20261124-3415551234-1795483626.450.wav", set2Dialplan("T-123")}}, []string{"1795483626.450"}},
		{"ari/oml-inbound-queue-chanvars-observer.jsonl", []want{{"1795483670.458", "1795483670.458", 21, "Local/1021@oml-agent-000000e6;1", "Local/3415551234@oml-customer-000000e5;1",
			7, 3, "3415551234", "321321321", "in-7-20261124-3415551234-1795483670.458.wav", set2Dialplan("T-123")}}, []string{"1795483670.458"}},
		{"ari/inbound.jsonl", []want{{"1795481223.331", "1795481223.330", 114, "Local/1114@oml-agent-phone-000000a6;1", "Local/4149014@oml-inbound-000000a5;2",
			7, 3, "4149014", "321321321", "in-7-20261124-4149014-1795481223.331.wav", set1Dialplan("T-966")}}, []string{"1795481223.331"}},
		{"ari/oml-stasis-inbound-observer.jsonl", []want{stasis}, []string{"1795483613.447"}},
		{"ari/oml-stasis-inbound.jsonl", []want{stasis}, []string{"1795483613.447"}},
		{"ami/oml-stasis-inbound.ami", []want{stasis}, []string{"1795483613.447"}},
	} {
		t.Run(c.file, func(t *testing.T) { runCapture(t, c) })
	}
}

// The busy captures: 50 interleaved OMniLeads calls (20 inbound, 20 dialer, 10
// preview) replayed through the fake AMI server and the real client, and Set 1's 40
// calls (20 answered, 20 abandoned).
func TestCaptureBusyInboundDialerPreview(t *testing.T) {
	srv := amitest.NewServer(t)
	tr, rec := startTracker(t, calls.Options{Resolver: extResolver{}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := ami.Dial(ctx, ami.Config{Address: srv.Addr(), Username: srv.Username(), Secret: srv.Secret(), Handler: tr.HandleAMI})
	if err != nil {
		t.Fatalf("ami.Dial: %v", err)
	}
	defer cl.Close()
	if err := srv.WaitLogins(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ReplayFile(sharedFile(t, "ami/oml-busy-50-calls.ami")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "50 Ended", func() bool { _, e := rec.counts(); return e >= 50 })
	settle(t, tr)
	got, ended := rec.facts(t)
	if len(got) != 50 || len(ended) != 50 {
		t.Fatalf("%d Connected and %d Ended, want 50 and 50", len(got), len(ended))
	}
	seen := map[string]bool{}
	types := map[int]int{}
	for _, c := range got {
		if seen[c.CallID] {
			t.Errorf("two Connected for call %s", c.CallID)
		}
		seen[c.CallID] = true
		types[c.CampaignType]++
		wantCamp := map[int]int{3: 7, 2: 9, 4: 115}[c.CampaignType]
		prefix := map[int]string{3: "in-7-", 2: "dialer-9-", 4: "prev-115-"}[c.CampaignType]
		if c.CampaignID != wantCamp || !strings.HasPrefix(c.RecordingFile, prefix) ||
			!strings.HasSuffix(c.RecordingFile, "-"+c.Phone+"-"+c.CallID+".wav") || c.CallID != c.LinkedID {
			t.Errorf("inconsistent Connected: %+v", c)
		}
		if c.AgentID == 0 || !strings.Contains(c.AgentChannel, "/"+itoa(1000+c.AgentID)+"@") {
			t.Errorf("agent %d does not match its channel %s", c.AgentID, c.AgentChannel)
		}
		if v, _ := c.DialplanValue("omlcrm_TICKET"); !strings.HasPrefix(v, "T-1") || c.Dialplan["OMLCRMORIGIN"] != origin {
			t.Errorf("dialplan data of %s: %v", c.CallID, c.Dialplan)
		}
		if len(c.Missing) != 0 {
			t.Errorf("call %s missing %v", c.CallID, c.Missing)
		}
	}
	if types[3] != 20 || types[2] != 20 || types[4] != 10 {
		t.Errorf("campaign types %v, want 20 inbound, 20 dialer, 10 preview", types)
	}
	for _, e := range ended {
		if !seen[e.CallID] {
			t.Errorf("Ended for unknown call %s", e.CallID)
		}
	}
	if s := tr.Stats(); s.Channels != 0 || s.Calls != 0 || s.Bridges != 0 {
		t.Errorf("state left: %+v", s)
	}

	t.Run("set1-busy-40", func(t *testing.T) {
		tr, rec := startTracker(t, calls.Options{Resolver: extResolver{}})
		for _, m := range readAMI(t, sharedFile(t, "ami/busy-40-calls.ami")) {
			tr.HandleAMI(m)
		}
		settle(t, tr)
		got, ended := rec.facts(t)
		if len(got) != 20 || len(ended) != 40 {
			t.Fatalf("%d Connected and %d Ended, want 20 and 40", len(got), len(ended))
		}
		for _, c := range got {
			if c.AgentID == 0 || c.CampaignID == 0 || len(c.Missing) != 0 || !strings.HasSuffix(c.RecordingFile, c.CallID+".wav") {
				t.Errorf("incomplete Connected: %+v", c)
			}
		}
	})
}
