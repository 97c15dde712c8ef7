package loadtest

import (
	"os"
	"testing"
)

// TestMain lets the test binary be BenchmarkWakeUp's sleeping child process.
func TestMain(m *testing.M) {
	if addr := os.Getenv(wakeChildEnv); addr != "" {
		os.Exit(wakeChildMain(addr))
	}
	os.Exit(m.Run())
}
