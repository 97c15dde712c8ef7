package calls

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	events, connected, ended, evicted          prometheus.Counter
	lazyJobs, lazyDropped, lazyReads, resolves prometheus.Counter
	lazyErrors, resyncs, resyncErrors          prometheus.Counter
	noVarSets                                  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, t *Tracker) (*metrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "omlcrm", Subsystem: "calls", Name: name, Help: help})
	}
	m := &metrics{
		events:       c("events_total", "Events fed to the call tracker (after the adapters' filtering)."),
		connected:    c("connected_total", "Connected facts emitted (one per call and agent)."),
		ended:        c("ended_total", "Ended facts emitted (one per call)."),
		evicted:      c("evicted_channels_total", "Channels dropped because MaxChannels was reached (missed hangups)."),
		lazyJobs:     c("lazy_jobs_total", "Connects that waited for lazy variable reads."),
		lazyDropped:  c("lazy_queue_full_total", "Connects emitted without lazy reads because the queue was full."),
		lazyReads:    c("lazy_reads_total", "Lazy variable reads (Getvar / ARI variable)."),
		resolves:     c("agent_resolves_total", "Agent lookups by extension."),
		lazyErrors:   c("lazy_errors_total", "Failed lazy variable reads and agent lookups."),
		resyncs:      c("resyncs_total", "Resynchronisations with the live channel list."),
		resyncErrors: c("resync_errors_total", "Failed live channel listings."),
		noVarSets:    c("no_varset_warnings_total", "Warnings that calls connect over AMI while no VarSet event ever arrived (no dialplan read class)."),
	}
	if reg == nil {
		return m, nil
	}
	gauge := func(name, help string, f func(Stats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "omlcrm", Subsystem: "calls", Name: name, Help: help},
			func() float64 { return float64(f(t.Stats())) })
	}
	cs := []prometheus.Collector{m.events, m.connected, m.ended, m.evicted, m.lazyJobs, m.lazyDropped, m.lazyReads, m.resolves, m.lazyErrors, m.resyncs, m.resyncErrors, m.noVarSets,
		gauge("channels", "Channels tracked.", func(s Stats) int { return s.Channels }),
		gauge("in_progress", "Calls in progress.", func(s Stats) int { return s.Calls }),
		gauge("pending_connects", "Connects waiting for lazy reads.", func(s Stats) int { return s.Pending }),
		gauge("remembered_connects", "(call, agent) pairs already emitted, remembered so that a call connects once per agent.", func(s Stats) int { return s.Emitted }),
	}
	for _, col := range cs {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("calls: registering metrics: %w", err)
		}
	}
	return m, nil
}
