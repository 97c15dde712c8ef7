package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofServer serves Go's runtime profiles (net/http/pprof) for `run --pprof ADDR`. It is
// an operator's opt-in on its own listener, never on the public one, and only on a
// loopback address: a profile shows call data in memory and costs CPU to take.
type pprofServer struct {
	srv    *http.Server
	ln     net.Listener
	served chan error
}

// checkPprofAddr refuses an address that is not host:port on a loopback host.
func checkPprofAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--pprof %q: want host:port on a loopback address (e.g. 127.0.0.1:6060): %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--pprof %q: profiles are served on a loopback address only (e.g. 127.0.0.1:6060)", addr)
	}
	return nil
}

// startPprof listens on addr (checked by checkPprofAddr) and serves the profiles until
// stop is called.
func startPprof(addr string) (*pprofServer, error) {
	if err := checkPprofAddr(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: listening on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &pprofServer{
		// No WriteTimeout: a CPU profile or trace streams for as long as it was asked.
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:  ln, served: make(chan error, 1),
	}
	go func() { p.served <- p.srv.Serve(ln) }() // owned by p: stop ends it
	return p, nil
}

// Addr is the address the profiles are served on.
func (p *pprofServer) Addr() string { return p.ln.Addr().String() }

// stop closes the listener and every connection (a profile being taken is cut short).
func (p *pprofServer) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = p.srv.Close()
	}
	if serr := <-p.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
