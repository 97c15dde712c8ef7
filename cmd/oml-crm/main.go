// Command oml-crm runs beside Asterisk in an OMniLeads contact center and makes every
// call that connects to an agent invoke the campaign's external CRM. This package only
// parses the command line and wires the other packages together.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/buildinfo"
)

// version may be set at build time with -ldflags "-X main.version=..."; main replaces an
// empty one with the module version Go recorded (buildinfo.Read).
var version string

// command is one subcommand. run returns the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is the subcommand table; each subcommand lives in its own cmd_<name>.go file.
func commands() map[string]command {
	return map[string]command{
		"run":        {"run the daemon (Asterisk events in, CRM requests out)", runRun},
		"demo":       {"run the whole pipeline on the embedded demo (no Asterisk, no PostgreSQL)", runDemo},
		"check":      {"validate the configuration and every active campaign's CRM set-up", runCheck},
		"render":     {"print the CRM request a campaign would produce, as JSON", runRender},
		"deliveries": {"list, show and retry server-trigger deliveries", runDeliveries},
		"token":      {"mint an agent websocket token", runToken},
		"loadtest":   {"drive a bounded load through the pipeline on loopback and report latencies", runLoadtest},
		"version":    {"print the version", runVersion},
	}
}

// logTimeFormat is RFC 3339 with milliseconds: several log lines of one call fall within
// the same second.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

func main() {
	// zerolog reads the format of timestamps and Time fields from this package variable
	// only (no per-logger setting); set once here, before any logger exists.
	zerolog.TimeFieldFormat = logTimeFormat
	version = buildinfo.Read(version).Version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout, cmds) // asked for: stdout, exit 0, like every command's --help
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		return runVersion(ctx, args[1:], stdout, stderr)
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "oml-crm: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: oml-crm <command> [flags]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'oml-crm <command> --help' for the flags of a command.")
}
