package loadtest

import (
	"fmt"
	"io"
	"runtime"
	"time"
)

// TargetResult is one target and how the run did against it.
type TargetResult struct {
	Target   string
	Measured string
	Met      bool
}

// Targets judges the run against its targets: the sustained connect rate, p99
// connect→pop and connect→CRM, nothing lost and nothing duplicated (pops and CRM
// requests; a pop reaching the wrong agent or an unexpected one counts as duplicated).
func (r *Result) Targets() []TargetResult {
	t := r.Options.Targets
	pop, crm := r.Report.Paths[0], r.Report.Paths[1]
	var out []TargetResult
	if t.ConnectRate > 0 {
		out = append(out, TargetResult{
			Target:   fmt.Sprintf("%.0f connects/s sustained for %s", t.ConnectRate, r.Options.Duration),
			Measured: fmt.Sprintf("%.1f/s over the steady %s; %d connects in all", r.ConnectRate, r.Window, r.Connects+r.Skipped),
			// 1% slack for the edges of the measuring window.
			Met: r.Completed() && r.ConnectRate >= 0.99*t.ConnectRate &&
				float64(r.Connects+r.Skipped) >= 0.99*t.ConnectRate*r.Options.Duration.Seconds(),
		})
	}
	p99 := func(name string, p LatencyPath, target time.Duration) {
		if target <= 0 {
			return
		}
		out = append(out, TargetResult{
			Target:   fmt.Sprintf("p99 %s ≤ %s", name, FormatDuration(target)),
			Measured: fmt.Sprintf("%s (%d samples)", FormatDuration(p.Summary.P99), p.Summary.Count),
			Met:      p.Summary.Count > 0 && p.Summary.P99 <= target,
		})
	}
	if r.Options.MaxLag > 0 {
		out = append(out, TargetResult{
			Target:   fmt.Sprintf("generator lag ≤ %s (else the load was not produced)", FormatDuration(r.Options.MaxLag)),
			Measured: fmt.Sprintf("max %s (connects p99 %s)", FormatDuration(r.MaxLag), FormatDuration(r.GeneratorLag.P99)),
			Met:      !r.LagExceeded(),
		})
	}
	p99("connect→pop", pop, t.PopP99)
	p99("connect→CRM", crm, t.CRMP99)
	lost := pop.Totals.Lost + crm.Totals.Lost
	out = append(out, TargetResult{
		Target:   "0 lost",
		Measured: fmt.Sprintf("%d pops of %d, %d CRM requests of %d", pop.Totals.Lost, pop.Totals.Expected, crm.Totals.Lost, crm.Totals.Expected),
		Met:      lost == 0 && r.Completed(),
	})
	dup := pop.Totals.Duplicates + pop.Totals.Unexpected + crm.Totals.Duplicates + crm.Totals.Unexpected + r.PopsMisrouted
	out = append(out, TargetResult{
		Target: "0 duplicated",
		Measured: fmt.Sprintf("%d pops (%d unexpected, %d to the wrong agent), %d CRM requests (%d unexpected)",
			pop.Totals.Duplicates+pop.Totals.Unexpected+r.PopsMisrouted, pop.Totals.Unexpected, r.PopsMisrouted,
			crm.Totals.Duplicates+crm.Totals.Unexpected, crm.Totals.Unexpected),
		Met: dup == 0,
	})
	return out
}

// Passed reports whether the run completed and met every target.
func (r *Result) Passed() bool {
	for _, t := range r.Targets() {
		if !t.Met {
			return false
		}
	}
	return r.Completed()
}

// SlowestTable lists the n slowest arrivals: several at one moment on both paths point
// to a pause of a whole process; spread ones to a slow path.
func (r *Result) SlowestTable(n int) *Table {
	t := NewTable("slowest arrivals", "at", "latency")
	for i, s := range r.Slowest {
		if i == n {
			break
		}
		t.Add(s.Path, fmt.Sprintf("T0+%.3fs", s.After.Seconds()), FormatDuration(s.Latency))
	}
	return t
}

// Tables returns the run, latency and target tables.
func (r *Result) Tables() (run, paths, targets *Table) {
	ingested := "-"
	if r.DaemonEvents >= 0 {
		ingested = fmt.Sprintf("%.0f of %d sent", r.DaemonEvents, r.EventsSent)
		if r.EventsHeld > 0 {
			ingested += fmt.Sprintf(" (%d held back by the daemon's server-side filter)", r.EventsHeld)
		}
		if r.DaemonEventRate >= 0 {
			ingested += fmt.Sprintf("; %.0f/s in the steady window", r.DaemonEventRate)
		}
	}
	run = NewTable("measure", "value")
	run.Add("event source", r.Options.Source)
	run.Add("agents connected", fmt.Sprintf("%d (in %s, 64 dials at a time)", r.Options.Agents, r.AgentsConnectTime.Round(time.Millisecond)))
	run.Add("calls played", fmt.Sprint(r.Calls))
	run.Add("connects", fmt.Sprintf("%d (%d invoke a CRM, %d invoke nothing)", r.Connects+r.Skipped, r.Connects, r.Skipped))
	run.Add("connect rate (steady window)", fmt.Sprintf("%.1f/s over %s (asked %.0f/s)", r.ConnectRate, r.Window, r.Options.Rate))
	run.Add("events sent", fmt.Sprintf("%d over %s; %.0f/s in the steady window", r.EventsSent, r.TrafficTime.Round(time.Millisecond), r.EventRate))
	run.Add("events ingested by the daemon", ingested)
	g := r.GeneratorLag
	run.Add("generator lag (write − schedule)", fmt.Sprintf("connects p50 %s, p99 %s, max %s; any event max %s (bound %s); longest write %s",
		FormatDuration(g.P50), FormatDuration(g.P99), FormatDuration(g.Max), FormatDuration(r.MaxLag),
		FormatDuration(r.Options.MaxLag), FormatDuration(r.MaxSend)))
	run.Add("load-test process GC", fmt.Sprintf("%d collections, longest pause %s", r.SelfGCs, FormatDuration(r.SelfGCMax)))
	run.Add("pops received", fmt.Sprintf("%d (%d replayed)", r.PopsReceived, r.PopsReplayed))
	if r.Options.ConsolePing > 0 {
		run.Add("console pings", fmt.Sprintf("%d sent (one per agent every %s), %d answered", r.ConsolePings, r.Options.ConsolePing, r.ConsolePongs))
	}
	run.Add("CRM requests", fmt.Sprintf("%d (%d accepted)", r.CRM.Requests, r.CRM.Accepted))
	run.Add("daemon RSS max / last", FormatBytes(r.Report.Process.RSSMax)+" / "+FormatBytes(r.Report.Process.RSSLast))
	run.Add("daemon goroutines max / last", fmt.Sprintf("%d / %d", r.Report.Process.GoroutinesMax, r.Report.Process.GoroutinesLast))
	cores := func(v float64) string {
		if v < 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v)
	}
	run.Add("CPU cores used (steady window)", fmt.Sprintf("daemon %s, load test %s", cores(r.DaemonCPU), cores(r.LoadTestCPU)))
	if r.DaemonCPUTime >= 0 {
		run.Add("daemon CPU per connect / per event", fmt.Sprintf("%.0fµs / %.1fµs (%s of CPU from the first event to the end of the drain)",
			r.DaemonCPUPerConnectUS, r.DaemonCPUPerEventUS, r.DaemonCPUTime))
	} else {
		run.Add("daemon CPU per connect / per event", "-")
	}
	if r.DaemonSystemCPUTime >= 0 && r.DaemonCPUTime > 0 {
		run.Add("daemon CPU in the kernel", fmt.Sprintf("%s (%.0f%%)", r.DaemonSystemCPUTime, 100*float64(r.DaemonSystemCPUTime)/float64(r.DaemonCPUTime)))
	}
	run.Add("daemon per connect: goroutines started / context switches",
		fmt.Sprintf("%s / %s", perConnect(r.DaemonGoroutinesPerConnect), perConnect(r.DaemonContextSwitchesPerConnect)))
	if r.PeerWritesPerConnect >= 0 && r.Connects+r.Skipped > 0 {
		n := float64(r.Connects + r.Skipped) // every connect written, as the CPU per connect
		run.Add("peer writes to the daemon per connect (each can wake it)",
			fmt.Sprintf("%.2f: event bursts %.2f, acks %.2f, console pings %.2f, CRM answers %.2f", r.PeerWritesPerConnect,
				float64(r.EventBursts)/n, float64(r.PopsReceived)/n, float64(r.ConsolePings)/n, float64(r.CRM.Requests)/n))
	}
	if r.CPUProfile != "" {
		run.Add("daemon CPU profile (steady window)", r.CPUProfile)
	} else if r.CPUProfileError != "" {
		run.Add("daemon CPU profile", r.CPUProfileError)
	}
	run.Add("machine load average (1 min)", fmt.Sprintf("%.2f before, %.2f after (%d CPUs)", r.LoadBefore, r.LoadAfter, runtime.NumCPU()))
	if r.TCP != nil {
		run.Add("TCP losses on the machine", fmt.Sprintf("%d retransmitted segments, %d loss probes, %d RTO timeouts, %d receive-queue drops",
			r.TCP.RetransSegs, r.TCP.LossProbes, r.TCP.Timeouts, r.TCP.RcvQDrops))
	}
	run.Add("daemon stop", r.DaemonExit)
	if r.SendErrors > 0 {
		run.Add("send errors", fmt.Sprintf("%d, last: %s", r.SendErrors, r.SendError))
	}
	if r.AgentsDropped > 0 || r.AgentError != "" {
		run.Add("agent problems", fmt.Sprintf("%d connections lost; last: %s", r.AgentsDropped, r.AgentError))
	}
	if r.Report.Process.Errors > 0 {
		run.Add("sampling errors", fmt.Sprintf("%d, last: %s", r.Report.Process.Errors, r.Report.Process.LastError))
	}
	if r.Incomplete != "" {
		run.Add("INCOMPLETE", r.Incomplete)
	}
	_, paths = r.Report.Tables()
	targets = NewTable("target", "measured", "result")
	for _, t := range r.Targets() {
		res := "PASS"
		if !t.Met {
			res = "FAIL"
		}
		targets.Add(t.Target, t.Measured, res)
	}
	return run, paths, targets
}

// WriteText prints the result for a terminal.
func (r *Result) WriteText(w io.Writer) error {
	run, paths, targets := r.Tables()
	for i, t := range []*Table{run, paths, r.SlowestTable(5), targets} {
		if i > 0 {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		if err := t.WriteText(w); err != nil {
			return err
		}
	}
	return nil
}

// WriteMarkdown prints the result as a Markdown section; command is the command line
// that produced it.
func (r *Result) WriteMarkdown(w io.Writer, command string) error {
	run, paths, targets := r.Tables()
	if _, err := fmt.Fprintf(w, "Command: `%s`\n\n", command); err != nil {
		return err
	}
	for _, t := range []*Table{run, paths, r.SlowestTable(5), targets} {
		if err := t.WriteMarkdown(w); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	return nil
}

// perConnect formats a count per connect ("-" unknown).
func perConnect(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}
