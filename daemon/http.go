package daemon

import (
	"fmt"
	"net"
	"net/http"

	"github.com/omlcrm/oml-crm/httpserver"
)

// hardenedServer builds the daemon's http.Server on a capped wrapping of ln
// (http.max_connections*, timeouts, header limit; see package httpserver) and returns
// the listener to serve (or to wrap in TLS).
func (d *Daemon) hardenedServer(h http.Handler, ln net.Listener, plainHTTP bool) (*http.Server, net.Listener, error) {
	hc := d.cfg.HTTP
	trusted, err := hc.TrustedProxyPrefixes()
	if err != nil {
		return nil, ln, fmt.Errorf("http.trusted_proxies: %w", err)
	}
	nofile := httpserver.FDLimit()
	total, lowered := httpserver.MaxConns(hc.MaxConnections, nofile)
	if lowered {
		d.log.Warn().Int("http.max_connections", hc.MaxConnections).Int("used", total).Uint64("fd_limit", nofile).
			Msg("http.max_connections lowered to leave file descriptors for deliveries, databases and Redis; raise LimitNOFILE to serve more")
	}
	perClient := httpserver.MaxConnsPerClient(hc.MaxConnectionsPerClient, total)
	m, err := httpserver.NewMetrics(d.reg)
	if err != nil {
		return nil, ln, fmt.Errorf("registering the HTTP listener metrics: %w", err)
	}
	srv, capped := httpserver.New(ln, h, httpserver.Config{
		Limits:            httpserver.Limits{Max: total, PerAddr: perClient, TrustedProxies: trusted, PlainHTTP: plainHTTP},
		ReadHeaderTimeout: hc.ReadHeaderTimeout,
		ReadTimeout:       hc.ReadTimeout,
		WriteTimeout:      hc.WriteTimeout,
		IdleTimeout:       hc.IdleTimeout,
		MaxHeaderBytes:    int(hc.MaxHeaderBytes),
	}, m)
	d.log.Info().Int("max_connections", total).Int("max_connections_per_client", perClient).Uint64("fd_limit", nofile).
		Int("trusted_proxies", len(trusted)).Msg("http listener limits")
	return srv, capped, nil
}
