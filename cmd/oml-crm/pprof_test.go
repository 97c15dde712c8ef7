package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Profiles are an operator's opt-in on a loopback address only: never on a public one.
func TestPprofOnlyOnLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:6060": true, "[::1]:6060": true, "localhost:6060": true,
		"0.0.0.0:6060": false, ":6060": false, "10.0.0.5:6060": false, "127.0.0.1": false,
	} {
		if err := checkPprofAddr(addr); (err == nil) != ok {
			t.Errorf("checkPprofAddr(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
	var stderr bytes.Buffer
	if code := runRun(context.Background(), []string{"--pprof", "0.0.0.0:6060"}, io.Discard, &stderr); code != 2 {
		t.Errorf("run --pprof 0.0.0.0:6060 exits %d, want 2 (configuration error)", code)
	}
	if !strings.Contains(stderr.String(), "--pprof") {
		t.Errorf("the error does not name --pprof: %s", stderr.String())
	}
}

func TestPprofServesProfiles(t *testing.T) {
	p, err := startPprof("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + p.Addr() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("goroutine profile: HTTP %d %.100s", resp.StatusCode, body)
	}
	if err := p.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, err := http.Get("http://" + p.Addr() + "/debug/pprof/"); err == nil {
		t.Error("still serving after stop")
	}
}
