package demo

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// A taken listen address: asked for explicitly it is an error; as the default the demo
// says so and runs on a free port.
func TestListenTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	run := func(explicit bool) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := Run(context.Background(), Options{
			Calls: 2, Rate: 20, Listen: taken.Addr().String(), ListenExplicit: explicit, Drain: 10 * time.Second,
			Logger: zerolog.Nop(), Version: "test", Stdout: &stdout, Stderr: &stderr,
		})
		return code, stdout.String(), stderr.String()
	}
	code, _, stderr := run(true)
	if code != 1 || !strings.Contains(stderr, "--listen "+taken.Addr().String()) {
		t.Errorf("explicit taken address: exit %d, stderr %q; want 1 naming --listen", code, stderr)
	}
	code, stdout, stderr := run(false)
	if code != 0 || !strings.Contains(stdout, taken.Addr().String()+" is not available") {
		t.Fatalf("default taken address: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	m := regexp.MustCompile(`summary: (\d+) calls, (\d+) connected`).FindStringSubmatch(stdout)
	if m == nil || m[1] != "2" || m[2] != "2" {
		t.Errorf("summary of 2 calls: %v\n%s", m, stdout)
	}
}
