package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/loadtest"
)

// TestLoadtestSmallRun runs the loadtest command at small scale against the real binary,
// through AMI and through ARI, and checks that every pop and every CRM delivery the calls
// called for arrived exactly once, at the right agent. Latencies are reported, not
// asserted.
func TestLoadtestSmallRun(t *testing.T) {
	bin := buildBinary(t)
	for _, source := range []string{"ami", "ari"} {
		t.Run(source, func(t *testing.T) {
			dir := t.TempDir()
			reportPath, jsonPath := filepath.Join(dir, "report.md"), filepath.Join(dir, "result.json")
			var stdout, stderr bytes.Buffer
			code := runLoadtest(context.Background(), []string{
				"--daemon", bin, "--source", source, "--rate", "20", "--duration", "3s", "--agents", "20",
				"--talk", "2s", "--grace", "60s", "--work-dir", filepath.Join(dir, "work"), "--quiet",
				"--report", reportPath, "--json", jsonPath, "--self-cpuprofile", filepath.Join(dir, "self.pprof"),
				"--max-lag", "1m", // the generator's lag depends on the machine's load, not on the code tested here
				"--console-ping", "500ms", // each of the 20 agents pings as a console does, one every 25 ms in all
			}, &stdout, &stderr)
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			if code != loadtestCompleted {
				t.Fatalf("exit %d, want %d (completed)", code, loadtestCompleted)
			}

			// The load test's own profile: a gzipped pprof file.
			if prof, err := os.ReadFile(filepath.Join(dir, "self.pprof")); err != nil || len(prof) < 2 || prof[0] != 0x1f || prof[1] != 0x8b {
				t.Errorf("--self-cpuprofile: %d bytes, %v; want a gzipped profile", len(prof), err)
			}
			raw, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatal(err)
			}
			var res loadtest.Result
			if err := json.Unmarshal(raw, &res); err != nil {
				t.Fatalf("decoding --json output: %v", err)
			}
			if !res.Completed() {
				t.Fatalf("run incomplete: %s", res.Incomplete)
			}
			// --rate sets the rate target too (not the 200/s default).
			if res.Options.Targets.ConnectRate != 20 {
				t.Errorf("connect-rate target %.0f/s, want the --rate 20", res.Options.Targets.ConnectRate)
			}
			if res.Calls == 0 || res.Connects == 0 || res.Skipped == 0 {
				t.Errorf("calls %d, connects invoking a CRM %d, connects invoking nothing %d: want all > 0",
					res.Calls, res.Connects, res.Skipped)
			}
			pop, crm := res.Report.Paths[0].Totals, res.Report.Paths[1].Totals
			for name, tot := range map[string]loadtest.LedgerTotals{"pops": pop, "CRM deliveries": crm} {
				if tot.Expected == 0 {
					t.Errorf("%s: none expected: the mix must produce both kinds", name)
				}
				if tot.Delivered != tot.Expected || tot.Lost != 0 {
					t.Errorf("%s: %d of %d arrived, %d lost", name, tot.Delivered, tot.Expected, tot.Lost)
				}
				if tot.Duplicates != 0 || tot.Unexpected != 0 {
					t.Errorf("%s: %d duplicated, %d unexpected", name, tot.Duplicates, tot.Unexpected)
				}
			}
			if got := pop.Expected + crm.Expected; got != uint64(res.Connects) {
				t.Errorf("%d pops + deliveries expected for %d connects invoking a CRM", got, res.Connects)
			}
			if res.PopsMisrouted != 0 || res.CRM.DuplicateDeliveries != 0 {
				t.Errorf("%d pops reached the wrong agent; the CRM saw %d duplicate deliveries", res.PopsMisrouted, res.CRM.DuplicateDeliveries)
			}
			// The run lasts well over 20 pings; a ping in flight when the agents close goes unanswered.
			if res.ConsolePings < 20 || res.ConsolePongs+2 < res.ConsolePings || res.ConsolePongs > res.ConsolePings {
				t.Errorf("console pings: %d sent, %d answered; want 20 or more, each answered", res.ConsolePings, res.ConsolePongs)
			}
			if res.PopsReceived != pop.Delivered {
				t.Errorf("agents received %d pops, %d distinct expected ones", res.PopsReceived, pop.Delivered)
			}
			if res.DaemonEvents != float64(res.EventsSent-res.EventsHeld) {
				t.Errorf("the daemon counted %.0f events, the fake Asterisk sent %d and its Filter held back %d", res.DaemonEvents, res.EventsSent, res.EventsHeld)
			}
			if res.EventsHeld == 0 {
				t.Errorf("the daemon's server-side filter (asterisk.%s.server_filter) held back no event of the simulated stream", res.Options.Source)
			}
			if res.DaemonExit != "exit 0" {
				t.Errorf("daemon stop: %s", res.DaemonExit)
			}
			if res.DaemonCPUTime < 0 || res.DaemonCPUPerConnectUS < 0 || res.DaemonCPUPerEventUS < 0 {
				t.Errorf("daemon CPU unknown: %v, %v µs per connect, %v µs per event", res.DaemonCPUTime, res.DaemonCPUPerConnectUS, res.DaemonCPUPerEventUS)
			}
			// The peers' writes: one or more event bursts per connect, an ack per pop,
			// every console ping, an answer per CRM request.
			written := float64(res.Connects + res.Skipped)
			wantWrites := (float64(res.EventBursts) + float64(res.PopsReceived+res.ConsolePings+res.CRM.Requests)) / written
			if res.EventBursts < res.Connects+res.Skipped || res.PeerWritesPerConnect != wantWrites {
				t.Errorf("peer writes per connect %v (event bursts %d for %.0f connects), want %v", res.PeerWritesPerConnect, res.EventBursts, written, wantWrites)
			}
			if res.GeneratorLag.Count != uint64(res.Connects+res.Skipped) || res.MaxLag < res.GeneratorLag.Max {
				t.Errorf("generator lag recorded for %d of %d connects, max %v (all events %v)",
					res.GeneratorLag.Count, res.Connects+res.Skipped, res.GeneratorLag.Max, res.MaxLag)
			}

			report, err := os.ReadFile(reportPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Command: `oml-crm loadtest ", "| connect → pop |", "| connect → CRM |", "| 0 lost |", "| 0 duplicated |"} {
				if !strings.Contains(string(report), want) {
					t.Errorf("report lacks %q:\n%s", want, report)
				}
			}
		})
	}
}

func TestLoadtestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runLoadtest(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, flag := range []string{"--rate", "--duration", "--agents", "--calls", "--source", "--report", "--daemon", "--max-lag", "--gc-budget-mib", "--pprof", "--cpuprofile", "--self-cpuprofile"} {
		if !strings.Contains(stdout.String(), flag) {
			t.Errorf("--help does not document %s:\n%s", flag, stdout.String())
		}
	}
	cases := map[string][]string{
		"bad source":   {"--source", "sip"},
		"no agents":    {"--agents", "0"},
		"zero rate":    {"--rate", "0"},
		"stray arg":    {"now"},
		"unknown flag": {"--fast"},
	}
	for name, args := range cases {
		stdout.Reset()
		stderr.Reset()
		args = append(args, "--daemon", "/nonexistent/oml-crm", "--quiet")
		if code := runLoadtest(context.Background(), args, &stdout, &stderr); code != loadtestCouldNot {
			t.Errorf("%s: exit %d, want %d; stderr: %s", name, code, loadtestCouldNot, stderr.String())
		}
		if !strings.Contains(stderr.String(), "oml-crm loadtest: ") {
			t.Errorf("%s: no error message: %q", name, stderr.String())
		}
	}
}

// A run whose generator falls behind its schedule by more than --max-lag fails (exit 3)
// with a message naming the lag and its bound, and still prints and writes its result.
// No generator writes an event within 1ns of its schedule.
func TestLoadtestLagOverBoundFails(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "result.json")
	var stdout, stderr bytes.Buffer
	code := runLoadtest(context.Background(), []string{
		"--daemon", bin, "--rate", "10", "--duration", "1s", "--agents", "5", "--talk", "1s",
		"--grace", "60s", "--work-dir", filepath.Join(dir, "work"), "--quiet", "--json", jsonPath, "--max-lag", "1ns",
	}, &stdout, &stderr)
	if code != loadtestLagged {
		t.Fatalf("exit %d, want %d (lag over its bound); stderr:\n%s", code, loadtestLagged, stderr.String())
	}
	if !strings.Contains(stderr.String(), "exceeded its bound --max-lag 1ns") {
		t.Errorf("stderr does not say the lag exceeded its bound:\n%s", stderr.String())
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var res loadtest.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Completed() || !res.LagExceeded() || res.Report.Paths[0].Totals.Lost != 0 {
		t.Errorf("completed %v, lag exceeded %v, pops lost %d", res.Completed(), res.LagExceeded(), res.Report.Paths[0].Totals.Lost)
	}
	if !strings.Contains(stdout.String(), "generator lag ≤ 1ns") {
		t.Errorf("the targets table does not show the lag bound:\n%s", stdout.String())
	}
}

// A run that cannot finish within --duration + --grace stops by itself, says so, exits 1
// and still writes what it measured.
func TestLoadtestHardTimeout(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "result.json")
	var stdout, stderr bytes.Buffer
	// Calls talk for 30 s: they cannot end before the 2 s + 8 s hard timeout.
	code := runLoadtest(context.Background(), []string{
		"--daemon", bin, "--rate", "10", "--duration", "2s", "--agents", "5", "--talk", "30s",
		"--grace", "8s", "--work-dir", filepath.Join(dir, "work"), "--quiet", "--json", jsonPath,
	}, &stdout, &stderr)
	if code != loadtestIncomplete {
		t.Fatalf("exit %d, want %d (incomplete); stderr:\n%s", code, loadtestIncomplete, stderr.String())
	}
	if !strings.Contains(stderr.String(), "hard timeout") {
		t.Errorf("stderr does not name the hard timeout:\n%s", stderr.String())
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var res loadtest.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.Completed() || res.Calls == 0 || res.DaemonExit != "exit 0" {
		t.Errorf("incomplete %q, calls %d, daemon stop %q", res.Incomplete, res.Calls, res.DaemonExit)
	}
	if !strings.Contains(stdout.String(), "INCOMPLETE") {
		t.Errorf("the printed table does not say the run is incomplete:\n%s", stdout.String())
	}
}
