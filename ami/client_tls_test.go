package ami_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
)

// tlsServer starts a fake Asterisk serving TLS with a fresh self-signed certificate for
// 127.0.0.1 and returns it with the pool that trusts that certificate.
func tlsServer(t *testing.T, opts ...amitest.Option) (*amitest.Server, *x509.CertPool) {
	t.Helper()
	cert, pool, err := amitest.NewSelfSignedCert("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return amitest.NewServer(t, append(opts, amitest.WithTLS(srvTLS))...), pool
}

// Over TLS (the client verifying the server's certificate against the CA pool, with
// ServerName defaulting to the address's host, an IP here) the client logs in with MD5,
// receives events in order, runs actions, and keeps the session through idle keep-alive
// Pings (read deadlines on the TLS connection must not break it).
func TestClientTLS(t *testing.T) {
	srv, pool := tlsServer(t, amitest.WithCredentials("crm", "s3cret"))
	srv.SetVar("", "OMLRECPATH", "/var/spool/asterisk/monitor")
	h := newHarness(t, srv, func(c *ami.Config) {
		c.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c.AuthMD5 = true
		c.PingInterval = 20 * time.Millisecond
	})
	h.connected()
	if !strings.HasPrefix(h.client.Banner(), "Asterisk Call Manager/") {
		t.Fatalf("banner %q", h.client.Banner())
	}

	for _, ev := range []string{"Newchannel", "BridgeEnter", "Hangup"} {
		if err := srv.SendEvent(ami.Header{Key: "Event", Value: ev}, ami.Header{Key: "Privilege", Value: "call,all"},
			ami.Header{Key: "Channel", Value: "PJSIP/1003-00000001"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"Newchannel", "BridgeEnter", "Hangup"} {
		if m := h.event(); m.Event() != want || m.Get("Channel") != "PJSIP/1003-00000001" {
			t.Fatalf("event %q, want %s", m.Headers, want)
		}
	}

	ctx := h.ctx()
	if got, err := h.client.Getvar(ctx, "", "OMLRECPATH"); err != nil || got != "/var/spool/asterisk/monitor" {
		t.Fatalf("Getvar over TLS = %q, %v", got, err)
	}
	var ae *ami.ActionError
	if _, err := h.client.Getvar(ctx, "PJSIP/none-0", "X"); !errors.As(err, &ae) || ae.Message != "No such channel" {
		t.Fatalf("Getvar of a missing channel over TLS: %v", err)
	}

	// Idle: the client pings after each silent PingInterval and the answers keep the
	// session up (a stall would reconnect: a second login).
	waitUntil(t, "two keep-alive Pings", func() bool { return countActions(srv, "Ping") >= 2 })
	if err := srv.SendEvent(ami.Header{Key: "Event", Value: "UserEvent"}, ami.Header{Key: "UserEvent", Value: "after-idle"}); err != nil {
		t.Fatal(err)
	}
	if m := h.event(); m.Get("UserEvent") != "after-idle" {
		t.Fatalf("event after idling %q", m.Headers)
	}
	if n := srv.Logins(); n != 1 {
		t.Fatalf("%d logins; the TLS session should have stayed up", n)
	}
	select {
	case sc := <-h.states:
		t.Fatalf("state change %v (%v) on a healthy TLS session", sc.state, sc.err)
	default:
	}
}

// A client that verifies certificates against the system roots refuses the self-signed
// certificate: the session never comes up, OnState reports the x509 error, the client
// keeps retrying without crashing and closes cleanly. A client given the CA pool is
// then accepted by the same server.
func TestClientTLSUntrustedCertificate(t *testing.T) {
	srv, pool := tlsServer(t)

	h := newHarness(t, srv, func(c *ami.Config) { c.TLS = &tls.Config{MinVersion: tls.VersionTLS12} })
	err := h.state(ami.StateDisconnected)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("OnState error %v (%T), want an x509.UnknownAuthorityError", err, err)
	}
	if !strings.Contains(err.Error(), "TLS handshake with "+srv.Addr()) {
		t.Errorf("error %q does not say which handshake failed", err)
	}
	if st := h.client.State(); st != ami.StateDisconnected {
		t.Fatalf("state %v after a refused certificate", st)
	}
	if n := srv.Logins(); n != 0 {
		t.Fatalf("%d logins with an untrusted certificate", n)
	}
	if err := h.client.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.client.WaitConnected(context.Background()); !errors.Is(err, ami.ErrClosed) {
		t.Fatalf("WaitConnected after Close: %v", err)
	}
	if n := srv.Logins(); n != 0 {
		t.Fatalf("%d logins with an untrusted certificate", n)
	}

	// The wrong name is refused too, even with the right pool.
	wrongName := newHarness(t, srv, func(c *ami.Config) {
		c.TLS = &tls.Config{RootCAs: pool, ServerName: "asterisk.example.net", MinVersion: tls.VersionTLS12}
	})
	var hostErr x509.HostnameError
	if err := wrongName.state(ami.StateDisconnected); !errors.As(err, &hostErr) {
		t.Fatalf("OnState error %v (%T), want an x509.HostnameError", err, err)
	}
	wrongName.client.Close()

	trusting := newHarness(t, srv, func(c *ami.Config) { c.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12} })
	trusting.connected()
	if err := srv.SendEvent(ami.Header{Key: "Event", Value: "Newchannel"}, ami.Header{Key: "Channel", Value: "PJSIP/1003-00000002"}); err != nil {
		t.Fatal(err)
	}
	if m := trusting.event(); m.Event() != "Newchannel" {
		t.Fatalf("event %q", m.Headers)
	}
	if n := srv.Logins(); n != 1 {
		t.Fatalf("%d logins, want 1 (the trusting client)", n)
	}
}

// A TLS client against a plain manager port fails the handshake (the banner is not a
// TLS record) and says so; it does not mistake the port for a working session.
func TestClientTLSAgainstPlainPort(t *testing.T) {
	srv := amitest.NewServer(t)
	h := newHarness(t, srv, func(c *ami.Config) { c.TLS = &tls.Config{MinVersion: tls.VersionTLS12} })
	err := h.state(ami.StateDisconnected)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake") {
		t.Fatalf("OnState error %v, want a TLS handshake failure", err)
	}
	if n := srv.Logins(); n != 0 {
		t.Fatalf("%d logins over a failed handshake", n)
	}
}

// waitUntil polls cond until it holds, failing after waitLimit (a bound on waiting, not
// a timing assertion).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
