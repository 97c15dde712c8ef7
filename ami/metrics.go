package ami

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the client's Prometheus collectors. One Metrics may be shared by several
// Clients. A nil *Metrics disables metrics.
type Metrics struct {
	events     *prometheus.CounterVec   // by event name
	bytes      prometheus.Counter       // bytes read from Asterisk
	reconnects prometheus.Counter       // connection attempts after the first
	actions    *prometheus.HistogramVec // action round trips, by action and result
	connected  prometheus.Gauge         // 1 while logged in
	errors     *prometheus.CounterVec   // session ends, by kind
	oversized  prometheus.Counter       // oversized events skipped, session kept
}

// maxEventLabels bounds the event-name label: names past it count as "other", so a peer
// inventing event names cannot grow the metric without limit.
const maxEventLabels = 512

// NewMetrics creates the collectors and registers them on reg (nil: not registered).
//
//	omlcrm_ami_events_total{event}                    events received, by name (also the skipped ones)
//	omlcrm_ami_read_bytes_total                       bytes read from Asterisk
//	omlcrm_ami_reconnects_total                       connection attempts after the first
//	omlcrm_ami_action_duration_seconds{action,result} action round trips; result is success, error, timeout or disconnected
//	omlcrm_ami_connected                              1 while logged in to Asterisk
//	omlcrm_ami_session_errors_total{kind}             sessions lost, by kind: limit, protocol, stall, login, io
//	omlcrm_ami_oversized_skipped_total                events over the line/message limits skipped without losing the session
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ami", Name: "events_total",
			Help: "AMI events received from Asterisk, by event name (including events skipped by the client-side filter).",
		}, []string{"event"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ami", Name: "read_bytes_total",
			Help: "Bytes read from the Asterisk manager interface.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ami", Name: "reconnects_total",
			Help: "Connection attempts to the Asterisk manager interface after the first one.",
		}),
		actions: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "omlcrm", Subsystem: "ami", Name: "action_duration_seconds",
			Help:    "AMI action round-trip time, by action and result (success, error, timeout, disconnected).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"action", "result"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "omlcrm", Subsystem: "ami", Name: "connected",
			Help: "1 while the client is logged in to Asterisk, else 0.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ami", Name: "session_errors_total",
			Help: "AMI sessions lost or refused, by kind (limit, protocol, stall, login, io).",
		}, []string{"kind"}),
		oversized: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "omlcrm", Subsystem: "ami", Name: "oversized_skipped_total",
			Help: "AMI events over asterisk.ami.max_line / max_message that the call tracker does not need, skipped without losing the session.",
		}),
	}
	for _, k := range []string{"limit", "protocol", "stall", "login", "io"} {
		m.errors.WithLabelValues(k) // known kinds start at zero (errorKind)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.events, m.bytes, m.reconnects, m.actions, m.connected, m.errors, m.oversized} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("ami: registering metrics: %w (create one Metrics and share it)", err)
			}
			return nil, fmt.Errorf("ami: registering metrics: %w", err)
		}
	}
	return m, nil
}

// eventCounters caches one counter per event name for one reader goroutine, so counting
// an event is a map lookup that does not allocate.
type eventCounters struct {
	m      *Metrics
	byName map[string]prometheus.Counter
	other  prometheus.Counter
}

func newEventCounters(m *Metrics) *eventCounters {
	if m == nil {
		return nil
	}
	return &eventCounters{m: m, byName: make(map[string]prometheus.Counter), other: m.events.WithLabelValues("other")}
}

func (e *eventCounters) inc(name []byte) {
	if e == nil {
		return
	}
	c, ok := e.byName[string(name)]
	if !ok {
		if len(e.byName) >= maxEventLabels || !labelSafe(name) {
			e.other.Inc()
			return
		}
		c = e.m.events.WithLabelValues(string(name))
		e.byName[string(name)] = c
	}
	c.Inc()
}

func (m *Metrics) addBytes(n int) {
	if m != nil && n > 0 {
		m.bytes.Add(float64(n))
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

func (m *Metrics) sessionError(kind string) {
	if m != nil {
		m.errors.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) observeAction(action, result string, seconds float64) {
	if m != nil {
		m.actions.WithLabelValues(action, result).Observe(seconds)
	}
}

// EventsCounter returns the events_total counter of one event name.
func (m *Metrics) EventsCounter(event string) prometheus.Counter {
	return m.events.WithLabelValues(event)
}

// ReconnectsCounter returns the reconnects_total counter.
func (m *Metrics) ReconnectsCounter() prometheus.Counter { return m.reconnects }

// labelSafe reports an event name usable as a label value as is: 1 to 64 letters,
// digits, '_' or '-' (Asterisk's names are); anything else a peer sends counts as "other".
func labelSafe(name []byte) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (m *Metrics) skippedOversized() {
	if m != nil {
		m.oversized.Inc()
	}
}
