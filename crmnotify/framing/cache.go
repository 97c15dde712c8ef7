package framing

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
)

// Cache keeps the verdict of each embedded site's probe for TTL (the catalog's refresh
// period: a site is probed once per refresh) and probes in the background: Lookup never
// waits on the network. At most MaxEntries URLs are remembered (the oldest probe is
// forgotten first) and at most queueSize probes wait. Run owns the probing goroutine.
type Cache struct {
	client *http.Client
	ttl    time.Duration
	max    int
	log    zerolog.Logger
	queue  chan string

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	result  Result
	probed  time.Time // zero: queued, not probed yet
	pending bool
}

// MaxEntries bounds the URLs a Cache remembers.
const MaxEntries = 1024

const queueSize = 64

// NewCache builds a cache probing with client (NewClient(nil) when nil) whose verdicts
// expire after ttl.
func NewCache(client *http.Client, ttl time.Duration, log zerolog.Logger) *Cache {
	if client == nil {
		client = NewClient(nil)
	}
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	return &Cache{client: client, ttl: ttl, max: MaxEntries, log: log, queue: make(chan string, queueSize), entries: map[string]*entry{}}
}

// Lookup returns the last verdict for site (Unknown when never probed or not embedded) and
// queues a probe when that verdict is missing or older than the TTL.
func (c *Cache) Lookup(site *catalog.Site) Verdict {
	target, ok := ProbeURL(site)
	if !ok {
		return Unknown
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[target]
	if e == nil {
		if len(c.entries) >= c.max {
			c.evictOldest()
		}
		e = &entry{result: Result{URL: target}}
		c.entries[target] = e
	}
	if !e.pending && (e.probed.IsZero() || time.Since(e.probed) >= c.ttl) {
		select {
		case c.queue <- target:
			e.pending = true
		default: // the queue is full: a later lookup asks again
		}
	}
	return e.result.Verdict
}

// FrameRefused reports whether site is known to refuse framing (agentws.FramePolicy).
func (c *Cache) FrameRefused(site *catalog.Site) bool { return c.Lookup(site) == Refused }

// Warm queues a probe of every embedded site of campaigns (at start, so the first pops
// already carry a verdict).
func (c *Cache) Warm(campaigns []*catalog.Campaign) {
	for _, cp := range campaigns {
		if cp != nil && cp.Active() && cp.Site != nil {
			c.Lookup(cp.Site)
		}
	}
}

func (c *Cache) evictOldest() {
	var oldest string
	var at time.Time
	for k, e := range c.entries {
		if e.pending {
			continue
		}
		if oldest == "" || e.probed.Before(at) {
			oldest, at = k, e.probed
		}
	}
	if oldest != "" {
		delete(c.entries, oldest)
	}
}

// Run probes queued URLs one at a time until ctx ends.
func (c *Cache) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case target := <-c.queue:
			res := Probe(ctx, c.client, target)
			c.mu.Lock()
			if e := c.entries[target]; e != nil {
				if res.Verdict != e.result.Verdict {
					c.log.Info().Str("url", target).Str("framing", res.Verdict.String()).Str("reason", res.Reason).Msg("CRM framing probed")
				}
				e.result, e.probed, e.pending = res, time.Now(), false
			}
			c.mu.Unlock()
		}
	}
}

// Result returns the last probe result of site's URL, and whether there is one.
func (c *Cache) Result(site *catalog.Site) (Result, bool) {
	target, ok := ProbeURL(site)
	if !ok {
		return Result{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[target]
	if e == nil || e.probed.IsZero() {
		return Result{}, false
	}
	return e.result, true
}
