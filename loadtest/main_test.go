package loadtest

import (
	"os"
	"testing"
)

// wakeChildEnv names the address BenchmarkWakeUp's child dials.
const wakeChildEnv = "OMLCRM_WAKE_CHILD"

// TestMain lets the test binary be BenchmarkWakeUp's sleeping child process.
func TestMain(m *testing.M) {
	if addr := os.Getenv(wakeChildEnv); addr != "" {
		os.Exit(wakeChildMain(addr))
	}
	os.Exit(m.Run())
}
