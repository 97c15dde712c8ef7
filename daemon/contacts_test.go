package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// A short OMniLeads database outage with the campaign cached: the server delivery of a
// call connected meanwhile waits for its contact, /readyz says so under "contacts", and
// the CRM gets the delivery with the contact's values once the database answers.
func TestDaemonDeliveryWaitsForContactDuringOutage(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	t.Cleanup(crm.Close)
	received := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), bodies...)
	}

	db := pgtest.NewOMniLeadsDatabase(t)
	pgtest.Exec(t, db, `UPDATE ominicontacto_app_sitioexterno SET url = '`+crm.URL+`/llamada', autenticacion_id = NULL WHERE id = 3`)
	proxy := pgtest.NewProxy(t, db)
	cfg := testDaemonConfig(t)
	cfg.Catalog.Source, cfg.Catalog.File, cfg.Catalog.CacheTTL = "omldb", "", time.Hour
	cfg.Database.URL = config.SecretURL(proxy.URL())
	d := startTestDaemon(t, Options{Config: cfg})
	ctx := context.Background()
	if _, err := d.catalog.Campaign(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := d.catalog.Agent(ctx, 1); err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	d.intake.Connected(calls.Connected{CallID: "1795481044.12", CampaignID: 2, AgentID: 1, ContactID: "3", Phone: "3515550003", At: time.Now()})
	waitFor(t, 30*time.Second, "/readyz to say deliveries wait for their contact", func() bool {
		_, s := readiness(t, d)
		dep, ok := s.Dependencies[depContacts]
		return ok && !dep.OK && dep.Required && strings.Contains(dep.Detail, "1 server deliveries wait for their contact")
	})
	if got := received(); len(got) != 0 {
		t.Fatalf("the CRM got %q while the contact could not be read", got)
	}

	proxy.Restore()
	waitFor(t, 30*time.Second, "the delivery", func() bool { return len(received()) > 0 })
	var body map[string]string
	if err := json.Unmarshal([]byte(received()[0]), &body); err != nil || body["external_id"] != "CLI-003" || body["phone"] != "3515550003" {
		t.Errorf("delivered %q (%v): want the contact's idcliente and telefono", received()[0], err)
	}
	waitFor(t, 30*time.Second, "/readyz contacts to clear", func() bool {
		_, s := readiness(t, d)
		return s.Dependencies[depContacts].OK
	})
}
