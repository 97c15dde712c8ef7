package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/config"
)

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	config.RegisterFlags(fs)
	pprofAddr := fs.String("pprof", "", "serve Go runtime profiles (net/http/pprof) on this loopback host:port, e.g. 127.0.0.1:6060 (off by default; never on http.listen)")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: oml-crm run [--config FILE] [flags]")
		fmt.Fprintln(stdout, "\nRuns the daemon: Asterisk events (AMI or ARI) in; for every call connected to an agent,")
		fmt.Fprintln(stdout, "the campaign's CRM request out, delivered by the server or popped in the agent's browser.")
		fmt.Fprintln(stdout, "Configuration: defaults < --config file < OMLCRM_* environment < flags (see")
		fmt.Fprintln(stdout, "oml-crm.example.yaml). SIGTERM/SIGINT stop gracefully within http.shutdown_timeout;")
		fmt.Fprintln(stdout, "SIGHUP re-reads the configuration file and applies log.level, catalog.cache_ttl,")
		fmt.Fprintln(stdout, "agentws.pop_ttl and delivery.sites at once (other changes need a restart). Exit 0")
		fmt.Fprintln(stdout, "after a clean stop, 1 on a run-time failure, 2 on a configuration error.")
		fmt.Fprintln(stdout, "\nFlags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	cfg, err := loadConfig(fs, args)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err == nil && *pprofAddr != "" {
		err = checkPprofAddr(*pprofAddr)
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		printConfigError(stderr, "run", err)
		return 2
	}
	level, _ := zerolog.ParseLevel(cfg.Log.Level) // validated
	lw := newLevelWriter(level)
	log := newLogger(os.Stderr, cfg.Log.Format, lw)

	// SIGHUP is registered before anything starts so an early one is not fatal.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// Secrets print redacted (config's Secret and SecretURL types).
	log.Debug().Interface("config", cfg).Msg("effective configuration")
	d, err := startDaemon(ctx, daemonOptions{Config: cfg, Logger: log})
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		fmt.Fprintf(stderr, "oml-crm run: %v\n", err)
		return 1
	}
	if *pprofAddr != "" {
		pp, err := startPprof(*pprofAddr)
		if err != nil {
			log.Error().Err(err).Msg("cannot start")
			fmt.Fprintf(stderr, "oml-crm run: %v\n", err)
			d.shutdown(d.cfg.HTTP.ShutdownTimeout)
			return 1
		}
		log.Info().Str("address", pp.Addr()).Msg("serving runtime profiles (--pprof)")
		defer func() {
			if err := pp.stop(); err != nil {
				log.Warn().Err(err).Msg("stopping the profile server")
			}
		}()
	}
	path := fs.Lookup(config.ConfigFlag).Value.String()
	code := 0
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info().Msg("stop signal received")
			break loop
		case err := <-d.served:
			log.Error().Err(err).Msg("HTTP listener failed")
			code = 1
			break loop
		case <-hup:
			reloadConfig(d, path, fs, lw)
		}
	}
	if !d.shutdown(d.cfg.HTTP.ShutdownTimeout) && code == 0 {
		// Everything accepted is persisted (queued deliveries resume at the next start);
		// a late stop is not a failure of the service.
		log.Warn().Msg("stopped at the shutdown deadline")
	}
	return code
}

// printConfigError prints every configuration problem on its own line, each naming its key.
func printConfigError(w io.Writer, cmd string, err error) {
	var ps config.Problems
	if errors.As(err, &ps) {
		fmt.Fprintf(w, "oml-crm %s: invalid configuration (%d problem(s)):\n", cmd, len(ps))
		for _, p := range ps {
			fmt.Fprintf(w, "  %s\n", p.Error())
		}
		return
	}
	fmt.Fprintf(w, "oml-crm %s: %v (see oml-crm %s --help)\n", cmd, err, cmd)
}

// reloadConfig re-reads the configuration (SIGHUP), applies what can change while
// running, and logs what was applied and what needs a restart. An invalid file changes
// nothing.
func reloadConfig(d *daemon, path string, fs *pflag.FlagSet, lw *levelWriter) {
	log := d.log
	next, err := config.Load(path, fs)
	if err == nil {
		err = next.Validate()
	}
	if err != nil {
		log.Error().Err(err).Str("config", path).Msg("SIGHUP: configuration not reloaded (the running one is kept)")
		return
	}
	changed := changedKeys(d.cfg, next)
	var applied, restart []string
	for _, k := range changed {
		switch {
		case k == "log.level":
			level, _ := zerolog.ParseLevel(next.Log.Level)
			lw.setLevel(level)
			applied = append(applied, k)
		case k == "catalog.cache_ttl":
			// The file catalog has no cache: the TTL only paces the dialplan list refresh.
			if c, ok := d.catalog.(interface{ SetCacheTTL(time.Duration) }); ok {
				c.SetCacheTTL(next.Catalog.CacheTTL)
			}
			d.catalogTTL.Store(int64(next.Catalog.CacheTTL))
			applied = append(applied, k)
		case k == "agentws.pop_ttl":
			// In cluster mode the hub exists once Redis answered.
			if h := d.hub.get(); h != nil {
				h.SetPopTTL(next.AgentWS.PopTTL)
				applied = append(applied, k)
			} else {
				restart = append(restart, k)
			}
		case k == "delivery.sites":
			secrets, err := signingSecrets(next)
			if err != nil {
				log.Error().Err(err).Msg("SIGHUP: delivery.sites not reloaded")
				restart = append(restart, k)
				continue
			}
			if q := d.queue.get(); q != nil {
				q.SetSigningSecrets(secrets)
				applied = append(applied, k)
			} else {
				restart = append(restart, k)
			}
		default:
			// Everything else is read once at start.
			restart = append(restart, k)
		}
	}
	// Keep the applied values so a later SIGHUP diffs against what runs.
	cur := *d.cfg
	cur.Log.Level = next.Log.Level
	if contains(applied, "catalog.cache_ttl") {
		cur.Catalog.CacheTTL = next.Catalog.CacheTTL
	}
	if contains(applied, "agentws.pop_ttl") {
		cur.AgentWS.PopTTL = next.AgentWS.PopTTL
	}
	if contains(applied, "delivery.sites") {
		cur.Delivery.Sites = next.Delivery.Sites
	}
	d.cfg = &cur
	ev := log.Info()
	if len(restart) > 0 {
		ev = log.Warn()
	}
	ev.Str("config", path).Strs("reloaded", nonNil(applied)).Strs("restart_needed", nonNil(restart)).
		Msg("SIGHUP: configuration re-read" + reloadSummary(applied, restart))
}

func reloadSummary(applied, restart []string) string {
	var b strings.Builder
	if len(applied) == 0 && len(restart) == 0 {
		return ": nothing changed"
	}
	if len(applied) > 0 {
		b.WriteString("; applied: " + strings.Join(applied, ", "))
	}
	if len(restart) > 0 {
		b.WriteString("; changed but only applied after a restart: " + strings.Join(restart, ", "))
	}
	return b.String()
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// changedKeys lists the configuration keys whose values differ, sorted. delivery.sites
// counts as one key.
func changedKeys(a, b *config.Config) []string {
	fa, fb := map[string]any{}, map[string]any{}
	flattenConfig(reflect.ValueOf(*a), "", fa)
	flattenConfig(reflect.ValueOf(*b), "", fb)
	var out []string
	for k, va := range fa {
		if !reflect.DeepEqual(va, fb[k]) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func flattenConfig(v reflect.Value, prefix string, out map[string]any) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if name == "" {
			continue
		}
		key := prefix + name
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type().PkgPath() == t.PkgPath() && fv.Type().Name() != "" && fv.NumField() > 0 && !isLeafStruct(fv) {
			flattenConfig(fv, key+".", out)
			continue
		}
		out[key] = fv.Interface()
	}
}

// isLeafStruct reports struct-typed values that are single settings (none today, but a
// struct without mapstructure tags is one).
func isLeafStruct(v reflect.Value) bool {
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).Tag.Get("mapstructure") != "" {
			return false
		}
	}
	return true
}
