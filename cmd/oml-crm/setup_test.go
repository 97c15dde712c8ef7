package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

func docsCatalog(t *testing.T) string {
	return filepath.Join(pgtest.ModuleRoot(t), "testdata", "catalog", "docs-examples.yaml")
}

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("log:\n  level: warn\ncatalog:\n  source: file\n  file: x.yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("check", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	other := fs.String("catalog", "", "")
	cfg, err := loadConfig(fs, []string{"--config", path, "--catalog", "file:y.yaml", "--log-format", "json"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "warn" || cfg.Log.Format != "json" || cfg.Catalog.File != "x.yaml" || *other != "file:y.yaml" {
		t.Errorf("cfg = %+v, --catalog = %q", cfg, *other)
	}
	fs = pflag.NewFlagSet("check", pflag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	config.RegisterFlags(fs)
	if _, err := loadConfig(fs, []string{"--help"}); !errors.Is(err, pflag.ErrHelp) {
		t.Errorf("--help: %v, want pflag.ErrHelp", err)
	}
}

func TestOpenCatalog(t *testing.T) {
	ctx := context.Background()
	log := zerolog.Nop()

	// An explicit file: spec, no configuration.
	c, err := openCatalog(ctx, "file:"+docsCatalog(t), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := c.Campaign(ctx, 11); err != nil || cp.Site == nil {
		t.Errorf("Campaign(11) = %+v, %v", cp, err)
	}
	if err := catalog.Ping(ctx, c); err != nil {
		t.Errorf("catalog.Ping(file) = %v", err)
	}
	c.Close()

	// catalog.source=file from the configuration.
	cfg := config.Default()
	cfg.Catalog.Source = "file"
	cfg.Catalog.File = docsCatalog(t)
	c, err = openCatalog(ctx, "", cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Contact(ctx, 321321321); err != nil {
		t.Error(err)
	}
	c.Close()

	// A database that does not answer: opening is fine (lazy), ping is not.
	for _, spec := range []string{"postgres://u:pw@127.0.0.1:1/x?connect_timeout=2", "omldb:postgres://u:pw@127.0.0.1:1/x?connect_timeout=2"} {
		c, err = openCatalog(ctx, spec, cfg, log)
		if err != nil {
			t.Fatalf("openCatalog(%s): %v", spec, err)
		}
		if err := catalog.Ping(ctx, c); err == nil {
			t.Errorf("catalog.Ping(%s) succeeded with nothing listening", spec)
		}
		c.Close()
	}

	for spec, want := range map[string]string{
		"mysql://x":           "want file:PATH",
		"file:/nonexistent":   "nonexistent",
		"file:" + t.TempDir(): "read catalog file",
	} {
		if _, err := openCatalog(ctx, spec, nil, log); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("openCatalog(%q) error = %v, want it to mention %q", spec, err, want)
		}
	}
	cfg.Catalog.File = ""
	if _, err := openCatalog(ctx, "", cfg, log); err == nil || !strings.Contains(err.Error(), "catalog.file") {
		t.Errorf("missing catalog.file: %v", err)
	}
}

func TestOpenCatalogOMniLeads(t *testing.T) {
	db := pgtest.NewDatabase(t)
	dir := filepath.Join(pgtest.ModuleRoot(t), "testdata", "omldb")
	pgtest.ExecFile(t, db, filepath.Join(dir, "schema.sql"))
	pgtest.ExecFile(t, db, filepath.Join(dir, "seed.sql"))
	ctx := context.Background()
	cfg := config.Default()
	cfg.Database.URL = config.SecretURL(db)
	for _, spec := range []string{"", "omldb", db} {
		c, err := openCatalog(ctx, spec, cfg, zerolog.Nop())
		if err != nil {
			t.Fatalf("openCatalog(%q): %v", spec, err)
		}
		if err := catalog.Ping(ctx, c); err != nil {
			t.Errorf("catalog.Ping: %v", err)
		}
		if a, err := c.AgentByExtension(ctx, "1003"); err != nil || a.ID != 2 {
			t.Errorf("spec %q: agent = %+v, %v", spec, a, err)
		}
		c.Close()
	}
}
