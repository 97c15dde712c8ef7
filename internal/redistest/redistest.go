// Package redistest gives tests the Redis server named by OMLCRM_TEST_REDIS (default
// redis://127.0.0.1:6379/0) and a key prefix of their own, whose keys are deleted when
// the test ends, so tests sharing one Redis never see each other's data.
//
// Outside CI a Redis that does not answer skips the test with a clear message; with
// CI=true it fails: CI never skips silently.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvVar names the Redis URL used by tests.
const EnvVar = "OMLCRM_TEST_REDIS"

// DefaultURL is used when EnvVar is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// New returns the test Redis URL and a fresh key prefix ("<name>-<random>:"); every key
// under the prefix is deleted when the test ends.
func New(t testing.TB, name string) (redisURL, prefix string) {
	t.Helper()
	u := os.Getenv(EnvVar)
	if u == "" {
		u = DefaultURL
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("%s: %v", EnvVar, err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("required in CI: Redis at %s (set %s): %v", opt.Addr, EnvVar, err)
		}
		t.Skipf("skipping: Redis at %s (set %s): %v", opt.Addr, EnvVar, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix = name + "-" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		if err := DeleteKeys(u, prefix); err != nil {
			t.Errorf("clearing the test's Redis keys (%s*): %v", prefix, err)
		}
	})
	return u, prefix
}

// Keys lists the keys under prefix.
func Keys(redisURL, prefix string) ([]string, error) {
	var keys []string
	err := scan(redisURL, prefix, func(_ context.Context, _ *redis.Client, k string) { keys = append(keys, k) })
	return keys, err
}

// DeleteKeys deletes every key under prefix.
func DeleteKeys(redisURL, prefix string) error {
	return scan(redisURL, prefix, func(ctx context.Context, rdb *redis.Client, k string) { rdb.Del(ctx, k) })
}

func scan(redisURL, prefix string, each func(context.Context, *redis.Client, string)) error {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		each(ctx, rdb, iter.Val())
	}
	return iter.Err()
}
