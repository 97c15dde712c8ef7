package omldb

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/internal/logtest"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// fixtureDB returns a database loaded with testdata/omldb.
func fixtureDB(t *testing.T) string {
	t.Helper()
	db := pgtest.NewDatabase(t)
	dir := filepath.Join(pgtest.ModuleRoot(t), "testdata", "omldb")
	pgtest.ExecFile(t, db, filepath.Join(dir, "schema.sql"))
	pgtest.ExecFile(t, db, filepath.Join(dir, "seed.sql"))
	return db
}

func open(t *testing.T, db string, opts Options) *Catalog {
	t.Helper()
	c, err := Open(context.Background(), db, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// fakeClock drives every cache of c.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func useClock(c *Catalog) *fakeClock {
	fc := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.campaigns.now, c.databases.now, c.agents.now = fc.Now, fc.Now, fc.Now
	return fc
}

func TestFixtureCampaigns(t *testing.T) {
	c := open(t, fixtureDB(t), Options{})
	ctx := context.Background()

	cp, err := c.Campaign(ctx, 11)
	if err != nil {
		t.Fatalf("Campaign(11): %v", err)
	}
	if cp.Name != "Example 1" || cp.Type != catalog.TypePreview || cp.Interaction != catalog.InteractionSite || !cp.Active() {
		t.Errorf("campaign 11 = %+v", cp)
	}
	wantSite := &catalog.Site{ID: 1, Name: "my_crm", URL: "https://my_crm.domain.com",
		Trigger: catalog.TriggerAgent, Method: catalog.MethodGET, Target: catalog.TargetEmbedded}
	if !reflect.DeepEqual(cp.Site, wantSite) {
		t.Errorf("site = %+v, want %+v (GET sites ignore formato)", cp.Site, wantSite)
	}
	wantParams := []catalog.Param{
		{Family: catalog.FamilyCall, Source: "id_contacto", Name: "idClient"},
		{Family: catalog.FamilyCampaign, Source: "id", Name: "idCamp"},
		{Family: catalog.FamilyFixed, Source: "es", Name: "lang"},
		{Family: catalog.FamilyCall, Source: "rec_filename", Name: "recordingFile"},
	}
	if !reflect.DeepEqual(cp.Params, wantParams) {
		t.Errorf("params = %+v, want id order %+v", cp.Params, wantParams)
	}
	wantDB := &catalog.ContactDatabase{ID: 1, Name: "Clientes docs", Columns: []string{"idcliente", "nombre", "telefono", "celular", "email"}}
	if !reflect.DeepEqual(cp.ContactDatabase, wantDB) {
		t.Errorf("contact database = %+v, want %+v", cp.ContactDatabase, wantDB)
	}

	cp, err = c.Campaign(ctx, 13)
	if err != nil {
		t.Fatalf("Campaign(13): %v", err)
	}
	s := cp.Site
	if s == nil || !s.Hidden || s.Trigger != catalog.TriggerServer || s.Method != catalog.MethodPOST ||
		s.Format != catalog.FormatJSON || s.Target != catalog.TargetNone || cp.Interaction != catalog.InteractionFormAndSite {
		t.Fatalf("campaign 13 site = %+v", s)
	}
	wantAuth := &catalog.SiteAuth{ID: 1, Name: "CRM login", URL: "https://crm.example.com/api/login", Username: "omlcrm",
		Password: "crm-password-1", TokenField: "access_token", DurationField: "expires_in", StrictTLS: true}
	if !reflect.DeepEqual(s.Auth, wantAuth) {
		t.Errorf("auth = %#v, want %#v", s.Auth, wantAuth)
	}
	if got := cp.Params[2]; got != (catalog.Param{Family: catalog.FamilyDialplan, Source: "Omlcrmticket", Name: "ticket"}) {
		t.Errorf("campaign 13 param 2 = %+v", got)
	}

	cp, err = c.Campaign(ctx, 15)
	if err != nil || cp.Site != nil || len(cp.Params) != 0 || cp.Interaction != catalog.InteractionForm {
		t.Errorf("campaign 15 (form only, no site) = %+v, %v", cp, err)
	}

	if _, err := c.Campaign(ctx, 999); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("Campaign(999) error = %v, want ErrNotFound", err)
	}

	all, err := c.Campaigns(ctx)
	if err != nil {
		t.Fatalf("Campaigns: %v", err)
	}
	var ids []int
	for _, cp := range all {
		ids = append(ids, cp.ID)
	}
	if !reflect.DeepEqual(ids, []int{11, 12, 13, 14, 15}) {
		t.Errorf("Campaigns ids = %v", ids)
	}
	if all[1].Params[1] != (catalog.Param{Family: catalog.FamilyFixed, Source: "11", Name: "{2}"}) || len(all[1].Params) != 4 {
		t.Errorf("campaign 12 params = %+v", all[1].Params)
	}
	if all[3].State != 5 || all[3].Active() {
		t.Errorf("campaign 14 state = %d, want 5 (paused)", all[3].State)
	}
}

func TestFixtureContacts(t *testing.T) {
	c := open(t, fixtureDB(t), Options{})
	ctx := context.Background()
	tests := []struct {
		id   int
		want catalog.Contact
	}{
		{321321321, catalog.Contact{ID: 321321321, DatabaseID: 1, Phone: "4149014", ExternalID: "A-321", Fields: map[string]string{
			"idcliente": "A-321", "nombre": "Juan Pérez", "telefono": "4149014", "celular": "1155550000", "email": "juan@example.com"}}},
		{7, catalog.Contact{ID: 7, DatabaseID: 1, Phone: "3515550007", Fields: map[string]string{
			"idcliente": "", "nombre": "José Ñandú 😀", "telefono": "3515550007", "celular": "", "email": ""}}},
		{8, catalog.Contact{ID: 8, DatabaseID: 2, Phone: "3515550008", Fields: map[string]string{
			"telefono": "3515550008", "nombre": ""}}},
		{9, catalog.Contact{ID: 9, DatabaseID: 3, Phone: "3515550009", Fields: map[string]string{
			"nombre": `Zoë "Zo" O'Brien`, "telefono": "3515550009", "ciudad": "Malmö"}}},
	}
	for _, tt := range tests {
		got, err := c.Contact(ctx, tt.id)
		if err != nil {
			t.Errorf("Contact(%d): %v", tt.id, err)
			continue
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("Contact(%d) = %+v\nwant %+v", tt.id, *got, tt.want)
		}
	}
	if _, err := c.Contact(ctx, 404); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("Contact(404) error = %v, want ErrNotFound", err)
	}
}

func TestFixtureAgents(t *testing.T) {
	c := open(t, fixtureDB(t), Options{})
	ctx := context.Background()
	a, err := c.Agent(ctx, 2)
	want := &catalog.Agent{ID: 2, UserID: 3, Username: "agent2", Name: "Ana Pérez", SIPExtension: "1003"}
	if err != nil || !reflect.DeepEqual(a, want) {
		t.Errorf("Agent(2) = %+v, %v; want %+v", a, err, want)
	}
	a, err = c.AgentByExtension(ctx, "1002")
	if err != nil || a.ID != 1 || a.Username != "agent1" || a.Name != "Luis Gómez" {
		t.Errorf("AgentByExtension(1002) = %+v, %v", a, err)
	}
	// Agent 3 is deleted (borrado) in OMniLeads.
	if _, err := c.Agent(ctx, 3); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("Agent(3) (deleted) error = %v, want ErrNotFound", err)
	}
	if _, err := c.AgentByExtension(ctx, "1004"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("AgentByExtension(1004) (deleted) error = %v, want ErrNotFound", err)
	}
	if _, err := c.AgentByExtension(ctx, "trunk-1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("AgentByExtension(trunk-1) error = %v, want ErrNotFound", err)
	}
}

// TestHotPathOneQuery: once warm, a call (campaign + agent + contact) costs one query.
func TestHotPathOneQuery(t *testing.T) {
	c := open(t, fixtureDB(t), Options{CacheTTL: time.Hour})
	ctx := context.Background()
	call := func() {
		t.Helper()
		if _, err := c.Campaign(ctx, 11); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AgentByExtension(ctx, "1003"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Contact(ctx, 321321321); err != nil {
			t.Fatal(err)
		}
	}
	call() // warm up
	for i := range 3 {
		before := c.queries.n.Load()
		call()
		if n := c.queries.n.Load() - before; n != 1 {
			t.Fatalf("call %d cost %d queries once warm, want 1", i, n)
		}
	}
	// The cold path is bounded too: campaign (one batch), agents, contact, contact database.
	c2 := open(t, fixtureDB(t), Options{CacheTTL: time.Hour})
	c = c2
	before := c.queries.n.Load()
	call()
	if n := c.queries.n.Load() - before; n > 3 {
		t.Errorf("cold call cost %d queries, want ≤ 3 (the campaign read fills the contact database layout)", n)
	}
}

func TestCacheTTL(t *testing.T) {
	db := fixtureDB(t)
	c := open(t, db, Options{CacheTTL: 10 * time.Second})
	clock := useClock(c)
	ctx := context.Background()

	if cp, err := c.Campaign(ctx, 11); err != nil || cp.Site.URL != "https://my_crm.domain.com" {
		t.Fatalf("Campaign(11) = %+v, %v", cp, err)
	}
	if _, err := c.Agent(ctx, 2); err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, db, `
UPDATE ominicontacto_app_sitioexterno SET url = 'https://crm.example.com/new' WHERE id = 1;
UPDATE ominicontacto_app_parametroscrm SET nombre = 'lang2' WHERE id = 3;
UPDATE ominicontacto_app_user SET first_name = 'Anita' WHERE id = 3;`)

	clock.Advance(9 * time.Second)
	cp, _ := c.Campaign(ctx, 11)
	a, _ := c.Agent(ctx, 2)
	if cp.Site.URL != "https://my_crm.domain.com" || cp.Params[2].Name != "lang" || a.Name != "Ana Pérez" {
		t.Errorf("within the TTL the cached values must be served: url %q param %q agent %q", cp.Site.URL, cp.Params[2].Name, a.Name)
	}
	clock.Advance(2 * time.Second)
	cp, err := c.Campaign(ctx, 11)
	if err != nil {
		t.Fatal(err)
	}
	a, _ = c.Agent(ctx, 2)
	if cp.Site.URL != "https://crm.example.com/new" || cp.Params[2].Name != "lang2" || a.Name != "Anita Pérez" {
		t.Errorf("after the TTL the edit must show: url %q param %q agent %q", cp.Site.URL, cp.Params[2].Name, a.Name)
	}

	// A campaign deleted in OMniLeads disappears after the TTL.
	pgtest.Exec(t, db, `DELETE FROM ominicontacto_app_parametroscrm WHERE campana_id = 11; DELETE FROM ominicontacto_app_campana WHERE id = 11;`)
	clock.Advance(11 * time.Second)
	if _, err := c.Campaign(ctx, 11); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("deleted campaign: error = %v, want ErrNotFound", err)
	}
}

// TestSetCacheTTL: a TTL changed while running (SIGHUP) applies to entries cached
// before the change, and may be changed while lookups run.
func TestSetCacheTTL(t *testing.T) {
	db := fixtureDB(t)
	c := open(t, db, Options{CacheTTL: 10 * time.Second})
	clock := useClock(c)
	ctx := context.Background()
	if _, err := c.Campaign(ctx, 11); err != nil {
		t.Fatal(err)
	}
	pgtest.Exec(t, db, `UPDATE ominicontacto_app_sitioexterno SET url = 'https://crm.example.com/v2' WHERE id = 1;`)
	clock.Advance(2 * time.Second)
	if cp, _ := c.Campaign(ctx, 11); cp.Site.URL != "https://my_crm.domain.com" {
		t.Fatalf("within the 10s TTL: url %q, want the cached one", cp.Site.URL)
	}

	// Shorter: the 2s-old entry is now expired.
	c.SetCacheTTL(time.Second)
	if cp, err := c.Campaign(ctx, 11); err != nil || cp.Site.URL != "https://crm.example.com/v2" {
		t.Fatalf("after SetCacheTTL(1s): %+v, %v; want the edit", cp, err)
	}

	// Longer: an entry older than the old TTL stays fresh.
	c.SetCacheTTL(time.Hour)
	pgtest.Exec(t, db, `UPDATE ominicontacto_app_sitioexterno SET url = 'https://crm.example.com/v3' WHERE id = 1;`)
	clock.Advance(30 * time.Second)
	if cp, _ := c.Campaign(ctx, 11); cp.Site.URL != "https://crm.example.com/v2" {
		t.Errorf("after SetCacheTTL(1h), 30s later: url %q, want the cached v2", cp.Site.URL)
	}

	// Zero restores the default (10s).
	c.SetCacheTTL(0)
	if cp, _ := c.Campaign(ctx, 11); cp.Site.URL != "https://crm.example.com/v3" {
		t.Errorf("after SetCacheTTL(0) (10s), 30s later: url %q, want the edit v3", cp.Site.URL)
	}

	// Concurrent changes and lookups (run with -race).
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				if i == 0 {
					c.SetCacheTTL(time.Duration(j+1) * time.Second)
				} else if _, err := c.Campaign(ctx, 11); err != nil {
					t.Errorf("Campaign during SetCacheTTL: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestStaleWhileDatabaseDown: cached campaigns and agents keep working while PostgreSQL
// refuses connections; contacts fail with a retryable error; service resumes after.
func TestStaleWhileDatabaseDown(t *testing.T) {
	db := fixtureDB(t)
	var logs logtest.Buffer
	c := open(t, db, Options{CacheTTL: 10 * time.Second, Logger: zerolog.New(&logs)})
	clock := useClock(c)
	ctx := context.Background()
	if _, err := c.Campaign(ctx, 11); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AgentByExtension(ctx, "1003"); err != nil {
		t.Fatal(err)
	}

	u, _ := url.Parse(db)
	name := strings.TrimPrefix(u.Path, "/")
	admin := pgtest.AdminURL(t)
	setDown := func(down bool) {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		allow := "true"
		if down {
			allow = "false"
		}
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS "+allow); err != nil {
			t.Fatal(err)
		}
		if down {
			if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name); err != nil {
				t.Fatal(err)
			}
		}
	}
	setDown(true)
	t.Cleanup(func() { setDown(false) })

	clock.Advance(time.Minute)
	cp, err := c.Campaign(ctx, 11)
	if err != nil || cp.Site.URL != "https://my_crm.domain.com" {
		t.Fatalf("Campaign(11) with the database down = %+v, %v; want the cached copy", cp, err)
	}
	if a, err := c.AgentByExtension(ctx, "1003"); err != nil || a.ID != 2 {
		t.Errorf("AgentByExtension with the database down = %+v, %v; want the cached agent", a, err)
	}
	if !strings.Contains(logs.String(), "serving the cached copy") {
		t.Errorf("no warning logged for the stale campaign; log: %s", logs.String())
	}
	if _, err := c.Contact(ctx, 321321321); err == nil || errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("Contact with the database down: error = %v, want a retryable (non not-found) error", err)
	}
	if _, err := c.Campaign(ctx, 12); err == nil || errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("cold Campaign(12) with the database down: error = %v, want a retryable error", err)
	}
	if err := c.Ping(ctx); err == nil {
		t.Error("Ping with the database down succeeded")
	}

	// Back up: the next refresh after the retry backoff picks up fresh data.
	setDown(false)
	pgtest.Exec(t, db, `UPDATE ominicontacto_app_sitioexterno SET url = 'https://crm.example.com/after' WHERE id = 1;`)
	clock.Advance(time.Minute)
	cp, err = c.Campaign(ctx, 11)
	if err != nil || cp.Site.URL != "https://crm.example.com/after" {
		t.Errorf("Campaign(11) after recovery = %+v, %v", cp.Site, err)
	}
	if ct, err := c.Contact(ctx, 321321321); err != nil || ct.Fields["nombre"] != "Juan Pérez" {
		t.Errorf("Contact after recovery = %+v, %v", ct, err)
	}
}

func TestOpenIsLazy(t *testing.T) {
	// Nothing listens on port 1: Open must still succeed, Ping and lookups must fail.
	c, err := Open(context.Background(), "postgres://omlcrm:pw@127.0.0.1:1/omnileads?sslmode=disable&connect_timeout=2", Options{})
	if err != nil {
		t.Fatalf("Open with the database down: %v", err)
	}
	defer c.Close()
	if err := c.Ping(context.Background()); err == nil {
		t.Error("Ping succeeded with nothing listening")
	}
	if _, err := c.Campaign(context.Background(), 1); err == nil || errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("Campaign with the database down: error = %v", err)
	}
	if _, err := Open(context.Background(), "postgres://[::1", Options{}); err == nil {
		t.Error("Open accepted a malformed URL")
	} else if strings.Contains(err.Error(), "pw@") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestRebuildRow(t *testing.T) {
	s := func(v string) *string { return &v }
	tests := []struct {
		values          []string
		phone           string
		ext             *string
		phoneIdx, extID int
		want            []string
	}{
		{[]string{"a", "b"}, "P", nil, 0, -1, []string{"P", "a", "b"}},
		{[]string{"a", "b"}, "P", nil, 2, -1, []string{"a", "b", "P"}},
		{[]string{"n", "e", "c"}, "P", s("X"), 1, 2, []string{"n", "P", "X", "e", "c"}}, // the sample's layout
		{[]string{"n", "c"}, "P", s("X"), 2, 0, []string{"X", "n", "P", "c"}},           // ext before phone
		{[]string{""}, "P", nil, 0, -1, []string{"P", ""}},
		{nil, "P", s(""), 5, 9, []string{"P", ""}}, // indexes past the end append
	}
	for _, tt := range tests {
		got := rebuildRow(tt.values, tt.phone, tt.ext, tt.phoneIdx, tt.extID)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("rebuildRow(%q, phone@%d, ext@%d) = %q, want %q", tt.values, tt.phoneIdx, tt.extID, got, tt.want)
		}
	}
}

// A contact database whose contacts do not match its columns warns once, not for every
// contact read: the next warning (a minute later) counts the ones held back.
func TestBrokenContactDatabaseWarnsOnce(t *testing.T) {
	db := fixtureDB(t)
	pgtest.Exec(t, db, `INSERT INTO ominicontacto_app_contacto (id, telefono, datos, bd_contacto_id, id_externo) VALUES
		(101, '1', '["a", "b", "c", "d", "e", "f"]', 2, NULL),
		(102, '2', '["a", "b", "c", "d", "e", "f"]', 2, NULL),
		(103, '3', '["a", "b", "c", "d", "e", "f"]', 2, NULL),
		(104, '4', 'not json', 3, NULL),
		(105, '5', 'not json', 3, NULL)`)
	var logs logtest.Buffer
	c := open(t, db, Options{Logger: zerolog.New(&logs)})
	for _, id := range []int{101, 102, 103, 104, 105, 101} {
		if _, err := c.Contact(context.Background(), id); err != nil {
			t.Fatalf("Contact(%d): %v", id, err)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "different number of values"); n != 1 {
		t.Errorf("%d warnings about database 2's values not matching its columns, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "not a JSON list"); n != 1 {
		t.Errorf("%d warnings about database 3's datos, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, `"contact_database_id":2`) || !strings.Contains(out, `"contact_database_id":3`) {
		t.Errorf("the warnings do not name the contact databases:\n%s", out)
	}
}
