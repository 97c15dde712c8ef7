package crmnotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/internal/logtest"
)

// memCatalog is an in-memory catalog.Catalog. failCampaign/failContact make the next n
// lookups fail with a transient error.
type memCatalog struct {
	mu           sync.Mutex
	campaigns    map[int]*catalog.Campaign
	contacts     map[int]*catalog.Contact
	agents       map[int]*catalog.Agent
	failCampaign int
	failContact  int
	lookups      map[string]int
}

var errDown = errors.New("connection refused")

func (m *memCatalog) count(kind string) {
	if m.lookups == nil {
		m.lookups = map[string]int{}
	}
	m.lookups[kind]++
}

func (m *memCatalog) Campaign(_ context.Context, id int) (*catalog.Campaign, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("campaign")
	if m.failCampaign > 0 {
		m.failCampaign--
		return nil, fmt.Errorf("reading campaign %d: %w", id, errDown)
	}
	c, ok := m.campaigns[id]
	if !ok {
		return nil, fmt.Errorf("campaign %d: %w", id, catalog.ErrNotFound)
	}
	return c, nil
}

func (m *memCatalog) Campaigns(context.Context) ([]*catalog.Campaign, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*catalog.Campaign
	for _, c := range m.campaigns {
		out = append(out, c)
	}
	return out, nil
}

func (m *memCatalog) Contact(_ context.Context, id int) (*catalog.Contact, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("contact")
	if m.failContact > 0 {
		m.failContact--
		return nil, fmt.Errorf("reading contact %d: %w", id, errDown)
	}
	c, ok := m.contacts[id]
	if !ok {
		return nil, fmt.Errorf("contact %d: %w", id, catalog.ErrNotFound)
	}
	return c, nil
}

func (m *memCatalog) Agent(_ context.Context, id int) (*catalog.Agent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("agent")
	a, ok := m.agents[id]
	if !ok {
		return nil, fmt.Errorf("agent %d: %w", id, catalog.ErrNotFound)
	}
	return a, nil
}

func (m *memCatalog) AgentByExtension(_ context.Context, ext string) (*catalog.Agent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.agents {
		if a.SIPExtension == ext {
			return a, nil
		}
	}
	return nil, fmt.Errorf("agent with extension %q: %w", ext, catalog.ErrNotFound)
}

func (m *memCatalog) Close() {}

func (m *memCatalog) lookupCount(kind string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookups[kind]
}

// recordingSinks records what the dispatcher hands off; fail makes the next n calls fail.
type recordingSinks struct {
	mu       sync.Mutex
	enqueued []Notification
	popped   []Notification
	ended    []string
	fail     int
}

func (r *recordingSinks) failing() error {
	if r.fail > 0 {
		r.fail--
		return errors.New("queue database unavailable")
	}
	return nil
}

func (r *recordingSinks) Enqueue(_ context.Context, n Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.failing(); err != nil {
		return err
	}
	r.enqueued = append(r.enqueued, n)
	return nil
}

func (r *recordingSinks) Pop(_ context.Context, n Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.failing(); err != nil {
		return err
	}
	r.popped = append(r.popped, n)
	return nil
}

func (r *recordingSinks) CallEnded(_ context.Context, callID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.failing(); err != nil {
		return err
	}
	r.ended = append(r.ended, callID)
	return nil
}

// The documentation's example 1 set-up: campaign 11, contact 321321321, agent 2.
func exampleParams() []catalog.Param {
	return []catalog.Param{
		{Family: catalog.FamilyCall, Source: "id_contacto", Name: "idClient"},
		{Family: catalog.FamilyCampaign, Source: "id", Name: "idCamp"},
		{Family: catalog.FamilyFixed, Source: "es", Name: "lang"},
		{Family: catalog.FamilyCall, Source: "rec_filename", Name: "recordingFile"},
	}
}

func newCatalog() *memCatalog {
	db := &catalog.ContactDatabase{ID: 5, Name: "clientes", Columns: []string{"telefono", "nombre", "idcliente"}}
	site := func(id int, tr catalog.Trigger, url string) *catalog.Site {
		s := &catalog.Site{ID: id, Name: fmt.Sprintf("site%d", id), URL: url, Trigger: tr, Method: catalog.MethodGET}
		if tr == catalog.TriggerAgent || tr == catalog.TriggerAutomatic {
			s.Target = catalog.TargetEmbedded
		}
		return s
	}
	camp := func(id int, inter catalog.Interaction, s *catalog.Site, params []catalog.Param) *catalog.Campaign {
		return &catalog.Campaign{ID: id, Name: fmt.Sprintf("camp%d", id), Type: catalog.TypePreview,
			Interaction: inter, State: catalog.StateActive, Site: s, Params: params, ContactDatabase: db}
	}
	rich := []catalog.Param{
		{Family: catalog.FamilyContact, Source: "nombre", Name: "nombre"},
		{Family: catalog.FamilyCall, Source: "agent_name", Name: "agente"},
		{Family: catalog.FamilyCall, Source: "call_wait_duration", Name: "espera"},
		{Family: catalog.FamilyDialplan, Source: "Omlcrmticket", Name: "ticket"},
		{Family: catalog.FamilyCall, Source: "telefono", Name: "tel"},
	}
	return &memCatalog{
		campaigns: map[int]*catalog.Campaign{
			11: camp(11, catalog.InteractionSite, site(1, catalog.TriggerServer, "https://my_crm.domain.com"), exampleParams()),
			12: camp(12, catalog.InteractionFormAndSite, site(2, catalog.TriggerAgent, "https://crm.example.com/agent"), rich),
			13: camp(13, catalog.InteractionSite, site(3, catalog.TriggerAutomatic, "https://crm.example.com/auto"), rich),
			14: camp(14, catalog.InteractionSite, nil, nil),
			15: camp(15, catalog.InteractionForm, site(5, catalog.TriggerServer, "https://crm.example.com/"), nil),
			16: camp(16, catalog.InteractionSite, site(6, catalog.TriggerDisposition, "https://crm.example.com/"), nil),
			17: camp(17, catalog.InteractionSite, site(7, catalog.TriggerDynamicList, "https://crm.example.com/"), nil),
			// A holder nobody fills: a configuration error Render refuses.
			18: camp(18, catalog.InteractionSite, site(8, catalog.TriggerServer, "https://crm.example.com/{9}"), exampleParams()),
		},
		contacts: map[int]*catalog.Contact{
			321321321: {ID: 321321321, DatabaseID: 5, Phone: "4149014",
				Fields: map[string]string{"telefono": "4149014", "nombre": "Juan", "idcliente": "A-1"}},
		},
		agents: map[int]*catalog.Agent{2: {ID: 2, UserID: 7, Username: "agent2", Name: "Ana Pérez", SIPExtension: "1002"}},
	}
}

type fixture struct {
	d     *Dispatcher
	cat   *memCatalog
	sinks *recordingSinks
	logs  *logtest.Buffer
	reg   *prometheus.Registry
}

// logLines returns the JSON log lines written to logs.
func logLines(t *testing.T, logs *logtest.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{cat: newCatalog(), sinks: &recordingSinks{}, logs: &logtest.Buffer{}, reg: prometheus.NewRegistry()}
	d, err := NewDispatcher(DispatcherOptions{
		Catalog:    f.cat,
		Server:     f.sinks,
		Agents:     f.sinks,
		Logger:     zerolog.New(f.logs).Level(zerolog.DebugLevel),
		Registerer: f.reg,
		Backoff:    time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	return f
}

var connectedAt = time.Date(2019, 6, 4, 17, 6, 22, 0, time.UTC)

func connected(campaign, agent int, contact string) calls.Connected {
	return calls.Connected{
		CallID:           "1559667982.424",
		LinkedID:         "1559667982.424",
		AgentID:          agent,
		CampaignID:       campaign,
		CampaignType:     int(catalog.TypePreview),
		Phone:            "4149014",
		ContactID:        contact,
		RecordingFile:    "prev-115-20190604-2-4149014-1559667982.424.wav",
		CallWaitDuration: 12500 * time.Millisecond,
		Dialplan:         map[string]string{"OMLCRMTICKET": "T-123"},
		At:               connectedAt,
	}
}

func (f *fixture) connects(outcome string) float64 {
	return testutil.ToFloat64(f.d.m.connects.WithLabelValues(outcome))
}

func TestDispatcherServerTriggerEnqueuesTheRenderedRequest(t *testing.T) {
	f := newFixture(t)
	if err := f.d.HandleConnected(context.Background(), connected(11, 2, "321321321")); err != nil {
		t.Fatalf("HandleConnected: %v", err)
	}
	if len(f.sinks.enqueued) != 1 || len(f.sinks.popped) != 0 {
		t.Fatalf("enqueued %d, popped %d; want 1, 0", len(f.sinks.enqueued), len(f.sinks.popped))
	}
	n := f.sinks.enqueued[0]
	const want = "https://my_crm.domain.com?idClient=321321321&idCamp=11&lang=es&recordingFile=prev-115-20190604-2-4149014-1559667982.424.wav"
	if n.Request.URL != want || n.Request.Method != "GET" {
		t.Errorf("request = %s %s\nwant GET %s", n.Request.Method, n.Request.URL, want)
	}
	if n.ID != NotificationID("1559667982.424", 2, 1) {
		t.Errorf("ID = %s, want NotificationID(call, agent, site)", n.ID)
	}
	if n.CallID != "1559667982.424" || n.AgentID != 2 || n.Campaign.ID != 11 || n.Site.ID != 1 || !n.ConnectedAt.Equal(connectedAt) {
		t.Errorf("notification = %+v", n)
	}
	if got := f.connects(OutcomeServer); got != 1 {
		t.Errorf("connects{server} = %v, want 1", got)
	}
	if h := histogramCount(t, f.reg, "omlcrm_render_duration_seconds"); h != 1 {
		t.Errorf("render duration observations = %d, want 1", h)
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func TestDispatcherBrowserTriggersPopWithContactAgentAndCallData(t *testing.T) {
	for _, campaign := range []int{12, 13} { // agent, automatic
		t.Run(fmt.Sprint(campaign), func(t *testing.T) {
			f := newFixture(t)
			if err := f.d.HandleConnected(context.Background(), connected(campaign, 2, "321321321")); err != nil {
				t.Fatalf("HandleConnected: %v", err)
			}
			if len(f.sinks.popped) != 1 || len(f.sinks.enqueued) != 0 {
				t.Fatalf("popped %d, enqueued %d; want 1, 0", len(f.sinks.popped), len(f.sinks.enqueued))
			}
			got := map[string]string{}
			for _, fl := range f.sinks.popped[0].Request.Fields {
				got[fl.Name] = fl.Value
			}
			want := map[string]string{"nombre": "Juan", "agente": "Ana Pérez", "espera": "12", "ticket": "T-123", "tel": "4149014"}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("field %s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
			if c := f.connects(OutcomePopped); c != 1 {
				t.Errorf("connects{popped} = %v, want 1", c)
			}
		})
	}
}

func TestDispatcherSkipsWithReason(t *testing.T) {
	cases := []struct {
		name     string
		campaign int
		agent    int
		reason   SkipReason
	}{
		{"outside campaign", 0, 2, SkipNoCampaign},
		{"unknown campaign", 99, 2, SkipUnknownCampaign},
		{"no site", 14, 2, SkipNoSite},
		{"form only", 15, 2, SkipFormOnly},
		{"disposition trigger", 16, 2, SkipTriggerNotOnCall},
		{"dynamic list trigger", 17, 2, SkipTriggerNotOnCall},
		{"pop without agent", 12, 0, SkipNoAgent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			c := connected(tc.campaign, tc.agent, "321321321")
			err := f.d.HandleConnected(context.Background(), c)
			var skip *SkippedError
			if !errors.As(err, &skip) || skip.Reason != tc.reason {
				t.Fatalf("err = %v, want a skip with reason %s", err, tc.reason)
			}
			if len(f.sinks.enqueued)+len(f.sinks.popped) != 0 {
				t.Errorf("a skipped connect was handed off")
			}
			if got := testutil.ToFloat64(f.d.m.skipped.WithLabelValues(string(tc.reason))); got != 1 {
				t.Errorf("skipped{%s} = %v, want 1", tc.reason, got)
			}
			if got := f.connects(OutcomeSkipped); got != 1 {
				t.Errorf("connects{skipped} = %v, want 1", got)
			}
			lines := logLines(t, f.logs)
			if len(lines) != 1 {
				t.Fatalf("want one log line, got %v", lines)
			}
			l := lines[0]
			wantLevel := "info"
			if tc.reason == SkipNoAgent {
				wantLevel = "warn" // unexpected: the tracker did not resolve the agent
			}
			if l["level"] != wantLevel || l["reason"] != string(tc.reason) || l["outcome"] != OutcomeSkipped || l["call_id"] != c.CallID ||
				l["campaign_id"] != float64(c.CampaignID) || l["agent_id"] != float64(c.AgentID) {
				t.Errorf("log line = %v, want level %s with reason, call_id, campaign_id, agent_id", l, wantLevel)
			}
		})
	}
}

func TestDispatcherMissingContactRendersEmptyAndWarns(t *testing.T) {
	f := newFixture(t)
	if err := f.d.HandleConnected(context.Background(), connected(12, 2, "777")); err != nil {
		t.Fatalf("HandleConnected: %v", err)
	}
	if len(f.sinks.popped) != 1 {
		t.Fatalf("popped %d, want 1", len(f.sinks.popped))
	}
	for _, fl := range f.sinks.popped[0].Request.Fields {
		if fl.Name == "nombre" && fl.Value != "" {
			t.Errorf("nombre = %q, want empty for a missing contact", fl.Value)
		}
	}
	var warned bool
	for _, l := range logLines(t, f.logs) {
		if l["level"] == "warn" && l["contact_id"] == float64(777) && l["call_id"] == "1559667982.424" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning naming contact 777: %v", logLines(t, f.logs))
	}
}

func TestDispatcherDoesNotLookUpUnidentifiedContacts(t *testing.T) {
	for _, id := range []string{"-1", "0", "", "abc"} {
		f := newFixture(t)
		if err := f.d.HandleConnected(context.Background(), connected(12, 2, id)); err != nil {
			t.Fatalf("contact %q: %v", id, err)
		}
		if n := f.cat.lookupCount("contact"); n != 0 {
			t.Errorf("contact %q: %d lookups, want 0", id, n)
		}
	}
}

func TestDispatcherUnknownAgentRendersEmptyAgentName(t *testing.T) {
	f := newFixture(t)
	if err := f.d.HandleConnected(context.Background(), connected(12, 42, "321321321")); err != nil {
		t.Fatalf("HandleConnected: %v", err)
	}
	n := f.sinks.popped[0]
	if n.AgentID != 42 {
		t.Errorf("AgentID = %d, want 42 (the pop goes to the call's agent)", n.AgentID)
	}
	for _, fl := range n.Request.Fields {
		if fl.Name == "agente" && fl.Value != "" {
			t.Errorf("agente = %q, want empty for an unknown agent", fl.Value)
		}
	}
}

func TestDispatcherRenderErrorIsLoggedAndCounted(t *testing.T) {
	f := newFixture(t)
	err := f.d.HandleConnected(context.Background(), connected(18, 2, "321321321"))
	if !errors.Is(err, ErrMisconfigured) {
		t.Fatalf("err = %v, want ErrMisconfigured", err)
	}
	if len(f.sinks.enqueued) != 0 {
		t.Errorf("a request that failed to render was queued")
	}
	if got := testutil.ToFloat64(f.d.m.errors.WithLabelValues(stageRender)); got != 1 {
		t.Errorf("errors{render} = %v, want 1", got)
	}
	if got := f.connects(OutcomeError); got != 1 {
		t.Errorf("connects{error} = %v, want 1", got)
	}
	var found bool
	for _, l := range logLines(t, f.logs) {
		msg, _ := l["error"].(string)
		if l["level"] == "error" && l["site_id"] == float64(8) && l["campaign_id"] == float64(18) &&
			l["call_id"] == "1559667982.424" && l["agent_id"] == float64(2) && strings.Contains(msg, "{9}") {
			found = true
		}
	}
	if !found {
		t.Errorf("no error line naming campaign 18, site 8 and the placeholder {9}: %v", logLines(t, f.logs))
	}
}

func TestDispatcherRetriesTransientCatalogErrors(t *testing.T) {
	f := newFixture(t)
	f.cat.failCampaign = 2 // Attempts defaults to 3
	f.cat.failContact = 1
	if err := f.d.HandleConnected(context.Background(), connected(12, 2, "321321321")); err != nil {
		t.Fatalf("HandleConnected: %v", err)
	}
	if f.cat.lookupCount("campaign") != 3 || f.cat.lookupCount("contact") != 2 {
		t.Errorf("lookups = %v, want 3 campaign and 2 contact", f.cat.lookups)
	}
	if f.sinks.popped[0].Request.Fields[0].Value != "Juan" {
		t.Errorf("contact not used after a retried lookup: %v", f.sinks.popped[0].Request.Fields)
	}
}

func TestDispatcherCampaignOutageIsAnError(t *testing.T) {
	f := newFixture(t)
	f.cat.failCampaign = 100
	err := f.d.HandleConnected(context.Background(), connected(11, 2, "321321321"))
	if !errors.Is(err, errDown) {
		t.Fatalf("err = %v, want the catalog error", err)
	}
	if got := testutil.ToFloat64(f.d.m.errors.WithLabelValues(stageCampaign)); got != 1 {
		t.Errorf("errors{campaign} = %v, want 1", got)
	}
	if got := f.connects(OutcomeError); got != 1 {
		t.Errorf("connects{error} = %v, want 1", got)
	}
}

func TestDispatcherContactOutageDegrades(t *testing.T) {
	f := newFixture(t)
	f.cat.failContact = 100
	if err := f.d.HandleConnected(context.Background(), connected(11, 2, "321321321")); err != nil {
		t.Fatalf("HandleConnected: %v", err)
	}
	if len(f.sinks.enqueued) != 1 {
		t.Fatalf("enqueued %d, want 1: a contact outage must not drop the delivery", len(f.sinks.enqueued))
	}
	if got := testutil.ToFloat64(f.d.m.errors.WithLabelValues(stageContact)); got != 1 {
		t.Errorf("errors{contact} = %v, want 1", got)
	}
	// Not sent blank: the delivery carries what it needs to be rendered again.
	n := f.sinks.enqueued[0]
	if !reflect.DeepEqual(n.Missing, []string{MissingContact}) || n.Deferred == nil ||
		n.Deferred.ContactID != 321321321 || n.Deferred.CampaignID != 11 || n.Deferred.Call.CallID != "1559667982.424" {
		t.Errorf("notification of a contact outage: missing %v, deferred %+v", n.Missing, n.Deferred)
	}
}

// An unknown trigger code is not "fired by OMniLeads itself": it is a warning naming it.
func TestDispatcherUnknownTriggerWarns(t *testing.T) {
	f := newFixture(t)
	f.cat.campaigns[19] = &catalog.Campaign{ID: 19, Name: "camp19", Type: catalog.TypeInbound, Interaction: catalog.InteractionSite,
		State: catalog.StateActive, Site: &catalog.Site{ID: 9, Name: "site9", URL: "https://crm.example.com/", Trigger: 9, Method: catalog.MethodGET}}
	err := f.d.HandleConnected(context.Background(), connected(19, 2, "321321321"))
	var skip *SkippedError
	if !errors.As(err, &skip) {
		t.Fatalf("err = %v, want a skip", err)
	}
	found := false
	for _, l := range logLines(t, f.logs) {
		if l["level"] == "warn" && l["trigger_code"] == float64(9) && strings.Contains(l["message"].(string), "unknown trigger code") {
			found = true
		}
	}
	if !found {
		t.Errorf("no warning naming the unknown trigger code: %s", f.logs.String())
	}
}

func TestDispatcherSinkFailures(t *testing.T) {
	f := newFixture(t)
	f.sinks.fail = 2 // retried: succeeds on the third attempt
	if err := f.d.HandleConnected(context.Background(), connected(11, 2, "321321321")); err != nil {
		t.Fatalf("HandleConnected with a flaky queue: %v", err)
	}
	f.sinks.fail = 100
	if err := f.d.HandleConnected(context.Background(), connected(11, 2, "321321321")); err == nil {
		t.Fatal("HandleConnected with a queue down: no error")
	}
	if err := f.d.HandleConnected(context.Background(), connected(12, 2, "321321321")); err == nil {
		t.Fatal("HandleConnected with the hub down: no error")
	}
	if got := testutil.ToFloat64(f.d.m.errors.WithLabelValues(stageEnqueue)); got != 1 {
		t.Errorf("errors{enqueue} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.d.m.errors.WithLabelValues(stagePop)); got != 1 {
		t.Errorf("errors{pop} = %v, want 1", got)
	}
	if got, want := f.connects(OutcomeServer), 1.0; got != want {
		t.Errorf("connects{server} = %v, want %v", got, want)
	}
	if got := f.connects(OutcomeError); got != 2 {
		t.Errorf("connects{error} = %v, want 2", got)
	}
}

func TestDispatcherRetryStopsOnCancel(t *testing.T) {
	f := newFixture(t)
	f.d.backoff = time.Hour // only the cancellation can end the wait
	f.cat.failCampaign = 100
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.d.HandleConnected(ctx, connected(11, 2, "")) }()
	for f.cat.lookupCount("campaign") == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || !errors.Is(err, errDown) {
		t.Fatalf("err = %v, want both the catalog error and context.Canceled", err)
	}
}

func TestDispatcherHandleEnded(t *testing.T) {
	f := newFixture(t)
	if err := f.d.HandleEnded(context.Background(), calls.Ended{CallID: "1559667982.424"}); err != nil {
		t.Fatal(err)
	}
	if len(f.sinks.ended) != 1 || f.sinks.ended[0] != "1559667982.424" {
		t.Errorf("ended = %v", f.sinks.ended)
	}
	f.sinks.fail = 100
	if err := f.d.HandleEnded(context.Background(), calls.Ended{CallID: "x"}); err == nil {
		t.Error("HandleEnded with the hub down: no error")
	}
	if got := testutil.ToFloat64(f.d.m.errors.WithLabelValues(stageCallEnded)); got != 1 {
		t.Errorf("errors{call_ended} = %v, want 1", got)
	}
}

func TestDispatcherConcurrentConnects(t *testing.T) {
	f := newFixture(t)
	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := connected(11+i%3, 2, "321321321") // server, agent, automatic
			c.CallID = fmt.Sprintf("1559667982.%d", i)
			if err := f.d.HandleConnected(context.Background(), c); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ids := map[string]bool{}
	for _, x := range append(f.sinks.enqueued, f.sinks.popped...) {
		ids[x.ID] = true
	}
	if len(ids) != n {
		t.Errorf("%d distinct notifications, want %d", len(ids), n)
	}
	if got := f.connects(OutcomeServer) + f.connects(OutcomePopped); got != n {
		t.Errorf("connects{server}+connects{popped} = %v, want %d", got, n)
	}
}

func TestNewDispatcherValidatesAndRegisters(t *testing.T) {
	cat, sinks := newCatalog(), &recordingSinks{}
	for name, o := range map[string]DispatcherOptions{
		"catalog": {Server: sinks, Agents: sinks},
		"server":  {Catalog: cat, Agents: sinks},
		"agent":   {Catalog: cat, Server: sinks},
	} {
		if _, err := NewDispatcher(o); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("missing %s: err = %v", name, err)
		}
	}
	reg := prometheus.NewRegistry()
	o := DispatcherOptions{Catalog: cat, Server: sinks, Agents: sinks, Registerer: reg}
	if _, err := NewDispatcher(o); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDispatcher(o); err == nil {
		t.Error("registering the metrics twice in one registry: no error")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"omlcrm_connects_total", "omlcrm_connects_skipped_total", "omlcrm_dispatch_errors_total",
		"omlcrm_render_duration_seconds", "omlcrm_dispatch_duration_seconds", "omlcrm_dispatch_calls_ended_total"} {
		if !names[want] {
			t.Errorf("metric %s not registered (have %v)", want, names)
		}
	}
}

func TestCallDataFromConnected(t *testing.T) {
	c := connected(11, 2, "321321321")
	got := callData(c)
	if got.RecFilename != c.RecordingFile || got.CallWaitDuration != "12" || got.ContactID != "321321321" ||
		got.Phone != "4149014" || got.AgentID != 2 || !got.At.Equal(connectedAt) || got.Dialplan["OMLCRMTICKET"] != "T-123" {
		t.Errorf("callData = %+v", got)
	}
	c.CallWaitDuration = 0
	if w := callData(c).CallWaitDuration; w != "" {
		t.Errorf("unknown wait renders %q, want empty", w)
	}
}

// BenchmarkDispatcherHandleConnected measures the dispatcher's own cost per connect
// (in-memory catalog and sinks): lookups, render, hand-off, metrics and logging at info.
func BenchmarkDispatcherHandleConnected(b *testing.B) {
	for _, tc := range []struct {
		name     string
		campaign int
	}{{"server", 11}, {"agent", 12}, {"skipped", 14}} {
		b.Run(tc.name, func(b *testing.B) {
			sinks := &discardSinks{}
			d, err := NewDispatcher(DispatcherOptions{Catalog: newCatalog(), Server: sinks, Agents: sinks,
				Logger: zerolog.New(io.Discard).Level(zerolog.InfoLevel), Registerer: prometheus.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			c := connected(tc.campaign, 2, "321321321")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_ = d.HandleConnected(ctx, c)
			}
		})
	}
}

type discardSinks struct{}

func (discardSinks) Enqueue(context.Context, Notification) error { return nil }
func (discardSinks) Pop(context.Context, Notification) error     { return nil }
func (discardSinks) CallEnded(context.Context, string) error     { return nil }

// Every connect is logged in exactly one line carrying its outcome and the ids an
// operator follows it by, at info when handed off; what the tracker could not obtain is
// named at warn.
func TestDispatcherLogsOneOutcomeLinePerConnect(t *testing.T) {
	cases := []struct {
		name      string
		campaign  int
		fail      int // sink failures
		outcome   string
		level     string
		notifID   bool
		wantStage string
	}{
		{"server", 11, 0, OutcomeServer, "info", true, ""},
		{"pop", 12, 0, OutcomePopped, "info", true, ""},
		{"skipped", 15, 0, OutcomeSkipped, "info", false, ""},
		{"queue down", 11, 100, OutcomeError, "error", true, stageEnqueue},
		{"hub down", 12, 100, OutcomeError, "error", true, stagePop},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.sinks.fail = tc.fail
			c := connected(tc.campaign, 2, "321321321")
			c.Missing = []string{"ContactID", "Phone"}
			_ = f.d.HandleConnected(context.Background(), c)
			var outcomes, missing []map[string]any
			for _, l := range logLines(t, f.logs) {
				if _, ok := l["outcome"]; ok {
					outcomes = append(outcomes, l)
				}
				if l["missing"] != nil {
					missing = append(missing, l)
				}
			}
			if len(outcomes) != 1 {
				t.Fatalf("%d outcome lines, want 1: %v", len(outcomes), logLines(t, f.logs))
			}
			l := outcomes[0]
			if l["outcome"] != tc.outcome || l["level"] != tc.level || l["call_id"] != c.CallID ||
				l["campaign_id"] != float64(tc.campaign) || l["agent_id"] != float64(2) {
				t.Errorf("outcome line = %v, want outcome %s at %s with call_id, campaign_id, agent_id", l, tc.outcome, tc.level)
			}
			if ms, ok := l["dispatch_ms"].(float64); !ok || ms < 0 {
				t.Errorf("dispatch_ms = %v, want a number of milliseconds", l["dispatch_ms"])
			}
			if _, ok := l["notification_id"]; ok != tc.notifID {
				t.Errorf("notification_id present = %v, want %v: %v", ok, tc.notifID, l)
			}
			if tc.notifID && l["site_id"] == nil {
				t.Errorf("no site_id: %v", l)
			}
			if tc.wantStage != "" && l["stage"] != tc.wantStage {
				t.Errorf("stage = %v, want %s", l["stage"], tc.wantStage)
			}
			if len(missing) != 1 || missing[0]["level"] != "warn" || missing[0]["call_id"] != c.CallID ||
				fmt.Sprint(missing[0]["missing"]) != "[ContactID Phone]" {
				t.Errorf("missing values line = %v, want one warning naming ContactID and Phone", missing)
			}
		})
	}
}
