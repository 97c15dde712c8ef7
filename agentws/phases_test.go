package agentws

import (
	"context"
	"testing"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
)

func ringingPop(call string, agent int) crmnotify.Notification {
	n := notification(call, agent, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	n.Phase = crmnotify.PhaseRinging
	n.ID = crmnotify.PhaseNotificationID(call, agent, n.Site.ID, crmnotify.PhaseRinging)
	return n
}

// A ringing pop carries phase "ringing"; the connect pop that supersedes it names it in
// replaces, and after a reload only the connect pop is replayed.
func TestRingingPopPromotedByTheConnectPop(t *testing.T) {
	th := newTestHub(t, Options{})
	c := dialAgent(t, th, 5)
	ring := ringingPop("call-p", 5)
	mustPop(t, th.Hub, ring)
	got := c.sync()
	if len(got) != 1 || got[0]["id"] != ring.ID || got[0]["phase"] != "ringing" || got[0]["replaces"] != nil {
		t.Fatalf("ringing pop: got %v", got)
	}
	conn := notification("call-p", 5, catalog.TriggerAutomatic, catalog.TargetEmbedded)
	conn.Replaces = ring.ID
	mustPop(t, th.Hub, conn)
	got = c.sync()
	if len(got) != 1 || got[0]["id"] != conn.ID || got[0]["replaces"] != ring.ID || got[0]["phase"] != nil {
		t.Fatalf("connect pop: got %v, want replaces %s and no phase (connect)", got, ring.ID)
	}
	c.ws.CloseNow()
	c = dialAgent(t, th, 5)
	got = c.sync()
	if len(got) != 1 || got[0]["id"] != conn.ID {
		t.Fatalf("after a reload got %v, want only the connect pop", got)
	}
}

// A ringing pop not answered is withdrawn: pop.withdrawn {id, reason} to the agent's
// pages, and it is not replayed after a reload. Withdrawing an unknown pop is a no-op.
func TestRingingPopWithdrawn(t *testing.T) {
	th := newTestHub(t, Options{})
	c := dialAgent(t, th, 5)
	other := dialAgent(t, th, 6)
	ring := ringingPop("call-w", 5)
	mustPop(t, th.Hub, ring)
	c.sync()
	ctx := context.Background()
	if err := th.Withdraw(ctx, 5, ring.ID, "answered_elsewhere"); err != nil {
		t.Fatal(err)
	}
	got := c.sync()
	if len(got) != 1 || got[0]["type"] != TypePopWithdrawn || got[0]["id"] != ring.ID || got[0]["reason"] != "answered_elsewhere" {
		t.Fatalf("got %v, want pop.withdrawn", got)
	}
	if got := other.sync(); len(got) != 0 {
		t.Errorf("another agent got %v", got)
	}
	if err := th.Withdraw(ctx, 5, "no-such-pop", "hangup"); err != nil {
		t.Fatal(err)
	}
	if got := c.sync(); len(got) != 0 {
		t.Errorf("withdrawing an unknown pop sent %v", got)
	}
	c.ws.CloseNow()
	c = dialAgent(t, th, 5)
	if got := c.sync(); len(got) != 0 {
		t.Errorf("a withdrawn pop was replayed: %v", got)
	}
}

// A disposition-trigger site with a browser target pops in the disposition phase; the
// same site is refused outside it.
func TestDispositionPop(t *testing.T) {
	th := newTestHub(t, Options{})
	c := dialAgent(t, th, 5)
	n := notification("call-d", 5, catalog.TriggerDisposition, catalog.TargetNewTab)
	if err := th.Pop(context.Background(), n); err == nil {
		t.Fatal("a disposition site popped on connect")
	}
	n.Phase = crmnotify.PhaseDisposition
	n.ID = crmnotify.PhaseNotificationID("call-d", 5, n.Site.ID, "disposition:1")
	mustPop(t, th.Hub, n)
	got := c.sync()
	if len(got) != 1 || got[0]["phase"] != "disposition" || got[0]["trigger"] != "disposition" {
		t.Fatalf("got %v", got)
	}
}
