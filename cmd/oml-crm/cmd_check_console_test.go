package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// TestCheckOMniLeadsFiring runs check on OMniLeads' real 2.6.3 schema and sample rows: the
// sample's campaign 4 has an automatic GET embedded site, which OMniLeads' disposition view
// redirects to whatever the nginx include does, so check names it and says what to change;
// the other campaigns are left to oml-crm alone.
func TestCheckOMniLeadsFiring(t *testing.T) {
	db := pgtest.NewOMniLeadsDatabase(t)
	_, stdout, stderr := coreRun(t, "check", "--catalog", db)
	if !strings.Contains(stdout, "fired by OMniLeads itself") ||
		!strings.Contains(stdout, "campaign 4 (Demo preview (clean URL)), site 4") ||
		!strings.Contains(stdout, "OMniLeads ALSO opens it") || !strings.Contains(stdout, "method POST") {
		t.Fatalf("check does not name campaign 4's double firing\nstdout: %s\nstderr: %s", stdout, stderr)
	}
	for _, c := range []string{"campaign 1 (", "campaign 2 (", "campaign 3 ("} {
		if strings.Contains(stdout, "  "+c) {
			t.Errorf("check says OMniLeads still fires %s:\n%s", c, stdout)
		}
	}
	// The admin follows the advice: the site becomes a POST (form) one.
	pgtest.Exec(t, db, `UPDATE ominicontacto_app_sitioexterno SET metodo = 2, formato = 2 WHERE id = 4`)
	_, stdout, _ = coreRun(t, "check", "--catalog", db)
	if strings.Contains(stdout, "fired by OMniLeads itself") {
		t.Errorf("still reported after the change:\n%s", stdout)
	}
}

// TestCheckProbe: --probe requests each embedded site once and reports a refusal per campaign.
func TestCheckProbe(t *testing.T) {
	var hits atomic.Int32
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-Frame-Options", "DENY")
	}))
	defer crm.Close()
	db := pgtest.NewOMniLeadsDatabase(t)
	// Sites 1 (agent GET embedded) and 4 (automatic GET embedded) point at the same CRM.
	pgtest.Exec(t, db, fmt.Sprintf(`UPDATE ominicontacto_app_sitioexterno SET url = '%s/ficha/' WHERE id = 1;
		UPDATE ominicontacto_app_sitioexterno SET url = '%s/ficha/{1}/{2}/es' WHERE id = 4;`, crm.URL, crm.URL))
	_, stdout, stderr := coreRun(t, "check", "--probe", "--catalog", db)
	for _, want := range []string{
		"campaign 1 (Demo manual (Ejemplo 1)), site 1",
		"campaign 4 (Demo preview (clean URL)), site 4",
		"refuses framing (X-Frame-Options: DENY)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("probe output lacks %q\nstdout: %s\nstderr: %s", want, stdout, stderr)
		}
	}
	if hits := hits.Load(); hits != 1 {
		t.Errorf("the CRM was requested %d times, want once (both sites probe %s/ficha/)", hits, crm.URL)
	}
}
