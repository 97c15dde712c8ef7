package delivery

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
)

// Environment of the helper process (this test binary run again).
const (
	helperEnv      = "OMLCRM_DELIVERY_CRASH_HELPER"
	helperStoreEnv = "OMLCRM_DELIVERY_CRASH_STORE"
	helperURLEnv   = "OMLCRM_DELIVERY_CRASH_URL"
	helperCountEnv = "OMLCRM_DELIVERY_CRASH_COUNT"
)

// TestCrashHelper is not a test: run as a subprocess by TestKill9LosesNothing, it
// enqueues COUNT deliveries, printing "enqueued <id>" once each Enqueue returned, then
// runs the queue until it is killed.
func TestCrashHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process of TestKill9LosesNothing")
	}
	opts := testOptions(os.Getenv(helperStoreEnv))
	opts.MinBackoff, opts.MaxBackoff = 20*time.Millisecond, 50*time.Millisecond
	opts.InstanceID = "crash-test"
	q, err := Open(context.Background(), opts)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	go func() { _ = q.Run(context.Background()) }()
	count, _ := strconv.Atoi(os.Getenv(helperCountEnv))
	url := os.Getenv(helperURLEnv)
	for i := range count {
		n := crashNotification(url, i)
		if err := q.Enqueue(context.Background(), n); err != nil {
			fmt.Println("enqueue:", err)
			os.Exit(3)
		}
		fmt.Println("enqueued", n.ID)
	}
	fmt.Println("ready")
	select {} // until SIGKILL
}

func crashNotification(url string, i int) crmnotify.Notification {
	site := &catalog.Site{ID: 9, URL: url, Trigger: catalog.TriggerServer, Method: catalog.MethodPOST, Format: catalog.FormatText}
	callID := fmt.Sprintf("crash-%d", i)
	return crmnotify.Notification{ID: crmnotify.NotificationID(callID, 1, 9), CallID: callID, AgentID: 1,
		Campaign: &catalog.Campaign{ID: 3, Name: "crash"}, Site: site, ConnectedAt: time.Now(),
		Request: crmnotify.Request{Method: "POST", URL: url, ContentType: "text/plain; charset=utf-8", Body: []byte("call=" + callID)}}
}

// TestKill9LosesNothing enqueues deliveries in a subprocess while the CRM is down, kills
// it with SIGKILL, restarts it with the CRM up and checks that every delivery whose
// Enqueue returned arrives exactly once.
func TestKill9LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	forEachStore(t, func(t *testing.T, store string) {
		// Reserve a port, then free it: the CRM is down (connection refused).
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		url := "http://" + addr + "/notify"

		const count = 60
		acked := map[string]bool{}
		child := startHelper(t, store, url, count)
		for len(acked) < count/2 { // kill it halfway through enqueueing
			line, ok := child.line()
			if !ok {
				t.Fatalf("helper ended early: %s", child.rest())
			}
			if id, ok := strings.CutPrefix(line, "enqueued "); ok {
				acked[id] = true
			}
		}
		child.kill()
		// Whatever the helper printed before dying was acknowledged too.
		for _, line := range strings.Split(child.rest(), "\n") {
			if id, ok := strings.CutPrefix(line, "enqueued "); ok {
				acked[id] = true
			}
		}

		// The CRM comes up on the same address.
		var mu sync.Mutex
		got := map[string]int{}
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("CRM cannot listen on %s again: %v", addr, err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			mu.Lock()
			got[r.Header.Get(HeaderIdempotencyKey)]++
			mu.Unlock()
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })

		child = startHelper(t, store, url, 0)
		waitFor(t, "every acknowledged delivery to reach the CRM", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for id := range acked {
				if got[id] == 0 {
					return false
				}
			}
			return true
		})
		// Let in-flight retries (if any were wrongly scheduled) show up before checking.
		time.Sleep(200 * time.Millisecond)
		child.kill()
		mu.Lock()
		defer mu.Unlock()
		for id, n := range got {
			if n != 1 {
				t.Errorf("delivery %s reached the CRM %d times, want once", id, n)
			}
		}
		t.Logf("%d deliveries acknowledged before SIGKILL, %d received after restart", len(acked), len(got))
	})
}

type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{} // closed when the output is read to its end
}

func startHelper(t *testing.T, store, url string, count int) *helper {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperStoreEnv+"="+store, helperURLEnv+"="+url, helperCountEnv+"="+strconv.Itoa(count))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		defer close(h.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	t.Cleanup(h.kill)
	return h
}

func (h *helper) line() (string, bool) {
	select {
	case l, ok := <-h.lines:
		return l, ok
	case <-time.After(30 * time.Second):
		h.t.Fatal("helper silent for 30 s")
		return "", false
	}
}

// rest drains what the (dead) helper printed.
func (h *helper) rest() string {
	var b strings.Builder
	for l := range h.lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func (h *helper) kill() {
	if h.cmd.ProcessState != nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.done // read everything it printed before Wait closes the pipe
	_ = h.cmd.Wait()
}
