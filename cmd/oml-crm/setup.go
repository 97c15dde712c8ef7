package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/catalog/file"
	"github.com/omlcrm/oml-crm/catalog/omldb"
	"github.com/omlcrm/oml-crm/config"
)

// loadConfig parses args into fs and loads the configuration: defaults < --config file <
// OMLCRM_* environment < flags. fs should carry config.RegisterFlags (at least --config);
// subcommand flags that are not configuration keys are simply parsed. A --help on the
// command line is returned as pflag.ErrHelp (the caller prints usage to stdout, exits 0).
// The configuration is not validated: callers that need it call cfg.Validate().
func loadConfig(fs *pflag.FlagSet, args []string) (*config.Config, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	path := ""
	if f := fs.Lookup(config.ConfigFlag); f != nil {
		path = f.Value.String()
	}
	return config.Load(path, fs)
}

// openCatalog opens the catalog named by spec, or the configured one when spec is empty:
//
//	file:PATH                       the YAML catalog at PATH
//	postgres://… | postgresql://…   the OMniLeads database at that URL
//	omldb:URL                       the same, spelled explicitly
//	omldb                           the OMniLeads database at database.url
//	""                              catalog.source (file: catalog.file; omldb: database.url)
//
// cfg may be nil (defaults). The OMniLeads catalog connects lazily: a database that is
// down is not an error here; use catalog.Ping to check it.
func openCatalog(ctx context.Context, spec string, cfg *config.Config, log zerolog.Logger) (catalog.Catalog, error) {
	if cfg == nil {
		cfg = config.Default()
	}
	openDB := func(url string) (catalog.Catalog, error) {
		c, err := omldb.Open(ctx, url, omldb.Options{CacheTTL: cfg.Catalog.CacheTTL, Logger: log,
			JSONIDsAsNumbersSites: cfg.Catalog.JSONIDsAsNumbersSites})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	openFile := func(path string) (catalog.Catalog, error) {
		c, err := file.Open(path)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	switch {
	case strings.HasPrefix(spec, "file:"):
		return openFile(strings.TrimPrefix(spec, "file:"))
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return openDB(spec)
	case strings.HasPrefix(spec, "omldb:"):
		return openDB(strings.TrimPrefix(spec, "omldb:"))
	case spec == "omldb":
		return openDB(cfg.Database.URL.Reveal())
	case spec != "":
		return nil, fmt.Errorf("catalog %q: want file:PATH, postgres://… or omldb:URL", spec)
	}
	switch cfg.Catalog.Source {
	case "file":
		if cfg.Catalog.File == "" {
			return nil, errors.New("catalog.file: required when catalog.source=file")
		}
		return openFile(cfg.Catalog.File)
	case "omldb":
		return openDB(cfg.Database.URL.Reveal())
	}
	return nil, fmt.Errorf("catalog.source: %q is not one of omldb|file", cfg.Catalog.Source)
}
