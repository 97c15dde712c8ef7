//go:build !linux

package loadtest

import "time"

// sleepShort sleeps about d (with the timer granularity of the platform).
func sleepShort(d time.Duration) { time.Sleep(d) }
