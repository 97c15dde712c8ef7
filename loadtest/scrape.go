package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// ScrapeFamily reads every sample of one metric family (e.g. omlcrm_ami_events_total,
// labelled by event) from a Prometheus text exposition at url, keyed by the label set as
// written ("" for an unlabelled sample; `{event="Hangup"}`). A family with no sample is
// an empty map, not an error: a counter vector that has not counted yet exposes nothing.
func ScrapeFamily(ctx context.Context, client *http.Client, url, name string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s from %s: HTTP %d", name, url, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another family, or one whose name starts with this one
		}
		labels := ""
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return nil, fmt.Errorf("scraping %s: malformed line %q", name, line)
			}
			labels, rest = rest[:end+1], rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("scraping %s: no value in %q", name, line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("scraping %s: value %q: %w", name, f[0], err)
		}
		out[labels] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scraping %s: %w", name, err)
	}
	return out, nil
}

// ScrapeSum is the sum of every sample of a metric family (0 when it has none).
func ScrapeSum(ctx context.Context, client *http.Client, url, name string) (float64, error) {
	m, err := ScrapeFamily(ctx, client, url, name)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, v := range m {
		sum += v
	}
	return sum, nil
}
