package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// takeCPUProfile waits delay, then asks the daemon's pprof server (base: http://host:port)
// for a CPU profile of secs seconds and writes it to path. It returns "" or what went
// wrong: a missing profile does not spoil the run's figures.
func takeCPUProfile(ctx context.Context, base string, delay time.Duration, secs int, path string) string {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return "the run ended before the profile started"
	case <-t.C:
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Sprintf("taking the daemon's CPU profile: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Sprintf("taking the daemon's CPU profile: GET %s: HTTP %d %s", url, resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Sprintf("writing the CPU profile: %v", err)
	}
	if _, err := io.Copy(f, io.LimitReader(resp.Body, 256<<20)); err != nil {
		f.Close()
		return fmt.Sprintf("writing the CPU profile %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Sprintf("writing the CPU profile %s: %v", path, err)
	}
	return ""
}
