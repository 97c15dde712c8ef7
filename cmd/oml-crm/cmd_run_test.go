package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// runConfig writes a configuration for `oml-crm run` with the demo file catalog, a SQLite
// queue in a temporary folder and an Asterisk that is not there (the daemon starts anyway).
func runConfig(t *testing.T, listen, sqlitePath string) string {
	t.Helper()
	catalog := filepath.Join(pgtest.ModuleRoot(t), "testdata", "catalog", "demo.yaml")
	body := fmt.Sprintf(`log: {level: info, format: json}
http: {listen: %q, shutdown_timeout: 5s}
asterisk: {source: ami, ami: {address: %q, secret: run-test-secret}}
catalog: {source: file, file: %q}
delivery: {store: sqlite, sqlite_path: %q}
agentws: {token_secret: "run-test-token-secret-0123456789abcdef"}
`, listen, freeAddr(t), catalog, sqlitePath)
	path := filepath.Join(t.TempDir(), "oml-crm.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Under systemd (Type=notify) `run` sends READY=1 on $NOTIFY_SOCKET once it serves HTTP,
// and STOPPING=1 when told to stop.
func TestRunNotifiesSystemd(t *testing.T) {
	bin := buildBinary(t)
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	addr := freeAddr(t)
	cmd := exec.Command(bin, "run", "--config", runConfig(t, addr, filepath.Join(t.TempDir(), "q.db")))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	next := func() string {
		buf := make([]byte, 128)
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification from oml-crm run: %v\n%s", err, stderr.String())
		}
		return string(buf[:n])
	}
	if got := next(); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// Ready means serving: /healthz answers now, without waiting.
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz right after READY=1: %v", err)
	}
	resp.Body.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "STOPPING=1" {
		t.Errorf("notification after SIGTERM %q, want STOPPING=1", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("run after SIGTERM: %v\n%s", err, stderr.String())
	}
}

// A fatal start-up error of `run` is printed once (today it was logged and printed again).
func TestRunFatalErrorPrintedOnce(t *testing.T) {
	bin := buildBinary(t)
	// A SQLite queue under a regular file cannot be created: run stops at start.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", runConfig(t, freeAddr(t), filepath.Join(blocker, "q.db")))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("run with an unusable sqlite_path: %v, want exit 1\n%s", err, stderr.String())
	}
	// One line, and the error wrapped once: the key is named once.
	if lines := strings.Count(strings.TrimSpace(stderr.String()), "\n") + 1; lines != 1 {
		t.Errorf("%d lines on stderr, want the error once:\n%s", lines, stderr.String())
	}
	if n := strings.Count(stderr.String(), "delivery.sqlite_path"); n != 1 {
		t.Errorf("delivery.sqlite_path named %d times, want once (wrapped once):\n%s", n, stderr.String())
	}
}
