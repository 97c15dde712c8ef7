package omldb

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// ttlCache holds values for a TTL. Concurrent misses of one key share a single load;
// when a refresh fails or is slow, the expired value is served (see get).
type ttlCache[V any] struct {
	ttl                                   atomic.Int64 // time.Duration; changes at run time (SetCacheTTL)
	staleWait, retryBackoff, queryTimeout time.Duration
	now                                   func() time.Time    // time.Now; tests move it forward
	counted                               func(result string) // counts lookups: hit, miss, stale

	mu    sync.Mutex
	items map[string]*cacheItem[V]
	group singleflight.Group
}

type cacheItem[V any] struct {
	val      V
	fetched  time.Time
	failedAt time.Time // last failed refresh; zero when the last refresh succeeded
}

func newTTLCache[V any](o Options, counted func(result string)) *ttlCache[V] {
	tc := &ttlCache[V]{
		staleWait: o.StaleWait, retryBackoff: o.RetryBackoff, queryTimeout: o.QueryTimeout,
		now: time.Now, counted: counted,
		items: map[string]*cacheItem[V]{},
	}
	tc.setTTL(o.CacheTTL)
	return tc
}

// setTTL changes the TTL; entries already cached are judged by it from the next lookup.
func (tc *ttlCache[V]) setTTL(d time.Duration) { tc.ttl.Store(int64(d)) }

func (tc *ttlCache[V]) put(key string, v V) {
	tc.mu.Lock()
	tc.items[key] = &cacheItem[V]{val: v, fetched: tc.now()}
	tc.mu.Unlock()
}

// get returns the cached value of key while fresh. Otherwise it loads it (one load per
// key at a time, bounded by queryTimeout and detached from ctx's cancellation so that
// waiters of a shared load are not failed by one caller giving up). With an expired
// value at hand, get answers with it instead of failing when the load fails (onStale is
// called with the error), when the load takes longer than staleWait, or when the last
// failure is more recent than retryBackoff. A load reporting not-found drops the entry.
func (tc *ttlCache[V]) get(ctx context.Context, key string, load func(context.Context) (V, error), onStale func(error)) (V, error) {
	now := tc.now()
	ttl := time.Duration(tc.ttl.Load())
	tc.mu.Lock()
	it := tc.items[key]
	var stale V
	haveStale := it != nil
	if it != nil {
		stale = it.val
		fresh := now.Sub(it.fetched) < ttl
		if fresh || (!it.failedAt.IsZero() && now.Sub(it.failedAt) < tc.retryBackoff) {
			tc.mu.Unlock()
			if fresh {
				tc.counted("hit")
			} else {
				tc.counted("stale")
			}
			return it.val, nil
		}
	}
	tc.mu.Unlock()
	tc.counted("miss")

	ch := tc.group.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tc.queryTimeout)
		defer cancel()
		v, err := load(lctx)
		tc.mu.Lock()
		defer tc.mu.Unlock()
		switch {
		case err == nil:
			tc.items[key] = &cacheItem[V]{val: v, fetched: tc.now()}
		case isNotFound(err):
			delete(tc.items, key)
		default:
			if cur := tc.items[key]; cur != nil {
				cur.failedAt = tc.now()
			}
		}
		return v, err
	})

	var slow <-chan time.Time
	if haveStale {
		t := time.NewTimer(tc.staleWait)
		defer t.Stop()
		slow = t.C
	}
	select {
	case r := <-ch:
		if r.Err == nil {
			return r.Val.(V), nil
		}
		if haveStale && !isNotFound(r.Err) {
			onStale(r.Err)
			tc.counted("stale")
			return stale, nil
		}
		var zero V
		return zero, r.Err
	case <-slow:
		tc.counted("stale")
		return stale, nil
	case <-ctx.Done():
		if haveStale {
			tc.counted("stale")
			return stale, nil
		}
		var zero V
		return zero, ctx.Err()
	}
}
