package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/omlcrm/oml-crm/agentws"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/ari/aritest"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/callsim"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/crmnotify/delivery"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

const e2eTokenSecret = "e2e-token-secret-0123456789"

// Seeded agents: agent 1 has SIP extension 1002 (user agent1), agent 2 has 1003 (agent2).
var (
	e2eAgent1 = callsim.Agent{ID: 1, Extension: "1002"}
	e2eAgent2 = callsim.Agent{ID: 2, Extension: "1003"}
)

// e2eContact is seeded contact 321321321 (database 1: idcliente A-321, nombre Juan Pérez).
const e2eContact = "321321321"

// fakeAsterisk plays calls through one of the fake servers.
type fakeAsterisk struct {
	source string
	ami    *amitest.Server
	ari    *aritest.Server
}

func newFakeAsterisk(t *testing.T, source string) *fakeAsterisk {
	f := &fakeAsterisk{source: source}
	if source == "ari" {
		f.ari = aritest.NewServer(t, aritest.Options{Username: "e2e", Password: "e2e-ari-secret", App: "omlcrm"})
	} else {
		f.ami = amitest.NewServer(t)
	}
	return f
}

func (f *fakeAsterisk) configure(c *e2eConfig) {
	c.Source = f.source
	if f.ami != nil {
		c.AMIAddress, c.AMIUser, c.AMISecret = f.ami.Addr(), f.ami.Username(), f.ami.Secret()
	} else {
		c.AMIAddress, c.AMIUser, c.AMISecret = "127.0.0.1:1", "omlcrm", "unused"
	}
	if f.ari != nil {
		c.ARIURL = f.ari.URL()
	} else {
		c.ARIURL = "http://127.0.0.1:1"
	}
}

func (f *fakeAsterisk) play(t *testing.T, cs ...*callsim.Call) {
	t.Helper()
	f.playSteps(t, callsim.Interleave(cs, 5*time.Millisecond))
}

// playUntilTalk plays a call up to its talk time: connected, not hung up.
func (f *fakeAsterisk) playUntilTalk(t *testing.T, c *callsim.Call, talk time.Duration) {
	t.Helper()
	var steps []callsim.Timed
	for _, st := range callsim.Interleave([]*callsim.Call{c}, 0) {
		if st.At < c.Duration-talk {
			steps = append(steps, st)
		}
	}
	f.playSteps(t, steps)
}

// playSteps sends the steps at once (their offsets are not waited for).
func (f *fakeAsterisk) playSteps(t *testing.T, steps []callsim.Timed) {
	t.Helper()
	if f.ami != nil {
		var buf bytes.Buffer
		if err := callsim.WriteAMI(&buf, steps); err != nil {
			t.Fatal(err)
		}
		if err := f.ami.Send(buf.Bytes()); err != nil {
			t.Fatalf("fake AMI: %v", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, line := range callsim.ARILines(steps, time.Now()) {
		if err := f.ari.Send(ctx, line); err != nil {
			t.Fatalf("fake ARI: %v", err)
		}
	}
}

// simCall builds a call of campaign to agent a for the seeded contact.
func simCall(ids *callsim.IDs, campaign int, typ catalog.CampaignType, a callsim.Agent, ticket string) *callsim.Call {
	sc := map[catalog.CampaignType]callsim.Scenario{
		catalog.TypeInbound: callsim.InboundQueue, catalog.TypeDialer: callsim.DialerQueue,
		catalog.TypePreview: callsim.Preview, catalog.TypeManual: callsim.Manual,
	}[typ]
	return callsim.Build(ids, callsim.Params{
		Scenario: sc, CampaignID: campaign, CampaignType: int(typ), Agent: a,
		Phone: "4149014", ContactID: e2eContact,
		Dialplan: []callsim.Var{{Name: "Omlcrmticket", Value: ticket}},
		Talk:     200 * time.Millisecond,
	})
}

// e2eSetup starts the CRM, the OMniLeads database, the fake Asterisk and the daemon.
type e2eSetup struct {
	bin     string
	crm     *crmServer
	db      string
	ast     *fakeAsterisk
	cfg     e2eConfig
	cfgPath string
	d       *daemonProc
	ids     *callsim.IDs
}

func newE2E(t *testing.T, source string) *e2eSetup {
	t.Helper()
	s := &e2eSetup{bin: buildBinary(t), crm: newCRM(t), ids: callsim.NewIDs(time.Now().Unix())}
	s.db = omlDatabase(t, s.crm.URL)
	s.ast = newFakeAsterisk(t, source)
	dir := t.TempDir()
	s.cfg = e2eConfig{Listen: freeAddr(t), DatabaseURL: s.db, QueuePath: filepath.Join(dir, "deliveries.db"),
		TokenSecret: e2eTokenSecret}
	s.ast.configure(&s.cfg)
	s.cfgPath = filepath.Join(dir, "oml-crm.yaml")
	s.cfg.write(t, s.cfgPath)
	return s
}

func (s *e2eSetup) start(t *testing.T) *daemonProc {
	t.Helper()
	s.d = startDaemonProc(t, s.bin, s.cfgPath, s.cfg.Listen)
	s.d.waitReady()
	return s.d
}

// waitDelivered waits until the CRM accepted the notification of (call, agent, site).
func (s *e2eSetup) waitDelivered(t *testing.T, c *callsim.Call, agentID, siteID int) crmRequest {
	t.Helper()
	key := crmnotify.NotificationID(c.CallID, agentID, siteID)
	var got []crmRequest
	waitFor(t, 20*time.Second, fmt.Sprintf("delivery of call %s to site %d", c.CallID, siteID), func() bool {
		got = s.crm.accepted()[key]
		return len(got) > 0
	})
	return got[0]
}

func TestE2EEveryCampaignTypeAndTrigger(t *testing.T) {
	for _, source := range []string{"ami", "ari"} {
		t.Run(source, func(t *testing.T) {
			s := newE2E(t, source)
			d := s.start(t)
			agent1 := dialAgent(t, d.base, e2eTokenSecret, 1)
			agent2 := dialAgent(t, d.base, e2eTokenSecret, 2)

			preview := simCall(s.ids, 11, catalog.TypePreview, e2eAgent1, "T-11")    // agent trigger, GET, embedded
			clean := simCall(s.ids, 12, catalog.TypePreview, e2eAgent2, "T-12")      // agent trigger, clean URL
			dialer := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, "T-13")      // server, POST JSON, login
			formOnly := simCall(s.ids, 15, catalog.TypeInbound, e2eAgent2, "T-15")   // no site: skipped
			inbound := simCall(s.ids, 16, catalog.TypeInbound, e2eAgent2, "T-16")    // automatic, POST form, new tab
			manual := simCall(s.ids, 17, catalog.TypeManual, e2eAgent1, "T-17")      // server, GET
			disposition := simCall(s.ids, 18, catalog.TypeDialer, e2eAgent2, "T-18") // disposition: skipped
			unknown := simCall(s.ids, 99, catalog.TypeInbound, e2eAgent1, "T-99")    // not in the catalog
			s.ast.play(t, preview, clean, dialer, formOnly, inbound, manual, disposition, unknown)

			// Server trigger: POST JSON after the site's login; GET with the query.
			req := s.waitDelivered(t, dialer, 1, 3)
			if req.Method != http.MethodPost || req.Path != "/api/calls" || req.Auth != "Bearer "+crmToken ||
				!strings.HasPrefix(req.ContentType, "application/json") {
				t.Errorf("campaign 13 delivery: %s %s auth %q type %q", req.Method, req.Path, req.Auth, req.ContentType)
			}
			body := jsonBody(t, req.Body)
			want := map[string]string{"phone": "4149014", "customer": "A-321", "ticket": "T-13", "campaign": "Dialer"}
			for k, v := range want {
				if fmt.Sprint(body[k]) != v {
					t.Errorf("campaign 13 body %s = %v, want %q (body %s)", k, body[k], v, req.Body)
				}
			}
			req = s.waitDelivered(t, manual, 1, 5)
			q, _ := url.ParseQuery(req.RawQuery)
			if req.Method != http.MethodGet || req.Path != "/server/get" || q.Get("call") != manual.CallID || q.Get("ticket") != "T-17" {
				t.Errorf("campaign 17 delivery: %s %s?%s", req.Method, req.Path, req.RawQuery)
			}

			// Agent and automatic triggers: pops to the right agent only.
			pops := map[int]agentws.PopMessage{}
			for range 1 {
				p := agent1.nextPop(t)
				pops[p.Campaign.ID] = p
			}
			for range 2 {
				p := agent2.nextPop(t)
				pops[p.Campaign.ID] = p
			}
			rec := strings.TrimSuffix(preview.Expected[0].RecordingFile, ".wav")
			if p := pops[11]; p.Trigger != "agent" || p.Target != "embedded" || p.CallID != preview.CallID ||
				p.Request.URL != s.crm.URL+"/my_crm?idClient=321321321&idCamp=11&lang=es&recordingFile="+url.QueryEscape(rec+".wav") {
				t.Errorf("campaign 11 pop (agent 1): %+v", p)
			}
			rec = strings.TrimSuffix(clean.Expected[0].RecordingFile, ".wav")
			if p := pops[12]; p.Trigger != "agent" || p.Request.URL != s.crm.URL+"/my_crm/321321321/11/es/"+url.PathEscape(rec+".wav") {
				t.Errorf("campaign 12 pop (agent 2): %+v", p)
			}
			if p := pops[16]; p.Trigger != "automatic" || p.Target != "new_tab" || p.Request.Method != "POST" ||
				p.Request.URL != s.crm.URL+"/auto/321321321" || fmt.Sprint(p.Request.Fields) != "[[nombre Juan Pérez] [agent agent2]]" {
				t.Errorf("campaign 16 pop (agent 2): %+v", p)
			}
			if len(pops) != 3 {
				t.Errorf("pops for campaigns %v, want 11, 12 and 16", pops)
			}

			// Every connect is accounted for.
			waitFor(t, 10*time.Second, "every connect counted", func() bool {
				return d.metric(`omlcrm_connects_total{outcome="skipped"}`) == 3
			})
			for sample, want := range map[string]float64{
				`omlcrm_connects_total{outcome="server"}`:                        2,
				`omlcrm_connects_total{outcome="popped"}`:                        3,
				`omlcrm_connects_total{outcome="error"}`:                         0,
				`omlcrm_connects_skipped_total{reason="no_site"}`:                1,
				`omlcrm_connects_skipped_total{reason="trigger_not_on_connect"}`: 1,
				`omlcrm_connects_skipped_total{reason="unknown_campaign"}`:       1,
			} {
				if got := d.metric(sample); got != want {
					t.Errorf("%s = %v, want %v", sample, got, want)
				}
			}
			agent1.noPop(t)
			agent2.noPop(t)
			// The one listener also serves the browser client, the agent page, metrics
			// (Go and process collectors included) and liveness.
			for path, want := range map[string]string{"/oml-crm.js": "", "/agent": "<", "/healthz": "",
				"/metrics": "process_resident_memory_bytes"} {
				if code, body := httpGet(d.base + path); code != http.StatusOK || !strings.Contains(body, want) {
					t.Errorf("GET %s = %d (want 200 with %q)", path, code, want)
				}
			}
			if d.metric("go_goroutines") <= 0 {
				t.Error("/metrics lacks go_goroutines")
			}
			// Call lines carry call_id, campaign_id and agent_id.
			if log := d.log(); !strings.Contains(log, `"call_id":"`+formOnly.CallID+`","campaign_id":15,"agent_id":2`) {
				t.Errorf("no log line for the skipped call %s with call_id, campaign_id, agent_id", formOnly.CallID)
			}
			d.stop()
			checkOperationsRecipes(t, d.log(), opsCalls{
				all: []string{preview.CallID, clean.CallID, dialer.CallID, formOnly.CallID, inbound.CallID,
					manual.CallID, disposition.CallID, unknown.CallID},
				server: dialer.CallID, notification: crmnotify.NotificationID(dialer.CallID, 1, 3), pop: preview.CallID,
				skipReasons: []string{"no_site", "trigger_not_on_connect", "unknown_campaign"},
			})
		})
	}
}

// An Asterisk restart mid-run: a call that connects while the manager interface is down
// is found by the resync after reconnecting; calls after the restart flow as before.
func TestE2EAsteriskRestart(t *testing.T) {
	s := newE2E(t, "ami")
	d := s.start(t)

	before := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, "T-before")
	s.ast.play(t, before)
	s.waitDelivered(t, before, 1, 3)

	s.ast.ami.Down()
	waitFor(t, 10*time.Second, "/readyz to name asterisk", func() bool {
		code, body := httpGet(d.base + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "asterisk")
	})
	// While down, a call connects: Asterisk will list it when the daemon reconnects.
	during := simCall(s.ids, 17, catalog.TypeManual, e2eAgent2, "T-during")
	var live []amitest.Channel
	for _, l := range during.Live {
		ch := amitest.Channel{Name: l.Name, Uniqueid: l.Uniqueid, Linkedid: l.Linkedid, CallerIDNum: l.CallerIDNum,
			CallerIDName: l.CallerIDName, Context: l.Context, Exten: l.Exten, Application: l.Application,
			Data: l.ApplicationData, BridgeID: l.BridgeID, Vars: map[string]string{}}
		for _, cv := range during.Channels {
			if cv.Name == l.Name {
				ch.Vars = cv.Vars
			}
		}
		live = append(live, ch)
	}
	s.ast.ami.SetChannels(live...)
	for _, cv := range during.Channels {
		for k, v := range cv.Vars {
			s.ast.ami.SetVar(cv.Name, k, v)
		}
	}
	if err := s.ast.ami.Up(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.ast.ami.WaitLogins(ctx, 2); err != nil {
		t.Fatal(err)
	}
	d.waitReady()
	req := s.waitDelivered(t, during, 2, 5)
	if q, _ := url.ParseQuery(req.RawQuery); q.Get("call") != during.CallID {
		t.Errorf("resynced call delivered as %s", req.RawQuery)
	}
	s.ast.ami.SetChannels()

	after := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent2, "T-after")
	s.ast.play(t, after)
	s.waitDelivered(t, after, 2, 3)
	if n := len(s.crm.accepted()[crmnotify.NotificationID(before.CallID, 1, 3)]); n != 1 {
		t.Errorf("the call before the restart was delivered %d times", n)
	}
	d.stop()
}

// PostgreSQL becomes unavailable after warm-up: the cached campaign keeps working, a
// delivery whose contact cannot be read waits for it (not sent blank), /readyz names the
// catalog database and the waiting deliveries, and everything is back once PostgreSQL is.
func TestE2EPostgresUnavailable(t *testing.T) {
	s := newE2E(t, "ami")
	d := s.start(t)
	dbName := strings.TrimPrefix(mustParseURL(t, s.db).Path, "/")
	admin := pgtest.AdminURL(t)

	warm := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, "T-warm")
	s.ast.play(t, warm)
	if got := jsonBody(t, s.waitDelivered(t, warm, 1, 3).Body)["customer"]; got != "A-321" {
		t.Fatalf("warm-up customer = %v", got)
	}

	pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS false;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid();`, dbName, dbName))
	restored := false
	restore := func() {
		if !restored {
			restored = true
			pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS true`, dbName))
		}
	}
	t.Cleanup(restore)

	waitFor(t, 10*time.Second, "/readyz to name the catalog database", func() bool {
		code, body := httpGet(d.base + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"catalog_db"`)
	})
	// Past catalog.cache_ttl (1s) the campaign is stale: it is served from the cache
	// while its refresh fails. The contact cannot be read: the delivery waits for it
	// (never sent with the customer blank), and /readyz says so.
	time.Sleep(1500 * time.Millisecond)
	down := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent2, "T-down")
	s.ast.play(t, down)
	waitFor(t, 20*time.Second, "/readyz to name the deliveries waiting for their contact", func() bool {
		code, body := httpGet(d.base + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "1 server deliveries wait for their contact")
	})
	downKey := crmnotify.NotificationID(down.CallID, 2, 3)
	if n := s.crm.attempts(downKey); n != 0 {
		t.Fatalf("the delivery of a call whose contact cannot be read reached the CRM %d time(s)", n)
	}

	restore()
	body := jsonBody(t, s.waitDelivered(t, down, 2, 3).Body)
	if body["ticket"] != "T-down" || body["campaign"] != "Dialer" || body["phone"] != "4149014" || body["customer"] != "A-321" {
		t.Errorf("delivery that waited through the outage: %v (want the call's fields and customer A-321)", body)
	}
	d.waitReady()
	back := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, "T-back")
	s.ast.play(t, back)
	if got := jsonBody(t, s.waitDelivered(t, back, 1, 3).Body)["customer"]; got != "A-321" {
		t.Errorf("after PostgreSQL is back, customer = %v, want A-321", got)
	}
	d.stop()
}

// A CRM outage, then kill -9 of the daemon while deliveries are failing, then a restart
// once the CRM is back: every delivery arrives, accepted once per Idempotency-Key. With
// the SQLite queue and with the PostgreSQL one.
func TestE2ECRMOutageAndKill9(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { testCRMOutageAndKill9(t, store) })
	}
}

func testCRMOutageAndKill9(t *testing.T, store string) {
	s := newE2E(t, "ami")
	queueStore := "sqlite:" + s.cfg.QueuePath
	if store == "postgres" {
		s.cfg.QueueURL = pgtest.NewDatabase(t)
		s.cfg.write(t, s.cfgPath)
		queueStore = s.cfg.QueueURL
	}
	d := s.start(t)
	s.crm.outage.Store(true)

	var cs []*callsim.Call
	for i := range 6 {
		a := e2eAgent1
		if i%2 == 1 {
			a = e2eAgent2
		}
		if i%3 == 0 {
			cs = append(cs, simCall(s.ids, 17, catalog.TypeManual, a, fmt.Sprintf("T-%d", i)))
		} else {
			cs = append(cs, simCall(s.ids, 13, catalog.TypeDialer, a, fmt.Sprintf("T-%d", i)))
		}
	}
	s.ast.play(t, cs...)
	keys := map[string]*callsim.Call{}
	for _, c := range cs {
		site := 3
		if c.CampaignID == 17 {
			site = 5
		}
		keys[crmnotify.NotificationID(c.CallID, c.Expected[0].AgentID, site)] = c
	}
	waitFor(t, 20*time.Second, "a failed attempt of every delivery", func() bool {
		for k := range keys {
			if s.crm.attempts(k) == 0 {
				return false
			}
		}
		return true
	})
	d.kill9()

	s.crm.outage.Store(false)
	d = startDaemonProc(t, s.bin, s.cfgPath, s.cfg.Listen)
	d.waitReady()
	waitFor(t, 30*time.Second, "every delivery after the restart", func() bool {
		acc := s.crm.accepted()
		for k := range keys {
			if len(acc[k]) == 0 {
				return false
			}
		}
		return true
	})
	d.stop()
	for k, reqs := range s.crm.accepted() {
		if keys[k] == nil {
			t.Errorf("unexpected delivery with key %q", k)
		} else if len(reqs) != 1 {
			t.Errorf("key %s accepted %d times, want once", k, len(reqs))
		}
	}
	// The outbox agrees: delivered, nothing pending or dead.
	q, err := delivery.Open(context.Background(), delivery.Options{Store: queueStore})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Depth != 0 || st.Dead != 0 || st.DeliveredTotal != len(keys) {
		t.Errorf("outbox after the run: %+v, want %d delivered and nothing else", st, len(keys))
	}
}

// Malformed input at the boundaries: AMI garbage and an oversized event the tracker
// does not use (a 200 KiB UserEvent line) are skipped without losing the session or
// the next calls; bad websocket messages get an error and the connection keeps working;
// a bad token is refused.
func TestE2EMalformedInput(t *testing.T) {
	s := newE2E(t, "ami")
	d := s.start(t)
	agent := dialAgent(t, d.base, e2eTokenSecret, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := s.ast.ami.SendGarbage(); err != nil {
		t.Fatal(err)
	}
	s.ast.ami.SendLongLine(200 << 10)
	if err := s.ast.ami.WaitSessions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	d.waitReady()
	c := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, "T-after-garbage")
	s.ast.play(t, c)
	s.waitDelivered(t, c, 1, 3)
	if n := s.ast.ami.Logins(); n != 1 {
		t.Errorf("%d AMI logins: the skipped frames dropped the session", n)
	}

	// Bad websocket messages: each is answered with an error; pops still arrive.
	for _, msg := range []string{`not json`, `{"type":"launch-missiles"}`, `{"type":"ack"}`} {
		if err := agent.conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-agent.errs:
			if e == "" {
				t.Errorf("%s: empty error message", msg)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: no error message from the hub", msg)
		}
	}
	p := simCall(s.ids, 11, catalog.TypePreview, e2eAgent1, "T-pop")
	s.ast.play(t, p)
	if got := agent.nextPop(t); got.CallID != p.CallID {
		t.Errorf("pop after bad messages: call %s, want %s", got.CallID, p.CallID)
	}

	// A forged token is refused at the handshake.
	forged, _ := agentws.MintToken([]byte("another-secret-0123456789"), 1, time.Now().Add(time.Hour))
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(d.base, "http")+"/ws?token="+url.QueryEscape(forged), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged token: err %v, response %v; want 401", err, resp)
	}
	d.stop()
}

// A configuration error exits 2 and names every bad key.
func TestE2EBadConfig(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cases := []struct {
		yaml string
		keys []string
	}{
		{"asterisk: {ami: {adress: 127.0.0.1:5038}}\n", []string{"asterisk.ami.adress"}},
		{"log: {level: loud}\nasterisk: {source: sip}\nagentws: {token_secret: short}\n",
			[]string{"log.level", "asterisk.source", "agentws.token_secret"}},
	}
	for i, c := range cases {
		path := filepath.Join(dir, fmt.Sprintf("bad%d.yaml", i))
		if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "run", "--config", path)
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%q: exit %v, want 2", c.yaml, err)
		}
		for _, k := range c.keys {
			if !strings.Contains(stderr.String(), k) {
				t.Errorf("%q: stderr does not name %s:\n%s", c.yaml, k, stderr.String())
			}
		}
	}
}

// SIGHUP applies the log level, the catalog cache and pop TTLs and the delivery signing
// secrets, and says what needs a restart; the next delivery is signed with the new
// secret and the next pop carries the new TTL.
func TestE2EReloadOnSIGHUP(t *testing.T) {
	s := newE2E(t, "ami")
	d := s.start(t)

	first := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, "T-unsigned")
	s.ast.play(t, first)
	if sig := s.waitDelivered(t, first, 1, 3).Signature; sig != "" {
		t.Fatalf("unsigned delivery carries a signature %q", sig)
	}

	const secret = "new-signing-secret-0123456789"
	y, _ := os.ReadFile(s.cfgPath)
	y = bytes.Replace(y, []byte("delivery: {store: sqlite,"), []byte(fmt.Sprintf("delivery: {sites: {\"3\": {signing_secret: %q}}, store: sqlite,", secret)), 1)
	y = bytes.Replace(y, []byte("log: {level: debug"), []byte("log: {level: info"), 1)
	y = bytes.Replace(y, []byte("shutdown_timeout: 10s"), []byte("shutdown_timeout: 11s"), 1)
	y = bytes.Replace(y, []byte("cache_ttl: 1s"), []byte("cache_ttl: 2s"), 1)
	y = bytes.Replace(y, []byte("agentws: {token_secret:"), []byte("agentws: {pop_ttl: 1h, token_secret:"), 1)
	if err := os.WriteFile(s.cfgPath, y, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the reload log line", func() bool { return strings.Contains(d.log(), "SIGHUP: configuration re-read") })
	log := d.log()
	line := log[strings.LastIndex(log[:strings.Index(log, "SIGHUP: configuration re-read")], "\n")+1:]
	line = line[:strings.Index(line, "\n")]
	for _, want := range []string{`"reloaded":["agentws.pop_ttl","catalog.cache_ttl","delivery.sites","log.level"]`,
		`"restart_needed":["http.shutdown_timeout"]`} {
		if !strings.Contains(line, want) {
			t.Errorf("reload line %s lacks %s", line, want)
		}
	}

	second := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent2, "T-signed")
	s.ast.play(t, second)
	req := s.waitDelivered(t, second, 2, 3)
	ts := strings.TrimPrefix(strings.Split(req.Signature, ",")[0], "t=")
	var unix int64
	fmt.Sscan(ts, &unix)
	if want := delivery.Sign(catalog.Secret(secret), time.Unix(unix, 0), req.Body); req.Signature == "" || req.Signature != want {
		t.Errorf("signature %q, want %q", req.Signature, want)
	}
	// The new level (info) drops the debug lines that used to follow each connect.
	before := strings.Count(d.log(), `"level":"debug"`)
	third := simCall(s.ids, 17, catalog.TypeManual, e2eAgent1, "T-info")
	s.ast.play(t, third)
	s.waitDelivered(t, third, 1, 5)
	if after := strings.Count(d.log(), `"level":"debug"`); after != before {
		t.Errorf("%d debug lines logged after the reload to info", after-before)
	}
	// A pop made after the reload is replayable for the new hour (the default is 2m).
	agent := dialAgent(t, d.base, e2eTokenSecret, 1)
	pop := simCall(s.ids, 11, catalog.TypePreview, e2eAgent1, "T-pop-ttl")
	s.ast.play(t, pop)
	if p := agent.nextPop(t); p.CallID != pop.CallID || !p.ExpiresAt.After(time.Now().Add(30*time.Minute)) {
		t.Errorf("pop after the reload: call %s expires at %s; want call %s with agentws.pop_ttl 1h", p.CallID, p.ExpiresAt, pop.CallID)
	}
	d.stop()
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Asterisk and PostgreSQL both down when the daemon starts: it starts anyway, /readyz
// names both, and once they are up calls flow.
func TestE2EStartWithDependenciesDown(t *testing.T) {
	s := newE2E(t, "ami")
	dbName := strings.TrimPrefix(mustParseURL(t, s.db).Path, "/")
	admin := pgtest.AdminURL(t)
	pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS false`, dbName))
	t.Cleanup(func() { pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS true`, dbName)) })
	s.ast.ami.Down()

	d := startDaemonProc(t, s.bin, s.cfgPath, s.cfg.Listen)
	waitFor(t, 15*time.Second, "/readyz to name asterisk and the catalog database", func() bool {
		code, body := httpGet(d.base + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"asterisk"`) && strings.Contains(body, `"catalog_db"`)
	})
	if code, _ := httpGet(d.base + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while dependencies are down, want 200 (liveness only)", code)
	}

	pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS true`, dbName))
	if err := s.ast.ami.Up(); err != nil {
		t.Fatal(err)
	}
	d.waitReady()
	c := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, "T-late")
	s.ast.play(t, c)
	if got := jsonBody(t, s.waitDelivered(t, c, 1, 3).Body)["customer"]; got != "A-321" {
		t.Errorf("customer = %v, want A-321", got)
	}
	d.stop()
}

// SIGTERM while deliveries are in flight to a slow CRM: the daemon exits 0 within
// http.shutdown_timeout, and whatever it did not finish is delivered after the restart,
// once per Idempotency-Key.
func TestE2EGracefulStopWithInFlightDeliveries(t *testing.T) {
	s := newE2E(t, "ami")
	d := s.start(t)
	s.crm.delay.Store(int64(1500 * time.Millisecond))
	var cs []*callsim.Call
	for i := range 4 {
		cs = append(cs, simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, fmt.Sprintf("T-stop-%d", i)))
	}
	s.ast.play(t, cs...)
	waitFor(t, 10*time.Second, "the deliveries to be queued", func() bool {
		return d.metric(`omlcrm_connects_total{outcome="server"}`) == 4
	})
	d.stop()

	s.crm.delay.Store(0)
	d = startDaemonProc(t, s.bin, s.cfgPath, s.cfg.Listen)
	d.waitReady()
	for _, c := range cs {
		s.waitDelivered(t, c, 1, 3)
	}
	d.stop()
	for _, c := range cs {
		if n := len(s.crm.accepted()[crmnotify.NotificationID(c.CallID, 1, 3)]); n != 1 {
			t.Errorf("call %s accepted %d times, want once", c.CallID, n)
		}
	}
}

// waitEventFilter waits for the daemon to set its application's event filter on the fake
// Asterisk (asterisk.ari.server_filter, on by default) to the tracker's event types.
func waitEventFilter(t *testing.T, srv *aritest.Server) {
	t.Helper()
	want := strings.Join(calls.ARIEventTypes(), ",")
	waitFor(t, 10*time.Second, "the ARI event filter "+want, func() bool {
		allowed, disallowed, ok := srv.EventFilter("omlcrm")
		return ok && strings.Join(allowed, ",") == want && len(disallowed) == 0
	})
}

// The ARI events websocket drops and Asterisk restarts: calls after the reconnect flow,
// and the daemon sets its event filter again on the restarted Asterisk.
func TestE2EARIRestart(t *testing.T) {
	s := newE2E(t, "ari")
	d := s.start(t)
	waitEventFilter(t, s.ast.ari)
	before := simCall(s.ids, 17, catalog.TypeManual, e2eAgent1, "T-ari-before")
	s.ast.play(t, before)
	s.waitDelivered(t, before, 1, 5)

	s.ast.ari.Stop()
	waitFor(t, 10*time.Second, "/readyz to name asterisk", func() bool {
		code, body := httpGet(d.base + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "asterisk")
	})
	if err := s.ast.ari.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.ast.ari.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	d.waitReady()
	waitEventFilter(t, s.ast.ari) // set again: the restarted Asterisk forgot it
	after := simCall(s.ids, 17, catalog.TypeManual, e2eAgent2, "T-ari-after")
	s.ast.play(t, after)
	s.waitDelivered(t, after, 2, 5)
	d.stop()
}

// The delivery queue in PostgreSQL (delivery.store: postgres, in the OMniLeads database's
// own oml_crm schema), unreachable at start: /readyz names the delivery store until it
// opens, then deliveries flow through it.
func TestE2EPostgresDeliveryStore(t *testing.T) {
	s := newE2E(t, "ami")
	y, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	y = bytes.Replace(y, []byte("delivery: {store: sqlite,"), []byte("delivery: {store: postgres, postgres_schema: oml_crm_e2e,"), 1)
	if err := os.WriteFile(s.cfgPath, y, 0o600); err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(mustParseURL(t, s.db).Path, "/")
	admin := pgtest.AdminURL(t)
	pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS false`, dbName))
	t.Cleanup(func() { pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS true`, dbName)) })

	d := startDaemonProc(t, s.bin, s.cfgPath, s.cfg.Listen)
	waitFor(t, 15*time.Second, "/readyz to name the delivery store", func() bool {
		code, body := httpGet(d.base + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"delivery_store"`)
	})
	pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS true`, dbName))
	d.waitReady()

	c := simCall(s.ids, 13, catalog.TypeDialer, e2eAgent1, "T-pg-queue")
	s.ast.play(t, c)
	s.waitDelivered(t, c, 1, 3)
	d.stop()

	q, err := delivery.Open(context.Background(), delivery.Options{Store: s.db, Schema: "oml_crm_e2e"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got, err := q.Get(context.Background(), crmnotify.NotificationID(c.CallID, 1, 3))
	if err != nil || got.Status != delivery.StatusDelivered {
		t.Errorf("the PostgreSQL outbox: %+v, %v; want the delivery, delivered", got, err)
	}
}

// Malformed ARI input: a message cut by a dropped websocket and a binary frame make the
// client reconnect; calls afterwards are not lost.
func TestE2EMalformedARI(t *testing.T) {
	s := newE2E(t, "ari")
	d := s.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.ast.ari.SendBinary(ctx, []byte{0xff, 0x00, 0x13}); err != nil {
		t.Fatal(err)
	}
	if err := s.ast.ari.SendPartial(ctx, []byte(`{"type":"ChannelCreated","channel":{"id":"1.1"}}`), 20); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the ARI client to reconnect", func() bool {
		return d.metric("omlcrm_ari_reconnects_total") >= 1 && d.metric("omlcrm_ari_connected") == 1
	})
	if err := s.ast.ari.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	d.waitReady()
	c := simCall(s.ids, 17, catalog.TypeManual, e2eAgent1, "T-ari-garbage")
	s.ast.play(t, c)
	s.waitDelivered(t, c, 1, 5)
	d.stop()
}

// http.tls_cert / http.tls_key: the listener serves HTTPS.
func TestE2ETLSListener(t *testing.T) {
	s := newE2E(t, "ami")
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeSelfSignedCert(t, certPath, keyPath)
	y, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	y = bytes.Replace(y, []byte("shutdown_timeout: 10s}"), []byte(fmt.Sprintf("shutdown_timeout: 10s, tls_cert: %q, tls_key: %q}", certPath, keyPath)), 1)
	if err := os.WriteFile(s.cfgPath, y, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemonProc(t, s.bin, s.cfgPath, s.cfg.Listen)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	waitFor(t, 20*time.Second, "HTTPS /readyz", func() bool {
		resp, err := client.Get("https://" + s.cfg.Listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if code, _ := httpGet(d.base + "/healthz"); code == http.StatusOK {
		t.Error("plain HTTP answered on a TLS listener")
	}
	d.stop()
}

func writeSelfSignedCert(t *testing.T, certPath, keyPath string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "oml-crm e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
