package agentws

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/catalog/omldb"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/pgtest"
	"github.com/omlcrm/oml-crm/internal/redistest"
)

// TestIncompletePopUpdatedOnceContactRead: OMniLeads' PostgreSQL (real 2.6.3 schema and
// rows) goes away with the campaign cached; a call connects. The agent gets the pop at
// once, marked incomplete (missing the contact), then the same pop id with rev 1 and
// the contact's value once the database answers; a page that reconnects gets only the
// latest revision. Over the memory store and over Redis.
func TestIncompletePopUpdatedOnceContactRead(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testIncompletePop(t, Options{}) })
	t.Run("redis", func(t *testing.T) {
		url, prefix := redistest.New(t, "omlcrm-test")
		testIncompletePop(t, Options{RedisURL: url, RedisPrefix: prefix})
	})
}

func testIncompletePop(t *testing.T, hubOpts Options) {
	ctx := context.Background()
	db := pgtest.NewOMniLeadsDatabase(t)
	proxy := pgtest.NewProxy(t, db)
	cat, err := omldb.Open(ctx, proxy.URL(), omldb.Options{CacheTTL: time.Hour, QueryTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cat.Close)
	// Campaign 4: automatic GET embedded https://my-crm.domain.com/{1}/{2}/es with {1} the
	// contact's idcliente.
	if _, err := cat.Campaign(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Agent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	th := newTestHub(t, hubOpts)
	disp, err := crmnotify.NewDispatcher(crmnotify.DispatcherOptions{Catalog: cat, Server: refuseServer{t}, Agents: th.Hub,
		Backoff: time.Millisecond, UpdateInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); disp.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	agent := dialAgent(t, th, 1)
	proxy.Cut()
	conn := calls.Connected{CallID: "1795481044.9", CampaignID: 4, AgentID: 1, ContactID: "2", Phone: "3515550002", At: time.Now()}
	if err := disp.HandleConnected(ctx, conn); err != nil {
		t.Fatalf("connect during the outage: %v", err)
	}
	first := agent.next()
	id := crmnotify.NotificationID(conn.CallID, 1, 4)
	req, _ := first["request"].(map[string]any)
	if first["type"] != TypePop || first["id"] != id || first["incomplete"] != true || first["rev"] != nil ||
		!sameStrings(first["missing"], []string{"contact"}) || !strings.HasPrefix(req["url"].(string), "https://my-crm.domain.com//4/es?city=&") {
		t.Fatalf("first pop %v", first)
	}

	proxy.Restore()
	update := agent.next()
	req, _ = update["request"].(map[string]any)
	if update["type"] != TypePop || update["id"] != id || update["rev"] != float64(1) || update["incomplete"] != nil ||
		update["missing"] != nil || !strings.HasPrefix(req["url"].(string), "https://my-crm.domain.com/CLI-002/4/es?city=S%C3%A3o+Paulo&") {
		t.Fatalf("update %v", update)
	}
	if got := agent.sync(); len(got) != 0 {
		t.Fatalf("more after the update: %v", got)
	}
	// A reloaded page gets the latest revision only.
	again := dialAgent(t, th, 1)
	got := again.sync()
	if len(got) != 1 || got[0]["id"] != id || got[0]["rev"] != float64(1) || got[0]["replay"] != true {
		t.Fatalf("replay %v", got)
	}
	// The earlier revision handed again (another instance, a late retry) is a duplicate.
	n := crmnotify.Notification{ID: id, CallID: conn.CallID, AgentID: 1, ConnectedAt: conn.At,
		Site:    &catalog.Site{ID: 4, Trigger: catalog.TriggerAutomatic, Target: catalog.TargetEmbedded},
		Request: crmnotify.Request{Method: "GET", URL: "https://my-crm.domain.com//4/es"}, Missing: []string{"contact"}}
	mustPop(t, th.Hub, n)
	if got := again.sync(); len(got) != 0 {
		t.Fatalf("an older revision was delivered again: %v", got)
	}
	if disp.PendingUpdates() != 0 {
		t.Errorf("%d updates still pending", disp.PendingUpdates())
	}
}

func sameStrings(v any, want []string) bool {
	list, ok := v.([]any)
	if !ok || len(list) != len(want) {
		return false
	}
	for i := range list {
		if list[i] != want[i] {
			return false
		}
	}
	return true
}

// refuseServer is the server sink of a test about pops: nothing may be queued.
type refuseServer struct{ t *testing.T }

func (s refuseServer) Enqueue(_ context.Context, n crmnotify.Notification) error {
	s.t.Errorf("unexpected server delivery %s", n.ID)
	return nil
}

// TestPopRevisions: a higher revision of a shown pop is delivered and replayed instead of
// the earlier one; an equal or lower one is a duplicate; a pop the page acked (done with
// it) gets no update. Over the memory store and over Redis.
func TestPopRevisions(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testPopRevisions(t, Options{}) })
	t.Run("redis", func(t *testing.T) {
		url, prefix := redistest.New(t, "omlcrm-test")
		testPopRevisions(t, Options{RedisURL: url, RedisPrefix: prefix})
	})
}

func testPopRevisions(t *testing.T, opts Options) {
	th := newTestHub(t, opts)
	c := dialAgent(t, th, 31)
	// marker pops a fresh pop and returns the next message: with Redis, pops travel in
	// order on one channel, so anything published before the marker arrives first.
	markers := 0
	marker := func() map[string]any {
		markers++
		mustPop(t, th.Hub, notification(fmt.Sprintf("call-marker-%d", markers), 31, catalog.TriggerAgent, catalog.TargetEmbedded))
		return c.next()
	}
	n := notification("call-rev", 31, catalog.TriggerAgent, catalog.TargetEmbedded)
	n.Missing = []string{crmnotify.MissingContact}
	mustPop(t, th.Hub, n)
	if m := c.next(); m["id"] != n.ID || m["incomplete"] != true || m["rev"] != nil {
		t.Fatalf("rev 0: %v", m)
	}
	up := n
	up.Rev, up.Missing = 1, nil
	mustPop(t, th.Hub, up)
	mustPop(t, th.Hub, up) // another instance's copy
	mustPop(t, th.Hub, n)  // a late rev 0
	if m := c.next(); m["id"] != n.ID || m["rev"] != float64(1) || m["incomplete"] != nil {
		t.Fatalf("rev 1: %v", m)
	}
	if m := marker(); m["call_id"] != "call-marker-1" {
		t.Fatalf("after rev 1, a copy of it and a late rev 0: %v, want only the marker", m)
	}

	// The page acks a second pop; its update is not sent.
	acked := notification("call-rev-2", 31, catalog.TriggerAgent, catalog.TargetEmbedded)
	mustPop(t, th.Hub, acked)
	c.next()
	c.send(map[string]string{"type": TypeAck, "id": acked.ID})
	c.sync()
	acked.Rev = 1
	mustPop(t, th.Hub, acked)
	if m := marker(); m["call_id"] != "call-marker-2" {
		t.Fatalf("update of an acked pop delivered: %v", m)
	}
}
