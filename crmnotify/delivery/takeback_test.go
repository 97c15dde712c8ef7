package delivery

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// TestTakesBackALateClaimOfTheKilledRun: a claim of this instance's previous, killed
// run that lands after this run started (its PostgreSQL session finished the claim's
// statement after the process died) is taken back within about a second, not after
// its lease; a claim this run made is left alone.
func TestTakesBackALateClaimOfTheKilledRun(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		ctx := context.Background()
		c := newCRM(t, false, nil)
		opts := testOptions(store)
		opts.InstanceID = "node-a"
		opts.Lease = time.Minute
		h := startQueue(t, opts)

		// The sweeper runs (its first take-back is done) once a delivery went through.
		first := notification(t, c.srv.URL+"/first", catalog.MethodPOST, catalog.FormatJSON, nil)
		enqueue(t, h.q, first)
		h.waitStatus(t, first.ID, StatusDelivered)

		insertClaimed := func(path string, leaseUntil time.Time) string {
			t.Helper()
			n := notification(t, c.srv.URL+path, catalog.MethodPOST, catalog.FormatJSON, nil)
			d, err := h.q.newDelivery(n)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := h.q.store.insert(ctx, d, opts.InstanceID, leaseUntil); err != nil || !ok {
				t.Fatalf("insert claimed delivery: %v, %v", ok, err)
			}
			return n.ID
		}
		// Claimed by the previous run a second before this one opened the queue.
		late := insertClaimed("/late", h.q.opened.Add(-time.Second).Add(opts.Lease))
		// Claimed by this run (an attempt in progress, as far as the store knows).
		ours := insertClaimed("/ours", h.q.clock.Now().Add(opts.Lease))

		h.waitStatus(t, late, StatusDelivered)
		if !strings.Contains(h.logs.String(), "taking back deliveries claimed before a restart") {
			t.Errorf("no log line for the take-back:\n%s", h.logs.String())
		}
		time.Sleep(1500 * time.Millisecond) // at least one more take-back pass
		d, err := h.q.Get(ctx, ours)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != StatusPending || d.Attempts != 0 {
			t.Errorf("this run's claim: status %s after %d attempts, want pending and untouched", d.Status, d.Attempts)
		}
		for _, r := range c.requests() {
			if r.Path == "/ours" {
				t.Errorf("this run's claimed delivery was sent by the take-back")
			}
		}
	})
}
