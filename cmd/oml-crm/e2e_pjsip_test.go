package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// pjsipCatalog is a file catalog for the set-3 recordings (../shared/testdata/pjsip):
// campaigns 7 and 9 (inbound), 11 (manual) and 115 (preview) deliver to one server site
// with the call's identity and the dialplan data as OMniLeads stores the sources
// (Omlcrmorigen, while the dialplan sets OmlcrmOrigen).
const pjsipCatalog = `
sites:
  - {id: 1, name: srv, url: "CRM/hook", trigger: server, method: POST, format: json}
contact_databases:
  - {id: 5, name: base, columns: [telefono, nombre]}
agents:
  - {id: 1, username: agent1, name: "Agente 1", sip_extension: 1001}
  - {id: 2, username: agent2, name: "Agente 2", sip_extension: 1002}
  - {id: 3, username: agent3, name: "Agente 3", sip_extension: 1003}
  - {id: 4, username: agent4, name: "Agente 4", sip_extension: 1004}
  - {id: 5, username: agent5, name: "Agente 5", sip_extension: 1005}
  - {id: 6, username: agent6, name: "Agente 6", sip_extension: 1006}
  - {id: 102, username: agent102, name: "Agente 102", sip_extension: 1102}
contacts:
  - {id: 321321321, database: 5, phone: "4149014", fields: {nombre: "Ana"}}
campaigns:
`

func pjsipCampaign(id int, typ string) string {
	return fmt.Sprintf(`  - id: %d
    name: c%d
    type: %s
    interaction: site
    site: 1
    contact_database: 5
    params:
      - {family: call, source: call_id, name: call}
      - {family: call, source: agent_id, name: agent}
      - {family: call, source: telefono, name: tel}
      - {family: campaign, source: id, name: camp}
      - {family: dialplan, source: Omlcrmorigen, name: origen}
      - {family: dialplan, source: Omlcrmticket, name: ticket}
`, id, id, typ)
}

// pjsipDelivery is what the CRM must receive for one connect.
type pjsipDelivery struct {
	agent          int
	camp           string
	origen, ticket string
}

var pjsipE2E = []struct {
	file string
	call string
	want []pjsipDelivery
}{
	{"inbound", "1796287433.2", []pjsipDelivery{{1, "7", "web ñ & más", "T-42"}}},
	{"c2c", "1796287447.4", []pjsipDelivery{{2, "115", "click ñ & más", "T-C2C"}}},
	{"c2c-noagent", "1796287496.11", []pjsipDelivery{{2, "11", "click ñ & más", "T-C2C"}}},
	{"transfer", "1796287461.6", []pjsipDelivery{{3, "7", "web ñ & más", "T-43"}, {102, "9", "web ñ & más", "T-43"}}},
	{"abandon", "1796287484.9", nil},
	{"extras/agent-hangup", "1796287969.36", []pjsipDelivery{{4, "7", "web ñ & más", "T-45"}}},
	{"extras/ext-only", "1796287981.38", []pjsipDelivery{{5, "7", "50% + ñ;x=1&y=2/ok?", "T-44 #1"}}},
	{"extras/refer", "1796287996.40", []pjsipDelivery{{6, "7", "web ñ & más", "T-46"}, {102, "9", "web ñ & más", "T-46"}}},
	{"extras/quote", "1796288080.43", []pjsipDelivery{{1, "7", `O'Brien "VIP" ok?`, `C:\tmp\T-48`}}},
	{"extras/atxfer", "1796288242.49", []pjsipDelivery{{3, "7", "web ñ & más", "T-49"}, {102, "7", "web ñ & más", "T-49"}}},
	{"extras/atxfer-abort", "1796288290.54", []pjsipDelivery{{3, "7", "web ñ & más", "T-50"}}},
	{"extras/late", "1796287938.34", []pjsipDelivery{{1, "7", "web ñ & más", "T-47"}}},
}

func pjsipSetup(t *testing.T, source string) *e2eSetup {
	t.Helper()
	s := &e2eSetup{bin: buildBinary(t), crm: newCRM(t)}
	s.ast = newFakeAsterisk(t, source)
	dir := t.TempDir()
	cat := strings.ReplaceAll(pjsipCatalog, "CRM", s.crm.URL) + pjsipCampaign(7, "inbound") + pjsipCampaign(9, "inbound") +
		pjsipCampaign(11, "manual") + pjsipCampaign(115, "preview")
	catPath := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(catPath, []byte(cat), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cfg = e2eConfig{Listen: freeAddr(t), CatalogFile: catPath, QueuePath: filepath.Join(dir, "deliveries.db"), TokenSecret: e2eTokenSecret}
	s.ast.configure(&s.cfg)
	s.cfgPath = filepath.Join(dir, "oml-crm.yaml")
	s.cfg.write(t, s.cfgPath)
	return s
}

// checkPJSIPDeliveries waits for a recording's deliveries and checks each one, and that
// no other request was made for the call.
func checkPJSIPDeliveries(t *testing.T, s *e2eSetup, call string, want []pjsipDelivery) {
	t.Helper()
	for _, w := range want {
		key := crmnotify.NotificationID(call, w.agent, 1)
		var got []crmRequest
		waitFor(t, 20*time.Second, fmt.Sprintf("delivery of call %s for agent %d", call, w.agent), func() bool {
			got = s.crm.accepted()[key]
			return len(got) > 0
		})
		if len(got) != 1 {
			t.Errorf("call %s agent %d: %d deliveries", call, w.agent, len(got))
		}
		var body map[string]any
		if err := json.Unmarshal(got[0].Body, &body); err != nil {
			t.Fatalf("body %s: %v", got[0].Body, err)
		}
		if fmt.Sprint(body["call"]) != call || fmt.Sprint(body["agent"]) != fmt.Sprint(w.agent) || fmt.Sprint(body["camp"]) != w.camp ||
			body["origen"] != w.origen || body["ticket"] != w.ticket || body["tel"] != "4149014" {
			t.Errorf("call %s agent %d: body %s, want origen %q ticket %q camp %s", call, w.agent, got[0].Body, w.origen, w.ticket, w.camp)
		}
	}
	n := 0
	for _, r := range s.crm.accepted() {
		for _, req := range r {
			if strings.Contains(string(req.Body), call) {
				n++
			}
		}
	}
	if n != len(want) {
		t.Errorf("call %s: %d requests reached the CRM, want %d", call, n, len(want))
	}
}

// TestE2EPJSIPRecordings: every set-3 recording (real PJSIP calls from Asterisk 22),
// replayed byte for byte by the fakes through the daemon, over AMI and over ARI, gives
// the right server deliveries: one per agent the customer was connected to (not the
// consultation of an aborted attended transfer), the agent found by MemberName,
// OMLAGENTID or extension, and the dialplan data exactly as set (quotes and backslashes
// included) under the catalog's spelling of the name.
func TestE2EPJSIPRecordings(t *testing.T) {
	dir := filepath.Join(pgtest.SharedDir(t), "testdata", "pjsip")
	for _, source := range []string{"ami", "ari"} {
		t.Run(source, func(t *testing.T) {
			s := pjsipSetup(t, source)
			s.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for _, c := range pjsipE2E {
				path := filepath.Join(dir, c.file+".ami")
				var err error
				if source == "ari" {
					_, err = s.ast.ari.Replay(ctx, filepath.Join(dir, c.file+".ari.jsonl"))
				} else {
					_, err = s.ast.ami.ReplayFile(path)
				}
				if err != nil {
					t.Fatalf("%s: %v", c.file, err)
				}
				checkPJSIPDeliveries(t, s, c.call, c.want)
			}
		})
	}
}

// TestE2EPJSIPClickToCallRestart: a click-to-call delivered by one daemon, which is then
// killed; a new daemon on the same outbox starts while the call is still up and recovers
// it from Asterisk (no VarSet seen for it). The recovered connect keeps the call's roles
// and identity: the same notification id, so no second delivery (and none with an empty
// agent).
func TestE2EPJSIPClickToCallRestart(t *testing.T) {
	for _, c := range []struct {
		file, call string
		want       pjsipDelivery
	}{
		{"c2c", "1796287447.4", pjsipDelivery{2, "115", "click ñ & más", "T-C2C"}},
		// No OMLAGENTID: the agent comes from the extension of the right channel only.
		{"c2c-noagent", "1796287496.11", pjsipDelivery{2, "11", "click ñ & más", "T-C2C"}},
	} {
		t.Run(c.file, func(t *testing.T) { pjsipRestart(t, c.file, c.call, c.want) })
	}
}

func pjsipRestart(t *testing.T, file, call string, want pjsipDelivery) {
	path := filepath.Join(pgtest.SharedDir(t), "testdata", "pjsip", file+".ami")
	s := pjsipSetup(t, "ami")
	d := s.start(t)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	restarted := false
	_, err = s.ast.ami.ReplayWith(f, amitest.ReplayOptions{Track: true, Before: func(m *ami.Message) {
		if restarted || m.Event() != "BridgeLeave" {
			return
		}
		restarted = true
		// Connected and delivered by the first daemon; kill it mid-call, once it has recorded
		// the delivery: killed between the CRM's answer and that commit, it would deliver
		// again after the restart (at-least-once, same Idempotency-Key), which is not what
		// this test is about.
		checkPJSIPDeliveries(t, s, call, []pjsipDelivery{want})
		waitFor(t, 20*time.Second, "the first daemon to record the delivery", func() bool {
			return d.metric(`omlcrm_delivery_finished_total{outcome="delivered"}`) >= 1
		})
		d.kill9()
		d2 := startDaemonProc(t, s.bin, s.cfgPath, s.cfg.Listen)
		d2.waitReady()
		// The new daemon recovers the connect and hands it to its outbox, which finds
		// it already there (same notification id).
		waitFor(t, 20*time.Second, "the restarted daemon to recover the connect and enqueue it", func() bool {
			return d2.metric(`omlcrm_delivery_enqueued_total{result="duplicate"}`) >= 1
		})
		s.d = d2
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !restarted {
		t.Fatal("the recording has no BridgeLeave")
	}
	checkPJSIPDeliveries(t, s, call, []pjsipDelivery{want})
	if n := s.d.metric(`omlcrm_delivery_enqueued_total{result="new"}`); n > 0 {
		t.Errorf("the restarted daemon enqueued %v new notifications, want none", n)
	}
}
