package delivery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/omlcrm/oml-crm/catalog"
)

// fill writes a file in dir until the filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	for len(buf) > 1 { // the last partial block too
		buf = buf[:len(buf)/2]
		f.Write(buf)
	}
	return p
}

// With the SQLite queue on a full filesystem (a real 16 MiB tmpfs), every connect is
// still accepted, held in memory, reported by Ping (/readyz) and the metrics, and
// delivered once space returns: none lost.
func TestFullDiskHoldsDeliveriesUntilSpaceReturns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting the small tmpfs that plays the full disk needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })

	c := newCRM(t, false, nil)
	opts := testOptions("sqlite:" + filepath.Join(dir, "q.db"))
	opts.HoldLimit = 1000
	h := startQueue(t, opts)
	first := notification(t, c.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, nil)
	enqueue(t, h.q, first)
	h.waitStatus(t, first.ID, StatusDelivered)

	filler := fill(t, dir)
	var ids []string
	for range 100 {
		n := notification(t, c.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, nil)
		n.Request.Body = []byte(`{"pad":"` + strings.Repeat("x", 2000) + `"}`)
		if err := h.q.Enqueue(context.Background(), n); err != nil {
			t.Fatalf("enqueue on a full disk: %v (the connect would be lost)", err)
		}
		ids = append(ids, n.ID)
	}
	held := h.q.heldCount()
	if held == 0 {
		t.Fatal("no delivery held: the full filesystem took every write")
	}
	err := h.q.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "delivery store") || !strings.Contains(err.Error(), "held in memory") {
		t.Fatalf("Ping on a full disk = %v, want not ready naming the store and the held count", err)
	}
	if v := testutil.ToFloat64(h.q.metrics.writeErrors); v == 0 {
		t.Error("omlcrm_delivery_store_write_errors_total not counted")
	}
	t.Logf("%d of 100 deliveries held while the disk was full", held)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		waitFor(t, "held delivery "+id+" written and delivered", func() bool {
			d, err := h.q.Get(context.Background(), id) // not found while still held
			return err == nil && d.Status == StatusDelivered
		})
	}
	if err := h.q.Ping(context.Background()); err != nil {
		t.Errorf("Ping after space returned: %v", err)
	}
	if v := testutil.ToFloat64(h.q.metrics.held); v != 0 {
		t.Errorf("omlcrm_delivery_held = %v after the flush", v)
	}
	keys := map[string]bool{}
	for _, r := range c.requests() {
		keys[r.IdempotencyKey] = true
	}
	if len(keys) != 101 {
		t.Errorf("CRM got %d distinct deliveries, want 101", len(keys))
	}
}

// A queue file deleted under the running daemon: deliveries go on (from the open file)
// but readiness says so, naming the file.
func TestVanishedQueueFileIsNotReady(t *testing.T) {
	c := newCRM(t, false, nil)
	path := filepath.Join(t.TempDir(), "q.db")
	h := startQueue(t, testOptions("sqlite:"+path))
	if err := h.q.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(p)
	}
	err := h.q.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "vanished") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Ping with the queue file gone = %v", err)
	}
	n := notification(t, c.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, nil)
	enqueue(t, h.q, n)
	h.waitStatus(t, n.ID, StatusDelivered)
	h.q.refreshStats(context.Background())
	if v := testutil.ToFloat64(h.q.metrics.storeWritable); v != 0 {
		t.Errorf("omlcrm_delivery_store_writable = %v with the file gone", v)
	}
}
