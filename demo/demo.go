// Package demo runs oml-crm's whole pipeline on one machine with nothing else
// installed: the embedded demo catalog, a fake Asterisk (amitest) playing simulated
// OMniLeads calls (callsim), a local CRM (democrm) and simulated agent pages, and prints
// one line per call and a summary that accounts for every connect.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"

	omlcrm "github.com/omlcrm/oml-crm"
	"github.com/omlcrm/oml-crm/agentws"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/callsim"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/catalog/file"
	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/daemon"
	"github.com/omlcrm/oml-crm/democrm"
	"github.com/omlcrm/oml-crm/loadtest"
)

const (
	// DefaultListen is the demo's HTTP listener unless told otherwise.
	DefaultListen = "127.0.0.1:8090"
	// demoCatalogBase is the URL prefix of the demo catalog's sites, replaced by the
	// address the demo listens on.
	demoCatalogBase = "http://127.0.0.1:8090"
	demoAgents      = 8 // agents 1-8, SIP extensions 1001-1008
	demoContacts    = 8 // contacts 1-8
)

// Options are the demo's settings (the flags of `oml-crm demo`).
type Options struct {
	Calls  int     // calls to play before the summary; 0 loops until ctx ends
	Rate   float64 // calls started per second
	Listen string  // host:port of the HTTP listener
	// ListenExplicit says Listen was asked for: when it is taken the demo fails instead
	// of using a free port.
	ListenExplicit bool
	Drain          time.Duration // with Calls: how long to wait after the last call
	Logger         zerolog.Logger
	Version        string
	Stdout, Stderr io.Writer
}

// Run runs the demo until its calls are played (or ctx ends in loop mode) and returns
// the process exit code: 0 when every connect was delivered, popped or skipped on
// purpose, 1 otherwise.
func Run(ctx context.Context, o Options) int {
	stdout, stderr, log := o.Stdout, o.Stderr, o.Logger
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "oml-crm demo: "+format+"\n", a...)
		return code
	}
	// The listener first: the catalog's CRM URLs point at it.
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		if o.ListenExplicit {
			return fail(1, "--listen %s: %v", o.Listen, err)
		}
		taken := err
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return fail(1, "listening on 127.0.0.1: %v", err)
		}
		fmt.Fprintf(stdout, "%s is not available (%s); using %s instead\n", o.Listen, netErrText(taken), ln.Addr())
	}
	base := "http://" + hostPortForURL(ln.Addr().String())
	cat, err := file.Parse("demo.yaml", []byte(strings.ReplaceAll(string(omlcrm.DemoCatalog), demoCatalogBase, base)))
	if err != nil {
		ln.Close()
		return fail(1, "embedded demo catalog: %v", err)
	}

	asterisk, err := amitest.New(amitest.WithLogf(func(format string, a ...any) {
		log.Debug().Str("component", "fake-asterisk").Msgf(format, a...)
	}))
	if err != nil {
		ln.Close()
		return fail(1, "starting the fake Asterisk: %v", err)
	}
	defer asterisk.Close()

	dir, err := os.MkdirTemp("", "oml-crm-demo-")
	if err != nil {
		ln.Close()
		return fail(1, "temporary directory for the delivery queue: %v", err)
	}
	defer os.RemoveAll(dir)

	secret := randomHex(32)
	cfg := config.Default()
	cfg.HTTP.Listen = ln.Addr().String()
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	cfg.Asterisk.AMI.Address = asterisk.Addr()
	cfg.Asterisk.AMI.Username = asterisk.Username()
	cfg.Asterisk.AMI.Secret = catalog.Secret(asterisk.Secret())
	cfg.Catalog.Source = "file"
	cfg.Catalog.File = "(embedded demo catalog)"
	cfg.Delivery.SQLitePath = filepath.Join(dir, "deliveries.db")
	cfg.Delivery.Timeout = 5 * time.Second
	// The demo CRM never fails on purpose; keep any retry (a stalled attempt) short.
	cfg.Delivery.MinBackoff, cfg.Delivery.MaxBackoff = 200*time.Millisecond, 2*time.Second
	cfg.Delivery.Workers = 64
	cfg.AgentWS.TokenSecret = catalog.Secret(secret)
	cfg.Phases.Dispositions = true // POST /dispositions: the simulated agents save one

	rep := newDemoReport(stdout)
	rep.setPhases("http://"+hostPortForURL(ln.Addr().String()), secret, cat)
	crm := democrm.New(democrm.Options{OnReceive: rep.crmReceived, Logger: log.With().Str("component", "democrm").Logger()})

	d, err := daemon.Start(ctx, daemon.Options{
		Config: cfg, Logger: log, Version: o.Version, Catalog: cat, Listener: ln,
		Routes:     map[string]http.Handler{"/crm/": crm, "/crm": crm},
		WrapServer: func(s crmnotify.ServerSink) crmnotify.ServerSink { return observedServer{s, rep} },
		WrapAgents: func(a crmnotify.AgentSink) crmnotify.AgentSink { return observedAgents{a, rep} },
		OnConnect:  rep.onConnect,
	})
	if err != nil {
		return fail(1, "%v", err)
	}
	code := demoMain(ctx, d, asterisk, cat, secret, rep, o.Calls, o.Rate, o.Drain, o.Version, stdout, stderr)
	d.Shutdown(cfg.HTTP.ShutdownTimeout)
	return code
}

func demoMain(ctx context.Context, d *daemon.Daemon, asterisk *amitest.Server, cat catalog.Catalog, secret string,
	rep *demoReport, nCalls int, rate float64, drain time.Duration, version string, stdout, stderr io.Writer) int {
	base := d.BaseURL()
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := asterisk.WaitSessions(startCtx, 1); err != nil {
		fmt.Fprintf(stderr, "oml-crm demo: the daemon did not log in to the fake Asterisk: %v\n", err)
		return 1
	}
	// The tracker resynchronises once logged in; let that finish before the first call
	// so the (empty) snapshot cannot race it.
	for !d.Resynced() && startCtx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}

	// Simulated agents: one websocket page per agent, acking and opening every pop.
	agentsCtx, stopAgents := context.WithCancel(context.WithoutCancel(ctx))
	var agentsWG sync.WaitGroup
	hellos := make(chan int, demoAgents)
	for id := 1; id <= demoAgents; id++ {
		tok, err := agentws.MintToken([]byte(secret), id, time.Now().Add(24*time.Hour))
		if err != nil {
			stopAgents()
			fmt.Fprintf(stderr, "oml-crm demo: agent token: %v\n", err)
			return 1
		}
		agentsWG.Go(func() { simulatedAgent(agentsCtx, base, id, tok, rep, hellos) })
	}
	defer func() {
		stopAgents()
		agentsWG.Wait()
	}()
	for i := 0; i < demoAgents; i++ {
		select {
		case <-hellos:
		case <-startCtx.Done():
			fmt.Fprintf(stderr, "oml-crm demo: simulated agents could not connect to %s/ws\n", base)
			return 1
		}
	}

	fmt.Fprintf(stdout, "oml-crm demo %s: pipeline up on %s (fake Asterisk on %s, %d simulated agents)\n",
		version, base, asterisk.Addr(), demoAgents)
	fmt.Fprintf(stdout, "  CRM log (what the CRM received):  %s/crm/log\n", base)
	fmt.Fprintf(stdout, "  metrics / readiness:              %s/metrics  %s/readyz\n", base, base)
	fmt.Fprintln(stdout, "  agent pages (calls rotate over agents 1-8; server-trigger campaigns show in the CRM log):")
	for id := 1; id <= demoAgents; id++ {
		tok, _ := agentws.MintToken([]byte(secret), id, time.Now().Add(24*time.Hour))
		fmt.Fprintf(stdout, "    agent %d: %s/agent?agent=%d&token=%s\n", id, base, id, url.QueryEscape(tok))
	}
	if nCalls > 0 {
		fmt.Fprintf(stdout, "playing %d calls at %g/s\n", nCalls, rate)
	} else {
		fmt.Fprintf(stdout, "playing calls at %g/s until Ctrl-C\n", rate)
	}

	played := playDemoCalls(ctx, asterisk, cat, rep, nCalls, rate, stderr)
	if nCalls == 0 {
		// Loop mode ends with Ctrl-C: let the last notifications land, say what happened.
		rep.drain(context.Background(), 2*time.Second)
		rep.waitPosts()
		rep.summary(played)
		return 0
	}
	rep.drain(ctx, drain)
	rep.waitPosts()
	if !rep.summary(played) {
		return 1
	}
	if played < nCalls {
		fmt.Fprintf(stderr, "oml-crm demo: interrupted after %d of %d calls\n", played, nCalls)
		return 1
	}
	return 0
}

// demoCall builds call i of the demo loop: campaigns 1-12 in turn (every type, trigger,
// target, method and format of the demo catalog, plus a form-only and a disposition
// campaign), agents 1-8, contacts 1-8, a scenario fitting the campaign type.
func demoCall(ids *callsim.IDs, cat catalog.Catalog, campaigns []*catalog.Campaign, i int, talk time.Duration) *callsim.Call {
	camp := campaigns[i%len(campaigns)]
	agent := i%demoAgents + 1
	contact := i%demoContacts + 1
	p := callsim.Params{
		CampaignID:   camp.ID,
		CampaignType: int(camp.Type),
		Agent:        callsim.Agent{ID: agent, Extension: strconv.Itoa(1000 + agent)},
		SecondAgent:  callsim.Agent{ID: (agent+3)%demoAgents + 1, Extension: strconv.Itoa(1000 + (agent+3)%demoAgents + 1)},
		ContactID:    strconv.Itoa(contact),
		Dialplan:     []callsim.Var{{Name: "Omlcrmticket", Value: fmt.Sprintf("T-%05d", i+1)}},
		Talk:         talk,
	}
	if ct, err := cat.Contact(context.Background(), contact); err == nil {
		p.Phone = ct.Phone
	}
	switch camp.Type {
	case catalog.TypeDialer:
		p.Scenario = callsim.DialerQueue
	case catalog.TypePreview:
		p.Scenario = callsim.Preview
	case catalog.TypeManual:
		p.Scenario = callsim.Manual
	default:
		// Inbound: mostly plain queue calls, with holds, transfers and abandons mixed in.
		switch (i / len(campaigns)) % 5 {
		case 1:
			p.Scenario = callsim.HoldUnhold
		case 2:
			p.Scenario = callsim.BlindTransfer
			p.TransferCamp = 9
		case 3:
			p.Scenario = callsim.Abandon
		default:
			p.Scenario = callsim.InboundQueue
		}
	}
	return callsim.Build(ids, p)
}

// playDemoCalls starts calls at rate (n of them, or until ctx ends when n is 0), each
// played by its own goroutine at its real pace, and returns how many were started once
// every started call has been played to its end.
func playDemoCalls(ctx context.Context, asterisk *amitest.Server, cat catalog.Catalog, rep *demoReport,
	n int, rate float64, stderr io.Writer) int {
	campaigns, err := cat.Campaigns(ctx)
	if err != nil || len(campaigns) == 0 {
		fmt.Fprintf(stderr, "oml-crm demo: demo catalog has no campaigns: %v\n", err)
		return 0
	}
	talk := 6 * time.Second
	if n > 0 {
		talk = 2 * time.Second // a bounded run ends sooner
	}
	ids := callsim.NewIDs(time.Now().Unix())
	var players sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	started := 0
	for n == 0 || started < n {
		if wait := time.Until(next); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			break
		}
		c := demoCall(ids, cat, campaigns, started, talk)
		rep.startCall()
		started++
		next = next.Add(interval)
		players.Go(func() {
			if playCall(ctx, asterisk, c, stderr) {
				rep.expectCall(c)
			} else {
				rep.interruptCall()
			}
		})
	}
	players.Wait()
	return started
}

// playCall sends a call's AMI events at their offsets; it reports whether the whole
// call was played (not cut short by Ctrl-C).
func playCall(ctx context.Context, asterisk *amitest.Server, c *callsim.Call, stderr io.Writer) bool {
	start := time.Now()
	var buf []byte
	for i := range c.Steps {
		st := &c.Steps[i]
		if wait := time.Until(start.Add(st.At)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
		buf = st.AppendAMI(buf[:0])
		if err := asterisk.Send(buf); err != nil {
			fmt.Fprintf(stderr, "oml-crm demo: fake Asterisk: %v\n", err)
			return false
		}
	}
	return true
}

// simulatedAgent keeps an agent page connected to /ws (reconnecting if dropped) and
// records every pop it receives. It never acks or opens one: a person may have the agent's
// demo page open, and its "Open CRM" button must stay theirs to click (an ack or opened
// from here would settle the card in that page, as another tab of the agent would).
func simulatedAgent(ctx context.Context, base string, agentID int, token string, rep *demoReport, hellos chan<- int) {
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	first := true
	for ctx.Err() == nil {
		conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
			Subprotocols: []string{agentws.Subprotocol, "token." + token},
		})
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		conn.SetReadLimit(1 << 20)
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				break
			}
			var m struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			}
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			switch m.Type {
			case agentws.TypeHello:
				if first {
					first = false
					hellos <- agentID
				}
			case agentws.TypePop:
				rep.popReceived(m.ID, agentID)
			}
		}
		conn.CloseNow()
	}
}

// observedServer and observedAgents tell the report which notification each connect
// became, before handing it on.
type observedServer struct {
	next crmnotify.ServerSink
	rep  *demoReport
}

func (o observedServer) Enqueue(ctx context.Context, n crmnotify.Notification) error {
	o.rep.notified(n, "server")
	return o.next.Enqueue(ctx, n)
}

type observedAgents struct {
	next crmnotify.AgentSink
	rep  *demoReport
}

func (o observedAgents) Pop(ctx context.Context, n crmnotify.Notification) error {
	o.rep.notified(n, "pop")
	return o.next.Pop(ctx, n)
}

func (o observedAgents) CallEnded(ctx context.Context, callID string) error {
	return o.next.CallEnded(ctx, callID)
}

// demoReport prints one line per connect and the summary. It matches what the fake
// Asterisk played (expected connects) with what the tracker emitted, and each
// notification with its arrival at the CRM or the agent.
type demoReport struct {
	out io.Writer

	mu               sync.Mutex
	calls            int
	interrupted      int // calls cut short by Ctrl-C: their connects are not expected
	expectedConnects int
	answered         int // calls played to the end that reached an agent
	connected        int
	skipped          int
	failed           int
	pending          map[string]*demoNote // notification id → not yet arrived
	seen             map[string]bool      // notification ids arrived
	delivered        int
	popped           int
	crmLatency       *loadtest.Recorder
	popLatency       *loadtest.Recorder
	skipReasons      map[crmnotify.SkipReason]int
	phases           *demoPhases // dispositions, call ends, ringing (cmd_demo_phases.go)
}

type demoNote struct {
	n    crmnotify.Notification
	kind string // server | pop
}

func newDemoReport(out io.Writer) *demoReport {
	return &demoReport{out: out, pending: map[string]*demoNote{}, seen: map[string]bool{},
		crmLatency: loadtest.NewRecorder(), popLatency: loadtest.NewRecorder(), skipReasons: map[crmnotify.SkipReason]int{}}
}

func (r *demoReport) startCall() {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
}

func (r *demoReport) interruptCall() {
	r.mu.Lock()
	r.interrupted++
	r.mu.Unlock()
}

// expectCall counts the connects of a call played to its end.
func (r *demoReport) expectCall(c *callsim.Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(c.Expected) > 0 {
		r.answered++
	} else {
		fmt.Fprintf(r.out, "call %s campaign %d (%s): abandoned before an agent answered (no connect)\n",
			c.CallID, c.CampaignID, catalog.CampaignType(c.CampaignType))
	}
	r.expectedConnects += len(c.Expected)
	r.expectPhases(c)
}

func (r *demoReport) notified(n crmnotify.Notification, kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seen[n.ID] {
		r.pending[n.ID] = &demoNote{n: n, kind: kind}
	}
	r.phaseNotified(n)
}

func (r *demoReport) onConnect(c calls.Connected, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connected++
	head := r.head(c.CallID, c.CampaignID, c.AgentID)
	var skip *crmnotify.SkippedError
	switch {
	case err == nil:
		// The line is printed when the delivery or pop arrives.
	case errors.As(err, &skip):
		r.skipped++
		r.skipReasons[skip.Reason]++
		fmt.Fprintf(r.out, "%s: connected → skipped (%s)\n", head, skipText(skip.Reason))
		r.afterConnect(c, skip)
	default:
		r.failed++
		fmt.Fprintf(r.out, "%s: connected → FAILED: %v\n", head, err)
	}
}

// skipText says why a connect invokes no CRM, in the words of the demo's lines.
func skipText(r crmnotify.SkipReason) string {
	switch r {
	case crmnotify.SkipNoSite:
		return "no CRM site: form only"
	case crmnotify.SkipFormOnly:
		return "form only"
	case crmnotify.SkipTriggerNotOnCall:
		return "site fires at disposition, not on connect"
	case crmnotify.SkipUnknownCampaign:
		return "campaign not in the catalog"
	case crmnotify.SkipNoCampaign:
		return "no campaign"
	case crmnotify.SkipNoAgent:
		return "agent unknown"
	}
	return strings.ReplaceAll(string(r), "_", " ")
}

func (r *demoReport) head(callID string, campaignID, agentID int) string {
	typ := ""
	if t := campaignTypeOf(campaignID); t != "" {
		typ = " (" + t + ")"
	}
	return fmt.Sprintf("call %s campaign %d%s agent %d", callID, campaignID, typ, agentID)
}

// campaignTypeOf names the demo campaigns' types (catalog ids 1-12 cycle through them).
func campaignTypeOf(id int) string {
	types := map[int]string{1: "inbound", 2: "dialer", 3: "preview", 4: "manual", 5: "inbound", 6: "dialer",
		7: "preview", 8: "manual", 9: "inbound", 10: "dialer", 11: "inbound", 12: "preview"}
	return types[id]
}

func (r *demoReport) arrived(id string, kind string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	note := r.pending[id]
	if note == nil || note.kind != kind {
		return // a duplicate, or a request that is not a notification (e.g. the agent opening a CRM page)
	}
	delete(r.pending, id)
	r.seen[id] = true
	lat := at.Sub(note.n.ConnectedAt)
	verb := "delivered"
	if kind == "pop" {
		verb = "popped"
	}
	if r.phaseArrived(note, verb, lat) {
		return
	}
	if kind == "pop" {
		verb = "popped"
		r.popped++
		r.popLatency.Record(lat)
	} else {
		r.delivered++
		r.crmLatency.Record(lat)
	}
	typ := note.n.Campaign.Type.String()
	fmt.Fprintf(r.out, "call %s campaign %d (%s) agent %d: connected → %s %s\n",
		note.n.CallID, note.n.Campaign.ID, typ, note.n.AgentID, verb, loadtest.FormatDuration(lat))
}

func (r *demoReport) crmReceived(rec democrm.Record) {
	if rec.IdempotencyKey != "" && rec.Accepted() {
		r.arrived(rec.IdempotencyKey, "server", rec.At)
	}
}

func (r *demoReport) popReceived(id string, _ int) { r.arrived(id, "pop", time.Now()) }

// settled reports whether every expected connect happened and every notification arrived.
func (r *demoReport) settled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.connected >= r.expectedConnects && len(r.pending) == 0 && r.phasesSettled()
}

// drain waits until every expected connect happened and every notification arrived, at
// most timeout.
func (r *demoReport) drain(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !r.settled() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
}

// summary prints the summary and reports whether nothing was lost.
func (r *demoReport) summary(played int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	lost := r.expectedConnects - r.connected
	fmt.Fprintf(r.out, "summary: %d calls, %d connected, %d delivered, %d popped, %d skipped, %d failed",
		played, r.connected, r.delivered, r.popped, r.skipped, r.failed)
	if r.interrupted > 0 {
		fmt.Fprintf(r.out, " (%d still in progress at the stop)", r.interrupted)
	}
	if abandoned := played - r.interrupted - r.answered; abandoned > 0 {
		fmt.Fprintf(r.out, " (%d abandoned before an agent answered)", abandoned)
	}
	fmt.Fprintf(r.out, "; connect→CRM p50 %s p99 %s; connect→pop p50 %s p99 %s\n",
		loadtest.FormatDuration(r.crmLatency.Quantile(0.5)), loadtest.FormatDuration(r.crmLatency.Quantile(0.99)),
		loadtest.FormatDuration(r.popLatency.Quantile(0.5)), loadtest.FormatDuration(r.popLatency.Quantile(0.99)))
	r.phasesSummary()
	ok := true
	if lost > 0 {
		ok = false
		fmt.Fprintf(r.out, "LOST: %d of %d connects the fake Asterisk played were not seen by the daemon\n", lost, r.expectedConnects)
	}
	if len(r.pending) > 0 {
		ok = false
		fmt.Fprintf(r.out, "LOST: %d notifications never reached the CRM or the agent:", len(r.pending))
		for id, n := range r.pending {
			fmt.Fprintf(r.out, " %s(call %s, %s)", id, n.n.CallID, n.kind)
		}
		fmt.Fprintln(r.out)
	}
	if r.failed > 0 {
		ok = false
	}
	return ok
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (it crashes the program instead)
	return hex.EncodeToString(b)
}

// hostPortForURL turns a listener address into the host:port of a URL (wildcard → 127.0.0.1).
func hostPortForURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func netErrText(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}
