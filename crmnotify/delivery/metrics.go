package delivery

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	enqueued       *prometheus.CounterVec // result: new | duplicate
	outcomes       *prometheus.CounterVec // outcome: delivered | dead
	attempts       *prometheus.CounterVec // result: success | retryable | final
	attemptSeconds prometheus.Histogram
	connectToCRM   prometheus.Histogram
	depth          prometheus.Gauge
	oldest         prometheus.Gauge
	dead           prometheus.Gauge
	held           prometheus.Gauge
	writeErrors    prometheus.Counter
	holdRefused    prometheus.Counter
	storeWritable  prometheus.Gauge
	siteBacklog    *prometheus.GaugeVec // site_id
	siteInFlight   *prometheus.GaugeVec // site_id
	waitingContact prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "enqueued_total",
			Help: "Server-trigger notifications handed to the delivery queue, by result (new, duplicate).",
		}, []string{"result"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "finished_total",
			Help: "Deliveries that reached a final state, by outcome (delivered, dead).",
		}, []string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "attempts_total",
			Help: "HTTP attempts to CRMs, by result (success, retryable, final).",
		}, []string{"result"}),
		attemptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "attempt_duration_seconds",
			Help:    "Duration of one HTTP attempt to a CRM.",
			Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		connectToCRM: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "connect_to_crm_seconds",
			Help:    "From the call connecting to the agent to the CRM's 2xx answer (includes retries).",
			Buckets: []float64{.005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400},
		}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "queue_depth",
			Help: "Deliveries pending or failed (waiting for an attempt).",
		}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "oldest_pending_age_seconds",
			Help: "Age of the oldest pending or failed delivery; 0 when none.",
		}),
		dead: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "dead_letters",
			Help: "Dead-lettered deliveries in the outbox (retry them with `oml-crm deliveries retry --dead`).",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "held",
			Help: "Deliveries accepted while the outbox could not be written, held in memory until it can (lost by a kill -9 meanwhile).",
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "store_write_errors_total",
			Help: "Writes to the outbox that failed (disk full, read-only, database down).",
		}),
		holdRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "hold_refused_total",
			Help: "Deliveries refused because the outbox could not be written and the hold buffer (HoldLimit) was full.",
		}),
		storeWritable: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "store_writable",
			Help: "1 when the outbox takes writes and its file is in place, 0 otherwise (see /readyz for why).",
		}),
		siteBacklog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "site_backlog",
			Help: "Deliveries pending or failed per site (a site once seen stays at 0 when drained).",
		}, []string{"site_id"}),
		siteInFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "site_in_flight",
			Help: "Attempts running per site on this instance (at most delivery.max_in_flight_per_site).",
		}, []string{"site_id"}),
		waitingContact: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "waiting_for_contact",
			Help: "Pending deliveries waiting for their contact, which the OMniLeads database could not give yet.",
		}),
	}
	// Known label values start at zero, so that rate() and alerts see a series from the start.
	for _, r := range []string{"new", "duplicate"} {
		m.enqueued.WithLabelValues(r)
	}
	for _, o := range []Status{StatusDelivered, StatusDead} {
		m.outcomes.WithLabelValues(string(o))
	}
	for _, c := range []attemptClass{classSuccess, classRetry, classFinal} {
		m.attempts.WithLabelValues(string(c))
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.enqueued, m.outcomes, m.attempts, m.attemptSeconds, m.connectToCRM, m.depth, m.oldest, m.dead, m.held, m.writeErrors, m.holdRefused, m.storeWritable, m.siteBacklog, m.siteInFlight, m.waitingContact} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register delivery metrics: %w (one delivery queue per registry)", err)
			}
			return nil, fmt.Errorf("register delivery metrics: %w", err)
		}
	}
	return m, nil
}
