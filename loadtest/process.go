package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReadRSS returns the resident set size of process pid (0: this process) from
// /proc/<pid>/status (Linux).
func ReadRSS(pid int) (uint64, error) {
	p := procPath(pid, "status")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("reading RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("reading RSS: unexpected line %q in %s", line, p)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("reading RSS: %q in %s: %w", line, p, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("reading RSS: no VmRSS line in %s", p)
}

// ScrapeGauge reads one unlabelled sample (e.g. go_goroutines, process_resident_memory_bytes)
// from a Prometheus text exposition at url: how the load test samples a daemon running
// as another process.
func ScrapeGauge(ctx context.Context, client *http.Client, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("scraping %s: %w", name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scraping %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scraping %s from %s: HTTP %d", name, url, resp.StatusCode)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := []byte(name + " ")
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(string(line[len(prefix):]))
		if len(f) == 0 {
			break
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("scraping %s: value %q: %w", name, f[0], err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("scraping %s: %w", name, err)
	}
	return 0, fmt.Errorf("scraping %s from %s: no such sample", name, url)
}

// SelfRSS reads this process's RSS.
func SelfRSS() (uint64, error) { return ReadRSS(0) }

// SelfGoroutines counts this process's goroutines.
func SelfGoroutines() (int, error) { return runtime.NumGoroutine(), nil }

// ProcessSummary is what a Sampler saw.
type ProcessSummary struct {
	Samples        int
	RSSMax         uint64
	RSSLast        uint64
	GoroutinesMax  int
	GoroutinesLast int
	Errors         int
	LastError      string
}

// Sampler samples a process's RSS and goroutine count. The functions say how: SelfRSS
// and SelfGoroutines for the process running the test, ReadRSS(pid) and ScrapeGauge for
// a daemon in another process. Either may be nil (not sampled).
type Sampler struct {
	rss        func() (uint64, error)
	goroutines func() (int, error)

	mu sync.Mutex
	s  ProcessSummary
}

// NewSampler returns a sampler using the given readers.
func NewSampler(rss func() (uint64, error), goroutines func() (int, error)) *Sampler {
	return &Sampler{rss: rss, goroutines: goroutines}
}

// Sample takes one sample now.
func (s *Sampler) Sample() {
	var errs []error
	var rss uint64
	var g int
	var err error
	if s.rss != nil {
		if rss, err = s.rss(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.goroutines != nil {
		if g, err = s.goroutines(); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.s.Samples++
	if len(errs) > 0 {
		s.s.Errors++
		s.s.LastError = errors.Join(errs...).Error()
	}
	if s.rss != nil && rss > 0 {
		s.s.RSSLast = rss
		s.s.RSSMax = max(s.s.RSSMax, rss)
	}
	if s.goroutines != nil && g > 0 {
		s.s.GoroutinesLast = g
		s.s.GoroutinesMax = max(s.s.GoroutinesMax, g)
	}
}

// Run samples every interval until ctx ends, and once more at the end. The caller owns
// the goroutine it runs on.
func (s *Sampler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	s.Sample()
	for {
		select {
		case <-ctx.Done():
			s.Sample()
			return
		case <-t.C:
			s.Sample()
		}
	}
}

// Summary returns what was sampled so far.
func (s *Sampler) Summary() ProcessSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s
}
