package ari

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// maxTypeLabels bounds the distinct "type" label values: Asterisk has about sixty event
// types, and a misbehaving server must not grow the metric without bound.
const maxTypeLabels = 128

// Metrics are the ARI client's Prometheus collectors. One Metrics may serve several clients.
// A nil *Metrics records nothing.
type Metrics struct {
	events     *prometheus.CounterVec
	skipped    *prometheus.CounterVec
	bytes      prometheus.Counter
	malformed  prometheus.Counter
	oversize   prometheus.Counter
	reconnects prometheus.Counter
	connected  prometheus.Gauge
	rest       *prometheus.HistogramVec

	mu    sync.Mutex
	types map[string]struct{}
	// skippedBy caches each type's counters so the skip path does not allocate
	// (a map lookup keyed by string(bytes) does not copy); bounded by the label cap.
	skippedBy map[string]skippedCounters
}

// skippedCounters are one type's received and skipped counters.
type skippedCounters struct{ received, skipped prometheus.Counter }

// NewMetrics creates the collectors and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ari", Name: "events_total",
			Help: "ARI events received, by event type, including those skipped by the client-side type filter (\"other\" past the label cap).",
		}, []string{"type"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ari", Name: "skipped_events_total",
			Help: "ARI events not handed to the consumer because their type is not in Config.EventTypes (most skipped undecoded), by event type (\"other\" past the label cap).",
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
		types:     make(map[string]struct{}),
		skippedBy: make(map[string]skippedCounters),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.skipped, m.bytes, m.malformed, m.oversize, m.reconnects, m.connected, m.rest} {
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
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.typeLabelLocked(t)
}

func (m *Metrics) typeLabelLocked(t string) string {
	if !labelSafe(t) {
		return "other"
	}
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

// skippedEvent counts an event skipped by type without decoding; it does not allocate once
// the type has been seen.
func (m *Metrics) skippedEvent(eventType []byte, size int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	c, ok := m.skippedBy[string(eventType)]
	if !ok {
		t := string(eventType)
		label := m.typeLabelLocked(t)
		c = skippedCounters{m.events.WithLabelValues(label), m.skipped.WithLabelValues(label)}
		if len(m.skippedBy) < maxTypeLabels {
			m.skippedBy[t] = c
		}
	}
	m.mu.Unlock()
	c.received.Inc() // received, like AMI's events_total: the load test compares it to events sent
	c.skipped.Inc()
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

// labelSafe reports an event type usable as a label value as is: 1 to 64 letters, digits,
// '_' or '-' (Asterisk's types are); anything else a peer sends counts as "other".
func labelSafe(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
