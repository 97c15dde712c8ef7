// Package pgtest gives tests a fresh, private PostgreSQL database on the server named by
// OMLCRM_TEST_PG (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable),
// and loads OMniLeads' real 2.6.3 schema from ../shared/reference when it is present.
//
// Outside CI a missing server skips the test with a clear message; with CI=true it fails:
// CI never skips silently.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the admin connection URL used to create test databases.
const EnvVar = "OMLCRM_TEST_PG"

// DefaultURL is used when EnvVar is unset: the local server with trust auth.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL returns the admin URL, skipping (or failing under CI) when the server does not answer.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvVar)
	if u == "" {
		u = DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		unavailable(t, fmt.Sprintf("PostgreSQL at %s (set %s): %v", redact(u), EnvVar, err))
	}
	conn.Close(ctx)
	return u
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("required in CI: %s", why)
	}
	t.Skipf("skipping: %s", why)
}

// NewDatabase creates an empty database for this test and drops it when the test ends.
// It returns the database's connection URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "omlcrm_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to %s: %v", redact(admin), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvVar, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Exec runs a multi-statement SQL script (psql meta-commands such as \restrict are
// dropped) on the database at dbURL.
func Exec(t testing.TB, dbURL, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var sb strings.Builder
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(line, `\`) {
			continue
		}
		sb.WriteString(line)
		sb.WriteByte('\n')
	}
	if _, err := conn.PgConn().Exec(ctx, sb.String()).ReadAll(); err != nil {
		t.Fatalf("run SQL script: %v", err)
	}
}

// ExecFile runs the SQL script in path (see Exec).
func ExecFile(t testing.TB, dbURL, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	Exec(t, dbURL, string(b))
}

// SharedDir returns the ../shared folder beside the repository, skipping the test with a
// clear message when it is absent (CI always has it).
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(ModuleRoot(t), "..", "shared")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("required in CI: the shared folder %s is missing", dir)
		}
		t.Skipf("skipping: the shared folder %s is absent (it holds the OMniLeads reference data)", dir)
	}
	return dir
}

// NewOMniLeadsDatabase creates a test database loaded with OMniLeads' real 2.6.3 schema
// and sample rows from ../shared/reference, with the sample session made live.
func NewOMniLeadsDatabase(t testing.TB) string {
	t.Helper()
	ref := filepath.Join(SharedDir(t), "reference")
	db := NewDatabase(t)
	ExecFile(t, db, filepath.Join(ref, "omnileads-2.6.3-schema.sql"))
	ExecFile(t, db, filepath.Join(ref, "omnileads-2.6.3-sample.sql"))
	Exec(t, db, "UPDATE django_session SET expire_date = now() + interval '1 hour';")
	return db
}

// ModuleRoot returns the repository root (the folder holding go.mod).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the module root")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}
