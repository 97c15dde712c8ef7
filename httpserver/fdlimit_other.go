//go:build !unix

package httpserver

// FDLimit is 0 (unknown) where RLIMIT_NOFILE does not exist.
func FDLimit() uint64 { return 0 }
