//go:build !unix

package loadtest

const wakeChildEnv = "OMLCRM_WAKE_CHILD"

func wakeChildMain(string) int { return 2 }
