//go:build !unix

package loadtest

func wakeChildMain(string) int { return 2 }
