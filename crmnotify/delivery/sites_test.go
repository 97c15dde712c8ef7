package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	catalogfile "github.com/omlcrm/oml-crm/catalog/file"
)

// fileCatalog parses a YAML catalog (the format of catalog.source=file).
func fileCatalog(t *testing.T, doc string) catalog.Catalog {
	t.Helper()
	c, err := catalogfile.Parse("catalog.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("parse catalog: %v", err)
	}
	return c
}

// siteYAML is a server site that logs in at loginURL with the given password.
func siteYAML(id int, loginURL, password string) string {
	return fmt.Sprintf(`  - id: %d
    name: crm-%d
    url: https://crm.example.com/notify
    trigger: server
    method: post
    format: json
    auth: {url: %q, username: omlcrm, password: %q, token_field: access, duration: 3600}
`, id, id, loginURL, password)
}

// runQueue opens the outbox and runs its sweeper; stop (also run at cleanup) closes it.
func runQueue(t *testing.T, opts Options) (q *Queue, stop func()) {
	t.Helper()
	opts.Logger = zerolog.Nop()
	opts.Registerer = prometheus.NewRegistry()
	q, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := q.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	t.Cleanup(stop)
	return q, stop
}

func waitDelivery(t *testing.T, q *Queue, id, what string, cond func(d *Delivery) bool) *Delivery {
	t.Helper()
	var d *Delivery
	waitFor(t, fmt.Sprintf("delivery %s: %s", id, what), func() bool {
		var err error
		if d, err = q.Get(context.Background(), id); err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		return cond(d)
	})
	return d
}

// A delivery to a site that logs in, queued while the CRM is down, is delivered after a
// restart: the new process has no Enqueue for the site, so the login settings come from
// the catalog through CatalogSites. In between, a catalog in which the campaign points
// at another site and nothing uses the delivery's site any more records a clear error
// and keeps the delivery for a later retry.
func TestRestartLogsInThroughCatalogSites(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		a := newAuthServer(t, false)
		a.down.Store(true)
		// Site 7 of campaign 11, logging in at a.srv/login.
		n := notification(t, a.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, a.auth(true, 3600))

		// 1. Queued with the CRM (and its login endpoint) down.
		q, stop := runQueue(t, testOptions(store))
		if err := q.Enqueue(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		waitDelivery(t, q, n.ID, "a failed login", func(d *Delivery) bool {
			return d.Status == StatusFailed && strings.Contains(d.LastError, "login") && strings.Contains(d.LastError, "503")
		})
		stop()
		a.down.Store(false)

		// 2. Restarted with a catalog where campaign 11 now uses site 9 and no campaign
		// uses site 7: its credentials are unknown, nothing is sent, the delivery waits.
		moved := fileCatalog(t, "sites:\n"+siteYAML(9, a.srv.URL+"/login", "other-password")+`campaigns:
  - {id: 11, name: Ventas, type: inbound, interaction: site, site: 9}
`)
		opts := testOptions(store)
		opts.SiteResolver = CatalogSites(moved)
		q, stop = runQueue(t, opts)
		d := waitDelivery(t, q, n.ID, "the unknown-site error", func(d *Delivery) bool {
			return strings.Contains(d.LastError, "site 7 is no longer used by campaign 11 (now: site 9)")
		})
		stop()
		if d.Status != StatusFailed || a.logins.Load() != 0 || len(a.crmRequests()) != 0 {
			t.Fatalf("with site 7 gone: status %s, %d logins, %d CRM requests; want failed, 0, 0", d.Status, a.logins.Load(), len(a.crmRequests()))
		}

		// 3. Restarted with the catalog that has site 7: it logs in and delivers.
		good := fileCatalog(t, "sites:\n"+siteYAML(7, a.srv.URL+"/login", testPassword)+`campaigns:
  - {id: 11, name: Ventas, type: inbound, interaction: site, site: 7}
`)
		opts.SiteResolver = CatalogSites(good)
		q, _ = runQueue(t, opts)
		d = waitDelivery(t, q, n.ID, "delivered", func(d *Delivery) bool { return d.Status == StatusDelivered })
		got := a.crmRequests()
		if a.logins.Load() != 1 || len(got) != 1 {
			t.Fatalf("after the restart: %d logins, %d CRM requests; want 1 and 1", a.logins.Load(), len(got))
		}
		if !strings.HasPrefix(got[0].Authorization, "Bearer tok-") || !bytes.Equal(got[0].Body, n.Request.Body) || got[0].IdempotencyKey != n.ID {
			t.Errorf("CRM request = %+v", got[0])
		}
		if d.LastError != "" || d.LastStatus != 200 {
			t.Errorf("delivered with last status %d, error %q", d.LastStatus, d.LastError)
		}
	})
}

func TestCatalogSites(t *testing.T) {
	ctx := context.Background()
	res := CatalogSites(fileCatalog(t, "sites:\n"+siteYAML(7, "https://crm.example.com/login7", "pw-seven")+
		siteYAML(9, "https://crm.example.com/login9", "pw-nine")+
		siteYAML(10, "https://crm.example.com/login10", "pw-ten")+`campaigns:
  - {id: 11, name: Ventas, type: inbound, interaction: site, site: 9}
  - {id: 12, name: Cobranzas, type: inbound, interaction: site, site: 7}
  - {id: 13, name: Encuestas, type: inbound, interaction: form}
`))
	for _, tc := range []struct {
		name               string
		campaign, site     int
		wantLogin, wantErr string
	}{
		{name: "the campaign still uses the site", campaign: 12, site: 7, wantLogin: "login7"},
		{name: "the campaign moved to another site, still used elsewhere", campaign: 11, site: 7, wantLogin: "login7"},
		{name: "the campaign is gone, the site used elsewhere", campaign: 99, site: 9, wantLogin: "login9"},
		{name: "no campaign id recorded", campaign: 0, site: 9, wantLogin: "login9"},
		{name: "the campaign moved, the site unused", campaign: 11, site: 10,
			wantErr: "site 10 is no longer used by campaign 11 (now: site 9) nor any other campaign"},
		{name: "the campaign has no site now", campaign: 13, site: 10, wantErr: "campaign 13 (now: no site)"},
		{name: "the campaign is gone, the site unknown", campaign: 99, site: 42, wantErr: "campaign 99 (now: gone from the catalog)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := res.Site(ctx, tc.campaign, tc.site)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, catalog.ErrNotFound) {
					t.Fatalf("Site(%d, %d) = %v, %v; want an error with %q wrapping ErrNotFound", tc.campaign, tc.site, s, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "pw-") {
					t.Errorf("error shows a password: %v", err)
				}
				return
			}
			if err != nil || s.ID != tc.site || s.Auth == nil || !strings.HasSuffix(s.Auth.URL, tc.wantLogin) {
				t.Fatalf("Site(%d, %d) = %+v, %v; want site %d logging in at …%s", tc.campaign, tc.site, s, err, tc.site, tc.wantLogin)
			}
		})
	}
}

// Options.Sites (the older, site-id-only lookup) keeps working when SiteResolver is
// unset; SiteResolver wins when both are set.
func TestOptionsSitesStillResolves(t *testing.T) {
	legacy := func(_ context.Context, siteID int) (*catalog.Site, error) {
		return &catalog.Site{ID: siteID, Name: "legacy"}, nil
	}
	o := Options{Sites: legacy}
	s, err := o.resolver().Site(context.Background(), 11, 7)
	if err != nil || s.ID != 7 || s.Name != "legacy" {
		t.Errorf("Options.Sites: %+v, %v", s, err)
	}
	o.SiteResolver = SiteResolverFunc(func(_ context.Context, _, siteID int) (*catalog.Site, error) {
		return &catalog.Site{ID: siteID, Name: "resolver"}, nil
	})
	if s, err := o.resolver().Site(context.Background(), 11, 7); err != nil || s.Name != "resolver" {
		t.Errorf("SiteResolver should win: %+v, %v", s, err)
	}
	if (&Options{}).resolver() != nil {
		t.Error("no lookup configured, yet a resolver")
	}
}
