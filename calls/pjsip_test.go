package calls_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/internal/logtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// replayMode says how a recording reaches the tracker through a fake.
type replayMode int

const (
	modeLive      replayMode = iota // every event, as recorded
	modeNoVarSet                    // no VarSet (an AMI user without the dialplan class): values only readable on demand
	modeRestarted                   // the daemon starts after the first connect: the call is recovered by a resync
	modeDropped                     // the connection drops after the first connect: the resync must not repeat it
)

func (m replayMode) String() string {
	return [...]string{"live", "no-varset", "restarted", "dropped"}[m]
}

// amiRef lets the tracker's reader and lister reach a client created after it. They wait
// for it: the resync asked when the first session comes up may run before Dial returns,
// and must not fail for that (a second resync asked to make up for it could then run in
// the middle of the replay and recover a connect the stream was about to show live).
type amiRef struct{ clientRef[ami.Client] }

// clientRef holds a client set once, after the tracker that uses it was made.
type clientRef[C any] struct {
	c     *C
	ready chan struct{}
}

func newClientRef[C any]() clientRef[C] { return clientRef[C]{ready: make(chan struct{})} }

func (r *clientRef[C]) set(c *C) { r.c = c; close(r.ready) }

func (r *clientRef[C]) client(ctx context.Context) (*C, error) {
	select {
	case <-r.ready:
		return r.c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no client yet: %w", ctx.Err())
	}
}

func (r *amiRef) Getvar(ctx context.Context, ch, name string) (string, error) {
	c, err := r.client(ctx)
	if err != nil {
		return "", err
	}
	return c.Getvar(ctx, ch, name)
}

func (r *amiRef) Status(ctx context.Context, ch string, all bool) ([]*ami.Message, error) {
	c, err := r.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.Status(ctx, ch, all)
}

func (r *amiRef) CoreShowChannels(ctx context.Context) ([]*ami.Message, error) {
	c, err := r.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.CoreShowChannels(ctx)
}

// endsCall: events after which a fake may no longer list the connected channels. The
// replay waits before them until the tracker has handled everything sent so far and
// finished its reads (as a real call stays up a while after the connect).
func endsCall(ev string) bool {
	switch ev {
	case "BridgeLeave", "HangupRequest", "SoftHangupRequest", "Hangup", "AgentComplete", "BlindTransfer", "AttendedTransfer":
		return true
	}
	return false
}

// replayAMI replays a recording through amitest (tracking its channels as Asterisk
// holds them) and the real AMI client into a tracker, and returns its facts and log.
func replayAMI(t *testing.T, file string, mode replayMode, opts calls.Options) ([]calls.Connected, []calls.Ended, string) {
	t.Helper()
	got, ended, logs, _ := replayAMIWith(t, file, mode, opts, amiExtra{})
	return got, ended, logs
}

// amiExtra adds to replayAMIWith: a hook before each replayed event, the client's
// metrics and SkipOversized.
type amiExtra struct {
	before        func(srv *amitest.Server, m *ami.Message)
	metrics       *ami.Metrics
	skipOversized bool // wire the tracker's SkipOversizedAMI
}

// replayAMIWith is replayAMI with extras; it also returns the server's login count.
func replayAMIWith(t *testing.T, file string, mode replayMode, opts calls.Options, x amiExtra) ([]calls.Connected, []calls.Ended, string, int) {
	t.Helper()
	path := sharedFile(t, file)
	msgs := readAMI(t, path)
	split := -1 // index of the replayable event after which the daemon starts
	if mode == modeRestarted || mode == modeDropped {
		enters, i := 0, 0
		for _, m := range msgs {
			if !isReplayed(m) {
				continue
			}
			if m.Event() == "BridgeEnter" {
				if enters++; enters == 2 {
					split = i
					break
				}
			}
			i++
		}
		if split < 0 {
			t.Fatalf("%s: no connect to restart after", file)
		}
	}
	srv := amitest.NewServer(t)
	ref := &amiRef{newClientRef[ami.Client]()}
	var logs logtest.Buffer
	opts.Logger = zerolog.New(&logs)
	opts.VarReader, opts.Lister = calls.AMIVarReader(ref), calls.AMILister(ref)
	if opts.Resolver == nil {
		opts.Resolver = extResolver{}
	}
	opts.LazyVarTimeout = 10 * time.Second
	tr, rec := startTracker(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var skipFn func(event, variable string) bool
	if x.skipOversized {
		skipFn = tr.SkipOversizedAMI
	}
	cl, err := ami.Dial(ctx, ami.Config{
		Address: srv.Addr(), Username: srv.Username(), Secret: srv.Secret(), Handler: tr.HandleAMI,
		OnState: func(s ami.State, _ error) {
			if s == ami.StateConnected {
				tr.RequestResync()
			}
		},
		ReconnectMin: 5 * time.Millisecond, ReconnectMax: 20 * time.Millisecond,
		Metrics:       x.metrics,
		SkipOversized: skipFn,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	ref.set(cl)
	if err := srv.WaitLogins(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first resync", func() bool { return tr.Stats().Resyncs >= 1 })
	barrier := func() {
		if err := cl.Ping(ctx); err != nil { // answered after every event sent before it
			t.Errorf("ping: %v", err)
		}
		settle(t, tr)
	}
	idx, logins := -1, 1
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = srv.ReplayWith(f, amitest.ReplayOptions{
		Track: true,
		Before: func(m *ami.Message) {
			idx++
			if idx == split+1 && split >= 0 {
				// The daemon (re)starts now: a new session, then a resync.
				if mode == modeDropped {
					barrier() // the connect was seen live before the drop
				}
				n := tr.Stats().Resyncs
				srv.DropSessions()
				logins++
				if err := srv.WaitLogins(ctx, logins); err != nil {
					t.Error(err)
				}
				waitFor(t, "resync after the restart", func() bool { return tr.Stats().Resyncs > n })
				settle(t, tr)
			}
			if idx > split && endsCall(m.Event()) {
				barrier()
			}
			if x.before != nil {
				x.before(srv, m)
			}
		},
		Skip: func(m *ami.Message) bool {
			return idx <= split && mode == modeRestarted || mode == modeNoVarSet && m.Event() == "VarSet"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	barrier()
	waitFor(t, "the call to end", func() bool { return tr.Stats().Calls == 0 })
	got, ended := rec.facts(t)
	return got, ended, logs.String(), srv.Logins()
}

// isReplayed mirrors amitest's choice of the events it replays.
func isReplayed(m *ami.Message) bool {
	if len(m.Headers) == 0 || m.Headers[0].Key != "Event" {
		return false
	}
	if _, ok := m.Lookup("ActionID"); ok {
		return false
	}
	ev := m.Event()
	return ev != "FullyBooted" && ev != "SuccessfulAuth"
}

func pjsipDialplan(origen, ticket string) map[string]string {
	return map[string]string{"OmlcrmOrigen": origen, "Omlcrmticket": ticket}
}

// TestAMIWithoutVarSetReadsRealNames: a real PJSIP call whose VarSet events never arrive
// (AMI user without the dialplan class). The catalog spells the dialplan's OmlcrmOrigen
// "Omlcrmorigen"; Asterisk's Getvar is case-sensitive, so the value must come from
// Status/AllVariables, matched case-insensitively. The missing class is warned about.
func TestAMIWithoutVarSetReadsRealNames(t *testing.T) {
	got, ended, logs := replayAMI(t, "pjsip/inbound.ami", modeNoVarSet,
		calls.Options{DialplanVars: []string{"Omlcrmorigen", "Omlcrmticket"}})
	if len(got) != 1 || len(ended) != 1 {
		t.Fatalf("%d Connected, %d Ended; want 1, 1", len(got), len(ended))
	}
	checkConnected(t, got[0], want{"1796287433.2", "1796287433.2", 1, "PJSIP/1001-00000003", "PJSIP/trunk-00000002",
		7, 3, "4149014", "321321321", "in-7-20261203-4149014-1796287433.2.wav", pjsipDialplan("web ñ & más", "T-42")})
	if v, _ := got[0].DialplanValue("Omlcrmorigen"); v != "web ñ & más" {
		t.Errorf("Omlcrmorigen = %q", v)
	}
	if strings.Count(logs, "dialplan read class") != 1 {
		t.Errorf("want one warning about the dialplan read class, log:\n%s", logs)
	}
}

// pjsipCase is one set-3 recording and the connects it must give, in order.
type pjsipCase struct {
	file string
	want []want
}

func pjsipIn(call, agentCh, custCh string, agent, camp int, ticket, origen string) want {
	return want{call, call, agent, agentCh, custCh, camp, 3, "4149014", "321321321",
		"in-7-20261203-4149014-" + call + ".wav", pjsipDialplan(origen, ticket)}
}

const webOrigen = "web ñ & más"

var pjsipCases = []pjsipCase{
	{"pjsip/inbound", []want{pjsipIn("1796287433.2", "PJSIP/1001-00000003", "PJSIP/trunk-00000002", 1, 7, "T-42", webOrigen)}},
	{"pjsip/c2c", []want{{"1796287447.4", "1796287447.4", 2, "PJSIP/1002-00000004", "PJSIP/trunk-00000005", 115, 4, "4149014", "321321321",
		"prev-115-20261203-2-4149014-1796287447.4.wav", pjsipDialplan("click ñ & más", "T-C2C")}}},
	{"pjsip/c2c-noagent", []want{{"1796287496.11", "1796287496.11", 2, "PJSIP/1002-0000000b", "PJSIP/trunk-0000000c", 11, 1, "4149014", "-1",
		"mc-11-20261203-4149014-1796287496.11.wav", pjsipDialplan("click ñ & más", "T-C2C")}}},
	{"pjsip/transfer", []want{
		pjsipIn("1796287461.6", "PJSIP/1003-00000007", "PJSIP/trunk-00000006", 3, 7, "T-43", webOrigen),
		pjsipIn("1796287461.6", "PJSIP/1102-00000008", "PJSIP/trunk-00000006", 102, 9, "T-43", webOrigen)}},
	{"pjsip/abandon", nil},
	{"pjsip/extras/agent-hangup", []want{pjsipIn("1796287969.36", "PJSIP/1004-00000025", "PJSIP/trunk-00000024", 4, 7, "T-45", webOrigen)}},
	{"pjsip/extras/ext-only", []want{pjsipIn("1796287981.38", "PJSIP/1005-00000027", "PJSIP/trunk-00000026", 5, 7, "T-44 #1", "50% + ñ;x=1&y=2/ok?")}},
	{"pjsip/extras/refer", []want{
		pjsipIn("1796287996.40", "PJSIP/1006-00000029", "PJSIP/trunk-00000028", 6, 7, "T-46", webOrigen),
		pjsipIn("1796287996.40", "PJSIP/1102-0000002a", "PJSIP/trunk-00000028", 102, 9, "T-46", webOrigen)}},
	// Values with \ ' " ?: AMI's VarSet escapes them, Getvar and ARI do not.
	{"pjsip/extras/quote", []want{pjsipIn("1796288080.43", "PJSIP/1001-0000002c", "PJSIP/trunk-0000002b", 1, 7, `C:\tmp\T-48`, `O'Brien "VIP" ok?`)}},
	// Attended transfer: agent 102 is popped when the customer reaches them (through
	// the Local pair of the consultation), not when they answer the consultation; an
	// abandoned transfer pops no one else.
	{"pjsip/extras/atxfer", []want{
		pjsipIn("1796288242.49", "PJSIP/1003-00000032", "PJSIP/trunk-00000031", 3, 7, "T-49", webOrigen),
		pjsipIn("1796288242.49", "PJSIP/1102-00000033", "PJSIP/trunk-00000031", 102, 7, "T-49", webOrigen)}},
	{"pjsip/extras/atxfer-abort", []want{pjsipIn("1796288290.54", "PJSIP/1003-00000035", "PJSIP/trunk-00000034", 3, 7, "T-50", webOrigen)}},
	{"pjsip/extras/late", []want{pjsipIn("1796287938.34", "PJSIP/1001-00000023", "PJSIP/trunk-00000022", 1, 7, "T-47", webOrigen)}},
}

// TestPJSIPOverAMI replays every set-3 recording through amitest and the AMI client:
// live, without VarSet events, and with the daemon started after the first connect.
func TestPJSIPOverAMI(t *testing.T) {
	for _, c := range pjsipCases {
		for _, mode := range []replayMode{modeLive, modeNoVarSet, modeRestarted, modeDropped} {
			if mode >= modeRestarted && len(c.want) == 0 {
				continue
			}
			t.Run(c.file+"/"+mode.String(), func(t *testing.T) {
				got, ended, logs := replayAMI(t, c.file+".ami", mode, calls.Options{DialplanVars: []string{"Omlcrmorigen", "Omlcrmticket"}})
				if len(got) != len(c.want) {
					t.Fatalf("%d Connected, want %d: %+v\nlog:\n%s", len(got), len(c.want), got, logs)
				}
				checkRecoveredWait(t, c.file, mode, got, logs)
				for i := range got {
					checkConnected(t, got[i], c.want[i])
				}
				if len(ended) != 1 {
					t.Errorf("%d Ended, want 1", len(ended))
				}
			})
		}
	}
}

// ariRef is amiRef for ARI.
type ariRef struct{ clientRef[ari.Client] }

func (r *ariRef) Variable(ctx context.Context, id, name string) (string, error) {
	c, err := r.client(ctx)
	if err != nil {
		return "", err
	}
	return c.Variable(ctx, id, name)
}

func (r *ariRef) Channels(ctx context.Context) ([]ari.Channel, error) {
	c, err := r.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.Channels(ctx)
}

func (r *ariRef) Bridges(ctx context.Context) ([]ari.Bridge, error) {
	c, err := r.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.Bridges(ctx)
}

func ariEndsCall(typ string) bool {
	switch typ {
	case "ChannelLeftBridge", "ChannelHangupRequest", "ChannelDestroyed", "StasisEnd":
		return true
	}
	return false
}

// replayARI is replayAMI over aritest and the ARI client (modeNoVarSet drops
// ChannelVarset events).
func replayARI(t *testing.T, file string, mode replayMode, opts calls.Options) ([]calls.Connected, []calls.Ended, string) {
	t.Helper()
	path := sharedFile(t, file)
	split := -1
	if mode == modeRestarted || mode == modeDropped {
		enters := 0
		for i, ev := range readARI(t, path) {
			if _, ok := ev.(*ari.ChannelEnteredBridge); ok {
				if enters++; enters == 2 {
					split = i
					break
				}
			}
		}
		if split < 0 {
			t.Fatalf("%s: no connect to restart after", file)
		}
	}
	srv := aritest.NewServer(t, aritest.Options{Username: "omlcrm", Password: "s3cret"})
	ref := &ariRef{newClientRef[ari.Client]()}
	var logs logtest.Buffer
	opts.Logger = zerolog.New(&logs)
	opts.VarReader, opts.Lister = calls.ARIVarReader(ref), calls.ARILister(ref)
	if opts.Resolver == nil {
		opts.Resolver = extResolver{}
	}
	opts.LazyVarTimeout = 10 * time.Second
	// The tracker's clock (a resync's time) follows the recording's, so a call's
	// oldest channel stays the one Asterisk created first.
	var clock atomic.Pointer[time.Time]
	clock.Store(&time.Time{})
	opts.Now = func() time.Time { return *clock.Load() }
	tr, rec := startTracker(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var handled atomic.Int64
	cl, err := ari.Dial(ctx, ari.Config{
		URL: srv.URL(), Username: "omlcrm", Password: "s3cret", App: "omlcrm", SubscribeAll: true,
		Handler: func(e ari.Event) { tr.HandleARI(e); handled.Add(1) },
		OnState: func(s ari.State, _ error) {
			if s == ari.StateConnected {
				tr.RequestResync()
			}
		},
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	ref.set(cl)
	if err := srv.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first resync", func() bool { return tr.Stats().Resyncs >= 1 })
	var sent int64
	barrier := func() {
		waitFor(t, "the client to hand over every event sent", func() bool { return handled.Load() == sent })
		settle(t, tr)
	}
	idx := -1
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = srv.ReplayWith(ctx, f, aritest.ReplayOptions{
		Track: true,
		Before: func(typ string, line []byte) {
			idx++
			var ev struct {
				Timestamp string `json:"timestamp"`
			}
			if json.Unmarshal(line, &ev) == nil {
				if at, err := ari.ParseTime(ev.Timestamp); err == nil {
					clock.Store(&at)
				}
			}
			if idx == split+1 && split >= 0 {
				if mode == modeDropped {
					barrier() // the connect was seen live before the drop
				}
				n := tr.Stats().Resyncs
				srv.DropClients()
				if err := srv.WaitClients(ctx, 1); err != nil {
					t.Error(err)
				}
				waitFor(t, "resync after the restart", func() bool { return tr.Stats().Resyncs > n })
				settle(t, tr)
			}
			if idx > split && ariEndsCall(typ) {
				barrier()
			}
		},
		Skip: func(typ string, _ []byte) bool {
			skip := idx <= split && mode == modeRestarted || mode == modeNoVarSet && typ == "ChannelVarset"
			if !skip {
				sent++
			}
			return skip
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	barrier()
	waitFor(t, "the call to end", func() bool { return tr.Stats().Calls == 0 })
	got, ended := rec.facts(t)
	return got, ended, logs.String()
}

// TestPJSIPOverARI replays every set-3 recording through aritest and the ARI client:
// live, and with the daemon started after the first connect (recovered from GET
// /channels and GET /bridges, values read on demand).
func TestPJSIPOverARI(t *testing.T) {
	for _, c := range pjsipCases {
		for _, mode := range []replayMode{modeLive, modeRestarted, modeDropped} {
			if mode >= modeRestarted && len(c.want) == 0 {
				continue
			}
			t.Run(c.file+"/"+mode.String(), func(t *testing.T) {
				got, ended, logs := replayARI(t, c.file+".ari.jsonl", mode, calls.Options{DialplanVars: []string{"Omlcrmorigen", "Omlcrmticket"}})
				if len(got) != len(c.want) {
					t.Fatalf("%d Connected, want %d: %+v\nlog:\n%s", len(got), len(c.want), got, logs)
				}
				checkRecoveredWait(t, c.file, mode, got, logs)
				for i := range got {
					checkConnected(t, got[i], c.want[i])
				}
				if len(ended) != 1 {
					t.Errorf("%d Ended, want 1", len(ended))
				}
			})
		}
	}
}

// TestAMIOversizedVarSetKeepsSession: a VarSet line over 64 KiB of a variable nobody
// reads, in the middle of a real call, is skipped without dropping the session (no
// second login), counted, and the call is popped with every value.
func TestAMIOversizedVarSetKeepsSession(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := ami.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	sent := false
	big := func(srv *amitest.Server, msg *ami.Message) {
		if sent || msg.Event() != "AgentConnect" {
			return
		}
		sent = true
		ev := "Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/trunk-00000002\r\nUniqueid: 1796287433.2\r\n" +
			"Linkedid: 1796287433.2\r\nVariable: __SIPBLOB\r\nValue: " + strings.Repeat("x", 100<<10) + "\r\n\r\n"
		if err := srv.Send([]byte(ev)); err != nil {
			t.Error(err)
		}
	}
	got, _, logs, logins := replayAMIWith(t, "pjsip/inbound.ami", modeLive, calls.Options{}, amiExtra{before: big, metrics: m, skipOversized: true})
	if logins != 1 {
		t.Errorf("%d logins: the oversized VarSet dropped the session\n%s", logins, logs)
	}
	if len(got) != 1 {
		t.Fatalf("%d Connected, want 1", len(got))
	}
	checkConnected(t, got[0], pjsipCases[0].want[0])
	if n := counterValue(t, reg, "omlcrm_ami_oversized_skipped_total"); n != 1 {
		t.Errorf("omlcrm_ami_oversized_skipped_total = %v, want 1", n)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// noAgents is a catalog that knows no agent.
type noAgents struct{}

func (noAgents) AgentByExtension(_ context.Context, ext string) (int, error) {
	return 0, errors.New("agent with SIP extension " + ext + ": not found")
}

// TestAgentNotInCatalog: the same real call (agent 1 on PJSIP/1001, queue MemberName
// "1_agent1", no OMLAGENTID) with an agent the catalog does not know. AMI takes the id
// from the MemberName; ARI has no MemberName, so the connect has no agent, and the log
// says why, naming the channel and extension.
func TestAgentNotInCatalog(t *testing.T) {
	got, _, _ := replayAMI(t, "pjsip/inbound.ami", modeLive, calls.Options{Resolver: noAgents{}})
	if len(got) != 1 || got[0].AgentID != 1 {
		t.Fatalf("AMI: %+v, want one connect of agent 1", got)
	}
	got, _, logs := replayARI(t, "pjsip/inbound.ari.jsonl", modeLive, calls.Options{Resolver: noAgents{}})
	if len(got) != 1 || got[0].AgentID != 0 {
		t.Fatalf("ARI: %+v, want one connect without agent", got)
	}
	for _, w := range []string{"the agent of a connect is unknown", `"extension":"1001"`, `"channel":"PJSIP/1001-00000003"`, "ARI never carries one", "1796287433.2"} {
		if !strings.Contains(logs, w) {
			t.Errorf("ARI log lacks %q:\n%s", w, logs)
		}
	}
}

// checkRecoveredWait: a queue call's first connect recovered by a resync has no
// AgentConnect HoldTime (and these recordings have no QEHOLDTIME): its wait is named
// missing, not made up. A click-to-call's wait is the call's age, as live. It clears
// that entry so the rest of the connect is checked as usual.
func checkRecoveredWait(t *testing.T, file string, mode replayMode, got []calls.Connected, logs string) {
	t.Helper()
	if mode != modeRestarted || len(got) == 0 {
		return
	}
	if !strings.Contains(logs, `"connects":1,"message":"calls: resync: recovered connects made while the event stream was down"`) {
		t.Errorf("the recovery is not logged:\n%s", logs)
	}
	queue := !strings.HasPrefix(file, "pjsip/c2c")
	m := got[0].Missing
	switch {
	case queue && (len(m) != 1 || m[0] != calls.FieldCallWaitDuration || got[0].CallWaitDuration != 0):
		t.Errorf("recovered queue connect: Missing %v, wait %s; want [CallWaitDuration], 0", m, got[0].CallWaitDuration)
	case !queue && got[0].CallWaitDuration <= 0:
		t.Errorf("recovered click-to-call: wait %s, want the call's age", got[0].CallWaitDuration)
	}
	if queue {
		got[0].Missing = nil
	}
}
