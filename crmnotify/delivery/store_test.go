package delivery

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"os"
	"path/filepath"
	runtimemetrics "runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestSQLiteQueriesUseIndexes: every query of the CLI (list with each filter, get,
// stats), of the gauges and of the sweeper (claim, prune) reads the SQLite outbox
// through an index, never by a full SCAN of a table: they must stay cheap with a month
// of deliveries kept (delivery.retention).
func TestSQLiteQueriesUseIndexes(t *testing.T) {
	ctx := context.Background()
	s, err := openSQLite(ctx, filepath.Join(t.TempDir(), "q.db"), "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	now := time.Now()
	queries := map[string]string{
		"get":                       getDelivery,
		"get attempts":              getAttempts,
		"stats":                     statsQuery,
		"backlog by site":           backlogQuery,
		"claim due":                 claimDueQuery(""),
		"claim due, sites excluded": claimDueQuery(" AND site_id NOT IN (?,?)"),
		"release all":               releaseAllQuery(false),
		"prune attempts":            pruneAttempts,
		"prune":                     pruneDeliveries,
	}
	for _, f := range []Filter{
		{Limit: 50}, {Status: StatusDead, Limit: 50}, {CampaignID: 7, Limit: 50}, {Since: time.Hour, Limit: 50},
		{Status: StatusDelivered, CampaignID: 7, Since: time.Hour, Limit: 50}, {CampaignID: 7, Since: time.Hour, Limit: 50},
	} {
		var since time.Time
		if f.Since > 0 {
			since = now.Add(-f.Since)
		}
		q, _ := s.listQuery(f, since)
		queries["list "+strings.TrimSpace(strings.ReplaceAll(
			strings.Join([]string{string(f.Status), map[bool]string{true: "campaign"}[f.CampaignID != 0], map[bool]string{true: "since"}[f.Since > 0]}, " "), "  ", " "))] = q
	}
	for name, q := range queries {
		plan := queryPlan(t, s, s.d.sql(q))
		if strings.HasPrefix(name, "claim due") && !strings.Contains(strings.Join(plan, "\n"), "USING INDEX deliveries_due") {
			t.Errorf("%s: does not read deliveries_due (next_attempt_at order):\n%s", name, strings.Join(plan, "\n"))
		}
		for _, line := range plan {
			// A SCAN of a subquery (the newest rows of one status) reads only its LIMIT.
			table := strings.Fields(line + " x x")[1]
			if strings.HasPrefix(line, "SCAN ") && (table == "deliveries" || table == "delivery_attempts") && !strings.Contains(line, " INDEX ") {
				t.Errorf("%s: full table scan %q in plan:\n%s", name, line, strings.Join(plan, "\n"))
			}
		}
	}
}

// queryPlan is SQLite's EXPLAIN QUERY PLAN of q, one line per step (arguments NULL).
func queryPlan(t *testing.T, s *sqlStore, q string) []string {
	t.Helper()
	args := make([]any, strings.Count(q, "?"))
	rows, err := s.w.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSQLiteUpgradeKeepsDeliveries: an outbox made by the previous schema (migrations
// 1-3: deliveries_created, delivery_attempts a rowid table with a foreign key) is
// upgraded in place when opened: its deliveries and attempt records are still listed,
// the pending one is delivered, and the new schema is in place.
func TestSQLiteUpgradeKeepsDeliveries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	c := newCRM(t, false, nil)

	// The previous code's outbox, written by its own statements.
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=foreign_keys(ON)")
	if err != nil {
		t.Fatal(err)
	}
	old.SetMaxOpenConns(1)
	prev := &sqlStore{d: dialect{deliveries: "deliveries", attempts: "delivery_attempts"}, w: old, r: old, closeF: old.Close}
	if err := prev.migrate(ctx, sqliteMigrations[:3]); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	delivered, pending := benchStoreDelivery(now.Add(-time.Minute), 1), benchStoreDelivery(now.Add(-time.Minute), 2)
	for _, d := range []*Delivery{delivered, pending} {
		d.URL = c.srv.URL + "/pop"
		if _, err := prev.insert(ctx, d, "", time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	at := now.Add(-50 * time.Second)
	if err := prev.finish(ctx, delivered.ID, "", []Attempt{{At: at, Status: 503, Error: "HTTP 503"}, {At: at, Status: 200, Response: "ok"}},
		result{status: StatusDelivered, lastStatus: 200, deliveredAt: at, latency: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := prev.finish(ctx, pending.ID, "", []Attempt{{At: at, Status: 503, Error: "HTTP 503"}},
		result{status: StatusFailed, next: now.Add(-time.Second), lastStatus: 503, lastError: "HTTP 503"}); err != nil {
		t.Fatal(err)
	}
	prev.close()

	h := startQueue(t, testOptions("sqlite:"+path))
	got := h.waitStatus(t, pending.ID, StatusDelivered)
	if len(got.AttemptLog) != 2 || got.AttemptLog[0].N != 1 || got.AttemptLog[0].Error != "HTTP 503" || got.AttemptLog[1].N != 2 || got.AttemptLog[1].Status != 200 {
		t.Errorf("attempts of the pending delivery after the upgrade = %+v", got.AttemptLog)
	}
	if c.count() != 1 || c.requests()[0].IdempotencyKey != pending.ID {
		t.Errorf("CRM got %d requests, want the pending delivery once", c.count())
	}
	d, err := h.q.Get(ctx, delivered.ID)
	if err != nil || d.Status != StatusDelivered || len(d.AttemptLog) != 2 || d.AttemptLog[1].Response != "ok" || string(d.Body) != string(delivered.Body) {
		t.Errorf("delivered delivery after the upgrade = %+v, %v", d, err)
	}
	list, err := h.q.List(ctx, Filter{})
	if err != nil || len(list) != 2 {
		t.Errorf("list after the upgrade = %d deliveries, %v", len(list), err)
	}

	s := h.q.store.(*sqlStore)
	var version int
	var attemptsSQL string
	var createdIndexes int
	if err := s.r.QueryRow(`SELECT MAX(version) FROM delivery_schema_version`).Scan(&version); err != nil || version != len(sqliteMigrations) {
		t.Errorf("schema version %d, %v; want %d", version, err, len(sqliteMigrations))
	}
	if err := s.r.QueryRow(`SELECT sql FROM sqlite_master WHERE name = 'delivery_attempts'`).Scan(&attemptsSQL); err != nil || !strings.HasSuffix(attemptsSQL, "WITHOUT ROWID") {
		t.Errorf("delivery_attempts is %q, %v", attemptsSQL, err)
	}
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'deliveries_created'`).Scan(&createdIndexes); err != nil || createdIndexes != 0 {
		t.Errorf("deliveries_created still there (%d), %v", createdIndexes, err)
	}
}

// TestPruneDeletesAttemptsWithTheirDeliveries: prune removes old delivered and dead
// deliveries with their attempt records (there is no foreign key cascading on SQLite),
// and keeps pending ones and recent ones with theirs.
func TestPruneDeletesAttemptsWithTheirDeliveries(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		ctx := context.Background()
		st, err := openStore(ctx, Options{Store: store, Schema: "oml_crm", PostgresMaxConns: 4, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		s := st.(*sqlStore)
		defer s.close()
		now := time.Now().Truncate(time.Microsecond)
		type row struct {
			d      *Delivery
			status Status
			kept   bool
		}
		rows := []row{
			{benchStoreDelivery(now.Add(-48*time.Hour), 1), StatusDelivered, false},
			{benchStoreDelivery(now.Add(-48*time.Hour), 2), StatusDead, false},
			{benchStoreDelivery(now.Add(-48*time.Hour), 3), StatusFailed, true},
			{benchStoreDelivery(now.Add(-time.Hour), 4), StatusDelivered, true},
		}
		for _, r := range rows {
			if _, err := s.insert(ctx, r.d, "", time.Time{}); err != nil {
				t.Fatal(err)
			}
			res := result{status: r.status, lastStatus: 503, next: now.Add(time.Hour)}
			if r.status == StatusDelivered {
				res = result{status: r.status, lastStatus: 200, deliveredAt: r.d.CreatedAt}
			}
			if err := s.finish(ctx, r.d.ID, "", []Attempt{{At: r.d.CreatedAt, Status: res.lastStatus}, {At: r.d.CreatedAt, Status: res.lastStatus}}, res); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.prune(ctx, now.Add(-24*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("prune = %d, %v; want 2", n, err)
		}
		for _, r := range rows {
			d, err := s.get(ctx, r.d.ID)
			switch {
			case r.kept && (err != nil || len(d.AttemptLog) != 2):
				t.Errorf("%s delivery %s: %+v, %v; want kept with its 2 attempts", r.status, r.d.CreatedAt, d, err)
			case !r.kept && !errors.Is(err, ErrNotFound):
				t.Errorf("%s delivery %s: %v; want pruned", r.status, r.d.CreatedAt, err)
			}
		}
		var orphans int
		if err := s.r.QueryRow(s.d.sql(`SELECT COUNT(*) FROM {A} WHERE delivery_id NOT IN (SELECT id FROM {D})`)).Scan(&orphans); err != nil || orphans != 0 {
			t.Errorf("%d attempt records without their delivery, %v", orphans, err)
		}
	})
}

// TestSQLiteCommitsDoNotCheckpoint: the writer connection never checkpoints inside a
// commit (SQLite's auto-checkpoint is off there); the store's goroutine does, and
// stops with the store.
func TestSQLiteCommitsDoNotCheckpoint(t *testing.T) {
	ctx := context.Background()
	s, err := openSQLite(ctx, filepath.Join(t.TempDir(), "q.db"), "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := s.w.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&pages); err != nil || pages != 0 {
		t.Errorf("writer's wal_autocheckpoint = %d, %v; want 0", pages, err)
	}
	s.close()
	select {
	case <-s.wal.done:
	default:
		t.Error("checkpoint goroutine still running after close")
	}
}

// TestSQLiteWALStaysBounded: with checkpoints off the commits, the WAL file still stays
// bounded under a steady stream of deliveries (here with small thresholds: a round
// every 10 commits, the WAL restarted past 300 pages). Without checkpoints it would hold
// every page written: about 9 per delivery, some 13,500 for these 1,500.
func TestSQLiteWALStaysBounded(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	s, err := openSQLite(ctx, path, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	s.wal.close()
	s.wal = startWALCheckpointer(s.wal.db, s.w, 10, 300, zerolog.Nop())
	base := time.Now()
	const deliveries = 1500
	var maxWAL int64
	for i := range deliveries {
		d := benchStoreDelivery(base, i)
		if _, err := s.insert(ctx, d, "me", base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.finish(ctx, d.ID, "me", []Attempt{{At: base, Status: 200}}, result{status: StatusDelivered, lastStatus: 200, deliveredAt: base}); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(path + "-wal"); err == nil {
			maxWAL = max(maxWAL, st.Size())
		}
	}
	// 300 pages and what the writer adds while a round runs: 2,000 pages is far above
	// that and far below the 13,500 of an unbounded WAL.
	if frame := int64(4096 + 24); maxWAL > 2000*frame {
		t.Errorf("WAL grew to %d bytes (%d pages)", maxWAL, maxWAL/frame)
	}
	st, err := s.stats(ctx, time.Now())
	if err != nil || st.DeliveredTotal != deliveries {
		t.Errorf("stats = %+v, %v; want %d delivered", st, err, deliveries)
	}
	t.Logf("WAL at most %d bytes", maxWAL)
}

// TestSQLiteDeliveryStartsFewGoroutines: a delivery's insert and finish, run under a
// cancellable context as the daemon runs them, start no goroutine per statement (the
// driver's interrupt watcher); only database/sql's two per transaction remain. Counted
// with the runtime's goroutines-created counter, over 200 deliveries.
func TestSQLiteDeliveryStartsFewGoroutines(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := openSQLite(ctx, filepath.Join(t.TempDir(), "q.db"), "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	base := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	one := func(i int) { storeOneDelivery(t, ctx, s, base, i) }
	for i := range 10 { // statements prepared
		one(-1 - i)
	}
	const n = 200
	// The counter is the process's: a goroutine an earlier test left (a timer's
	// AfterFunc, a pool's health check) can start during a round. The least of three
	// rounds is the deliveries' own.
	created := uint64(math.MaxUint64)
	for round := range 3 {
		before := goroutinesCreated()
		for i := range n {
			one(round*n + i)
		}
		created = min(created, goroutinesCreated()-before)
	}
	// Two per delivery: database/sql's Tx and Rows watchers in finish. Before, seven.
	if created > 2*n+10 {
		t.Errorf("%d deliveries started %d goroutines (%.1f each); want ≤ 2 each", n, created, float64(created)/n)
	}
	// A delivery written as the daemon stops (its context cancelled) is still written
	// whole: a connect seen is kept.
	cancel()
	d := benchStoreDelivery(base, 3*n+1)
	if ok, err := s.insert(ctx, d, "bench-instance", base); err != nil || !ok {
		t.Fatalf("insert under a cancelled context: %v (inserted %v)", err, ok)
	}
	if got, err := s.get(context.Background(), d.ID); err != nil || got.ID != d.ID || string(got.Body) != string(d.Body) {
		t.Errorf("delivery written under a cancelled context: %+v, %v", got, err)
	}
}

// goroutinesCreated reads the runtime's count of goroutines started so far.
func goroutinesCreated() uint64 {
	s := []runtimemetrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	runtimemetrics.Read(s)
	return s[0].Value.Uint64()
}
