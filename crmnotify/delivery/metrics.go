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
	waitingContact prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "enqueued_total",
			Help: "Server-trigger notifications handed to the delivery queue, by result (new, duplicate).",
		}, []string{"result"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "deliveries_total",
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
			Namespace: "omlcrm", Subsystem: "delivery", Name: "dead",
			Help: "Dead-lettered deliveries in the outbox (retry them with `oml-crm deliveries retry --dead`).",
		}),
		waitingContact: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "delivery", Name: "waiting_for_contact",
			Help: "Pending deliveries waiting for their contact, which the OMniLeads database could not give yet.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.enqueued, m.outcomes, m.attempts, m.attemptSeconds, m.connectToCRM, m.depth, m.oldest, m.dead, m.waitingContact} {
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
