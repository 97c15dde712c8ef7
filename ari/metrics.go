package ari

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// maxTypeLabels bounds the distinct "type" label values: Asterisk has about sixty event
// types, and a misbehaving server must not grow the metric without bound.
const maxTypeLabels = 128

// Metrics are the ARI client's Prometheus collectors. One Metrics may serve several clients.
// A nil *Metrics records nothing.
type Metrics struct {
	events     *prometheus.CounterVec
	bytes      prometheus.Counter
	malformed  prometheus.Counter
	oversize   prometheus.Counter
	reconnects prometheus.Counter
	connected  prometheus.Gauge
	rest       *prometheus.HistogramVec

	mu    sync.Mutex
	types map[string]struct{}
}

// NewMetrics creates the collectors and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ari", Name: "events_total",
			Help: "ARI events received, by event type (\"other\" past the label cap).",
		}, []string{"type"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ari", Name: "event_bytes_total",
			Help: "Bytes of ARI event messages received.",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ari", Name: "malformed_events_total",
			Help: "ARI event messages that could not be decoded (logged and skipped).",
		}),
		oversize: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ari", Name: "oversize_messages_total",
			Help: "ARI event messages over the size limit (the connection is reset).",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ari", Name: "reconnects_total",
			Help: "Reconnection attempts of the ARI events websocket.",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "ari", Name: "connected",
			Help: "1 while the ARI events websocket is connected.",
		}),
		rest: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "omlcrm", Subsystem: "ari", Name: "rest_request_duration_seconds",
			Help:    "ARI REST request latency by route and HTTP status (\"error\" when no reply).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "code"}),
		types: make(map[string]struct{}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.bytes, m.malformed, m.oversize, m.reconnects, m.connected, m.rest} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return nil, fmt.Errorf("ari: metrics already registered (share one ari.Metrics between clients): %w", err)
				}
				return nil, fmt.Errorf("ari: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *Metrics) typeLabel(t string) string {
	if len(t) > 64 || !utf8.ValidString(t) {
		return "other"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.types[t]; ok {
		return t
	}
	if len(m.types) >= maxTypeLabels {
		return "other"
	}
	m.types[t] = struct{}{}
	return t
}

func (m *Metrics) event(eventType string, size int) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(m.typeLabel(eventType)).Inc()
	m.bytes.Add(float64(size))
}

func (m *Metrics) malformedEvent(size int) {
	if m == nil {
		return
	}
	m.malformed.Inc()
	m.bytes.Add(float64(size))
}

func (m *Metrics) oversizeMessage() {
	if m != nil {
		m.oversize.Inc()
	}
}

func (m *Metrics) reconnect() {
	if m != nil {
		m.reconnects.Inc()
	}
}

func (m *Metrics) setConnected(up bool) {
	if m == nil {
		return
	}
	if up {
		m.connected.Set(1)
	} else {
		m.connected.Set(0)
	}
}

func (m *Metrics) restDone(route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	code := "error"
	if status > 0 {
		code = strconv.Itoa(status)
	}
	m.rest.WithLabelValues(route, code).Observe(d.Seconds())
}
