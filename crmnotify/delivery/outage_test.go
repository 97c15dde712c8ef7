package delivery

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/catalog/omldb"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// noPops is the agent sink of a test about server deliveries: nothing may be popped.
type noPops struct{ t *testing.T }

func (s noPops) Pop(_ context.Context, n crmnotify.Notification) error {
	s.t.Errorf("unexpected pop %s", n.ID)
	return nil
}
func (noPops) CallEnded(context.Context, string) error { return nil }

// TestShortOutageDeliveryWaitsForContact: OMniLeads' PostgreSQL (real 2.6.3 schema and
// rows) goes away while the campaign is cached. A call connects: the server delivery
// must not leave with the contact fields blanked. It waits in the outbox (Stats says
// so, for /readyz) and goes out complete once the contact can be read.
func TestShortOutageDeliveryWaitsForContact(t *testing.T) {
	ctx := context.Background()
	c := newCRM(t, false, nil)
	db := pgtest.NewOMniLeadsDatabase(t)
	// Campaign 2's server site (JSON, contact columns idcliente and telefono) points at
	// the test CRM, without its bearer login.
	pgtest.Exec(t, db, `UPDATE ominicontacto_app_sitioexterno SET url = '`+c.srv.URL+`/llamada', autenticacion_id = NULL WHERE id = 3`)
	proxy := pgtest.NewProxy(t, db)
	cat, err := omldb.Open(ctx, proxy.URL(), omldb.Options{CacheTTL: time.Hour, QueryTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cat.Close)
	// Warm cache: the campaign and the agent are known.
	if _, err := cat.Campaign(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Agent(ctx, 1); err != nil {
		t.Fatal(err)
	}

	opts := testOptions("sqlite:" + filepath.Join(t.TempDir(), "q.db"))
	opts.Rerender = func(ctx context.Context, def crmnotify.Deferred) (crmnotify.Request, error) {
		return crmnotify.Rerender(ctx, cat, def)
	}
	h := startQueue(t, opts)
	disp, err := crmnotify.NewDispatcher(crmnotify.DispatcherOptions{Catalog: cat, Server: h.q, Agents: noPops{t}, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	conn := calls.Connected{CallID: "1795481044.7", CampaignID: 2, AgentID: 1, ContactID: "2", Phone: "3515550002", At: time.Now()}
	if err := disp.HandleConnected(ctx, conn); err != nil {
		t.Fatalf("connect during the outage: %v", err)
	}
	id := crmnotify.NotificationID(conn.CallID, conn.AgentID, 3)
	waitFor(t, "the delivery to wait for its contact", func() bool {
		d, err := h.q.Get(ctx, id)
		return err == nil && d.Deferred != nil && strings.Contains(d.LastError, "waiting for contact 2")
	})
	st, err := h.q.Stats(ctx)
	if err != nil || st.WaitingForContact != 1 {
		t.Errorf("stats during the outage = %+v, %v; want 1 waiting for its contact", st, err)
	}
	waitFor(t, "the waiting gauge", func() bool {
		return testutil.ToFloat64(h.q.metrics.waitingContact) == 1
	})
	if n := c.count(); n != 0 {
		t.Fatalf("%d request(s) reached the CRM while the contact could not be read: %s", n, c.requests()[0].Body)
	}

	proxy.Restore()
	d := h.waitStatus(t, id, StatusDelivered)
	got := c.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	var body map[string]string
	if err := json.Unmarshal(got[0].Body, &body); err != nil {
		t.Fatalf("body %s: %v", got[0].Body, err)
	}
	if body["external_id"] != "CLI-002" || body["phone"] != "3515550002" || body["agent"] != "1" {
		t.Errorf("delivered body %s: want the contact's idcliente and telefono", got[0].Body)
	}
	if d.Deferred != nil || got[0].IdempotencyKey != id {
		t.Errorf("delivered row %+v, idempotency key %q", d, got[0].IdempotencyKey)
	}
	if st, _ := h.q.Stats(ctx); st.WaitingForContact != 0 {
		t.Errorf("still %d waiting after delivery", st.WaitingForContact)
	}
}

// TestWaitForContactBoundedByMaxAge: a contact that never becomes readable ends the
// delivery dead at delivery.max_age, saying why, never sent blank.
func TestWaitForContactBoundedByMaxAge(t *testing.T) {
	ctx := context.Background()
	c := newCRM(t, false, nil)
	opts := testOptions("sqlite:" + filepath.Join(t.TempDir(), "q.db"))
	opts.MaxAge = time.Hour
	var tries atomic.Int64
	opts.Rerender = func(context.Context, crmnotify.Deferred) (crmnotify.Request, error) {
		tries.Add(1)
		return crmnotify.Request{}, crmnotify.ErrCatalogUnavailable
	}
	h := startQueue(t, opts)
	n := notification(t, c.srv.URL+"/x", 2, 4, nil)
	n.Missing = []string{crmnotify.MissingContact}
	n.Deferred = &crmnotify.Deferred{CampaignID: 11, ContactID: 321, Call: crmnotify.CallData{CallID: n.CallID, AgentID: 2}}
	enqueue(t, h.q, n)
	waitFor(t, "a few rounds of waiting", func() bool {
		d, err := h.q.Get(ctx, n.ID)
		return err == nil && strings.Contains(d.LastError, "waiting for contact 321") && tries.Load() >= 3
	})
	h.clock.Advance(2 * time.Hour)
	d := h.waitStatus(t, n.ID, StatusDead)
	// The wait is logged when it begins and when it ends, not at every round.
	if got := strings.Count(h.logs.String(), "will retry"); got != 1 {
		t.Errorf("%d 'will retry' log lines for one waiting delivery, want 1:\n%s", got, h.logs.String())
	}
	if !strings.Contains(d.LastError, "maximum age") || !strings.Contains(d.LastError, "contact 321") {
		t.Errorf("dead with %q", d.LastError)
	}
	if c.count() != 0 {
		t.Errorf("a delivery without its contact reached the CRM")
	}

	// Without a way to render again, a deferred notification is refused, not sent blank.
	opts2 := testOptions("sqlite:" + filepath.Join(t.TempDir(), "q2.db"))
	h2 := startQueue(t, opts2)
	if err := h2.q.Enqueue(ctx, n); err == nil || !strings.Contains(err.Error(), "Rerender") {
		t.Errorf("deferred notification without Rerender: %v", err)
	}
}
