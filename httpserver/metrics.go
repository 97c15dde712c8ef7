package httpserver

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the listener's Prometheus collectors (omlcrm_http_*). A nil *Metrics
// records nothing.
type Metrics struct {
	conns   prometheus.Gauge
	max     prometheus.Gauge
	refused *prometheus.CounterVec // reason: total | per_client
	evicted *prometheus.CounterVec // reason: total | per_client
	reqRef  *prometheus.CounterVec // reason: per_client
}

// NewMetrics registers the listener's collectors on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "omlcrm", "http"
	m := &Metrics{
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "connections", Help: "Open connections on the HTTP listener."}),
		max: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "connections_max", Help: "The cap on open connections (http.max_connections, or derived from the file-descriptor limit)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "connections_refused_total", Help: "Connections closed at accept because a cap was reached and no idle connection could make room, by cap (total, per_client)."},
			[]string{"reason"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "connections_evicted_total", Help: "Idle keep-alive connections closed to make room for a new one, by cap (total, per_client)."},
			[]string{"reason"}),
		reqRef: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_refused_total", Help: "Requests answered 503 because their client (X-Forwarded-For behind a trusted proxy) had http.max_connections_per_client requests in progress."},
			[]string{"reason"}),
	}
	for _, r := range []string{reasonTotal, reasonPerAddr} {
		m.refused.WithLabelValues(r)
		m.evicted.WithLabelValues(r)
	}
	m.reqRef.WithLabelValues(reasonPerAddr)
	for _, c := range []prometheus.Collector{m.conns, m.max, m.refused, m.evicted, m.reqRef} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) open(n int) {
	if m != nil {
		m.conns.Set(float64(n))
	}
}

func (m *Metrics) refuse(reason string) {
	if m != nil {
		m.refused.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) evict(reason string) {
	if m != nil {
		m.evicted.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) refuseRequest(reason string) {
	if m != nil {
		m.reqRef.WithLabelValues(reason).Inc()
	}
}
