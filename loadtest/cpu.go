package loadtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// architecture Go supports on Linux.
const clockTick = time.Second / 100

// ReadCPU returns the CPU time (user + system) process pid (0: this process) has used,
// from /proc/<pid>/stat (Linux).
func ReadCPU(pid int) (time.Duration, error) {
	user, system, err := ReadCPUTimes(pid)
	return user + system, err
}

// ReadCPUTimes returns the CPU time process pid (0: this process) has used in user space
// and in the kernel (system calls, page faults, and the network stack's work done on its
// behalf), from /proc/<pid>/stat (Linux).
func ReadCPUTimes(pid int) (user, system time.Duration, err error) {
	p := procPath(pid, "stat")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, 0, fmt.Errorf("reading CPU time: %w", err)
	}
	// The command name (field 2) is parenthesised and may hold spaces: fields are
	// counted after its closing parenthesis. utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("reading CPU time: malformed %s", p)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("reading CPU time: short %s", p)
	}
	var t [2]time.Duration
	for k, v := range f[11:13] { // fields 14 and 15 (field 3 is f[0])
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("reading CPU time from %s: %w", p, err)
		}
		t[k] = time.Duration(n) * clockTick
	}
	return t[0], t[1], nil
}

// LoadAverage returns the machine's 1-minute load average from /proc/loadavg (Linux): how
// busy the machine was besides the run.
func LoadAverage() (float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, fmt.Errorf("reading the load average: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("reading the load average: empty /proc/loadavg")
	}
	return strconv.ParseFloat(f[0], 64)
}

// TCPCounters are the machine's TCP loss counters (Linux /proc/net/snmp and netstat). On
// loopback a segment is only lost when a receive queue overflows, and the retransmission
// then waits for the 200 ms minimum RTO: a run whose tail sits near 200 ms and whose
// counters moved lost packets, not time in the daemon. They are machine-wide.
type TCPCounters struct {
	RetransSegs uint64 // Tcp: RetransSegs
	Timeouts    uint64 // TcpExt: TCPTimeouts (RTO expiries)
	RcvQDrops   uint64 // TcpExt: TCPRcvQDrop + TCPBacklogDrop
	LossProbes  uint64 // TcpExt: TCPLossProbes (tail loss probes: a lone segment unacknowledged)
}

// ReadTCPCounters reads the TCP loss counters.
func ReadTCPCounters() (TCPCounters, error) {
	vals := map[string]uint64{}
	for _, p := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		b, err := os.ReadFile(p)
		if err != nil {
			return TCPCounters{}, fmt.Errorf("reading TCP counters: %w", err)
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			keys, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			if len(keys) != len(values) || len(keys) == 0 || keys[0] != values[0] {
				continue
			}
			for j := 1; j < len(keys); j++ {
				if v, err := strconv.ParseUint(values[j], 10, 64); err == nil {
					vals[keys[0]+keys[j]] = v
				}
			}
		}
	}
	return TCPCounters{
		RetransSegs: vals["Tcp:RetransSegs"],
		Timeouts:    vals["TcpExt:TCPTimeouts"],
		RcvQDrops:   vals["TcpExt:TCPRcvQDrop"] + vals["TcpExt:TCPBacklogDrop"],
		LossProbes:  vals["TcpExt:TCPLossProbes"],
	}, nil
}

// Sub returns the counts from before to c.
func (c TCPCounters) Sub(before TCPCounters) TCPCounters {
	return TCPCounters{
		RetransSegs: c.RetransSegs - before.RetransSegs,
		Timeouts:    c.Timeouts - before.Timeouts,
		RcvQDrops:   c.RcvQDrops - before.RcvQDrops,
		LossProbes:  c.LossProbes - before.LossProbes,
	}
}

// ReadContextSwitches returns how many times the threads of process pid (0: this
// process) have left the CPU, voluntarily (to wait: a park, a read with nothing to read)
// or not, summed over /proc/<pid>/task/*/status. Each is a sleep and a wake-up: the count
// shows hand-offs and wake-ups that CPU time hides in its noise. Threads that already
// exited are not counted (Go keeps its threads).
func ReadContextSwitches(pid int) (uint64, error) {
	dir := procPath(pid, "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("reading context switches: %w", err)
	}
	var total uint64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/status")
		if err != nil {
			continue // the thread exited meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			rest, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:")
			if !ok {
				rest, ok = strings.CutPrefix(line, "nonvoluntary_ctxt_switches:")
			}
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("reading context switches from %s/%s/status: %w", dir, t.Name(), err)
			}
			total += n
		}
	}
	return total, nil
}

// procPath is /proc/<pid>/name, or /proc/self/name for pid 0.
func procPath(pid int, name string) string {
	if pid > 0 {
		return fmt.Sprintf("/proc/%d/%s", pid, name)
	}
	return "/proc/self/" + name
}
