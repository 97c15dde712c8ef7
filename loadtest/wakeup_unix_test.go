//go:build unix

package loadtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/internal/rawsock"
)

// wakeRawEnv, when set, makes BenchmarkWakeUp's child read as the daemon reads
// Asterisk (internal/rawsock).
const wakeRawEnv = "OMLCRM_WAKE_RAW"

// wakeChildMain is the child of BenchmarkWakeUp: it reads the connection until EOF and
// prints how many reads it made after the first and the CPU time (user + system) it
// used from the first read's end to EOF.
func wakeChildMain(addr string) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if os.Getenv(wakeRawEnv) != "" {
		c = rawsock.Wrap(c)
	}
	buf := make([]byte, 4096)
	var first, last syscall.Rusage
	reads := 0
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
		if reads == 0 {
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &first)
		}
		reads++
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &last)
	cpu := func(r *syscall.Rusage) int64 { return r.Utime.Nano() + r.Stime.Nano() }
	fmt.Println(reads-1, cpu(&last)-cpu(&first))
	return 0
}

// BenchmarkWakeUp measures what one wake-up costs a Go process on this machine: a
// child (this test binary, with the runtime's defaults, as the daemon runs) sleeps in
// a read of a loopback TCP connection, is woken by a small message a millisecond after
// the last, reads it and sleeps again. cpu-µs/wake is the child's CPU time (user +
// system) per read: what the daemon pays each time a peer's write finds it asleep,
// before it does any work. The load test reports how many such writes reach the daemon
// per connect (peer writes per connect): each times the wake-up of the read that takes
// it is the daemon's floor per connect (docs/benchmarks.md, round 9).
//
//	go test ./loadtest -run '^$' -bench BenchmarkWakeUp -benchtime 5000x -count 5
func BenchmarkWakeUp(b *testing.B) {
	// conn: the net.Conn read the daemon does on agents' websockets and the CRM's
	// answers; raw: the read(2) it does on the Asterisk socket, which does not wake the
	// runtime's monitor thread (internal/rawsock).
	b.Run("conn", func(b *testing.B) { benchWakeUp(b, false) })
	b.Run("raw", func(b *testing.B) { benchWakeUp(b, true) })
}

func benchWakeUp(b *testing.B, raw bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), wakeChildEnv+"="+ln.Addr().String())
	if raw {
		cmd.Env = append(cmd.Env, wakeRawEnv+"=1")
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // after Wait it is a no-op
	conn, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	// One event of the size Asterisk writes most, then one more per millisecond: the
	// child is asleep again long before the next (a wake-up takes tens of µs).
	msg := []byte("Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/1001-00000001\r\nApplication: Set\r\n\r\n")
	const gap = time.Millisecond
	if _, err := conn.Write(msg); err != nil {
		b.Fatal(err)
	}
	time.Sleep(10 * gap)
	b.ResetTimer()
	for range b.N {
		time.Sleep(gap) // never two back to back, which would be one wake-up
		if _, err := conn.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	time.Sleep(10 * gap)
	conn.Close()
	var reads, cpuNS int64
	if _, err := fmt.Fscan(bufio.NewReader(out), &reads, &cpuNS); err != nil {
		b.Fatalf("reading the child's counts: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("child: %v", err)
	}
	if reads < int64(b.N)*9/10 || reads == 0 {
		b.Fatalf("the child read %d times for %d messages: they were not one wake-up each", reads, b.N)
	}
	b.ReportMetric(float64(cpuNS)/1e3/float64(reads), "cpu-µs/wake")
	b.ReportMetric(float64(reads)/float64(b.N), "reads/msg")
}
