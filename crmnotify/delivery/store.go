package delivery

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/rs/zerolog"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/omlcrm/oml-crm/crmnotify"
)

// store is the outbox: one implementation over database/sql, with a dialect for
// SQLite and PostgreSQL.
type store interface {
	insert(ctx context.Context, d *Delivery, owner string, leaseUntil time.Time) (bool, error)
	release(ctx context.Context, id, owner string) error
	releaseAll(ctx context.Context, owner string, cut time.Time) (int, error)
	// claimDue claims up to limit due deliveries, none to the sites in exclude.
	claimDue(ctx context.Context, now time.Time, limit int, owner string, lease time.Duration, exclude []int) ([]*Delivery, error)
	// backlogBySite counts the pending and failed deliveries of each site that has any.
	backlogBySite(ctx context.Context) (map[int]int, error)
	finish(ctx context.Context, id, owner string, attempts []Attempt, r result) error
	list(ctx context.Context, f Filter, since time.Time) ([]Delivery, error)
	get(ctx context.Context, id string) (*Delivery, error)
	retry(ctx context.Context, id string, now, expires time.Time) (bool, error)
	retryDead(ctx context.Context, now, expires time.Time) (int, error)
	stats(ctx context.Context, now time.Time) (Stats, error)
	setRequest(ctx context.Context, d *Delivery, owner string) error
	prune(ctx context.Context, before time.Time) (int, error)
	ping(ctx context.Context) error
	// fileGone reports a SQLite queue file deleted or replaced under the open store (nil
	// for PostgreSQL).
	fileGone() error
	close() error
	cursor(ctx context.Context, name string) (int64, bool, error)
	advanceCursor(ctx context.Context, name string, value int64) error
}

// StoreKind tells the store apart in an Options.Store value.
func storeKind(spec string) (kind, target string) {
	switch {
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return "postgres", spec
	case strings.HasPrefix(spec, "sqlite:"):
		return "sqlite", strings.TrimPrefix(spec, "sqlite:")
	}
	return "sqlite", spec
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func openStore(ctx context.Context, o Options) (store, error) {
	kind, target := storeKind(o.Store)
	if target == "" {
		return nil, errors.New("delivery store: empty (set delivery.store and delivery.sqlite_path or delivery.postgres_url)")
	}
	if kind == "postgres" {
		return openPostgres(ctx, target, o)
	}
	return openSQLite(ctx, target, o.SQLiteSynchronous, o.Logger)
}

// dialect is what differs between SQLite and PostgreSQL.
type dialect struct {
	pg                   bool
	deliveries, attempts string // table names, schema-qualified on PostgreSQL
	skipLocked           string // row-locking clause of the claim
	// dueIndex makes SQLite's claim read deliveries_due in next_attempt_at order: left
	// to itself (no ANALYZE statistics) it reads deliveries_status_created and sorts
	// every pending and failed row, a whole backlog, on every sweep.
	dueIndex string
}

// sql fills {D} and {A} with the table names and numbers ? placeholders for PostgreSQL.
func (d dialect) sql(q string) string {
	q = strings.ReplaceAll(strings.ReplaceAll(q, "{D}", d.deliveries), "{A}", d.attempts)
	q = strings.ReplaceAll(strings.ReplaceAll(q, "{SKIP_LOCKED}", d.skipLocked), "{DUE_INDEX}", d.dueIndex)
	if !d.pg {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ts encodes a time: timestamptz on PostgreSQL, Unix microseconds on SQLite (integers
// compare and index correctly there, text timestamps do not). Zero is NULL.
func (d dialect) ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	if d.pg {
		return t.UTC()
	}
	return t.UnixMicro()
}

// dbTime scans either encoding of ts.
type dbTime struct{ t time.Time }

func (x *dbTime) Scan(v any) error {
	switch t := v.(type) {
	case nil:
		x.t = time.Time{}
	case time.Time:
		x.t = t
	case int64:
		x.t = time.UnixMicro(t)
	default:
		return fmt.Errorf("scan time: unexpected %T", v)
	}
	return nil
}

type sqlStore struct {
	d      dialect
	w      *sql.DB // writes (SQLite: the one writer connection)
	r      *sql.DB // reads (SQLite: WAL readers; PostgreSQL: the same pool)
	closeF func() error
	stmts  stmtCache // the hot write statements, prepared once (stmt.go)

	file     string           // SQLite: the queue file's path
	fileInfo os.FileInfo      // SQLite: the file as opened (to notice it vanishing)
	wal      *walCheckpointer // SQLite: checkpoints the WAL (nil on PostgreSQL)
}

// wrote counts a commit of the writer connection (SQLite: for the WAL checkpoints).
func (s *sqlStore) wrote() {
	if s.wal != nil {
		s.wal.committed()
	}
}

func (s *sqlStore) fileGone() error {
	if s.file == "" {
		return nil
	}
	st, err := os.Stat(s.file)
	if err != nil || !os.SameFile(st, s.fileInfo) {
		return fmt.Errorf("queue file %s vanished or was replaced while open (delivery.sqlite_path): the deliveries in it are delivered from the open file but would be lost by a restart; restart only once omlcrm_delivery_queue_depth is 0", s.file)
	}
	return nil
}

func openSQLite(ctx context.Context, path, synchronous string, log zerolog.Logger) (*sqlStore, error) {
	sync := strings.ToUpper(synchronous)
	if sync == "" {
		sync = "NORMAL"
	}
	if sync != "NORMAL" && sync != "FULL" {
		return nil, fmt.Errorf("delivery store %s: SQLite synchronous %q: want normal or full", path, synchronous)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("delivery store %s (delivery.sqlite_path): %w", path, err)
		}
	}
	if err := privateSQLiteFiles(path); err != nil {
		return nil, fmt.Errorf("delivery store %s (delivery.sqlite_path): %w", path, err)
	}
	// WAL: readers (CLI, stats) never block the writer. synchronous=NORMAL (default): a
	// committed Enqueue survives kill -9 and any crash of the process; FULL also survives
	// an OS crash or power cut at the price of an fsync per commit (p99 26 ms instead of
	// 2 ms on the benchmark machine, docs/bench/delivery.md). busy_timeout: the CLI
	// writing (retry) waits for the daemon's transaction instead of failing.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)"
	// wal_autocheckpoint(0): the store's own goroutine checkpoints, not the commits
	// (checkpoint.go).
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		return nil, fmt.Errorf("delivery store %s (delivery.sqlite_path): %w", path, err)
	}
	w.SetMaxOpenConns(1) // SQLite has one writer: serialise here rather than on SQLITE_BUSY
	w.SetConnMaxIdleTime(0)
	// mode=rw: a reader never creates the file (if it vanished, an empty database in its
	// place would answer "no such table").
	r, err := sql.Open("sqlite", strings.Replace(dsn, "?", "?mode=rw&", 1)+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("delivery store %s (delivery.sqlite_path): %w", path, err)
	}
	r.SetMaxOpenConns(sqliteReaders)
	r.SetMaxIdleConns(sqliteReaders) // kept open: reads go on from the open file if it vanishes
	ck, err := sql.Open("sqlite", strings.Replace(dsn, "?", "?mode=rw&", 1))
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("delivery store %s (delivery.sqlite_path): %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	ck.SetConnMaxIdleTime(0)
	s := &sqlStore{d: dialect{deliveries: "deliveries", attempts: "delivery_attempts", dueIndex: " INDEXED BY deliveries_due"}, w: w, r: r,
		closeF: func() error { return errors.Join(ck.Close(), r.Close(), w.Close()) }}
	if err := s.migrate(ctx, sqliteMigrations); err != nil {
		s.close()
		return nil, fmt.Errorf("delivery store %s (delivery.sqlite_path): %w", path, err)
	}
	if s.fileInfo, err = os.Stat(path); err != nil {
		s.close()
		return nil, fmt.Errorf("delivery store %s (delivery.sqlite_path): %w", path, err)
	}
	if err := openAll(ctx, r, sqliteReaders); err != nil {
		s.close()
		return nil, fmt.Errorf("delivery store %s (delivery.sqlite_path): %w", path, err)
	}
	if err := openAll(ctx, ck, 1); err != nil {
		s.close()
		return nil, fmt.Errorf("delivery store %s (delivery.sqlite_path): %w", path, err)
	}
	s.file = path
	s.wal = startWALCheckpointer(ck, w, walCheckpointEvery, walRestartFrames, log)
	return s, nil
}

// sqliteReaders is the number of read connections to the SQLite outbox.
const sqliteReaders = 4

// openAll opens n connections of db at once and returns them to its pool, so that none
// is opened later (after the queue file was removed, say).
func openAll(ctx context.Context, db *sql.DB, n int) error {
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("opening the read connections: %w", err)
		}
		if err := c.PingContext(ctx); err != nil {
			c.Close()
			return fmt.Errorf("opening the read connections: %w", err)
		}
		conns = append(conns, c)
	}
	return nil
}

// privateSQLiteFiles makes the queue (call ids, phone numbers, CRM URLs and bodies)
// readable by the daemon's user only, whatever the umask: the database file is created
// 0600 before SQLite opens it, and SQLite gives its -wal and -shm files the database
// file's mode. Files left wider by an earlier version are narrowed.
func privateSQLiteFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if err != nil {
			continue // -wal and -shm exist only while a connection is open
		}
		if st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, st.Mode().Perm()&^0o077); err != nil {
				return fmt.Errorf("make %s private: %w", p, err)
			}
		}
	}
	return nil
}

func openPostgres(ctx context.Context, url string, o Options) (*sqlStore, error) {
	if !schemaName.MatchString(o.Schema) {
		return nil, fmt.Errorf("delivery.postgres_schema %q: want a lower-case SQL identifier", o.Schema)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx errors may quote the URL: do not.
		return nil, errors.New("delivery.postgres_url: not a valid PostgreSQL URL")
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(o.PostgresMaxConns)
	db.SetMaxIdleConns(o.PostgresMaxConns)
	q := `"` + o.Schema + `".`
	s := &sqlStore{
		d:      dialect{pg: true, deliveries: q + "deliveries", attempts: q + "delivery_attempts", skipLocked: "FOR UPDATE SKIP LOCKED"},
		w:      db,
		r:      db,
		closeF: db.Close,
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("delivery store: connect to PostgreSQL at %s (delivery.postgres_url): %w", redactPG(cfg), err)
	}
	if err := s.migrate(pctx, postgresMigrations(o.Schema)); err != nil {
		db.Close()
		return nil, fmt.Errorf("delivery store: PostgreSQL schema %s (delivery.postgres_schema): %w", o.Schema, err)
	}
	return s, nil
}

func redactPG(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Migrations are append-only: step i brings the schema to version i+1.
var sqliteMigrations = []string{`
CREATE TABLE IF NOT EXISTS deliveries (
	id              TEXT PRIMARY KEY,
	campaign_id     INTEGER NOT NULL,
	campaign_name   TEXT NOT NULL,
	site_id         INTEGER NOT NULL,
	call_id         TEXT NOT NULL,
	agent_id        INTEGER NOT NULL,
	status          TEXT NOT NULL CHECK (status IN ('pending','failed','dead','delivered')),
	method          TEXT NOT NULL,
	url             TEXT NOT NULL,
	headers         TEXT NOT NULL,
	content_type    TEXT NOT NULL,
	body            BLOB,
	site_auth       BOOLEAN NOT NULL,
	insecure_tls    BOOLEAN NOT NULL,
	connected_at    INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_status     INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	delivered_at    INTEGER,
	latency_us      INTEGER,
	lease_owner     TEXT,
	lease_until     INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending','failed');
CREATE INDEX IF NOT EXISTS deliveries_status_created ON deliveries (status, created_at);
CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries (created_at);
CREATE TABLE IF NOT EXISTS delivery_attempts (
	delivery_id TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
	n           INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	status      INTEGER NOT NULL,
	latency_us  INTEGER NOT NULL,
	error       TEXT NOT NULL,
	response    TEXT NOT NULL,
	PRIMARY KEY (delivery_id, n)
);`,
	// 2: a delivery rendered without its contact waits for it (crmnotify.Deferred as JSON).
	`ALTER TABLE deliveries ADD COLUMN deferred TEXT NOT NULL DEFAULT '';`,
	// 3: durable read positions (the disposition history cursor).
	`
CREATE TABLE IF NOT EXISTS cursors (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);`,
	// 4: fewer b-trees written per delivery (each one is a WAL frame per commit, the
	// bulk of a delivery's store cost: docs/benchmarks.md, Issue 16). deliveries_created
	// goes: list reads deliveries_status_created one status at a time. The attempt log
	// is keyed by its primary key alone (WITHOUT ROWID: one b-tree instead of a table
	// and its autoindex), rows kept, and loses its foreign key, whose check cost every
	// attempt insert: finish inserts attempts only for the delivery its UPDATE just
	// found, and prune deletes the attempts with their deliveries.
	`
DROP INDEX IF EXISTS deliveries_created;
CREATE TABLE delivery_attempts_v4 (
	delivery_id TEXT NOT NULL,
	n           INTEGER NOT NULL,
	at          INTEGER NOT NULL,
	status      INTEGER NOT NULL,
	latency_us  INTEGER NOT NULL,
	error       TEXT NOT NULL,
	response    TEXT NOT NULL,
	PRIMARY KEY (delivery_id, n)
) WITHOUT ROWID;
INSERT INTO delivery_attempts_v4 (delivery_id, n, at, status, latency_us, error, response)
	SELECT delivery_id, n, at, status, latency_us, error, response FROM delivery_attempts;
DROP TABLE delivery_attempts;
ALTER TABLE delivery_attempts_v4 RENAME TO delivery_attempts;`}

func postgresMigrations(schema string) []string {
	s := `"` + schema + `"`
	return []string{`
CREATE TABLE IF NOT EXISTS ` + s + `.deliveries (
	id              text PRIMARY KEY,
	campaign_id     integer NOT NULL,
	campaign_name   text NOT NULL,
	site_id         integer NOT NULL,
	call_id         text NOT NULL,
	agent_id        integer NOT NULL,
	status          text NOT NULL CHECK (status IN ('pending','failed','dead','delivered')),
	method          text NOT NULL,
	url             text NOT NULL,
	headers         text NOT NULL,
	content_type    text NOT NULL,
	body            bytea,
	site_auth       boolean NOT NULL,
	insecure_tls    boolean NOT NULL,
	connected_at    timestamptz NOT NULL,
	created_at      timestamptz NOT NULL,
	expires_at      timestamptz NOT NULL,
	next_attempt_at timestamptz NOT NULL,
	attempts        integer NOT NULL DEFAULT 0,
	last_status     integer NOT NULL DEFAULT 0,
	last_error      text NOT NULL DEFAULT '',
	delivered_at    timestamptz,
	latency_us      bigint,
	lease_owner     text,
	lease_until     timestamptz
);
CREATE INDEX IF NOT EXISTS deliveries_due ON ` + s + `.deliveries (next_attempt_at) WHERE status IN ('pending','failed');
CREATE INDEX IF NOT EXISTS deliveries_status_created ON ` + s + `.deliveries (status, created_at);
CREATE INDEX IF NOT EXISTS deliveries_created ON ` + s + `.deliveries (created_at);
CREATE TABLE IF NOT EXISTS ` + s + `.delivery_attempts (
	delivery_id text NOT NULL REFERENCES ` + s + `.deliveries(id) ON DELETE CASCADE,
	n           integer NOT NULL,
	at          timestamptz NOT NULL,
	status      integer NOT NULL,
	latency_us  bigint NOT NULL,
	error       text NOT NULL,
	response    text NOT NULL,
	PRIMARY KEY (delivery_id, n)
);`,
		`ALTER TABLE ` + s + `.deliveries ADD COLUMN IF NOT EXISTS deferred text NOT NULL DEFAULT '';`, `
CREATE TABLE IF NOT EXISTS ` + s + `.cursors (
	name  text PRIMARY KEY,
	value bigint NOT NULL
);`}
}

// migrate applies the steps not yet applied, recorded in delivery_schema_version. On
// PostgreSQL an advisory lock keeps instances starting together from racing.
func (s *sqlStore) migrate(ctx context.Context, steps []string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	versionTable := "delivery_schema_version"
	if s.d.pg {
		schema := strings.TrimSuffix(s.d.deliveries, ".deliveries")
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('oml-crm delivery migrate'))`); err != nil {
			return fmt.Errorf("lock migration: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		versionTable = schema + "." + versionTable
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+versionTable+` (version integer NOT NULL)`); err != nil {
		return fmt.Errorf("create version table: %w", err)
	}
	var version int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+versionTable).Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(steps) {
		return fmt.Errorf("outbox schema version %d is newer than this oml-crm knows (%d): upgrade oml-crm", version, len(steps))
	}
	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if version < len(steps) {
		if _, err := tx.ExecContext(ctx, s.d.sql(`DELETE FROM `+versionTable)); err != nil {
			return fmt.Errorf("record schema version: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.d.sql(`INSERT INTO `+versionTable+` (version) VALUES (?)`), len(steps)); err != nil {
			return fmt.Errorf("record schema version: %w", err)
		}
	}
	return tx.Commit()
}

func (s *sqlStore) close() error {
	if s.wal != nil {
		s.wal.close()
	}
	s.closeStmts()
	return s.closeF()
}

// ping runs SELECT 1 on the read pool (the same pool as writes on PostgreSQL).
func (s *sqlStore) ping(ctx context.Context) error {
	var one int
	return s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

const deliveryColumns = `id, campaign_id, campaign_name, site_id, call_id, agent_id, status, method, url, headers,
	content_type, body, site_auth, insecure_tls, connected_at, created_at, expires_at, next_attempt_at,
	attempts, last_status, last_error, delivered_at, latency_us, deferred`

const insertDelivery = `INSERT INTO {D} (` + deliveryColumns + `, lease_owner, lease_until)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, '', NULL, NULL, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`

// perDelivery is the context of the SQLite statements every delivery makes (insert,
// finish): ctx without its cancellation. modernc.org/sqlite starts a goroutine per
// statement run under a cancellable context, to interrupt it when the context ends, and
// database/sql one per result set: seven goroutines per delivery, each started and
// woken, in the load test a third of the goroutines the daemon started per connect.
// These statements are local and short; the longest wait is for a lock held by another
// process (the CLI), bounded by busy_timeout (10 s). PostgreSQL keeps ctx.
func (s *sqlStore) perDelivery(ctx context.Context) context.Context {
	if s.d.pg {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

func (s *sqlStore) insert(ctx context.Context, d *Delivery, owner string, leaseUntil time.Time) (bool, error) {
	ctx = s.perDelivery(ctx)
	headers, err := json.Marshal(d.Header)
	if err != nil {
		return false, fmt.Errorf("encode headers: %w", err)
	}
	deferred, err := encodeDeferred(d.Deferred)
	if err != nil {
		return false, err
	}
	st, err := s.prepared(ctx, insertDelivery)
	if err != nil {
		return false, err
	}
	res, err := st.ExecContext(ctx,
		d.ID, d.CampaignID, d.CampaignName, d.SiteID, d.CallID, d.AgentID, string(d.Status), d.Method, d.URL, string(headers),
		d.ContentType, d.Body, d.SiteAuth, d.InsecureTLS, s.d.ts(d.ConnectedAt), s.d.ts(d.CreatedAt), s.d.ts(d.ExpiresAt),
		s.d.ts(d.NextAttemptAt), deferred, owner, s.d.ts(leaseUntil))
	if err != nil {
		return false, err
	}
	s.wrote()
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

func (s *sqlStore) release(ctx context.Context, id, owner string) error {
	_, err := s.w.ExecContext(ctx, s.d.sql(`UPDATE {D} SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?`), id, owner)
	if err == nil {
		s.wrote()
	}
	return err
}

// releaseAll drops the claims an earlier run of this instance held (it was killed):
// its deliveries are due again at once instead of after the lease. Only claims whose
// lease ends before cut are dropped: later ones were made by this run.
func (s *sqlStore) releaseAll(ctx context.Context, owner string, cut time.Time) (int, error) {
	q, args := releaseAllQuery(s.d.pg), []any{owner, s.d.ts(cut)}
	if !s.d.pg {
		args = args[1:]
	}
	res, err := s.w.ExecContext(ctx, s.d.sql(q), args...)
	if err != nil {
		return 0, err
	}
	s.wrote()
	n, _ := res.RowsAffected()
	return int(n), nil
}

// releaseAllQuery is releaseAll's statement. Only pending and failed deliveries hold
// claims (finish clears the claim with the status), and saying so lets the statement
// read the small deliveries_due index instead of every delivery kept: Run repeats it
// for a few seconds after a start.
func releaseAllQuery(pg bool) string {
	if !pg {
		// SQLite is single-node: every earlier claim in the file is a dead process's.
		return `UPDATE {D} SET lease_owner = NULL, lease_until = NULL
		WHERE id IN (SELECT id FROM {D}{DUE_INDEX} WHERE status IN ('pending','failed') AND lease_owner IS NOT NULL AND lease_until < ?)`
	}
	return `UPDATE {D} SET lease_owner = NULL, lease_until = NULL
		WHERE status IN ('pending','failed') AND lease_owner = ? AND lease_until < ?`
}

// claimDueQuery is claimDue's statement; notIn excludes sites.
func claimDueQuery(notIn string) string {
	return `UPDATE {D} SET lease_owner = ?, lease_until = ?
		WHERE id IN (SELECT id FROM {D}{DUE_INDEX}
			WHERE status IN ('pending','failed') AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)` + notIn + `
			ORDER BY next_attempt_at LIMIT ? {SKIP_LOCKED})
		RETURNING ` + deliveryColumns
}

func (s *sqlStore) claimDue(ctx context.Context, now time.Time, limit int, owner string, lease time.Duration, exclude []int) ([]*Delivery, error) {
	args := []any{owner, s.d.ts(now.Add(lease)), s.d.ts(now), s.d.ts(now)}
	notIn := ""
	if len(exclude) > 0 {
		notIn = " AND site_id NOT IN (?" + strings.Repeat(",?", len(exclude)-1) + ")"
		for _, id := range exclude {
			args = append(args, id)
		}
	}
	args = append(args, limit)
	rows, err := s.w.QueryContext(ctx, s.d.sql(claimDueQuery(notIn)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	s.wrote()
	var out []*Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// The statements of finish: the state update, its fallback for a delivery already
// delivered, and the attempt record, all in one transaction.
const (
	finishDelivery = `UPDATE {D} SET status = ?, attempts = attempts + ?,
		next_attempt_at = COALESCE(?, next_attempt_at), last_status = ?, last_error = ?, delivered_at = ?, latency_us = ?,
		lease_owner = NULL, lease_until = NULL
		WHERE id = ? AND status <> 'delivered' RETURNING attempts`
	countAttempts = `UPDATE {D} SET attempts = attempts + ? WHERE id = ? RETURNING attempts`
	insertAttempt = `INSERT INTO {A} (delivery_id, n, at, status, latency_us, error, response) VALUES (?, ?, ?, ?, ?, ?, ?)`
)

func (s *sqlStore) finish(ctx context.Context, id, owner string, attempts []Attempt, r result) error {
	ctx = s.perDelivery(ctx)
	upd, err := s.prepared(ctx, finishDelivery)
	if err != nil {
		return err
	}
	ins, err := s.prepared(ctx, insertAttempt)
	if err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	var latency any
	if r.status == StatusDelivered {
		latency = r.latency.Microseconds()
	}
	var total int
	// A delivery another instance already delivered (it took our expired lease) is
	// never downgraded; our attempts are still logged.
	err = tx.StmtContext(ctx, upd).QueryRowContext(ctx,
		string(r.status), len(attempts), s.d.ts(r.next), r.lastStatus, r.lastError, s.d.ts(r.deliveredAt), latency, id).Scan(&total)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, s.d.sql(countAttempts), len(attempts), id).Scan(&total) // rare: not prepared
	}
	if err != nil {
		return err
	}
	txIns := tx.StmtContext(ctx, ins)
	for i, a := range attempts {
		if _, err := txIns.ExecContext(ctx,
			id, total-len(attempts)+i+1, s.d.ts(a.At), a.Status, a.Latency.Microseconds(), a.Error, a.Response); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.wrote()
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanDelivery(row scanner) (*Delivery, error) {
	var (
		d                                            Delivery
		status, headers                              string
		connected, created, expires, next, delivered dbTime
		latency                                      sql.NullInt64
		deferred                                     string
	)
	if err := row.Scan(&d.ID, &d.CampaignID, &d.CampaignName, &d.SiteID, &d.CallID, &d.AgentID, &status, &d.Method, &d.URL, &headers,
		&d.ContentType, &d.Body, &d.SiteAuth, &d.InsecureTLS, &connected, &created, &expires, &next,
		&d.Attempts, &d.LastStatus, &d.LastError, &delivered, &latency, &deferred); err != nil {
		return nil, err
	}
	if deferred != "" {
		d.Deferred = &crmnotify.Deferred{}
		if err := json.Unmarshal([]byte(deferred), d.Deferred); err != nil {
			return nil, fmt.Errorf("delivery %s: decode deferred render: %w", d.ID, err)
		}
	}
	d.Status = Status(status)
	d.ConnectedAt, d.CreatedAt, d.ExpiresAt, d.NextAttemptAt, d.DeliveredAt = connected.t, created.t, expires.t, next.t, delivered.t
	if latency.Valid {
		d.Latency = time.Duration(latency.Int64) * time.Microsecond
	}
	if headers != "" && headers != "null" {
		d.Header = http.Header{}
		if err := json.Unmarshal([]byte(headers), &d.Header); err != nil {
			return nil, fmt.Errorf("delivery %s: decode headers: %w", d.ID, err)
		}
	}
	return &d, nil
}

func (s *sqlStore) list(ctx context.Context, f Filter, since time.Time) ([]Delivery, error) {
	q, args := s.listQuery(f, since)
	rows, err := s.r.QueryContext(ctx, s.d.sql(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
		out = append(out, *d)
	}
	return out, rows.Err()
}

// listQuery is list's query template and arguments.
func (s *sqlStore) listQuery(f Filter, since time.Time) (string, []any) {
	var where []string
	var args []any
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.CampaignID != 0 {
		where, args = append(where, "campaign_id = ?"), append(args, f.CampaignID)
	}
	if !since.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, s.d.ts(since))
	}
	q := `SELECT ` + deliveryColumns + ` FROM {D}`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, id LIMIT ?"
	args = append(args, f.Limit)
	if f.Status == "" {
		return listAllStatuses(where, args)
	}
	return q, args
}

// listStatuses are the values of deliveries.status (its CHECK constraint).
var listStatuses = []Status{StatusPending, StatusFailed, StatusDead, StatusDelivered}

// listAllStatuses is list's query over every status: the newest limit of each status,
// each read from deliveries_status_created (status, created_at) in order, then merged.
// There is no index on created_at alone (it cost a b-tree write per delivery), and a
// status IN (...) would sort every matching row.
func listAllStatuses(where []string, args []any) (string, []any) {
	limit := args[len(args)-1]
	args = args[:len(args)-1]
	cond := strings.Join(append([]string{"status = ?"}, where...), " AND ")
	parts := make([]string, len(listStatuses))
	var all []any
	for i, st := range listStatuses {
		parts[i] = `SELECT * FROM (SELECT ` + deliveryColumns + ` FROM {D} WHERE ` + cond +
			` ORDER BY created_at DESC, id LIMIT ?) AS s` + strconv.Itoa(i)
		all = append(append(append(all, string(st)), args...), limit)
	}
	return strings.Join(parts, " UNION ALL ") + " ORDER BY created_at DESC, id LIMIT ?", append(all, limit)
}

// The reads of get, Stats and the gauges (their plans are checked in store_test.go).
const (
	getDelivery = `SELECT ` + deliveryColumns + ` FROM {D} WHERE id = ?`
	getAttempts = `SELECT n, at, status, latency_us, error, response FROM {A} WHERE delivery_id = ? ORDER BY n`
	statsQuery  = `SELECT
		(SELECT COUNT(*) FROM {D} WHERE status IN ('pending','failed')),
		(SELECT MIN(created_at) FROM {D} WHERE status IN ('pending','failed')),
		(SELECT COUNT(*) FROM {D} WHERE status = 'dead'),
		(SELECT COUNT(*) FROM {D} WHERE status = 'delivered'),
		(SELECT COUNT(*) FROM {D} WHERE status IN ('pending','failed') AND deferred <> ''),
		(SELECT MIN(created_at) FROM {D} WHERE status IN ('pending','failed') AND deferred <> '')`
	backlogQuery = `SELECT site_id, COUNT(*) FROM {D} WHERE status IN ('pending','failed') GROUP BY site_id`
)

func (s *sqlStore) get(ctx context.Context, id string) (*Delivery, error) {
	d, err := scanDelivery(s.r.QueryRowContext(ctx, s.d.sql(getDelivery), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read delivery %s: %w", id, err)
	}
	rows, err := s.r.QueryContext(ctx, s.d.sql(getAttempts), id)
	if err != nil {
		return nil, fmt.Errorf("read attempts of delivery %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a Attempt
		var at dbTime
		var us int64
		if err := rows.Scan(&a.N, &at, &a.Status, &us, &a.Error, &a.Response); err != nil {
			return nil, fmt.Errorf("read attempts of delivery %s: %w", id, err)
		}
		a.At, a.Latency = at.t, time.Duration(us)*time.Microsecond
		d.AttemptLog = append(d.AttemptLog, a)
	}
	return d, rows.Err()
}

func (s *sqlStore) retry(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.d.sql(`UPDATE {D} SET status = 'pending', next_attempt_at = ?, expires_at = ?,
		lease_owner = NULL, lease_until = NULL WHERE id = ? AND status IN ('failed','dead')`), s.d.ts(now), s.d.ts(expires), id)
	if err != nil {
		return false, err
	}
	s.wrote()
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *sqlStore) retryDead(ctx context.Context, now, expires time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, s.d.sql(`UPDATE {D} SET status = 'pending', next_attempt_at = ?, expires_at = ?,
		lease_owner = NULL, lease_until = NULL WHERE status = 'dead'`), s.d.ts(now), s.d.ts(expires))
	if err != nil {
		return 0, err
	}
	s.wrote()
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *sqlStore) stats(ctx context.Context, now time.Time) (Stats, error) {
	var st Stats
	var oldest, oldestWaiting dbTime
	err := s.r.QueryRowContext(ctx, s.d.sql(statsQuery)).
		Scan(&st.Depth, &oldest, &st.Dead, &st.DeliveredTotal, &st.WaitingForContact, &oldestWaiting)
	if err != nil {
		return st, fmt.Errorf("count deliveries: %w", err)
	}
	if !oldest.t.IsZero() && now.After(oldest.t) {
		st.OldestPending = now.Sub(oldest.t)
	}
	if !oldestWaiting.t.IsZero() && now.After(oldestWaiting.t) {
		st.OldestWaiting = now.Sub(oldestWaiting.t)
	}
	return st, nil
}

func (s *sqlStore) backlogBySite(ctx context.Context) (map[int]int, error) {
	rows, err := s.r.QueryContext(ctx, s.d.sql(backlogQuery))
	if err != nil {
		return nil, fmt.Errorf("count deliveries per site: %w", err)
	}
	defer rows.Close()
	out := map[int]int{}
	for rows.Next() {
		var site, n int
		if err := rows.Scan(&site, &n); err != nil {
			return nil, fmt.Errorf("count deliveries per site: %w", err)
		}
		out[site] = n
	}
	return out, rows.Err()
}

// setRequest stores the request rendered again for a delivery that waited for its
// contact, and clears its deferred render; only while owner holds its lease.
func (s *sqlStore) setRequest(ctx context.Context, d *Delivery, owner string) error {
	headers, err := json.Marshal(d.Header)
	if err != nil {
		return fmt.Errorf("encode headers: %w", err)
	}
	res, err := s.w.ExecContext(ctx, s.d.sql(`UPDATE {D} SET method = ?, url = ?, headers = ?, content_type = ?, body = ?, deferred = ''
		WHERE id = ? AND lease_owner = ?`), d.Method, d.URL, string(headers), d.ContentType, d.Body, d.ID, owner)
	if err != nil {
		return err
	}
	s.wrote()
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return fmt.Errorf("delivery %s is no longer claimed by %s", d.ID, owner)
	}
	return nil
}

func encodeDeferred(def *crmnotify.Deferred) (string, error) {
	if def == nil {
		return "", nil
	}
	b, err := json.Marshal(def)
	if err != nil {
		return "", fmt.Errorf("encode deferred render: %w", err)
	}
	return string(b), nil
}

// The statements of prune: the attempts first, then their deliveries.
const (
	pruneCond       = `status IN ('delivered','dead') AND created_at < ?`
	pruneAttempts   = `DELETE FROM {A} WHERE delivery_id IN (SELECT id FROM {D} WHERE ` + pruneCond + `)`
	pruneDeliveries = `DELETE FROM {D} WHERE ` + pruneCond
)

// prune deletes delivered and dead deliveries created before the cut (and their
// attempts).
func (s *sqlStore) prune(ctx context.Context, before time.Time) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, s.d.sql(pruneAttempts), s.d.ts(before)); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, s.d.sql(pruneDeliveries), s.d.ts(before))
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	s.wrote()
	return int(n), nil
}
