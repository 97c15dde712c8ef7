package disposition_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/agentws"
	"github.com/omlcrm/oml-crm/catalog/omldb"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/crmnotify/delivery"
	"github.com/omlcrm/oml-crm/disposition"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// dispCRM records the JSON bodies and idempotency keys it receives.
type dispCRM struct {
	mu     sync.Mutex
	bodies []map[string]any
	keys   []string
	srv    *httptest.Server
}

func newDispCRM(t *testing.T) *dispCRM {
	c := &dispCRM{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		c.mu.Lock()
		c.bodies = append(c.bodies, m)
		c.keys = append(c.keys, r.Header.Get("Idempotency-Key"))
		c.mu.Unlock()
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *dispCRM) got() ([]map[string]any, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.bodies...), append([]string(nil), c.keys...)
}

type rig struct {
	pool  *pgxpool.Pool
	queue *delivery.Queue
	disp  *crmnotify.Dispatcher
	crm   *dispCRM
	db    string
}

// newRig loads the real OMniLeads 2.6.3 schema and sample rows, points campaign 2 at a
// trigger-4 (Calificación) server site with the disposition parameters, and wires the
// real catalog, dispatcher and delivery queue.
func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	db := pgtest.NewOMniLeadsDatabase(t)
	crm := newDispCRM(t)
	pgtest.Exec(t, db, `
INSERT INTO ominicontacto_app_sitioexterno (id, nombre, url, oculto, metodo, disparador, formato, objetivo, autenticacion_id)
  VALUES (70, 'CRM calificacion', '`+crm.srv.URL+`/dispo', false, 2, 4, 4, NULL, NULL);
UPDATE ominicontacto_app_campana SET sitio_externo_id = 70, tipo_interaccion = 2 WHERE id = 2;
INSERT INTO ominicontacto_app_parametroscrm (id, nombre, valor, tipo, campana_id) VALUES
  (100, 'dispId', 'id', 6, 2), (101, 'dispName', 'name', 6, 2), (102, 'sub', 'subdisposition', 6, 2), (103, 'form', 'form', 6, 2);
INSERT INTO ominicontacto_app_opcioncalificacion (id, tipo, nombre, campana_id, formulario_id, oculta, positiva, interaccion_crm, subcalificaciones) VALUES
  (1, 0, 'Venta', 2, NULL, false, true, true, NULL),
  (2, 0, 'No interesa', 2, NULL, false, false, false, NULL),
  (3, 1, 'Gestion', 2, NULL, false, true, true, NULL);`)
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	cat, err := omldb.Open(ctx, db, omldb.Options{CacheTTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cat.Close)
	q, err := delivery.Open(ctx, delivery.Options{Store: "sqlite:" + filepath.Join(t.TempDir(), "q.db"), MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	hub, err := agentws.New(agentws.Options{Auth: agentws.AuthToken, TokenSecret: []byte("0123456789abcdef0123456789abcdef"), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	disp, err := crmnotify.NewDispatcher(crmnotify.DispatcherOptions{Catalog: cat, Server: q, Agents: hub})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{pool: pool, queue: q, disp: disp, crm: crm, db: db}
}

func (r *rig) source(t *testing.T, cursors disposition.CursorStore) *disposition.Source {
	t.Helper()
	s, err := disposition.NewSource(disposition.Options{Pool: r.pool, Cursors: cursors, Settle: time.Second,
		Handle: r.disp.HandleDisposition})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func poll(t *testing.T, s *disposition.Source) int {
	t.Helper()
	n, err := s.Poll(context.Background())
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	return n
}

// history inserts one disposition history row as django-simple-history writes it for a
// save of ominicontacto_app_calificacioncliente (settled: dated 10 s ago).
func history(t *testing.T, db string, id int, typ, callid string, option int, sub string) {
	t.Helper()
	historyFrom(t, db, id, typ, callid, option, sub, "calificacion")
}

// historyFrom is history with the change reason OMniLeads records (its URL's "from":
// calificacion, recalificacion, reporte, audita_supervisor).
func historyFrom(t *testing.T, db string, id int, typ, callid string, option int, sub, from string) {
	t.Helper()
	cid := "NULL"
	if callid != "" {
		cid = "'" + callid + "'"
	}
	subv := "NULL"
	if sub != "" {
		subv = "'" + sub + "'"
	}
	pgtest.Exec(t, db, `INSERT INTO ominicontacto_app_historicalcalificacioncliente
  (id, fecha, observaciones, agendado, es_calificacion_manual, history_date, history_change_reason, history_type,
   agente_id, contacto_id, history_user_id, opcion_calificacion_id, callid, created, modified, tipo_agenda, canalidad, subcalificacion)
  VALUES (`+itoa(id)+`, now(), '', false, false, now() - interval '10 seconds', '`+from+`', '`+typ+`',
   1, 1, NULL, `+itoa(option)+`, `+cid+`, now(), now(), NULL, 0, `+subv+`)`)
}

func itoa(n int) string { return strconv.Itoa(n) }

func waitDelivered(t *testing.T, c *dispCRM, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, _ := c.got(); len(b) >= n {
			return
		}
		if time.Now().After(deadline) {
			b, _ := c.got()
			t.Fatalf("CRM got %d deliveries, want %d", len(b), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A creation and an edit made from the call fire (as OMniLeads does on each save of the
// form); an option without CRM interaction, a management-form option, an edit made
// outside the call and a deletion do not. A restart resumes at the cursor; another
// instance whose cursor lags re-reads the rows but queues nothing twice. A row newer
// than Settle waits.
func TestDispositionCursorOnOMniLeadsHistory(t *testing.T) {
	r := newRig(t)
	src := r.source(t, r.queue)
	if n := poll(t, src); n != 0 {
		t.Fatalf("first poll read %d rows, want 0 (the cursor starts at the newest row)", n)
	}
	history(t, r.db, 11, "+", "1795483380.0", 1, "Contado")                 // fires
	history(t, r.db, 12, "+", "1795483380.5", 2, "")                        // option without interaccion_crm
	history(t, r.db, 13, "+", "1795483381.0", 3, "")                        // management form: fires at form save (form_test.go)
	history(t, r.db, 11, "~", "1795483380.0", 1, "Cuotas")                  // edit from the call: fires again
	history(t, r.db, 11, "~", "", 1, "Cuotas")                              // edit from the agent's report: no call data
	historyFrom(t, r.db, 11, "~", "1795483380.0", 1, "Efectivo", "reporte") // report edit keeps the callid: no call data either
	history(t, r.db, 11, "-", "1795483380.0", 1, "Cuotas")                  // deletion
	if n := poll(t, src); n != 7 {
		t.Fatalf("poll read %d rows, want 7", n)
	}
	waitDelivered(t, r.crm, 2)
	bodies, keys := r.crm.got()
	if len(bodies) != 2 || keys[0] == keys[1] {
		t.Fatalf("deliveries %v keys %v: want 2 with distinct ids", bodies, keys)
	}
	for i, sub := range []string{"Contado", "Cuotas"} {
		b := bodies[i]
		if b["dispName"] != "Venta" || b["sub"] != sub || b["form"] != "" || b["dispId"] != "11" {
			t.Errorf("delivery %d = %v: want disposition 11 Venta/%s", i, b, sub)
		}
	}

	// Restart: a new source on the same durable cursor reads nothing again.
	if n := poll(t, r.source(t, r.queue)); n != 0 {
		t.Errorf("after a restart the source read %d rows again", n)
	}
	// Another instance whose cursor lags (a crash before the cursor was saved) re-reads
	// every row: the outbox queues none twice.
	lag := &memCursor{v: map[string]int64{disposition.CursorName: 0}}
	if n := poll(t, r.source(t, lag)); n != 7 {
		t.Fatalf("lagging instance read %d rows, want 7", n)
	}
	if st := drained(t, r.queue); st.DeliveredTotal != 2 {
		t.Errorf("outbox stats %+v: want 2 delivered", st)
	}
	if b, _ := r.crm.got(); len(b) != 2 {
		t.Errorf("CRM got %d deliveries after a re-read, want still 2", len(b))
	}

	// A row newer than Settle is not passed (its transaction may still be committing
	// behind a later one); it is read once settled.
	pgtest.Exec(t, r.db, `INSERT INTO ominicontacto_app_historicalcalificacioncliente
  (id, fecha, agendado, es_calificacion_manual, history_date, history_type, agente_id, contacto_id, opcion_calificacion_id, callid, created, modified, canalidad)
  VALUES (21, now(), false, false, now() + interval '1 hour', '+', 1, 1, 1, 'c-21', now(), now(), 0)`)
	if n := poll(t, src); n != 0 {
		t.Fatalf("read %d unsettled rows", n)
	}
	pgtest.Exec(t, r.db, `UPDATE ominicontacto_app_historicalcalificacioncliente SET history_date = now() - interval '1 minute' WHERE id = 21`)
	if n := poll(t, src); n != 1 {
		t.Fatalf("read %d rows once settled, want 1", n)
	}
	waitDelivered(t, r.crm, 3)
}

// drained waits until the outbox has nothing pending (every queued delivery, a
// duplicate included, was delivered or died) and returns its stats.
func drained(t *testing.T, q *delivery.Queue) delivery.Stats {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := q.Stats(context.Background())
		if err != nil {
			t.Fatalf("outbox stats: %v", err)
		}
		if st.Depth == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still has %d pending deliveries", st.Depth)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type memCursor struct {
	mu sync.Mutex
	v  map[string]int64
}

func (m *memCursor) Cursor(_ context.Context, name string) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.v[name]
	return v, ok, nil
}

func (m *memCursor) AdvanceCursor(_ context.Context, name string, v int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v > m.v[name] {
		m.v[name] = v
	}
	return nil
}
