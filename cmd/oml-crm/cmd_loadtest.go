package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/loadtest"
)

// Exit codes of `oml-crm loadtest`.
const (
	loadtestCompleted  = 0 // the run went to the end (targets met or not: see the table)
	loadtestIncomplete = 1 // the hard timeout or a dying daemon cut the run short
	loadtestCouldNot   = 2 // bad flags, or the run could not be set up
	loadtestLagged     = 3 // the generator fell behind its schedule by more than --max-lag
)

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("loadtest", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	d := loadtest.DefaultTargets
	rate := fs.Float64("rate", 200, "connects (calls answered by an agent) per second produced by the fake Asterisk")
	duration := fs.Duration("duration", 60*time.Second, "how long calls keep starting at --rate")
	calls := fs.Int("calls", 0, "cap on the number of calls (0: as many as --rate and --duration give)")
	agents := fs.Int("agents", 2000, "websocket agents connected (and in the generated catalog)")
	source := fs.String("source", "ami", "the daemon's event source: ami|ari")
	report := fs.String("report", "", "also write the result as Markdown to this file (for docs/benchmarks.md)")
	jsonOut := fs.String("json", "", "also write the full result as JSON to this file")
	grace := fs.Duration("grace", 90*time.Second, "hard timeout beyond --duration (start-up, the last calls' end, drain)")
	talk := fs.Duration("talk", 6*time.Second, "how long each connected call lasts")
	consolePing := fs.Duration("console-ping", 25*time.Second, "how often each agent sends the console's application ping, as oml-crm.js does (0: never)")
	drain := fs.Duration("drain", 10*time.Second, "after the last event, how long to wait for pops and CRM requests still due")
	daemonBin := fs.String("daemon", "", "oml-crm binary to test (default: this executable)")
	logLevel := fs.String("daemon-log-level", "info", "log.level of the daemon under test")
	workDir := fs.String("work-dir", "", "directory for the generated configuration, catalog, queue and daemon log (default: a temporary one)")
	keep := fs.Bool("keep", false, "keep the work directory (a temporary one is removed otherwise)")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	maxLag := fs.Duration("max-lag", loadtest.DefaultMaxLag, "bound on the generator lag (how late the fake Asterisk may write an event after its scheduled instant); a run over it fails with exit 3")
	gcBudget := fs.Int64("gc-budget-mib", loadtest.DefaultGCBudget>>20, "how many MiB this process's heap may grow while the traffic flows before its own garbage collector runs (its pauses would be timed as the daemon's latency); 0: Go's default collector throughout")
	pprofAddr := fs.String("pprof", "", "start the daemon with --pprof ADDR (loopback host:port) to serve its runtime profiles there")
	cpuProfile := fs.String("cpuprofile", "", "write the daemon's CPU profile over the steady window to this file (needs --pprof)")
	selfProfile := fs.String("self-cpuprofile", "", "write the load test's own CPU profile (fake Asterisk, agents, CRM; the whole run) to this file")
	popP99 := fs.Duration("target-pop-p99", d.PopP99, "target: p99 connect→pop")
	crmP99 := fs.Duration("target-crm-p99", d.CRMP99, "target: p99 connect→CRM")
	targetRate := fs.Float64("target-rate", 0, "target: connects per second sustained for --duration (default: --rate; 0 with --rate: no rate target)")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: oml-crm loadtest [--rate 200] [--duration 60s] [--agents 2000] [--calls N] [--source ami|ari] [--report FILE]")
		fmt.Fprintln(stdout, "\nDrives a bounded load through a real oml-crm daemon, all on 127.0.0.1: a fake Asterisk")
		fmt.Fprintln(stdout, "(AMI or ARI) plays realistic OMniLeads calls of every type at --rate connects per second,")
		fmt.Fprintln(stdout, "the daemon (this binary, `run` with a generated file catalog, SQLite delivery queue and")
		fmt.Fprintln(stdout, "token-authenticated agents) runs as a subprocess, --agents websocket agents ack their")
		fmt.Fprintln(stdout, "pops, and a local CRM receives the server deliveries. It reports connect→pop and")
		fmt.Fprintln(stdout, "connect→CRM latency (p50/p99/max), lost and duplicated pops and deliveries, events/s,")
		fmt.Fprintln(stdout, "and the daemon's RSS, goroutines and CPU time per connect, with PASS/FAIL per target.")
		fmt.Fprintln(stdout, "\nLatencies count from each connect's SCHEDULED instant (connect k at T0 + k/rate), not from")
		fmt.Fprintln(stdout, "when its bytes were written, so a generator running late shows in them; the generator lag")
		fmt.Fprintln(stdout, "(write − schedule) is reported apart, and a run whose generator lag exceeds --max-lag")
		fmt.Fprintf(stdout, "(default %s) fails: the machine could not produce the asked load on time.\n", loadtest.DefaultMaxLag)
		fmt.Fprintln(stdout, "\nExit status: 0 the run completed (whatever the targets), 1 it was cut short (hard")
		fmt.Fprintln(stdout, "timeout = --duration + --grace, or the daemon died), 2 bad flags or set-up failure,")
		fmt.Fprintln(stdout, "3 the generator lag exceeded its --max-lag bound (the result is still printed and written).")
		fmt.Fprintln(stdout, "\nFlags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "oml-crm loadtest: "+format+"\n", a...)
		return code
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return loadtestCompleted
		}
		return fail(loadtestCouldNot, "%v (see oml-crm loadtest --help)", err)
	}
	if fs.NArg() > 0 {
		return fail(loadtestCouldNot, "unexpected arguments %q (see oml-crm loadtest --help)", fs.Args())
	}
	if *grace <= 0 {
		return fail(loadtestCouldNot, "--grace %s: must be positive", *grace)
	}

	bin := *daemonBin
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fail(loadtestCouldNot, "finding this executable (give --daemon): %v", err)
		}
		bin = exe
	}
	if !fs.Changed("target-rate") {
		*targetRate = *rate // judged against the rate it was asked to drive
	}
	opts := loadtest.Options{
		Rate: *rate, Duration: *duration, Calls: *calls, Agents: *agents, Source: *source,
		Talk: *talk, ConsolePing: *consolePing, Drain: *drain, Daemon: []string{bin}, DaemonLogLevel: *logLevel,
		Targets: loadtest.Targets{ConnectRate: *targetRate, PopP99: *popP99, CRMP99: *crmP99},
		MaxLag:  *maxLag, Pprof: *pprofAddr, CPUProfile: *cpuProfile,
		GCBudget: *gcBudget << 20,
	}
	if *gcBudget <= 0 {
		opts.GCBudget = -1
	}
	if err := opts.Check(); err != nil {
		return fail(loadtestCouldNot, "%v", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return fail(loadtestCouldNot, "--daemon: %v", err)
	}
	dir := *workDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "oml-crm-loadtest-")
		if err != nil {
			return fail(loadtestCouldNot, "creating a work directory: %v", err)
		}
		dir = tmp
		// Removed after a completed run unless --keep; kept (with the daemon's log) when
		// something went wrong.
		remove := !*keep
		defer func() {
			if remove {
				os.RemoveAll(tmp)
			} else {
				fmt.Fprintf(stderr, "oml-crm loadtest: work dir kept: %s\n", tmp)
			}
		}()
		origFail := fail
		fail = func(code int, format string, a ...any) int {
			remove = false
			return origFail(code, format, a...)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(loadtestCouldNot, "--work-dir: %v", err)
	}

	opts.WorkDir = dir
	if !*quiet {
		opts.Progress = stderr
	}
	runCtx, cancel := context.WithTimeout(ctx, *duration+*grace)
	defer cancel()
	fmt.Fprintf(stderr, "oml-crm loadtest: %s source, %.0f connects/s for %s, %d agents; work dir %s\n", *source, *rate, *duration, *agents, dir)
	if *selfProfile != "" {
		f, err := os.Create(*selfProfile)
		if err != nil {
			return fail(loadtestCouldNot, "--self-cpuprofile: %v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(loadtestCouldNot, "--self-cpuprofile: %v", err)
		}
	}
	res, err := loadtest.Run(runCtx, opts)
	if *selfProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return fail(loadtestCouldNot, "%v", err)
	}
	if err := res.WriteText(stdout); err != nil {
		return fail(loadtestCouldNot, "printing the result: %v", err)
	}
	command := "oml-crm loadtest " + strings.Join(args, " ")
	if *report != "" {
		err := writeOutFile(*report, func(w io.Writer) error {
			fmt.Fprintf(w, "### Load test, %s source, %s\n\n", *source, time.Now().UTC().Format("2006-01-02 15:04 MST"))
			fmt.Fprintf(w, "Machine: %s\n\n", machine())
			return res.WriteMarkdown(w, strings.TrimSpace(command))
		})
		if err != nil {
			return fail(loadtestCouldNot, "--report: %v", err)
		}
	}
	if *jsonOut != "" {
		err := writeOutFile(*jsonOut, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		})
		if err != nil {
			return fail(loadtestCouldNot, "--json: %v", err)
		}
	}
	if !res.Completed() {
		return fail(loadtestIncomplete, "incomplete run: %s (daemon log: %s)", res.Incomplete, res.DaemonLog)
	}
	if res.LagExceeded() {
		return fail(loadtestLagged, "generator lag %s exceeded its bound --max-lag %s: the machine could not write the load on schedule, so this run does not measure the daemon at --rate %g",
			loadtest.FormatDuration(res.MaxLag), res.Options.MaxLag, *rate)
	}
	return loadtestCompleted
}

func writeOutFile(path string, fill func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// machine describes the host for the report: CPUs, memory, OS, Go version.
func machine() string {
	mem := "? GiB"
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				if kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
					mem = loadtest.FormatBytes(kb * 1024)
				}
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("%d CPUs, %s RAM, %s/%s, %s", runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
