package daemon

// In-process tests of the daemon's composition (Start): the metrics registry of
// every part together, readiness of the delivery store after start-up, and the refresh
// of the dialplan variables the tracker reads on demand.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	omlcrm "github.com/omlcrm/oml-crm"
	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/catalog/file"
	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/health"
	"github.com/omlcrm/oml-crm/internal/logtest"
	"github.com/omlcrm/oml-crm/internal/pgtest"
	"github.com/omlcrm/oml-crm/internal/redistest"
)

// deadAddr is a loopback address nobody listens on: the Asterisk clients keep retrying
// it in the background, which is all these tests need of them.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// testDaemonConfig is a loopback daemon configuration: the demo file catalog, a SQLite
// queue in a temporary folder, AMI (and ARI) at an address nobody listens on.
func testDaemonConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	ast := deadAddr(t)
	cfg.Asterisk.AMI.Address = ast
	cfg.Asterisk.AMI.Secret = "daemon-test-ami-secret"
	cfg.Asterisk.ARI.URL = "http://" + ast
	cfg.Asterisk.ARI.Username = "daemon-test"
	cfg.Asterisk.ARI.Password = "daemon-test-ari-secret"
	cfg.Catalog.Source = "file"
	cfg.Catalog.File = filepath.Join(pgtest.ModuleRoot(t), "testdata", "catalog", "demo.yaml")
	cfg.Delivery.SQLitePath = filepath.Join(t.TempDir(), "deliveries.db")
	cfg.AgentWS.TokenSecret = "daemon-test-token-secret-0123456789"
	return cfg
}

// startTestDaemon starts the daemon in this process and shuts it down when the test ends.
func startTestDaemon(t *testing.T, o Options) *Daemon {
	t.Helper()
	o.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { d.Shutdown(o.Config.HTTP.ShutdownTimeout) })
	return d
}

// readiness GETs /readyz?verbose.
func readiness(t *testing.T, d *Daemon) (int, health.Status) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(d.BaseURL() + "/readyz?verbose")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var s health.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("/readyz body: %v", err)
	}
	return resp.StatusCode, s
}

// The start line says how many threads run Go code (GOMAXPROCS: Go's default, the
// cgroup's CPU limit, or the environment's), which decides the CPU per connect and the
// latency under contention (docs/operations.md).
func TestDaemonStartLineNamesMaxProcs(t *testing.T) {
	var logs logtest.Buffer
	cfg := testDaemonConfig(t)
	d, err := Start(context.Background(), Options{Config: cfg, Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	d.Shutdown(cfg.HTTP.ShutdownTimeout)
	for _, line := range strings.Split(logs.String(), "\n") {
		var l struct {
			Message  string `json:"message"`
			MaxProcs *int   `json:"max_procs"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Message != "oml-crm started" {
			continue
		}
		if l.MaxProcs == nil || *l.MaxProcs != runtime.GOMAXPROCS(0) {
			t.Errorf("start line %s: want max_procs %d", line, runtime.GOMAXPROCS(0))
		}
		return
	}
	t.Fatalf("no start line in:\n%s", logs.String())
}

// Every part's metrics register on the one registry without a name clash (a clash fails
// start-up), and /metrics serves them all.
func TestDaemonMetricsRegistry(t *testing.T) {
	common := []string{
		"go_goroutines", "go_sched_goroutines_created_goroutines_total", "go_sched_gomaxprocs_threads", "process_open_fds", "omlcrm_dependency_up",
		"omlcrm_connects_total", "omlcrm_dispatch_calls_ended_total", // dispatcher
		"omlcrm_calls_ended_total", "omlcrm_calls_channels", // tracker
		"omlcrm_delivery_queue_depth", "omlcrm_agentws_connections",
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, cfg *config.Config)
		want  []string
	}{
		{"ami, file catalog, sqlite queue, one instance", func(*testing.T, *config.Config) {},
			[]string{"omlcrm_ami_connected"}},
		{"ari, omldb catalog, postgres queue, redis cluster", func(t *testing.T, cfg *config.Config) {
			redisURL, prefix := redistest.New(t, "omlcrm-e2e")
			db := pgtest.NewDatabase(t)
			cfg.Asterisk.Source = "ari"
			cfg.Catalog.Source = "omldb"
			cfg.Database.URL = config.SecretURL(db)
			cfg.Delivery.Store = "postgres"
			cfg.Delivery.PostgresURL = config.SecretURL(db)
			cfg.Cluster.RedisURL = config.SecretURL(redisURL)
			cfg.Cluster.RedisPrefix = prefix
		}, []string{"omlcrm_ari_connected", "omlcrm_catalog_db_queries_total"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testDaemonConfig(t)
			c.setup(t, cfg)
			d := startTestDaemon(t, Options{Config: cfg})
			// The PostgreSQL queue and the cluster hub register once they are up.
			waitFor(t, 20*time.Second, "the delivery queue and the agent hub", func() bool {
				return d.queue.get() != nil && d.hub.get() != nil
			})

			resp, err := http.Get(d.BaseURL() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/metrics: %d\n%s", resp.StatusCode, body)
			}
			mfs, err := d.reg.Gather()
			if err != nil {
				t.Fatalf("gathering the daemon's metrics: %v", err)
			}
			have := map[string]bool{}
			for _, mf := range mfs {
				have[mf.GetName()] = true
			}
			for _, name := range append(common, c.want...) {
				if !have[name] {
					t.Errorf("metric %s missing from the daemon's registry", name)
				}
				if !strings.Contains(string(body), "\n# TYPE "+name+" ") {
					t.Errorf("metric %s missing from /metrics", name)
				}
			}
		})
	}
}

// A PostgreSQL delivery queue that goes away after it opened shows in /readyz under
// "delivery_store", and recovers with the database.
func TestDaemonReadyzDeliveryStoreDown(t *testing.T) {
	db := pgtest.NewDatabase(t)
	admin := pgtest.AdminURL(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	allow := func(on bool) {
		pgtest.Exec(t, admin, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS %t`, name, on))
	}
	t.Cleanup(func() { allow(true) })

	cfg := testDaemonConfig(t)
	cfg.Delivery.Store = "postgres"
	cfg.Delivery.PostgresURL = config.SecretURL(db)
	d := startTestDaemon(t, Options{Config: cfg})
	storeOK := func() (bool, string) {
		_, s := readiness(t, d)
		dep, ok := s.Dependencies[depDeliveryStore]
		return ok && dep.OK, dep.Detail
	}
	waitFor(t, 20*time.Second, "the delivery store to open", func() bool { ok, _ := storeOK(); return ok })

	// PostgreSQL stops serving the outbox's database: its connections are cut and new
	// ones refused.
	allow(false)
	pgtest.Exec(t, admin, fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid()`, name))
	code, s := readiness(t, d)
	if dep := s.Dependencies[depDeliveryStore]; code != http.StatusServiceUnavailable || dep.OK || !dep.Required || dep.Detail == "" {
		t.Fatalf("/readyz with the outbox database down: %d, delivery store %+v; want 503 naming it", code, dep)
	}
	resp, err := http.Get(d.BaseURL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var missing map[string]string
	err = json.NewDecoder(resp.Body).Decode(&missing)
	resp.Body.Close()
	if _, named := missing[depDeliveryStore]; err != nil || !named {
		t.Errorf("/readyz = %v (%v), want it to name %q", missing, err, depDeliveryStore)
	}

	allow(true)
	waitFor(t, 20*time.Second, "the delivery store to answer again", func() bool { ok, _ := storeOK(); return ok })
}

// flakyCatalog fails Campaigns while down is set, like a catalog database that is not
// up yet.
type flakyCatalog struct {
	catalog.Catalog
	down atomic.Bool
}

func (f *flakyCatalog) Campaigns(ctx context.Context) ([]*catalog.Campaign, error) {
	if f.down.Load() {
		return nil, errors.New("catalog database down")
	}
	return f.Catalog.Campaigns(ctx)
}

// The tracker's dialplan variables read on demand come from the catalog even when it did
// not answer at start-up.
func TestDaemonRefreshesDialplanVars(t *testing.T) {
	demo, err := file.Parse("demo.yaml", omlcrm.DemoCatalog)
	if err != nil {
		t.Fatal(err)
	}
	cat := &flakyCatalog{Catalog: demo}
	cat.down.Store(true)
	cfg := testDaemonConfig(t)
	cfg.Catalog.CacheTTL = 10 * time.Millisecond // the refresh period (at least a second)
	d := startTestDaemon(t, Options{Config: cfg, Catalog: cat})
	if got := d.tracker.DialplanVars(); len(got) != 0 {
		t.Fatalf("dialplan variables %v while the catalog is down", got)
	}
	cat.down.Store(false)
	want := []string{"Omlcrmticket"} // the demo catalog's dialplan parameter source
	waitFor(t, 20*time.Second, "the dialplan variables from the catalog", func() bool {
		return reflect.DeepEqual(d.tracker.DialplanVars(), want)
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
