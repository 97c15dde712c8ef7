package disposition_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omlcrm/oml-crm/disposition"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// disposed inserts the current row of disposition id (ominicontacto_app_calificacioncliente)
// as saved from call callid ("" : no call data) with option.
func disposed(t *testing.T, db string, id int, callid string, option int) {
	t.Helper()
	cid := "NULL"
	if callid != "" {
		cid = "'" + callid + "'"
	}
	pgtest.Exec(t, db, `INSERT INTO ominicontacto_app_calificacioncliente
  (id, fecha, observaciones, agendado, es_calificacion_manual, agente_id, contacto_id, opcion_calificacion_id, callid,
   created, modified, tipo_agenda, canalidad, subcalificacion)
  VALUES (`+itoa(id)+`, now(), '', false, false, 1, 1, `+itoa(option)+`, `+cid+`, now(), now(), NULL, 0, NULL)`)
}

// dispositionSave inserts a disposition history row saved ago seconds back, with the
// change reason OMniLeads' view records (the URL's "from": calificacion, recalificacion,
// reporte, audita_supervisor).
func dispositionSave(t *testing.T, db string, id int, typ, callid string, option int, reason string, ago int) {
	t.Helper()
	cid := "NULL"
	if callid != "" {
		cid = "'" + callid + "'"
	}
	pgtest.Exec(t, db, `INSERT INTO ominicontacto_app_historicalcalificacioncliente
  (id, fecha, observaciones, agendado, es_calificacion_manual, history_date, history_change_reason, history_type,
   agente_id, contacto_id, history_user_id, opcion_calificacion_id, callid, created, modified, tipo_agenda, canalidad, subcalificacion)
  VALUES (`+itoa(id)+`, now(), '', false, false, now() - make_interval(secs => `+itoa(ago)+`), '`+reason+`', '`+typ+`',
   1, 1, NULL, `+itoa(option)+`, `+cid+`, now(), now(), NULL, 0, NULL)`)
}

// formSave inserts a history row of the management-form answers (answer id) of
// disposition calificacion, as django-simple-history writes it, saved ago seconds back.
func formSave(t *testing.T, db string, id, calificacion int, typ, metadata string, ago int) {
	t.Helper()
	pgtest.Exec(t, db, `INSERT INTO ominicontacto_app_historicalrespuestaformulariogestion
  (id, metadata, fecha, history_date, history_change_reason, history_type, calificacion_id, history_user_id)
  VALUES (`+itoa(id)+`, '`+metadata+`', now(), now() - make_interval(secs => `+itoa(ago)+`), NULL, '`+typ+`', `+itoa(calificacion)+`, NULL)`)
}

// djangoB64 is Django's urlsafe_base64_encode as its source defines it:
// base64.urlsafe_b64encode(s).rstrip(b'\n=').
func djangoB64(s string) string {
	return strings.TrimRight(base64.URLEncoding.EncodeToString([]byte(s)), "\n=")
}

// A management-form ("gestión") option fires when the agent saves the form's answers
// from the call, as OMniLeads does, with the answers as `form`: at their creation, and
// at the edit that follows a re-disposition from the call. An edit of the answers alone
// (from the agent's report), one following a re-disposition from the report, a
// disposition without call and a deletion do not fire. A restart reads nothing again; an
// instance whose cursors lag re-reads every row and queues none twice.
func TestDispositionManagementFormFiresAtFormSave(t *testing.T) {
	r := newRig(t)
	src := r.source(t, r.queue)
	if n := poll(t, src); n != 0 {
		t.Fatalf("first poll read %d rows, want 0 (the cursors start at the newest rows)", n)
	}
	// Lengths not multiple of 3 (Django strips the padding) and bytes that the
	// URL-safe alphabet encodes as '-' or '_'.
	const created = `{"producto": "Plan ?~", "monto": "1500"}`
	const edited = `{"producto": "Plan ñ ?~", "monto": "2000"}`
	for _, m := range []string{created, edited} {
		if e := djangoB64(m); !strings.ContainsAny(e, "-_") || len(m)%3 == 0 {
			t.Fatalf("test metadata %q encodes as %q: want '-' or '_' and padding stripped", m, e)
		}
	}

	disposed(t, r.db, 13, "1795483381.0", 3)
	dispositionSave(t, r.db, 13, "+", "1795483381.0", 3, "calificacion", 60)   // the gestión disposition: no fire by itself
	formSave(t, r.db, 1, 13, "+", created, 50)                                 // answers created from the call: fires
	formSave(t, r.db, 1, 13, "~", `{"producto": "x", "monto": "1"}`, 45)       // edited from the agent's report: no call data
	dispositionSave(t, r.db, 13, "~", "1795483381.0", 3, "recalificacion", 40) // re-disposition from the call
	formSave(t, r.db, 1, 13, "~", edited, 35)                                  // its answers: fires again
	dispositionSave(t, r.db, 13, "~", "1795483381.0", 3, "reporte", 30)        // re-disposition from the agent's report
	formSave(t, r.db, 1, 13, "~", `{"producto": "y", "monto": "2"}`, 25)       // its answers: no call data
	disposed(t, r.db, 14, "", 3)
	dispositionSave(t, r.db, 14, "+", "", 3, "calificacion", 20) // saved outside a call (manual, no callid)
	formSave(t, r.db, 2, 14, "+", `{"producto": "z", "monto": "3"}`, 15)
	formSave(t, r.db, 1, 13, "-", edited, 10) // deletion
	if n := poll(t, src); n != 6 {
		t.Fatalf("poll read %d rows, want 6 (the most one cursor read: the answers' history)", n)
	}
	waitDelivered(t, r.crm, 2)
	bodies, keys := r.crm.got()
	if len(bodies) != 2 || keys[0] == keys[1] {
		t.Fatalf("deliveries %v keys %v: want 2 with distinct ids", bodies, keys)
	}
	for i, m := range []string{created, edited} {
		b := bodies[i]
		if b["dispId"] != "13" || b["dispName"] != "Gestion" || b["sub"] != "" || b["form"] != djangoB64(m) {
			t.Errorf("delivery %d = %v: want disposition 13 Gestion with form %q", i, b, djangoB64(m))
		}
	}

	// Restart: a new source on the same durable cursors reads nothing again.
	if n := poll(t, r.source(t, r.queue)); n != 0 {
		t.Errorf("after a restart the source read %d rows again", n)
	}
	// An instance whose cursors lag re-reads every row: nothing is queued twice, and the
	// answers' ids (form-<history_id>) do not meet the dispositions' (history_id 1 and 2
	// exist in both tables).
	lag := &memCursor{v: map[string]int64{disposition.CursorName: 0, disposition.FormCursorName: 0}}
	if n := poll(t, r.source(t, lag)); n != 6 {
		t.Fatalf("lagging instance read %d rows, want 6", n)
	}
	if st := drained(t, r.queue); st.DeliveredTotal != 2 {
		t.Errorf("outbox stats %+v: want 2 delivered", st)
	}
	if b, _ := r.crm.got(); len(b) != 2 {
		t.Errorf("CRM got %d deliveries after a re-read, want still 2", len(b))
	}
}

// The Source reads both histories with exactly the dispositions grants of
// docs/omnileads.md (read from the doc, so the doc cannot fall behind the queries).
func TestDispositionSourceWithTheDocumentedGrants(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(pgtest.ModuleRoot(t), "docs", "omnileads.md"))
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(doc), "GRANT SELECT ON public.ominicontacto_app_historicalcalificacioncliente")
	if start < 0 {
		t.Fatal("docs/omnileads.md has no dispositions grant")
	}
	grant := string(doc[start:])
	grant = grant[:strings.Index(grant, ";")+1]
	admin := pgtest.AdminURL(t)
	role := fmt.Sprintf("omlcrm_disp_%d", time.Now().UnixNano()%1e9)
	// Registered first, so it runs after the test database is dropped.
	t.Cleanup(func() { pgtest.Exec(t, admin, "DROP ROLE IF EXISTS "+role) })
	r := newRig(t)
	pgtest.Exec(t, r.db, `CREATE ROLE `+role+` LOGIN; GRANT USAGE ON SCHEMA public TO `+role+`;
`+strings.Replace(grant, "TO omlcrm", "TO "+role, 1))
	u, err := url.Parse(r.db)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	pool, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	src, err := disposition.NewSource(disposition.Options{Pool: pool, Cursors: r.queue, Settle: time.Second,
		Handle: r.disp.HandleDisposition})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, src)
	disposed(t, r.db, 13, "1795483381.0", 3)
	dispositionSave(t, r.db, 13, "+", "1795483381.0", 3, "calificacion", 20)
	formSave(t, r.db, 1, 13, "+", `{"monto": "1500"}`, 10)
	if n := poll(t, src); n != 1 {
		t.Fatalf("poll as the granted role read %d rows, want 1", n)
	}
	waitDelivered(t, r.crm, 1)
}
