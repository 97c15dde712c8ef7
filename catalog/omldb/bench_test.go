package omldb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

func benchCatalog(b *testing.B) *Catalog {
	db := pgtest.NewDatabase(b)
	dir := filepath.Join(pgtest.ModuleRoot(b), "testdata", "omldb")
	pgtest.ExecFile(b, db, filepath.Join(dir, "schema.sql"))
	pgtest.ExecFile(b, db, filepath.Join(dir, "seed.sql"))
	c, err := Open(context.Background(), db, Options{CacheTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

// BenchmarkCachedCampaign is the campaign lookup of every call once warm.
func BenchmarkCachedCampaign(b *testing.B) {
	c := benchCatalog(b)
	ctx := context.Background()
	if _, err := c.Campaign(ctx, 11); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Campaign(ctx, 11); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCallLookups is everything a call reads once warm: campaign and agent from the
// cache, the contact from PostgreSQL (one query on loopback).
func BenchmarkCallLookups(b *testing.B) {
	c := benchCatalog(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Campaign(ctx, 11); err != nil {
			b.Fatal(err)
		}
		if _, err := c.AgentByExtension(ctx, "1003"); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Contact(ctx, 321321321); err != nil {
			b.Fatal(err)
		}
	}
}
