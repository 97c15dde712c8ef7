package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/callsim"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// The disposition tables of OMniLeads 2.6.3 (the columns of its schema, see
// ../shared/reference/omnileads-2.6.3-schema.sql), for the seeded test database.
const e2eDispositionTables = `
CREATE TABLE ominicontacto_app_opcioncalificacion (
    id integer PRIMARY KEY, tipo integer NOT NULL, nombre varchar(50) NOT NULL, campana_id integer NOT NULL,
    formulario_id integer, oculta boolean NOT NULL, positiva boolean NOT NULL, interaccion_crm boolean NOT NULL,
    subcalificaciones jsonb);
CREATE TABLE ominicontacto_app_historicalcalificacioncliente (
    id integer NOT NULL, fecha timestamptz NOT NULL, observaciones text, agendado boolean NOT NULL,
    es_calificacion_manual boolean NOT NULL, history_id serial PRIMARY KEY, history_date timestamptz NOT NULL,
    history_change_reason varchar(100), history_type varchar(1) NOT NULL, agente_id integer, contacto_id integer,
    history_user_id integer, opcion_calificacion_id integer, callid varchar(32), created timestamptz NOT NULL,
    modified timestamptz NOT NULL, tipo_agenda integer, canalidad integer NOT NULL, subcalificacion varchar(200));
CREATE TABLE ominicontacto_app_calificacioncliente (
    id integer PRIMARY KEY, fecha timestamptz NOT NULL, observaciones text, agendado boolean NOT NULL,
    es_calificacion_manual boolean NOT NULL, agente_id integer NOT NULL, contacto_id integer NOT NULL,
    opcion_calificacion_id integer NOT NULL, callid varchar(32), created timestamptz NOT NULL,
    modified timestamptz NOT NULL, tipo_agenda integer, canalidad integer NOT NULL, subcalificacion varchar(200));
CREATE TABLE ominicontacto_app_historicalrespuestaformulariogestion (
    id integer NOT NULL, metadata text NOT NULL, fecha timestamptz NOT NULL, history_id serial PRIMARY KEY,
    history_date timestamptz NOT NULL, history_change_reason varchar(100), history_type varchar(1) NOT NULL,
    calificacion_id integer, history_user_id integer);
INSERT INTO ominicontacto_app_opcioncalificacion VALUES (1, 0, 'Venta', 18, NULL, false, true, true, NULL);
INSERT INTO ominicontacto_app_parametroscrm (id, campana_id, nombre, valor, tipo) VALUES
    (40, 18, 'dispId', 'id', 6), (41, 18, 'dispName', 'name', 6), (42, 18, 'sub', 'subdisposition', 6), (43, 18, 'form', 'form', 6);`

// The whole call through the real daemon over the AMI and ARI fakes: ringing pops
// promoted (the connect replaces it) and withdrawn (abandoned call), end-of-call
// notifications of an answered, a transferred and an abandoned call, and a disposition
// created then edited in the OMniLeads database.
func TestE2EWholeCallPhases(t *testing.T) {
	for _, source := range []string{"ami", "ari"} {
		t.Run(source, func(t *testing.T) {
			s := newE2E(t, source)
			pgtest.Exec(t, s.db, e2eDispositionTables)
			s.cfg.Delivery = `sites: {"3": {call_end: answered}, "4": {call_end: all}, "5": {call_end: all}}`
			s.cfg.Extra = "phases: {dispositions: true, disposition_poll_interval: 50ms, disposition_settle: 1s, ringing_campaigns: [16]}\n"
			s.cfg.write(t, s.cfgPath)
			d := s.start(t)
			waitFor(t, 20*time.Second, "the disposition cursor to start", func() bool {
				return strings.Contains(d.log(), "cursor starts at the newest history row")
			})
			agent1 := dialAgent(t, d.base, e2eTokenSecret, 1)
			agent2 := dialAgent(t, d.base, e2eTokenSecret, 2)

			answered := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, "T-13") // server site 3, call_end answered
			rung := simCall(s.ids, 16, catalog.TypeInbound, e2eAgent2, "T-16")    // ringing pop then connect pop
			abandon := callsim.Build(s.ids, callsim.Params{Scenario: callsim.Abandon, CampaignID: 16, CampaignType: 3,
				Agent: e2eAgent1, Phone: "4149014", ContactID: e2eContact, Talk: 200 * time.Millisecond})
			transfer := callsim.Build(s.ids, callsim.Params{Scenario: callsim.BlindTransfer, CampaignID: 16, CampaignType: 3,
				Agent: e2eAgent2, SecondAgent: e2eAgent1, TransferCamp: 17, Phone: "4149014", ContactID: e2eContact,
				Dialplan: []callsim.Var{{Name: "Omlcrmticket", Value: "T-X"}}, Talk: 200 * time.Millisecond})

			// Ringing promoted: the ringing pop, then the connect pop replacing it.
			s.ast.play(t, rung)
			ring := agent2.nextPop(t)
			conn := agent2.nextPop(t)
			ringID := crmnotify.PhaseNotificationID(rung.CallID, 2, 4, crmnotify.PhaseRinging)
			if ring.Phase != "ringing" || ring.ID != ringID || ring.CallID != rung.CallID {
				t.Errorf("first pop = %+v, want the ringing pop %s", ring, ringID)
			}
			if conn.Phase != "" || conn.Replaces != ringID || conn.ID != crmnotify.NotificationID(rung.CallID, 2, 4) {
				t.Errorf("connect pop = %+v, want it to replace %s", conn, ringID)
			}

			// Ringing withdrawn: the caller hangs up while agent 1's phone rings.
			s.ast.play(t, abandon)
			ring = agent1.nextPop(t)
			if ring.Phase != "ringing" || ring.CallID != abandon.CallID {
				t.Errorf("abandoned call: pop %+v, want a ringing pop", ring)
			}
			select {
			case w := <-agent1.withdrawn:
				if w[0] != ring.ID || w[1] != "hangup" {
					t.Errorf("withdrawn %v, want %s hangup", w, ring.ID)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the ringing pop of the abandoned call was not withdrawn")
			}
			// Its end-of-call notification (site 4: call_end all), unanswered.
			req := s.waitPhase(t, abandon.CallID, 0, 4, crmnotify.PhaseCallEnd)
			f, _ := url.ParseQuery(string(req.Body))
			if f.Get("answered") != "false" || f.Get("hangup_by") != "customer" || f.Get("agents") != "" || f.Get("talk_seconds") != "0" {
				t.Errorf("abandoned call end: %s", req.Body)
			}

			// Answered call: the connect delivery and its end (site 3, JSON after login).
			s.ast.play(t, answered)
			s.waitDelivered(t, answered, 1, 3)
			req = s.waitPhase(t, answered.CallID, 1, 3, crmnotify.PhaseCallEnd)
			b := jsonBody(t, req.Body)
			if fmt.Sprint(b["answered"]) != "true" || fmt.Sprint(b["agents"]) != "1" || b["start"] == "" || b["answer"] == "" || b["end"] == "" ||
				fmt.Sprint(b["recording"]) != answered.Expected[0].RecordingFile || (b["hangup_by"] != "customer" && b["hangup_by"] != "agent") ||
				fmt.Sprint(b["hangup_cause"]) != "16" || fmt.Sprint(b["campaign"]) != "Dialer" {
				t.Errorf("answered call end: %s", req.Body)
			}

			// Transferred call: agent 2 (campaign 16) hands over to agent 1 (campaign 17);
			// the end goes to campaign 17's site 5 (GET) with both agents and the transfer.
			s.ast.play(t, transfer)
			for _, want := range []string{"ringing", ""} {
				if p := agent2.nextPop(t); p.CallID != transfer.CallID || p.Phase != want {
					t.Errorf("transferred call: pop %+v, want phase %q", p, want)
				}
			}
			req = s.waitPhase(t, transfer.CallID, 1, 5, crmnotify.PhaseCallEnd)
			q, _ := url.ParseQuery(req.RawQuery)
			var trs []map[string]any
			if err := json.Unmarshal([]byte(q.Get("transfers")), &trs); err != nil || len(trs) != 1 ||
				fmt.Sprint(trs[0]["from"]) != "2" || fmt.Sprint(trs[0]["to"]) != "1" || q.Get("agents") != "2,1" {
				t.Errorf("transferred call end: %s (transfers %v, %v)", req.RawQuery, trs, err)
			}

			// Disposition created then edited from the call: two deliveries to site 6.
			for i, sub := range []string{"Contado", "Cuotas"} {
				typ := "+"
				if i > 0 {
					typ = "~"
				}
				pgtest.Exec(t, s.db, `INSERT INTO ominicontacto_app_historicalcalificacioncliente
  (id, fecha, agendado, es_calificacion_manual, history_date, history_type, agente_id, contacto_id, opcion_calificacion_id, callid, created, modified, canalidad, subcalificacion)
  VALUES (7, now(), false, false, now() - interval '5 seconds', '`+typ+`', 2, 321321321, 1, '`+answered.CallID+`', now(), now(), 0, '`+sub+`')`)
			}
			var got []string
			waitFor(t, 20*time.Second, "two disposition deliveries", func() bool {
				got = got[:0]
				for _, reqs := range s.crm.accepted() {
					if reqs[0].Path == "/disposition" {
						got = append(got, string(reqs[0].Body))
					}
				}
				return len(got) == 2
			})
			joined := strings.Join(got, " ")
			if !strings.Contains(joined, `"sub":"Contado"`) || !strings.Contains(joined, `"sub":"Cuotas"`) || !strings.Contains(joined, `"dispName":"Venta"`) {
				t.Errorf("disposition deliveries: %v", got)
			}
			agent1.noPop(t)
			agent2.noPop(t)
			d.stop()
		})
	}
}

// waitPhase waits until the CRM accepted the notification of (call, agent, site, phase).
func (s *e2eSetup) waitPhase(t *testing.T, callID string, agentID, siteID int, phase string) crmRequest {
	t.Helper()
	key := crmnotify.PhaseNotificationID(callID, agentID, siteID, phase)
	var got []crmRequest
	waitFor(t, 20*time.Second, fmt.Sprintf("%s notification of call %s to site %d", phase, callID, siteID), func() bool {
		got = s.crm.accepted()[key]
		return len(got) > 0
	})
	return got[0]
}
