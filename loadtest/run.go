package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/ari/aritest"
	"github.com/omlcrm/oml-crm/democrm"
)

// Options configure one load-test run.
type Options struct {
	// Rate is the connects (agent answers) per second the fake Asterisk produces.
	Rate float64
	// Duration is how long calls keep starting; the run then lets the last calls end
	// and waits up to Drain for what they caused.
	Duration time.Duration
	// Calls caps the number of calls (0: Rate × Duration worth of connects).
	Calls int
	// Agents is how many websocket agents are connected (and in the catalog).
	Agents int
	// Source is the daemon's event source: "ami" or "ari".
	Source string
	// Talk is how long a connected call lasts (default 6s).
	Talk time.Duration
	// ConsolePing is how often each agent sends the console's application ping
	// ({"type":"ping"}, which oml-crm.js sends every 25 s), spread evenly over the
	// agents; 0: never.
	ConsolePing time.Duration
	// Drain is how long to wait, after the last event, for pops and CRM requests still
	// due (default 10s).
	Drain time.Duration
	// Daemon is the command that runs oml-crm (binary and leading arguments); the run
	// appends "run --config <generated file>".
	Daemon []string
	// DaemonLogLevel is the daemon's log.level (default info).
	DaemonLogLevel string
	// WorkDir holds the generated configuration, catalog, delivery queue and the daemon's
	// log. It must exist.
	WorkDir string
	// Targets are the figures the run is judged against.
	Targets Targets
	// MaxLag bounds the generator lag: how long after its scheduled instant any event
	// may start to be written (default DefaultMaxLag). A run over it is not a valid
	// measurement (see Result.LagExceeded).
	MaxLag time.Duration
	// Pprof, when set (a loopback host:port), starts the daemon with `--pprof Pprof`;
	// CPUProfile, when set too, receives the daemon's CPU profile over the steady window.
	Pprof      string
	CPUProfile string
	// GCBudget is how far this process lets its heap grow, while the traffic flows,
	// before its own garbage collector runs (default DefaultGCBudget; negative: Go's
	// default collector throughout). The load test is the instrument: its collections
	// (pauses of up to 5 ms, assists slowing its receivers) were timed as the daemon's
	// latency. The limit is the heap at the start plus the budget; a run that reaches it
	// collects, which the result shows (SelfGCs).
	GCBudget int64
	// Progress, when set, gets a line every ProgressEvery (default 5s) while traffic flows.
	Progress      io.Writer      `json:"-"`
	ProgressEvery time.Duration  `json:"-"`
	Logger        zerolog.Logger `json:"-"`
}

// Targets are the pass/fail thresholds of a run.
type Targets struct {
	ConnectRate float64       // connects per second sustained
	PopP99      time.Duration // connect → crm.pop at the agent
	CRMP99      time.Duration // connect → request at the CRM
}

// DefaultGCBudget is Options.GCBudget's default: with it, a `--duration 20s` run at 200
// connects/s and 2,000 agents (30 s of traffic and drain) peaked at 361 MiB of RSS for
// the load test (2026-12-04), so runs of a few minutes do not collect during the
// traffic, and longer ones collect rarely.
const DefaultGCBudget = 1 << 30

// batchWindow is the generator's shortest pause between two writes: events that fall
// due within it go out in one write. Asterisk writes each event as it is queued, so the
// window is kept short (it was 1 ms, with timers that woke ~1 ms late besides); see
// waitUntil.
const batchWindow = 200 * time.Microsecond

// DefaultMaxLag is the default bound on the generator lag (Options.MaxLag).
const DefaultMaxLag = 50 * time.Millisecond

// DefaultTargets are the project's targets on a quiet machine: 200 connects/s, p99
// connect→pop ≤ 2 ms, p99 connect→CRM ≤ 10 ms, measured from each connect's scheduled
// instant (and nothing lost or duplicated, always). They set PASS/FAIL in the report;
// only an incomplete run or generator lag over its bound changes the exit status.
var DefaultTargets = Targets{ConnectRate: 200, PopP99: 2 * time.Millisecond, CRMP99: 10 * time.Millisecond}

// Check validates the options (naming the flag at fault) and fills in the defaults. Run
// calls it; callers may call it first to refuse bad flags before preparing anything.
// It does not check WorkDir.
func (o *Options) Check() error {
	var errs []error
	if o.Rate <= 0 || math.IsInf(o.Rate, 0) || math.IsNaN(o.Rate) {
		errs = append(errs, fmt.Errorf("--rate %v: must be a positive number of connects per second", o.Rate))
	}
	if o.Duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration %s: must be positive", o.Duration))
	}
	if o.Calls < 0 {
		errs = append(errs, fmt.Errorf("--calls %d: must not be negative", o.Calls))
	}
	if o.Agents < 1 {
		errs = append(errs, fmt.Errorf("--agents %d: need at least one agent", o.Agents))
	}
	if o.ConsolePing < 0 {
		errs = append(errs, fmt.Errorf("--console-ping %s: must not be negative (0: never)", o.ConsolePing))
	}
	if o.Source != "ami" && o.Source != "ari" {
		errs = append(errs, fmt.Errorf("--source %q: want ami or ari", o.Source))
	}
	if len(o.Daemon) == 0 {
		errs = append(errs, errors.New("no daemon command"))
	}
	if o.MaxLag < 0 {
		errs = append(errs, fmt.Errorf("--max-lag %s: must not be negative", o.MaxLag))
	} else if o.MaxLag == 0 {
		o.MaxLag = DefaultMaxLag
	}
	if o.CPUProfile != "" && o.Pprof == "" {
		errs = append(errs, errors.New("--cpuprofile needs --pprof (the address the daemon serves its profiles on)"))
	}
	if o.Talk <= 0 {
		o.Talk = 6 * time.Second
	}
	if o.GCBudget == 0 {
		o.GCBudget = DefaultGCBudget
	}
	if o.Drain <= 0 {
		o.Drain = 10 * time.Second
	}
	if o.DaemonLogLevel == "" {
		o.DaemonLogLevel = "info"
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	return errors.Join(errs...)
}

// Result is what a run measured.
type Result struct {
	Options Options
	// Report holds the load window, the two latency paths and the daemon's RSS and
	// goroutines.
	Report Report
	// Traffic is what the fake Asterisk did.
	Calls      int
	Connects   int // connects that must invoke a CRM (pop or request)
	Skipped    int // connects on campaigns that invoke nothing
	EventsSent uint64
	// EventsHeld is how many of them the daemon's server-side filter kept off its socket
	// (AMI: its Filter rules, asterisk.ami.server_filter; ARI: its application's event
	// filter, asterisk.ari.server_filter): the daemon reads EventsSent − EventsHeld.
	EventsHeld uint64
	SendErrors int
	SendError  string
	MaxLag     time.Duration // worst lateness of an event against its schedule (generator lag)
	MaxSend    time.Duration // longest single write to the daemon
	// GeneratorLag is, over the connects, how long after its scheduled instant each was
	// written. Latencies count from the scheduled instant, so this is inside them; it is
	// reported apart to tell a late generator from a slow daemon.
	GeneratorLag Summary
	// SelfGCMax and SelfGCs are the load-test process's longest GC pause and GC count
	// during the traffic and its drain: its own stalls, which delay both ends of every
	// measurement (Options.GCBudget keeps them out of a run unless its heap reaches the
	// budget).
	SelfGCMax time.Duration
	SelfGCs   int64
	// Window is the steady part of the run (transfers' second connects caught up, calls
	// still starting) over which ConnectRate and EventRate are measured.
	Window       time.Duration
	ConnectRate  float64       // connects written per second in Window
	EventRate    float64       // events written per second in Window
	TrafficTime  time.Duration // first to last event
	DaemonEvents float64       // events the daemon counted (its /metrics), -1 unknown
	// DaemonEventRate is the daemon's event counter's rate over Window (-1 unknown).
	DaemonEventRate float64
	// DaemonCPU and LoadTestCPU are the CPU cores the daemon and the load-test process
	// (fake Asterisk, agents, CRM) used on average over Window (-1 unknown).
	DaemonCPU, LoadTestCPU float64
	// DaemonCPUTime is the CPU time (user + system, /proc/<pid>/stat) the daemon used
	// from just before the first event to the end of the drain: everything the traffic
	// cost it (-1 unknown). Divided by the connects written and by the events sent:
	DaemonCPUTime         time.Duration
	DaemonCPUPerConnectUS float64 `json:"daemon_cpu_per_connect_us"` // µs of daemon CPU per connect (-1 unknown)
	DaemonCPUPerEventUS   float64 `json:"daemon_cpu_per_event_us"`   // µs of daemon CPU per Asterisk event (-1 unknown)
	// DaemonSystemCPUTime is the part of DaemonCPUTime spent in the kernel (-1 unknown).
	DaemonSystemCPUTime time.Duration
	// Over the same span, per connect: the goroutines the daemon started (its
	// go_sched_goroutines_created_goroutines_total) and the times its threads left the CPU
	// (context switches, /proc/<pid>/task/*/status). They count hand-offs and wake-ups,
	// which CPU time shows only through its run-to-run noise (-1 unknown).
	DaemonGoroutinesPerConnect      float64 `json:"daemon_goroutines_per_connect"`
	DaemonContextSwitchesPerConnect float64 `json:"daemon_context_switches_per_connect"`
	// EventBursts is how many times the fake Asterisk wrote events (the events due at
	// one instant go in one write over AMI, one websocket message each over ARI).
	EventBursts int
	// PeerWritesPerConnect is, per connect, how many times a peer wrote to the daemon:
	// event bursts, the agents' acks and console pings, the CRM's answers. Each can find
	// the daemon asleep and wake it: with the machine's cost of a wake-up
	// (BenchmarkWakeUp) it gives the CPU per connect the daemon spends being woken,
	// before any work (-1 unknown).
	PeerWritesPerConnect float64 `json:"peer_writes_per_connect"`
	// CPUProfile is the file the daemon's CPU profile was written to ("" none) and
	// CPUProfileError why it could not be taken.
	CPUProfile      string `json:",omitempty"`
	CPUProfileError string `json:",omitempty"`
	// LoadBefore and LoadAfter are the machine's 1-minute load average before the traffic
	// and after it: what else was running.
	LoadBefore, LoadAfter float64
	// TCP is how the machine's TCP loss counters moved during the run (nil: unknown).
	TCP *TCPCounters
	// Agents.
	AgentsConnectTime time.Duration // to open every agent websocket (64 at a time) and get its hello
	PopsReceived      uint64
	PopsReplayed      uint64
	PopsMisrouted     uint64
	ConsolePings      uint64 // application pings the agents sent (Options.ConsolePing)
	ConsolePongs      uint64 // and the hub's answers
	AgentsDropped     uint64
	AgentError        string
	// Slowest are the slowest arrivals (pops and CRM requests), slowest first.
	Slowest []SlowArrival
	// CRM.
	CRM democrm.Stats
	// The daemon.
	DaemonExit string // "exit 0" or what went wrong when stopping it
	DaemonLog  string
	// Incomplete says why the run stopped early ("" when it completed).
	Incomplete string
}

// Completed reports whether the run went to the end (targets met or not).
func (r *Result) Completed() bool { return r.Incomplete == "" }

// LagExceeded reports whether the generator fell behind its schedule by more than
// Options.MaxLag: the machine could not produce the asked load on time, so the run does
// not measure the daemon at that load.
func (r *Result) LagExceeded() bool { return r.Options.MaxLag > 0 && r.MaxLag > r.Options.MaxLag }

// Run drives one bounded load through a daemon subprocess: it generates the catalog and
// configuration, starts the local CRM, the fake Asterisk and the daemon, connects the
// agents, plays the calls, waits for what they caused, stops everything and measures.
// ctx bounds the whole run (the hard timeout): when it ends early the result is marked
// incomplete. An error means the run could not be set up.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	if opts.WorkDir == "" {
		return nil, errors.New("no work directory")
	}
	res := &Result{Options: opts, DaemonEvents: -1, DaemonEventRate: -1, DaemonCPU: -1, LoadTestCPU: -1,
		DaemonCPUTime: -1, DaemonCPUPerConnectUS: -1, DaemonCPUPerEventUS: -1, DaemonSystemCPUTime: -1,
		DaemonGoroutinesPerConnect: -1, DaemonContextSwitchesPerConnect: -1, PeerWritesPerConnect: -1}
	pops, crm := NewLedger(), NewLedger()
	owners := newPopOwners()
	worst := newWorstArrivals(10)
	plan := NewPlan(opts.Agents)
	slots := int(math.Ceil(opts.Duration.Seconds() * opts.Rate))
	lead, settle := mixTiming(opts.Talk)
	client := &http.Client{Timeout: 5 * time.Second}

	// The local CRM.
	receiver := democrm.New(democrm.Options{
		Capacity: 1000, MaxKeys: 2*slots + 1000,
		OnReceive: func(rec democrm.Record) {
			if !rec.Accepted() {
				return
			}
			if d, first := crm.Observe(rec.IdempotencyKey, rec.At); first {
				worst.note("CRM", rec.At, d)
			}
		},
		Logger: opts.Logger,
	})
	crmLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the local CRM: %w", err)
	}
	crmSrv := &http.Server{Handler: receiver, ReadHeaderTimeout: 10 * time.Second}
	var serving sync.WaitGroup
	serving.Go(func() { _ = crmSrv.Serve(crmLn) })
	defer func() {
		crmSrv.Close()
		serving.Wait()
	}()
	crmBase := "http://" + crmLn.Addr().String()

	// The catalog, the fake Asterisk and the configuration.
	catalogPath := filepath.Join(opts.WorkDir, "catalog.yaml")
	if err := writeFile(catalogPath, func(w io.Writer) error { return plan.WriteCatalog(w, crmBase) }); err != nil {
		return nil, err
	}
	secret, err := randomSecret()
	if err != nil {
		return nil, err
	}
	astSecret, err := randomSecret()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := daemonConfig{
		LogLevel: opts.DaemonLogLevel, Listen: httpAddr, Source: opts.Source, Catalog: catalogPath,
		SQLite: filepath.Join(opts.WorkDir, "deliveries.db"), TokenSecret: secret,
		Agents: opts.Agents,
	}
	sink, waitAsterisk, closeAsterisk, err := startFakeAsterisk(opts.Source, astSecret, &cfg)
	if err != nil {
		return nil, err
	}
	defer closeAsterisk()
	configPath := filepath.Join(opts.WorkDir, "oml-crm.yaml")
	if err := writeFile(configPath, cfg.write); err != nil {
		return nil, err
	}

	// The daemon.
	res.DaemonLog = filepath.Join(opts.WorkDir, "daemon.log")
	argv := append(append([]string(nil), opts.Daemon...), "run", "--config", configPath)
	if opts.Pprof != "" {
		argv = append(argv, "--pprof", opts.Pprof)
	}
	d, err := startDaemon(argv, res.DaemonLog, "http://"+httpAddr)
	if err != nil {
		return nil, err
	}
	stopped := false
	stopDaemon := func() {
		if stopped {
			return
		}
		stopped = true
		if err := d.stop(30 * time.Second); err != nil {
			res.DaemonExit = err.Error()
		} else {
			res.DaemonExit = "exit 0"
		}
	}
	defer stopDaemon()
	readyCtx, cancelReady := context.WithTimeout(ctx, 60*time.Second)
	err = d.waitReady(readyCtx, client)
	if err == nil {
		if err = waitAsterisk(readyCtx); err != nil {
			err = fmt.Errorf("the daemon did not connect to the fake Asterisk: %w (log: %s)", err, res.DaemonLog)
		}
	}
	cancelReady()
	if err != nil {
		return nil, err
	}
	metricsURL := "http://" + httpAddr + "/metrics"
	sampler := NewSampler(
		func() (uint64, error) { return ReadRSS(d.PID()) },
		func() (int, error) {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			g, err := ScrapeGauge(sctx, client, metricsURL, "go_goroutines")
			return int(g), err
		})
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	var sampling sync.WaitGroup
	// Every /metrics scrape costs the daemon CPU (~3 ms each on the shared test machine)
	// that its CPU per connect would count: scrapes are kept to one a second in all
	// (RSS, read from /proc, costs it nothing).
	sampling.Go(func() { sampler.Run(sampleCtx, scrapeEvery) })
	defer func() {
		stopSampling() // idempotent: also done before the daemon stops
		sampling.Wait()
	}()

	// The agents.
	dialStart := time.Now()
	fleet, err := connectAgents(ctx, "ws://"+httpAddr+"/ws", []byte(secret), opts.Agents, 64, opts.ConsolePing, pops, owners, worst)
	res.AgentsConnectTime = time.Since(dialStart)
	if err != nil {
		return nil, fmt.Errorf("%w (daemon log: %s)", err, res.DaemonLog)
	}
	fleetClosed := false
	closeFleet := func() {
		if !fleetClosed {
			fleetClosed = true
			fleet.close()
		}
	}
	defer closeFleet()

	// The traffic.
	eventsMetric := "omlcrm_ami_events_total"
	if opts.Source == "ari" {
		eventsMetric = "omlcrm_ari_events_total"
	}
	eventsBefore, eventsErr := ScrapeSum(ctx, client, metricsURL, eventsMetric)
	goroutinesBefore, goroutinesErr := ScrapeSum(ctx, client, metricsURL, goroutinesCreatedMetric)
	ingest, daemonCPU, selfCPU := &counterSeries{}, &counterSeries{}, &counterSeries{}
	sampling.Go(func() {
		ingest.run(sampleCtx, scrapeEvery, func(ctx context.Context) (float64, error) {
			return ScrapeSum(ctx, client, metricsURL, eventsMetric)
		})
	})
	cpuOf := func(pid int) func(context.Context) (float64, error) {
		return func(context.Context) (float64, error) {
			d, err := ReadCPU(pid)
			return d.Seconds(), err
		}
	}
	sampling.Go(func() { daemonCPU.run(sampleCtx, 500*time.Millisecond, cpuOf(d.PID())) })
	sampling.Go(func() { selfCPU.run(sampleCtx, 500*time.Millisecond, cpuOf(0)) })
	res.LoadBefore, _ = LoadAverage()
	tcpBefore, tcpErr := ReadTCPCounters()
	lag := NewRecorder()
	snd := &sender{
		gen: newGenerator(plan, opts.Talk, time.Now().Unix()), sink: sink, rate: opts.Rate, slots: slots,
		calls: opts.Calls, pops: pops, crm: crm, owners: owners, minGap: batchWindow, lead: lead, lag: lag,
	}
	if opts.CPUProfile != "" {
		// The profile covers the steady window (see below), from settle after T0.
		_, settle := mixTiming(opts.Talk)
		from := settle.Truncate(bucketWidth) + bucketWidth
		secs := int((opts.Duration - from).Seconds())
		if secs < 2 {
			from, secs = 0, max(1, int(opts.Duration.Seconds()))
		}
		sampling.Go(func() {
			res.CPUProfileError = takeCPUProfile(sampleCtx, "http://"+opts.Pprof, lead+from, secs, opts.CPUProfile)
		})
	}
	userBefore, sysBefore, cpuErr := ReadCPUTimes(d.PID())
	switchesBefore, switchesErr := ReadContextSwitches(d.PID())
	progressCtx, stopProgress := context.WithCancel(ctx)
	var progress sync.WaitGroup
	if opts.Progress != nil {
		progress.Go(func() { reportProgress(progressCtx, opts.Progress, opts.ProgressEvery, snd, pops, crm, sampler) })
	}
	releaseGC := holdGC(opts.GCBudget)
	defer releaseGC()
	var gcStart debug.GCStats
	debug.ReadGCStats(&gcStart)
	gcBefore := gcStart.NumGC
	// The traffic stops early if the daemon dies: there is nothing left to measure.
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	var watching sync.WaitGroup
	watching.Go(func() {
		select {
		case <-d.exited:
			stopTraffic()
		case <-trafficCtx.Done():
		}
	})
	sendErr := snd.run(trafficCtx)
	// Wait for what the last connects caused.
	if sendErr == nil {
		drainCtx, cancel := context.WithTimeout(trafficCtx, opts.Drain)
		waitDrained(drainCtx, pops, crm)
		cancel()
		// A little longer, so that a late duplicate is seen.
		select {
		case <-trafficCtx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	userAfter, sysAfter, cpuErr2 := ReadCPUTimes(d.PID())
	// This process's collections during the traffic, read before its collector is let
	// go (it then collects what the run left).
	var gc debug.GCStats
	debug.ReadGCStats(&gc)
	releaseGC()
	switchesAfter, switchesErr2 := ReadContextSwitches(d.PID())
	daemonDied := !d.running()
	stopTraffic()
	watching.Wait()
	stopProgress()
	progress.Wait()
	switch {
	case daemonDied:
		res.Incomplete = "the daemon exited during the run (log: " + res.DaemonLog + ")"
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.Incomplete = "the hard timeout ended the run before every call was played and drained"
	case ctx.Err() != nil:
		res.Incomplete = "interrupted"
	case sendErr != nil:
		res.Incomplete = "traffic stopped: " + sendErr.Error()
	}

	// Measure, then stop the agents and the daemon.
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	eventsAfter, err := ScrapeSum(fctx, client, metricsURL, eventsMetric)
	goroutinesAfter, goroutinesErr2 := ScrapeSum(fctx, client, metricsURL, goroutinesCreatedMetric)
	// Keep the daemon's final metrics beside its log, for the analysis of a run.
	if err := saveURL(fctx, client, metricsURL, filepath.Join(opts.WorkDir, "metrics.txt")); err != nil {
		opts.Logger.Warn().Err(err).Msg("saving the daemon's final metrics")
	}
	cancel()
	if err == nil && eventsErr == nil {
		res.DaemonEvents = eventsAfter - eventsBefore
	}
	res.LoadAfter, _ = LoadAverage()
	if tcpAfter, err := ReadTCPCounters(); err == nil && tcpErr == nil {
		d := tcpAfter.Sub(tcpBefore)
		res.TCP = &d
	}
	stopSampling()
	sampling.Wait()
	sampler.Sample()
	closeFleet()
	stopDaemon()

	st := snd.Stats()
	res.Calls, res.Connects, res.Skipped = st.Calls, st.Connects-st.Skipped, st.Skipped
	res.EventsSent, res.SendErrors, res.SendError, res.MaxLag = st.Events, st.SendErrors, st.LastError, st.MaxLag
	switch a := sink.(type) {
	case *amiSink:
		res.EventsHeld = a.srv.EventsHeld()
	case *ariSink:
		res.EventsHeld = a.srv.EventsHeld()
	}
	res.GeneratorLag = lag.Summary()
	if cpuErr == nil && cpuErr2 == nil && !daemonDied {
		res.DaemonCPUTime = userAfter + sysAfter - userBefore - sysBefore
		res.DaemonSystemCPUTime = sysAfter - sysBefore
		if st.Connects > 0 {
			res.DaemonCPUPerConnectUS = float64(res.DaemonCPUTime) / float64(time.Microsecond) / float64(st.Connects)
		}
		if st.Events > 0 {
			res.DaemonCPUPerEventUS = float64(res.DaemonCPUTime) / float64(time.Microsecond) / float64(st.Events)
		}
	}
	if st.Connects > 0 && !daemonDied {
		if goroutinesErr == nil && goroutinesErr2 == nil {
			res.DaemonGoroutinesPerConnect = (goroutinesAfter - goroutinesBefore) / float64(st.Connects)
		}
		if switchesErr == nil && switchesErr2 == nil {
			res.DaemonContextSwitchesPerConnect = float64(switchesAfter-switchesBefore) / float64(st.Connects)
		}
	}
	if opts.CPUProfile != "" && res.CPUProfileError == "" {
		res.CPUProfile = opts.CPUProfile
	}
	res.MaxSend = st.MaxSend
	// The pauses of the collections during the traffic (gc.Pause: most recent first).
	res.SelfGCs = gc.NumGC - gcBefore
	for _, p := range gc.Pause[:min(int(res.SelfGCs), len(gc.Pause))] {
		res.SelfGCMax = max(res.SelfGCMax, p)
	}
	res.TrafficTime = st.End.Sub(st.Start)
	// The steady window: from when transfers' second connects have caught up (settle)
	// to the last scheduled connect. A run too short for one measures from the start.
	// (--calls may end the schedule before --duration.)
	from := settle.Truncate(bucketWidth) + bucketWidth
	to := min(opts.Duration, time.Duration(float64(st.Connects)/opts.Rate*float64(time.Second)))
	if to < 2*from {
		from = 0
	}
	res.Window = to - from
	res.ConnectRate, _ = steadyRate(st.ConnectsAt, from, to)
	res.EventRate, _ = steadyRate(st.EventsAt, from, to)
	res.DaemonEventRate = ingest.rate(st.T0.Add(from), st.T0.Add(to))
	res.DaemonCPU = daemonCPU.rate(st.T0.Add(from), st.T0.Add(to))
	res.LoadTestCPU = selfCPU.rate(st.T0.Add(from), st.T0.Add(to))
	res.PopsReceived, res.PopsReplayed = fleet.received.Load(), fleet.replayed.Load()
	res.PopsMisrouted, res.AgentsDropped, res.AgentError = fleet.misrouted.Load(), fleet.dropped.Load(), fleet.lastError()
	res.ConsolePings, res.ConsolePongs = fleet.pings.Load(), fleet.pongs.Load()
	res.CRM = receiver.Stats()
	res.EventBursts = st.Bursts
	if st.Connects > 0 {
		// Each ack answers one pop received; every CRM request is answered.
		res.PeerWritesPerConnect = float64(uint64(st.Bursts)+res.PopsReceived+res.ConsolePings+res.CRM.Requests) / float64(st.Connects)
	}
	for _, w := range worst.list() {
		res.Slowest = append(res.Slowest, SlowArrival{Path: w.Path, After: w.At.Sub(st.T0), Latency: w.Latency})
	}
	res.Report = Report{
		Duration: res.TrafficTime,
		Connects: uint64(st.Connects),
		Events:   st.Events,
		Agents:   opts.Agents,
		Paths: []LatencyPath{
			{Name: "connect → pop", Summary: pops.Latency().Summary(), P99Target: opts.Targets.PopP99, Totals: pops.Totals()},
			{Name: "connect → CRM", Summary: crm.Latency().Summary(), P99Target: opts.Targets.CRMP99, Totals: crm.Totals()},
		},
		Process: sampler.Summary(),
	}
	return res, nil
}

// scrapeEvery is the period of each of the two /metrics samplings (goroutines; events
// ingested): one scrape a second in all.
const scrapeEvery = 2 * time.Second

// holdGC keeps this process's garbage collector from running until its heap has grown
// by budget (from a collection now, before the traffic), and returns what restores
// Go's settings (idempotent). A negative budget changes nothing.
func holdGC(budget int64) func() {
	if budget < 0 {
		return func() {}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	prevLimit := debug.SetMemoryLimit(int64(ms.HeapAlloc) + budget)
	prevPercent := debug.SetGCPercent(-1)
	var once sync.Once
	return func() {
		once.Do(func() {
			debug.SetGCPercent(prevPercent)
			debug.SetMemoryLimit(prevLimit)
		})
	}
}

// goroutinesCreatedMetric is the daemon's count of goroutines started (Go's
// /sched/goroutines-created:goroutines, exported by its Go collector).
const goroutinesCreatedMetric = "go_sched_goroutines_created_goroutines_total"

// counterSeries samples a counter (the daemon's events) to measure its rate over a window.
type counterSeries struct {
	mu      sync.Mutex
	at      []time.Time
	samples []float64
}

// run samples read every interval until ctx ends; failed reads are skipped.
func (c *counterSeries) run(ctx context.Context, interval time.Duration, read func(context.Context) (float64, error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := read(rctx)
		cancel()
		if err == nil {
			c.mu.Lock()
			c.at, c.samples = append(c.at, time.Now()), append(c.samples, v)
			c.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rate is the counter's increase per second between the first sample at or after from
// and the last sample at or before to; -1 when the window holds fewer than two samples.
func (c *counterSeries) rate(from, to time.Time) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, j := -1, -1
	for k, t := range c.at {
		if i < 0 && !t.Before(from) {
			i = k
		}
		if !t.After(to) {
			j = k
		}
	}
	if i < 0 || j <= i {
		return -1
	}
	return (c.samples[j] - c.samples[i]) / c.at[j].Sub(c.at[i]).Seconds()
}

// startFakeAsterisk starts the fake Asterisk of source (ami or ari) accepting user
// omlcrm with secret, and points cfg at it. It returns where events go, a wait for the
// daemon's session, and the close.
func startFakeAsterisk(source, secret string, cfg *daemonConfig) (eventSink, func(context.Context) error, func(), error) {
	switch source {
	case "ami":
		srv, err := amitest.New(amitest.WithCredentials("omlcrm", secret))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("starting the fake Asterisk (AMI): %w", err)
		}
		cfg.AMIAddress, cfg.AMISecret = srv.Addr(), secret
		wait := func(ctx context.Context) error { return srv.WaitSessions(ctx, 1) }
		return &amiSink{srv: srv}, wait, func() { srv.Close() }, nil
	case "ari":
		srv, err := aritest.New(aritest.Options{Username: "omlcrm", Password: secret, App: "omlcrm"})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("starting the fake Asterisk (ARI): %w", err)
		}
		cfg.ARIURL, cfg.ARIPassword = srv.URL(), secret
		wait := func(ctx context.Context) error { return srv.WaitClients(ctx, 1) }
		return &ariSink{srv: srv}, wait, srv.Close, nil
	}
	return nil, nil, nil, fmt.Errorf("--source %q: want ami or ari", source)
}

// waitDrained returns when both ledgers have seen every expected id, or ctx ends.
func waitDrained(ctx context.Context, ledgers ...*Ledger) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		lost := uint64(0)
		for _, l := range ledgers {
			lost += l.Totals().Lost
		}
		if lost == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reportProgress writes a line every interval until ctx ends.
func reportProgress(ctx context.Context, w io.Writer, every time.Duration, snd *sender, pops, crm *Ledger, s *Sampler) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, p, c, ps := snd.Stats(), pops.Totals(), crm.Totals(), s.Summary()
		fmt.Fprintf(w, "%5.0fs  calls %d  connects %d  events %d  pops %d/%d  crm %d/%d  pop p99 %s  crm p99 %s  rss %s  goroutines %d\n",
			time.Since(st.Start).Seconds(), st.Calls, st.Connects, st.Events, p.Delivered, p.Expected, c.Delivered, c.Expected,
			FormatDuration(pops.Latency().Quantile(0.99)), FormatDuration(crm.Latency().Quantile(0.99)),
			FormatBytes(ps.RSSLast), ps.GoroutinesLast)
	}
}

// daemonConfig is the generated configuration of the daemon under test.
type daemonConfig struct {
	LogLevel, Listen, Source, Catalog, SQLite, TokenSecret string
	AMIAddress, AMISecret                                  string
	ARIURL, ARIPassword                                    string
	// Agents is how many agent websockets the run holds open, all from 127.0.0.1.
	Agents int
}

// connSpare is the connections the daemon must accept beside the agents' websockets:
// the load test's /metrics scrapes and readiness probes, the CPU profile, stragglers.
const connSpare = 64

func (c daemonConfig) write(w io.Writer) error {
	q := strconv.Quote
	_, err := fmt.Fprintf(w, `# Generated by oml-crm loadtest for one run.
log:
  level: %s
  format: json
http:
  listen: %s
  # Every agent connects from 127.0.0.1: the per-client cap (half the total by
  # default) would refuse half of them.
  max_connections: %d
  max_connections_per_client: %d
asterisk:
  source: %s
`, c.LogLevel, q(c.Listen), c.Agents+connSpare, c.Agents+connSpare, c.Source)
	if err != nil {
		return err
	}
	if c.Source == "ami" {
		fmt.Fprintf(w, "  ami:\n    address: %s\n    username: omlcrm\n    secret: %s\n", q(c.AMIAddress), q(c.AMISecret))
	} else {
		fmt.Fprintf(w, "  ari:\n    url: %s\n    username: omlcrm\n    password: %s\n    app: omlcrm\n", q(c.ARIURL), q(c.ARIPassword))
	}
	_, err = fmt.Fprintf(w, `catalog:
  source: file
  file: %s
delivery:
  store: sqlite
  sqlite_path: %s
agentws:
  auth: token
  token_secret: %s
  # The load test counts every request its CRM receives; framing probes are not
  # notifications.
  frame_probe_interval: 0s
`, q(c.Catalog), q(c.SQLite), q(c.TokenSecret))
	return err
}

// saveURL writes the body of a GET of url to path.
func saveURL(ctx context.Context, client *http.Client, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return writeFile(path, func(w io.Writer) error {
		_, err := io.Copy(w, io.LimitReader(resp.Body, 64<<20))
		return err
	})
}

// writeFile creates path (mode 0600: it may hold secrets) and fills it with fill.
func writeFile(path string, fill func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// randomSecret is 32 random hex characters.
func randomSecret() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}
