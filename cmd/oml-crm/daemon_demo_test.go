package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The demo from an empty folder: a bounded run accounts for every call and exits 0.
func TestDemoBoundedRun(t *testing.T) {
	bin := buildBinary(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "demo", "--calls", "24", "--rate", "20", "--listen", "127.0.0.1:0")
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"/agent?agent=1&token=", "/crm/log", "connected → delivered", "connected → popped",
		"connected → skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// 24 calls over the 12 demo campaigns: two rounds of 5 server, 5 pop and 2 skipped
	// campaigns, every inbound call answered (the mix adds holds in the second round).
	m := regexp.MustCompile(`summary: (\d+) calls, (\d+) connected, (\d+) delivered, (\d+) popped, (\d+) skipped, (\d+) failed`).
		FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line:\n%s", out)
	}
	if got := strings.Join(m[1:], " "); got != "24 24 10 10 4 0" {
		t.Errorf("summary counts (calls connected delivered popped skipped failed) = %s, want 24 24 10 10 4 0\n%s", got, out)
	}
	if n := strings.Count(out, ": connected → "); n != 24 {
		t.Errorf("%d call lines, want 24", n)
	}
}

func TestDemoFlags(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "demo", "--help").Output()
	if err != nil || !strings.Contains(string(out), "--calls") || !strings.Contains(string(out), "--listen") {
		t.Errorf("demo --help: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"--calls", "-1"}, {"--rate", "0"}, {"--bogus"}, {"extra"}} {
		cmd := exec.Command(bin, append([]string{"demo"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || stderr.Len() == 0 {
			t.Errorf("demo %v: %v, stderr %q; want exit 2 with a message", args, err, stderr.String())
		}
	}
}
