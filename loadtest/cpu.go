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
	p := "/proc/self/stat"
	if pid > 0 {
		p = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("reading CPU time: %w", err)
	}
	// The command name (field 2) is parenthesised and may hold spaces: fields are
	// counted after its closing parenthesis. utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("reading CPU time: malformed %s", p)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("reading CPU time: short %s", p)
	}
	var total time.Duration
	for _, v := range f[11:13] { // fields 14 and 15 (field 3 is f[0])
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reading CPU time from %s: %w", p, err)
		}
		total += time.Duration(n) * clockTick
	}
	return total, nil
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
