package agentws

import "github.com/prometheus/client_golang/prometheus"

// metrics are the hub's Prometheus collectors (omlcrm_agentws_*).
type metrics struct {
	connections  prometheus.Gauge
	agents       prometheus.Gauge
	popsSent     prometheus.Counter
	popsReplayed prometheus.Counter
	popsAcked    prometheus.Counter
	popsOpened   prometheus.Counter
	popsDropped  *prometheus.CounterVec // reason: expired | duplicate
	disconnects  *prometheus.CounterVec // reason: one of disconnectReasons
	refused      *prometheus.CounterVec // reason: origin | credentials | limit | unavailable
	pings        *prometheus.CounterVec // outcome: sent | skipped
	pingsSent    prometheus.Counter     // pings{outcome="sent"}, resolved once
	pingsSkipped prometheus.Counter     // pings{outcome="skipped"}
}

// disconnectReasons are the reason labels of omlcrm_agentws_disconnects_total (conn.closeWith).
var disconnectReasons = []string{"client_closed", "slow_client", "write_error", "idle_timeout", "ping_error",
	"frame_too_large", "connection_lost", "invalid_messages"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "omlcrm", "agentws"
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "connections", Help: "Open agent websocket connections on this instance."}),
		agents: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "connected_agents", Help: "Distinct agents with at least one open connection on this instance."}),
		popsSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "pops_sent_total", Help: "crm.pop messages written to agent connections (live, not replayed)."}),
		popsReplayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "pops_replayed_total", Help: "crm.pop messages re-sent to a connecting agent."}),
		popsAcked: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "pops_acked_total", Help: "Pops a page acknowledged as done with (first ack of each pop): no longer replayed."}),
		popsOpened: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "pops_opened_total", Help: "Pops whose CRM the browser opened (first opened of each pop)."}),
		popsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "pops_dropped_total", Help: "Pops not delivered, by reason (expired, duplicate: id already popped or call ended)."},
			[]string{"reason"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "disconnects_total", Help: "Agent connections closed, by reason."}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "refused_total", Help: "Websocket upgrades refused, by reason."}, []string{"reason"}),
		pings: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "pings_total", Help: "Websocket ping periods of agent connections: sent a ping, or skipped it (a message went each way within the period)."},
			[]string{"outcome"}),
	}
	// Known label values start at zero, so that rate() and alerts see a series from the start.
	for _, r := range []string{"expired", "duplicate"} {
		m.popsDropped.WithLabelValues(r)
	}
	for _, r := range disconnectReasons {
		m.disconnects.WithLabelValues(r)
	}
	for _, r := range []string{"origin", "credentials", "limit", "unavailable"} {
		m.refused.WithLabelValues(r)
	}
	m.pingsSent, m.pingsSkipped = m.pings.WithLabelValues("sent"), m.pings.WithLabelValues("skipped")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connections, m.agents, m.popsSent, m.popsReplayed,
		m.popsAcked, m.popsOpened, m.popsDropped, m.disconnects, m.refused, m.pings} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// registerStoreSizes exports the single-instance store's map sizes (the Redis store
// expires its keys in Redis).
func (m *metrics) registerStoreSizes(reg prometheus.Registerer, s *memoryStore) error {
	if reg == nil {
		return nil
	}
	const ns, sub = "omlcrm", "agentws"
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "pending_pops",
			Help: "Pops held in memory for replay (single instance), until acked, expired or their call ends."},
			func() float64 { n, _ := s.sizes(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "ended_calls",
			Help: "Ended calls remembered in memory (single instance) to refuse their late pops; bounded by the sweep and a cap."},
			func() float64 { _, n := s.sizes(); return float64(n) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// marked counts a pop acked (opened=false) or opened the first time a page says so.
func (m *metrics) marked(res markResult, opened bool) {
	switch {
	case res != markFirst:
	case opened:
		m.popsOpened.Inc()
	default:
		m.popsAcked.Inc()
	}
}
