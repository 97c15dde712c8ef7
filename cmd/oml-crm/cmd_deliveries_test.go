package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/crmnotify/delivery"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

func deliveriesRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := dispatch(context.Background(), append([]string{"deliveries"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func deliveriesWaitStatus(t *testing.T, q *delivery.Queue, id string, want delivery.Status) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := q.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s is %s, want %s", id, d.Status, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeliveriesCLI runs list, show, retry and retry --dead against a daemon-side queue
// on SQLite and on PostgreSQL.
func TestDeliveriesCLI(t *testing.T) {
	stores := map[string]func(t *testing.T) (flag, spec string){
		"sqlite": func(t *testing.T) (string, string) {
			p := filepath.Join(t.TempDir(), "deliveries.db")
			return "sqlite:" + p, "sqlite:" + p
		},
		"postgres": func(t *testing.T) (string, string) {
			u := pgtest.NewDatabase(t)
			return u, u
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			storeFlag, spec := mk(t)
			var healthy atomic.Bool
			crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if healthy.Load() {
					w.WriteHeader(204)
					return
				}
				w.WriteHeader(404)
				fmt.Fprint(w, "no such hook")
			}))
			defer crm.Close()
			q, err := delivery.Open(context.Background(), delivery.Options{Store: spec, MinBackoff: time.Millisecond,
				MaxBackoff: 5 * time.Millisecond, PollInterval: 10 * time.Millisecond, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = q.Run(ctx) }()
			defer func() { cancel(); <-done; q.Close() }()

			var ids []string
			for i := range 3 {
				site := &catalog.Site{ID: 4, URL: crm.URL + "/hook", Trigger: catalog.TriggerServer, Method: catalog.MethodPOST, Format: catalog.FormatJSON}
				call := fmt.Sprintf("cli-%d", i)
				n := crmnotify.Notification{ID: crmnotify.NotificationID(call, 2, 4), CallID: call, AgentID: 2,
					Campaign: &catalog.Campaign{ID: 20 + i%2, Name: "Ventas"}, Site: site, ConnectedAt: time.Now(),
					Request: crmnotify.Request{Method: "POST", URL: site.URL, ContentType: "application/json", Body: []byte(`{"call":"` + call + `"}`)}}
				if err := q.Enqueue(context.Background(), n); err != nil {
					t.Fatal(err)
				}
				deliveriesWaitStatus(t, q, n.ID, delivery.StatusDead)
				ids = append(ids, n.ID)
			}

			code, out, errOut := deliveriesRun(t, "list", "--store", storeFlag, "--status", "dead")
			if code != 0 || strings.Count(out, " dead ") != 3 || !strings.Contains(out, "STATUS") {
				t.Fatalf("list --status dead: %d\n%s%s", code, out, errOut)
			}
			code, out, _ = deliveriesRun(t, "list", "--store", storeFlag, "--campaign", "21", "--json")
			var listed []map[string]any
			if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 1 || listed[0]["id"] != ids[1] {
				t.Fatalf("list --campaign 21 --json: %d %s", code, out)
			}
			code, out, _ = deliveriesRun(t, "show", "--store", storeFlag, ids[0])
			if code != 0 || !strings.Contains(out, "no such hook") || !strings.Contains(out, "404") || !strings.Contains(out, ids[0]) {
				t.Fatalf("show: %d\n%s", code, out)
			}

			healthy.Store(true)
			code, out, errOut = deliveriesRun(t, "retry", "--store", storeFlag, ids[0])
			if code != 0 || !strings.Contains(out, "pending") {
				t.Fatalf("retry: %d %s %s", code, out, errOut)
			}
			deliveriesWaitStatus(t, q, ids[0], delivery.StatusDelivered)
			code, _, errOut = deliveriesRun(t, "retry", "--store", storeFlag, ids[0])
			if code != 1 || !strings.Contains(errOut, "delivered") {
				t.Errorf("retry of a delivered one: %d %s", code, errOut)
			}
			code, out, errOut = deliveriesRun(t, "retry", "--store", storeFlag, "--dead")
			if code != 0 || !strings.HasPrefix(out, "2 dead") {
				t.Fatalf("retry --dead: %d %s %s", code, out, errOut)
			}
			for _, id := range ids[1:] {
				deliveriesWaitStatus(t, q, id, delivery.StatusDelivered)
			}
			code, out, _ = deliveriesRun(t, "show", "--store", storeFlag, "--json", ids[2])
			var shown map[string]any
			if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown["status"] != "delivered" ||
				len(shown["attempt_log"].([]any)) != 2 || shown["body"] != `{"call":"cli-2"}` {
				t.Fatalf("show --json: %d %s", code, out)
			}
		})
	}
}

func TestDeliveriesCLIConfigAndErrors(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "out.db")
	q, err := delivery.Open(context.Background(), delivery.Options{Store: db, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	cfg := filepath.Join(dir, "oml-crm.yaml")
	if err := os.WriteFile(cfg, []byte("delivery:\n  store: sqlite\n  sqlite_path: "+db+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := deliveriesRun(t, "list", "--config", cfg); code != 0 || !strings.Contains(out, "STATUS") {
		t.Errorf("list --config: %d %s %s", code, out, errOut)
	}
	if code, out, _ := deliveriesRun(t, "list", "--help"); code != 0 || !strings.Contains(out, "--status") {
		t.Errorf("list --help: %d %s", code, out)
	}
	if code, _, errOut := deliveriesRun(t, "list", "--store", db, "--status", "lost"); code != 2 || !strings.Contains(errOut, "lost") {
		t.Errorf("bad status: %d %s", code, errOut)
	}
	if code, _, errOut := deliveriesRun(t, "show", "--store", db, "nope"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("show unknown: %d %s", code, errOut)
	}
	if code, _, _ := deliveriesRun(t, "retry", "--store", db); code != 2 {
		t.Errorf("retry without id: %d", code)
	}
	if code, _, errOut := deliveriesRun(t, "list", "--store", filepath.Join(dir, "missing.db")); code != 1 || !strings.Contains(errOut, "no delivery outbox") {
		t.Errorf("missing outbox: %d %s", code, errOut)
	}
	if code, _, _ := deliveriesRun(t, "frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: %d", code)
	}
}
