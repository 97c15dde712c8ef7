package delivery

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/crmnotify"
)

// BenchmarkStorePerDelivery is one server delivery's store work as the daemon does it:
// the enqueue's insert (claimed by this instance), then finish as delivered with its
// one attempt record, against a file-backed SQLite store (synchronous=NORMAL, WAL).
// Deterministic inputs (ids, times, bodies) so that callgrind counts repeat:
//
//	go test -c -o /tmp/d.test ./crmnotify/delivery/
//	GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1,gcstoptheworld=1 valgrind --tool=callgrind \
//	  --callgrind-out-file=F /tmp/d.test -test.run '^$' -test.bench 'StorePerDelivery$' -test.benchtime Nx
//
// per delivery = (Ir(2N) - Ir(N)) / N (docs/benchmarks.md, Issue 16).
func BenchmarkStorePerDelivery(b *testing.B) {
	ctx := context.Background()
	s, err := openSQLite(ctx, filepath.Join(b.TempDir(), "q.db"), "", zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	base := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	one := func(i int) { storeOneDelivery(b, ctx, s, base, i) }
	for i := range 100 { // prepared statements, a few pages of each b-tree
		one(-1 - i)
	}
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		one(i)
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	// The slowest deliveries are those that waited for a checkpoint (two fsyncs).
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}

// storeOneDelivery makes the store work of the i-th delivery: its insert (claimed by
// this instance), then its finish as delivered with one attempt record.
func storeOneDelivery(tb testing.TB, ctx context.Context, s *sqlStore, base time.Time, i int) {
	tb.Helper()
	d := benchStoreDelivery(base, i)
	ok, err := s.insert(ctx, d, "bench-instance", d.CreatedAt.Add(time.Minute))
	if err != nil || !ok {
		tb.Fatalf("insert %d: %v (inserted %v)", i, err, ok)
	}
	at := d.CreatedAt.Add(3 * time.Millisecond)
	att := []Attempt{{At: at, Status: 200, Latency: 2 * time.Millisecond, Response: `{"ok":true}`}}
	r := result{status: StatusDelivered, lastStatus: 200, deliveredAt: at.Add(2 * time.Millisecond), latency: 40 * time.Millisecond}
	if err := s.finish(ctx, d.ID, "bench-instance", att, r); err != nil {
		tb.Fatalf("finish %d: %v", i, err)
	}
}

// benchStoreDelivery is the i-th delivery of BenchmarkStorePerDelivery: the shape of
// the load test's server deliveries (a JSON POST with a few headers), a hashed id.
func benchStoreDelivery(base time.Time, i int) *Delivery {
	call := fmt.Sprintf("1733227200.%d", 100000+i)
	at := base.Add(time.Duration(i) * 5 * time.Millisecond)
	return &Delivery{
		ID: crmnotify.NotificationID(call, 1+i%2000, 3), CampaignID: 11, CampaignName: "ventas-entrantes", SiteID: 3, CallID: call, AgentID: 1 + i%2000,
		Status: StatusPending, Method: http.MethodPost, URL: "http://127.0.0.1:18080/crm/pop",
		Header:      http.Header{"X-Omlcrm-Campaign": {"11"}, "Authorization": {"Bearer 0123456789abcdef"}},
		ContentType: "application/json",
		Body:        []byte(`{"idClient":"321321321","idCamp":"11","lang":"es","call":"` + call + `","agent":"agent-0042","phone":"+5493515550101"}`),
		ConnectedAt: at.Add(-40 * time.Millisecond), CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour), NextAttemptAt: at,
	}
}
