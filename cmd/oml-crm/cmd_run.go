package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/daemon"
	"github.com/omlcrm/oml-crm/internal/sdnotify"
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
	lw := daemon.NewLevelWriter(level)
	log := daemon.NewLogger(os.Stderr, cfg.Log.Format, lw)

	// SIGHUP is registered before anything starts so an early one is not fatal.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// Secrets print redacted (config's Secret and SecretURL types).
	log.Debug().Interface("config", cfg).Msg("effective configuration")
	d, err := daemon.Start(ctx, daemon.Options{Config: cfg, Logger: log, Version: version, Levels: lw})
	if err != nil {
		// Once: the log goes to stderr (the journal under systemd).
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	if *pprofAddr != "" {
		pp, err := startPprof(*pprofAddr)
		if err != nil {
			log.Error().Err(err).Msg("cannot start")
			d.Shutdown(cfg.HTTP.ShutdownTimeout)
			return 1
		}
		log.Info().Str("address", pp.Addr()).Msg("serving runtime profiles (--pprof)")
		defer func() {
			if err := pp.stop(); err != nil {
				log.Warn().Err(err).Msg("stopping the profile server")
			}
		}()
	}
	// Type=notify: systemd counts the service as started once it serves.
	notifySocket := os.Getenv("NOTIFY_SOCKET")
	if _, err := sdnotify.Notify(notifySocket, sdnotify.Ready); err != nil {
		log.Warn().Err(err).Msg("cannot tell systemd the daemon is ready")
	}
	path := fs.Lookup(config.ConfigFlag).Value.String()
	code := 0
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info().Msg("stop signal received")
			break loop
		case err := <-d.Served():
			log.Error().Err(err).Msg("HTTP listener failed")
			code = 1
			break loop
		case <-hup:
			reloadConfig(d, path, fs, log)
		}
	}
	_, _ = sdnotify.Notify(notifySocket, sdnotify.Stopping) // best effort: systemd sees the exit anyway
	if !d.Shutdown(cfg.HTTP.ShutdownTimeout) && code == 0 {
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

// reloadConfig re-reads the configuration (SIGHUP) and hands it to the daemon, which
// applies what can change while running. An invalid file changes nothing.
func reloadConfig(d *daemon.Daemon, path string, fs *pflag.FlagSet, log zerolog.Logger) {
	next, err := config.Load(path, fs)
	if err == nil {
		err = next.Validate()
	}
	if err != nil {
		log.Error().Err(err).Str("config", path).Msg("SIGHUP: configuration not reloaded (the running one is kept)")
		return
	}
	d.Reload(path, next)
}
