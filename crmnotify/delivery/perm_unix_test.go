//go:build unix

package delivery

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
)

// The queue holds call ids, phone numbers and CRM bodies: its files are 0600 even when
// the daemon runs with umask 0 (and an older world-readable queue is narrowed).
func TestSQLiteFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	for _, name := range []string{"new.db", "old.db"} {
		path := filepath.Join(dir, name)
		if name == "old.db" {
			if err := os.WriteFile(path, nil, 0o666); err != nil {
				t.Fatal(err)
			}
		}
		q, err := Open(context.Background(), Options{Store: "sqlite:" + path, Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		n := notification(t, "http://127.0.0.1:1/crm", catalog.MethodGET, catalog.FormatForm, nil)
		if err := q.Enqueue(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s is %v, want -rw-------", p, st.Mode().Perm())
			}
		}
		q.Close()
	}
}
