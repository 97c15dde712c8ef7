package httpserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary the server of TestIdleFloodLeavesDescriptors.
const childEnv = "OMLCRM_HTTPSERVER_FD_CHILD"

// childNofile is the child's descriptor limit: a scaled-down copy of a daemon whose
// 20,000 descriptors were all taken by idle connections.
const childNofile = 512

// TestIdleFloodLeavesDescriptors holds three times the child's descriptor limit in idle
// keep-alive connections from one address and checks that, meanwhile, the child still
// accepts probes from another address and still opens outbound sockets (a CRM delivery).
func TestIdleFloodLeavesDescriptors(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("child mode")
	}
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "delivered") }))
	defer crm.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestFDChildServer$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child did not start: %v", err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening "))

	const idle = 3 * childNofile
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range idle {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			break // the kernel's backlog is full: what is held is enough
		}
		held = append(held, c)
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
	}
	t.Logf("%d idle connections opened", len(held))

	probe := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 5 {
		resp, err := probe.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("probe %d during the idle flood: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("probe %d during the idle flood: %d", i, resp.StatusCode)
		}
		resp, err = probe.Get("http://" + addr + "/deliver?to=" + url.QueryEscape(crm.URL))
		if err != nil {
			t.Fatalf("delivery %d during the idle flood: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "delivered" {
			t.Fatalf("delivery %d during the idle flood: %d %q", i, resp.StatusCode, body)
		}
	}
}

// TestFDChildServer is the child of TestIdleFloodLeavesDescriptors: a hardened server
// under a small descriptor limit, with caps derived from it, that delivers to a CRM on
// demand.
func TestFDChildServer(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestIdleFloodLeavesDescriptors")
	}
	lim := syscall.Rlimit{Cur: childNofile, Max: childNofile}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	total, _ := MaxConns(0, FDLimit())
	outbound := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/deliver", func(w http.ResponseWriter, r *http.Request) {
		resp, err := outbound.Get(r.URL.Query().Get("to"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	srv, capped := New(ln, mux, Config{
		Limits:            Limits{Max: total, PerAddr: MaxConnsPerClient(0, total), PlainHTTP: true},
		ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: time.Minute,
		MaxHeaderBytes: 8 << 10,
	}, nil)
	fmt.Printf("listening %s\n", ln.Addr())
	srv.Serve(capped) // until the parent kills it
}
