package redistest

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestPrefixIsPrivateAndCleaned(t *testing.T) {
	var u, prefix string
	t.Run("inner", func(t *testing.T) {
		u, prefix = New(t, "redistest")
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		if err := rdb.Set(context.Background(), prefix+"k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if keys, err := Keys(u, prefix); err != nil || len(keys) != 1 || keys[0] != prefix+"k" {
			t.Fatalf("Keys = %v, %v", keys, err)
		}
	})
	if prefix == "" {
		t.Skip("no Redis")
	}
	if keys, err := Keys(u, prefix); err != nil || len(keys) != 0 {
		t.Fatalf("after the test its keys remain: %v, %v", keys, err)
	}
}
