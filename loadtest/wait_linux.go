//go:build linux

package loadtest

import (
	"syscall"
	"time"
)

// sleepShort blocks the calling thread for about d with nanosleep(2). Go's timers are
// woken by the netpoller, whose epoll wait counts whole milliseconds: a 100 µs timer
// fires ~1 ms late; nanosleep overshoots by ~80 µs (p50) on the reference machine
// (docs/benchmarks.md, "Generator punctuality"). An interrupted sleep returns early;
// waitUntil sleeps again.
func sleepShort(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}
