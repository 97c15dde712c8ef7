package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/daemon"
	"github.com/omlcrm/oml-crm/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("demo", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	nCalls := fs.Int("calls", 0, "play this many calls, print a summary and exit (0: loop until Ctrl-C)")
	rate := fs.Float64("rate", 1, "calls started per second")
	listen := fs.String("listen", demo.DefaultListen, "host:port of the demo's HTTP listener (agent page, CRM log, /ws, /metrics); when the default is taken a free port is used")
	logLevel := fs.String("log-level", "error", "daemon log level on stderr (debug, info, warn, error)")
	drain := fs.Duration("drain", 15*time.Second, "with --calls: how long to wait after the last call for its deliveries and pops")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: oml-crm demo [--calls N --rate R] [--listen ADDR]")
		fmt.Fprintln(stdout, "\nRuns the whole pipeline on this machine with nothing else installed: the embedded demo")
		fmt.Fprintln(stdout, "catalog, a built-in fake Asterisk playing realistic OMniLeads calls, a local CRM that shows")
		fmt.Fprintln(stdout, "what it received, simulated agents, and the agent page. One line per call; with --calls,")
		fmt.Fprintln(stdout, "a summary, exit 0 when every connect was delivered or popped (or skipped on purpose).")
		fmt.Fprintln(stdout, "\nFlags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "oml-crm demo: %v (see oml-crm demo --help)\n", err)
		return 2
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "oml-crm demo: "+format+"\n", a...)
		return code
	}
	switch {
	case fs.NArg() > 0:
		return fail(2, "unexpected arguments %q", fs.Args())
	case *nCalls < 0:
		return fail(2, "--calls %d: must be 0 (loop) or positive", *nCalls)
	case *rate <= 0 || *rate > 1000:
		return fail(2, "--rate %g: must be in (0, 1000] calls per second", *rate)
	}
	level, err := zerolog.ParseLevel(*logLevel)
	if err != nil {
		return fail(2, "--log-level %q: %v", *logLevel, err)
	}
	log := daemon.NewLogger(os.Stderr, "auto", daemon.NewLevelWriter(level))
	return demo.Run(ctx, demo.Options{
		Calls: *nCalls, Rate: *rate, Listen: *listen, ListenExplicit: fs.Changed("listen"), Drain: *drain,
		Logger: log, Version: version, Stdout: stdout, Stderr: stderr,
	})
}
