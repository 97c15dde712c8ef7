package amitest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// rawSession is a bare TCP client: it writes actions and reads the server's exact bytes.
type rawSession struct {
	t  *testing.T
	nc net.Conn
	rd *ami.Reader
}

func dialRaw(t *testing.T, srv *amitest.Server) *rawSession {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawSession{t: t, nc: nc, rd: ami.NewReader(nc, ami.Limits{})}
}

func (s *rawSession) send(lines ...string) {
	s.t.Helper()
	if _, err := io.WriteString(s.nc, strings.Join(lines, "\r\n")+"\r\n\r\n"); err != nil {
		s.t.Fatal(err)
	}
}

func (s *rawSession) next() *ami.Message {
	s.t.Helper()
	var m ami.Message
	if err := s.rd.ReadMessage(&m); err != nil {
		s.t.Fatal(err)
	}
	return m.Clone()
}

func (s *rawSession) login(srv *amitest.Server) {
	s.t.Helper()
	if _, err := s.rd.ReadBanner(); err != nil {
		s.t.Fatal(err)
	}
	s.send("Action: Login", "ActionID: login-1", "Username: "+srv.Username(), "Secret: "+srv.Secret(), "Events: on")
	if m := s.next(); m.Get("Response") != "Success" || m.Get("Message") != "Authentication accepted" {
		s.t.Fatalf("login: %q", m.Headers)
	}
	if m := s.next(); m.Event() != "FullyBooted" {
		s.t.Fatalf("after login: %q", m.Headers)
	}
}

func capture(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join(pgtest.SharedDir(t), "testdata", "ami", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// captured returns the raw message of a capture that answers ActionID id.
func captured(t *testing.T, name, id string) string {
	r := ami.NewReader(bytes.NewReader(capture(t, name)), ami.Limits{})
	if _, err := r.ReadBanner(); err != nil {
		t.Fatal(err)
	}
	var m ami.Message
	for {
		if err := r.ReadMessage(&m); err != nil {
			t.Fatalf("%s: no response to %s: %v", name, id, err)
		}
		if m.IsResponse() && m.Get("ActionID") == id {
			return m.Raw()
		}
	}
}

// TestUnauthenticatedLikeAsterisk replays the client side of unauthenticated.ami and
// bad-login.ami: the server's bytes must be Asterisk's, and it must hang up.
func TestUnauthenticatedLikeAsterisk(t *testing.T) {
	srv := amitest.NewServer(t)
	s := dialRaw(t, srv)
	s.send("Action: Ping", "ActionID: ping-1")
	s.send("Action: Login", "ActionID: login-2", "Username: omlcrm", "Secret: wrong")
	got, err := io.ReadAll(s.nc) // until the server closes
	if err != nil {
		t.Fatal(err)
	}
	if want := capture(t, "unauthenticated.ami"); !bytes.Equal(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}

	s = dialRaw(t, srv)
	s.send("Action: Login", "ActionID: login-1", "Username: omlcrm", "Secret: wrong")
	got, _ = io.ReadAll(s.nc)
	if want := capture(t, "bad-login.ami"); !bytes.Equal(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

// TestActionAnswersLikeAsterisk compares answers with actions.ami byte for byte.
func TestActionAnswersLikeAsterisk(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.SetVar("", "OMLRECPATH", "/opt/asterisk/var/spool/asterisk/monitor")
	srv.SetCommand("core show version", "Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux on 2026-11-24 01:14:53 UTC")
	s := dialRaw(t, srv)
	s.login(srv)
	for _, tt := range []struct {
		id     string
		action []string
	}{
		{"getvar-7", []string{"Action: Getvar", "Variable: OMLRECPATH"}},
		{"getvar-8", []string{"Action: Getvar", "Channel: Local/nothing@nowhere-00000000;1", "Variable: OMLCAMPID"}},
		{"getvar-9", []string{"Action: Getvar", "Channel: Local/nothing@nowhere-00000000;1"}},
		{"command-3", []string{"Action: Command", "Command: core show version"}},
		{"nosuchaction-6", []string{"Action: NoSuchAction"}},
		{"logoff-26", []string{"Action: Logoff"}},
	} {
		s.send(append(tt.action, "ActionID: "+tt.id)...)
		if got, want := s.next().Raw(), captured(t, "actions.ami", tt.id); got != want {
			t.Fatalf("%s: got\n%q\nwant\n%q", tt.id, got, want)
		}
	}
	if _, err := io.ReadAll(s.nc); err != nil { // Logoff closes the connection
		t.Fatal(err)
	}
	// The unknown CLI command answer has Asterisk's shape.
	s = dialRaw(t, srv)
	s.login(srv)
	s.send("Action: Command", "ActionID: c", "Command: no such cli command")
	if m := s.next(); m.Get("Response") != "Error" || m.Get("Message") != "Command output follows" ||
		!strings.HasPrefix(m.Get("Output"), "No such command 'no such cli command' (type 'core show help no") {
		t.Fatalf("unknown CLI command: %q", m.Headers)
	}
	s.send("Action: Ping", "ActionID: p")
	if m := s.next(); m.Get("Ping") != "Pong" || m.Get("Timestamp") == "" || m.Headers[1].Key != "ActionID" {
		t.Fatalf("ping: %q", m.Headers)
	}
}

func TestCoreShowChannelsList(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.SetChannels(
		amitest.Channel{Name: "Local/3415554444@oml-customer-0000000f;2", Uniqueid: "1795483460.31", Linkedid: "1795483460.30"},
		amitest.Channel{Name: "Local/3415554444@oml-customer-0000000f;1", Uniqueid: "1795483460.30"},
	)
	s := dialRaw(t, srv)
	s.login(srv)
	s.send("Action: CoreShowChannels", "ActionID: coreshowchannels-21")
	start := s.next()
	if start.Get("EventList") != "start" || start.Get("Message") != "Channels will follow" {
		t.Fatalf("start %q", start.Headers)
	}
	// Header names and order as Asterisk 22 sends them.
	wantKeys := keysOf(firstEvent(t, "actions.ami", "CoreShowChannel"))
	for range 2 {
		if got := keysOf(s.next()); strings.Join(got, ",") != strings.Join(wantKeys, ",") {
			t.Fatalf("keys %q\nwant %q", got, wantKeys)
		}
	}
	done := s.next()
	if done.Event() != "CoreShowChannelsComplete" || done.Get("EventList") != "Complete" || done.Get("ListItems") != "2" {
		t.Fatalf("complete %q", done.Headers)
	}
}

func keysOf(m *ami.Message) []string {
	var out []string
	for _, h := range m.Headers {
		out = append(out, h.Key)
	}
	return out
}

func firstEvent(t *testing.T, file, name string) *ami.Message {
	r := ami.NewReader(bytes.NewReader(capture(t, file)), ami.Limits{})
	r.ReadBanner()
	var m ami.Message
	for r.ReadMessage(&m) == nil {
		if m.Event() == name {
			return m.Clone()
		}
	}
	t.Fatalf("no %s in %s", name, file)
	return nil
}

func TestMD5Challenge(t *testing.T) {
	srv := amitest.NewServer(t)
	s := dialRaw(t, srv)
	s.rd.ReadBanner()
	s.send("Action: Challenge", "ActionID: ch", "AuthType: MD5")
	ch := s.next().Get("Challenge")
	if len(ch) != 9 {
		t.Fatalf("challenge %q", ch)
	}
	s.send("Action: Login", "ActionID: l", "AuthType: MD5", "Username: omlcrm", "Key: 00000000000000000000000000000000")
	if m := s.next(); m.Get("Message") != "Authentication failed" {
		t.Fatalf("wrong key: %q", m.Headers)
	}
}

func TestReplayAndSend(t *testing.T) {
	srv := amitest.NewServer(t)
	if _, err := srv.Replay(strings.NewReader("Event: A\r\n\r\n")); !errors.Is(err, amitest.ErrNoSessions) {
		t.Fatalf("replay without sessions: %v", err)
	}
	s := dialRaw(t, srv)
	s.login(srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.WaitSessions(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// A hand-written stream without banner: only unsolicited events are sent, verbatim.
	stream := "Event: Newchannel\nChannel: A\n\n" + // bare LF kept as is
		"Response: Success\r\nActionID: x\r\n\r\n" + // a response: left out
		"Event: CoreShowChannel\r\nActionID: x\r\n\r\n" + // a list item: left out
		"Event: FullyBooted\r\n\r\n" + // the recorded login's: left out
		"Event: Hangup\r\nCause: 16\r\n\r\n"
	n, err := srv.Replay(strings.NewReader(stream))
	if err != nil || n != 2 {
		t.Fatalf("replayed %d, %v", n, err)
	}
	if m := s.next(); m.Raw() != "Event: Newchannel\nChannel: A\n\n" {
		t.Fatalf("first %q", m.Raw())
	}
	if m := s.next(); m.Raw() != "Event: Hangup\r\nCause: 16\r\n\r\n" {
		t.Fatalf("second %q", m.Raw())
	}
	if err := srv.SendEvent(ami.Header{Key: "Event", Value: "VarSet"}, ami.Header{Key: "Value", Value: ""}); err != nil {
		t.Fatal(err)
	}
	if m := s.next(); m.Raw() != "Event: VarSet\r\nValue: \r\n\r\n" {
		t.Fatalf("SendEvent wrote %q", m.Raw())
	}
}

func TestRestartKeepsAddressAndOutsideTesting(t *testing.T) {
	srv, err := amitest.New(amitest.WithCredentials("u", "p"), amitest.WithBanner("Asterisk Call Manager/7.0.3"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addr := srv.Addr()
	for range 3 {
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	if srv.Addr() != addr {
		t.Fatalf("address moved from %s to %s", addr, srv.Addr())
	}
	s := dialRaw(t, srv)
	if b, err := s.rd.ReadBanner(); err != nil || b != "Asterisk Call Manager/7.0.3" {
		t.Fatalf("banner %q, %v", b, err)
	}
	srv.Down()
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still listening after Down")
	}
}

func TestStallWithholdsTheBanner(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.Stall()
	s := dialRaw(t, srv)
	_ = s.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := s.rd.ReadBanner(); err == nil {
		t.Fatal("banner sent while stalled")
	}
	srv.Resume()
	s = dialRaw(t, srv)
	if _, err := s.rd.ReadBanner(); err != nil {
		t.Fatal(err)
	}
}

// WithTLS serves the protocol over TLS with the certificate from NewSelfSignedCert:
// a client trusting its pool gets the banner and logs in; the address survives a
// restart and stays TLS; a plain TCP client never sees a banner.
func TestTLS(t *testing.T) {
	cert, pool, err := amitest.NewSelfSignedCert()
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Leaf.IPAddresses) != 1 || !cert.Leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("certificate IP SANs %v, want [127.0.0.1]", cert.Leaf.IPAddresses)
	}
	srv := amitest.NewServer(t, amitest.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	dialTLS := func() *rawSession {
		t.Helper()
		nc, err := tls.Dial("tcp", srv.Addr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		t.Cleanup(func() { nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		return &rawSession{t: t, nc: nc, rd: ami.NewReader(nc, ami.Limits{})}
	}
	s := dialTLS()
	s.login(srv)
	if err := srv.SendEvent(ami.Header{Key: "Event", Value: "Newchannel"}); err != nil {
		t.Fatal(err)
	}
	if m := s.next(); m.Event() != "Newchannel" {
		t.Fatalf("event over TLS %q", m.Headers)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	dialTLS().login(srv)

	// Plain TCP: the server waits for a ClientHello; what it answers is a TLS alert,
	// never the banner.
	plain := dialRaw(t, srv)
	plain.send("Action: Login", "Username: "+srv.Username(), "Secret: "+srv.Secret())
	if banner, err := plain.rd.ReadBanner(); err == nil && strings.HasPrefix(banner, "Asterisk Call Manager") {
		t.Fatalf("plain TCP client got the banner %q", banner)
	}
}
