package delivery

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// Run: go test -run '^$' -bench . -benchtime 1000x ./crmnotify/delivery/
// (figures in docs/bench/delivery.md).

func benchStores(b *testing.B, fn func(b *testing.B, store string)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, "sqlite:"+filepath.Join(b.TempDir(), "q.db")) })
	b.Run("postgres", func(b *testing.B) { fn(b, pgtest.NewDatabase(b)) })
}

func benchQueue(b *testing.B, store string, workers int) *Queue {
	// One site takes every worker: these benchmarks measure the queue's own ceiling, not
	// the per-site bound (delivery.max_in_flight_per_site, 8 by default).
	q, err := Open(context.Background(), Options{Store: store, Workers: workers, MaxInFlightPerSite: workers, Logger: zerolog.Nop(), UserAgent: "oml-crm/bench"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = q.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done; q.Close() })
	return q
}

func benchNotification(url string, i int) crmnotify.Notification {
	call := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
	site := &catalog.Site{ID: 1, URL: url, Trigger: catalog.TriggerServer, Method: catalog.MethodPOST, Format: catalog.FormatJSON}
	return crmnotify.Notification{ID: crmnotify.NotificationID(call, 1, 1), CallID: call, AgentID: 1,
		Campaign: &catalog.Campaign{ID: 1, Name: "bench"}, Site: site, ConnectedAt: time.Now(),
		Request: crmnotify.Request{Method: "POST", URL: url, ContentType: "application/json",
			Body: []byte(`{"idClient":"321321321","idCamp":"11","lang":"es","call":"` + call + `"}`)}}
}

// BenchmarkEnqueueToCRMReceived: enqueue → CRM handler latency at 200 deliveries/s with a
// healthy local CRM (target p99 ≤ 20 ms). Use -benchtime Nx (N deliveries, N/200 s).
func BenchmarkEnqueueToCRMReceived(b *testing.B) {
	benchStores(b, func(b *testing.B, store string) {
		var mu sync.Mutex
		started := map[string]time.Time{}
		var lat []time.Duration
		var got sync.WaitGroup
		crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			now := time.Now()
			io.Copy(io.Discard, r.Body)
			mu.Lock()
			if t, ok := started[r.Header.Get(HeaderIdempotencyKey)]; ok {
				lat = append(lat, now.Sub(t))
				got.Done()
			}
			mu.Unlock()
		}))
		defer crm.Close()
		q := benchQueue(b, store, 1000)
		// Warm up the connection and the database.
		if err := q.Enqueue(context.Background(), benchNotification(crm.URL, -1)); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		tick := time.NewTicker(5 * time.Millisecond) // 200/s
		defer tick.Stop()
		got.Add(b.N)
		b.ResetTimer()
		for i := range b.N {
			<-tick.C
			n := benchNotification(crm.URL, i)
			mu.Lock()
			started[n.ID] = time.Now()
			mu.Unlock()
			if err := q.Enqueue(context.Background(), n); err != nil {
				b.Fatal(err)
			}
		}
		got.Wait()
		b.StopTimer()
		slices.Sort(lat)
		p := func(f float64) float64 { return float64(lat[int(float64(len(lat)-1)*f)].Microseconds()) / 1000 }
		b.ReportMetric(p(0.50), "p50-ms")
		b.ReportMetric(p(0.99), "p99-ms")
		b.ReportMetric(p(1), "max-ms")
	})
}

// BenchmarkSlowCRMInFlight: a CRM that takes 200 ms per request; b.N deliveries enqueued
// as fast as 8 producers can. Reports the peak number in flight at the CRM, deliveries
// per second, and the heap after GC before and after (target ≥ 1,000 in flight).
func BenchmarkSlowCRMInFlight(b *testing.B) {
	benchStores(b, func(b *testing.B, store string) {
		var slow slowCRM
		var got sync.WaitGroup
		crm := httptest.NewUnstartedServer(slow.handler(got.Done))
		crm.Config.ReadHeaderTimeout = 10 * time.Second
		crm.Start()
		defer crm.Close()
		q := benchQueue(b, store, 1000)
		before := heapAfterGC()
		got.Add(b.N)
		b.ResetTimer()
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > int64(b.N) {
						return
					}
					if err := q.Enqueue(context.Background(), benchNotification(crm.URL, int(i))); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		enqueued := time.Since(start)
		got.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		// Let the last results commit before measuring the heap.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			st, err := q.Stats(context.Background())
			if err == nil && st.Depth == 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		after := heapAfterGC()
		b.ReportMetric(float64(slow.peak.Load()), "peak-in-flight")
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
		b.ReportMetric(float64(b.N)/enqueued.Seconds(), "enqueues/s")
		b.ReportMetric(float64(before)/(1<<20), "heap-before-MiB")
		b.ReportMetric(float64(after)/(1<<20), "heap-after-MiB")
	})
}

// BenchmarkSlowCRMBacklog: b.N deliveries already due in the outbox (a CRM outage is
// over, or the daemon restarts) drained by the sweeper into a CRM that takes 200 ms per
// request. Reports the peak in flight, deliveries/s and the heap after GC before,
// midway and after (memory must not grow with the backlog).
func BenchmarkSlowCRMBacklog(b *testing.B) {
	benchStores(b, func(b *testing.B, store string) {
		var slow slowCRM
		var done atomic.Int64
		var heapMid atomic.Uint64
		crm := httptest.NewServer(slow.handler(func() { done.Add(1) }))
		defer crm.Close()
		q, err := Open(context.Background(), Options{Store: store, Workers: 1000, Logger: zerolog.Nop(), PollInterval: 50 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		defer q.Close()
		for i := range b.N {
			d, err := q.newDelivery(benchNotification(crm.URL, i))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := q.store.insert(context.Background(), d, "", time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
		before := heapAfterGC()
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		b.ResetTimer()
		start := time.Now()
		go func() { defer close(stopped); _ = q.Run(ctx) }()
		for done.Load() < int64(b.N) {
			if heapMid.Load() == 0 && done.Load() >= int64(b.N/2) {
				heapMid.Store(heapAfterGC())
			}
			time.Sleep(10 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		for {
			st, err := q.Stats(context.Background())
			if err != nil || st.Depth == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		<-stopped
		after := heapAfterGC()
		b.ReportMetric(float64(slow.peak.Load()), "peak-in-flight")
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
		b.ReportMetric(float64(before)/(1<<20), "heap-before-MiB")
		b.ReportMetric(float64(heapMid.Load())/(1<<20), "heap-mid-MiB")
		b.ReportMetric(float64(after)/(1<<20), "heap-after-MiB")
	})
}

// slowCRM answers every request after 200 ms and tracks the peak number of requests in
// flight at once.
type slowCRM struct{ inflight, peak atomic.Int64 }

// handler serves the slow CRM; done is called after each request.
func (c *slowCRM) handler(done func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.inflight.Add(1)
		for {
			p := c.peak.Load()
			if n <= p || c.peak.CompareAndSwap(p, n) {
				break
			}
		}
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(200 * time.Millisecond)
		c.inflight.Add(-1)
		done()
	})
}

// heapAfterGC is the live heap after a collection.
func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
