package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// daemon is the oml-crm process under test.
type daemon struct {
	cmd     *exec.Cmd
	logPath string
	base    string // http://127.0.0.1:port
	exited  chan struct{}
	waitErr error // set before exited is closed
}

// startDaemon starts argv (the oml-crm binary and its arguments) with its output to
// logPath. The process is not tied to ctx: stop ends it.
func startDaemon(argv []string, logPath, base string) (*daemon, error) {
	if len(argv) == 0 {
		return nil, errors.New("no daemon command")
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the daemon log: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = daemonEnv()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting the daemon %s: %w", argv[0], err)
	}
	d := &daemon{cmd: cmd, logPath: logPath, base: base, exited: make(chan struct{})}
	go func() { // owned by the daemon: ends when the process does
		d.waitErr = cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	return d, nil
}

// daemonEnv is this process's environment without OMLCRM_* variables, so that nothing
// but the generated configuration file configures the daemon under test.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OMLCRM_") {
			env = append(env, kv)
		}
	}
	return env
}

// PID is the daemon's process id.
func (d *daemon) PID() int { return d.cmd.Process.Pid }

// waitReady polls /readyz until it answers 200, the daemon exits or ctx ends.
func (d *daemon) waitReady(ctx context.Context, client *http.Client) error {
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("/readyz answered %d", resp.StatusCode)
		} else {
			last = err.Error()
		}
		select {
		case <-d.exited:
			return fmt.Errorf("the daemon exited before it was ready (%v); its log: %s\n%s", d.waitErr, d.logPath, tail(d.logPath, 20))
		case <-ctx.Done():
			return fmt.Errorf("the daemon was not ready in time (last: %s); its log: %s\n%s", last, d.logPath, tail(d.logPath, 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits up to grace for a clean exit, then kills the process. It
// returns the exit status of a clean stop (nil: exit 0).
func (d *daemon) stop(grace time.Duration) error {
	select {
	case <-d.exited:
		return fmt.Errorf("the daemon had already exited: %v", d.waitErr)
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return d.waitErr
	case <-time.After(grace):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("the daemon did not exit within %s of SIGTERM and was killed", grace)
	}
}

// running reports whether the process is still alive.
func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
