package delivery

import (
	"context"
	"testing"
)

// The disposition cursor: absent at first, advanced, never moved back, kept across a
// reopen; on SQLite and PostgreSQL.
func TestDispositionCursorStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		ctx := context.Background()
		h := startQueue(t, testOptions(store))
		if _, ok, err := h.q.Cursor(ctx, "c"); ok || err != nil {
			t.Fatalf("new cursor: ok %v err %v", ok, err)
		}
		for _, v := range []int64{5, 9, 7} {
			if err := h.q.AdvanceCursor(ctx, "c", v); err != nil {
				t.Fatal(err)
			}
		}
		if v, ok, err := h.q.Cursor(ctx, "c"); !ok || err != nil || v != 9 {
			t.Fatalf("cursor = %d %v %v, want 9", v, ok, err)
		}
		q2, err := Open(ctx, testOptions(store))
		if err != nil {
			t.Fatal(err)
		}
		defer q2.Close()
		if v, _, _ := q2.Cursor(ctx, "c"); v != 9 {
			t.Errorf("reopened cursor = %d, want 9", v)
		}
	})
}
