// Package amitest runs an in-process fake Asterisk manager interface on 127.0.0.1 for
// tests, the demo and the load test. It speaks the protocol as Asterisk 22 does (banner
// `Asterisk Call Manager/11.0.0`, CRLF, the same response texts as the recordings under
// ../shared/testdata/ami), answers the actions oml-crm uses, streams recorded or
// hand-written events byte for byte (ReplayWith's Track also keeps the recording's
// channels live for the actions, as Asterisk holds them at each point), and misbehaves
// on demand.
//
// Answered actions: Challenge (MD5), Login (plain or MD5 key; a bad login gets
// `Response: Error` / `Message: Authentication failed` and the socket is closed, as
// Asterisk does), Events, Filter (legacy regex rules applied per session to the events
// sent to it, as Asterisk applies them; see conn.filter), Ping, Getvar (from SetVar and SetChannels, with
// Asterisk's `No such channel` and `No variable specified`; names are case-sensitive, as
// Asterisk's are), Status (Status events per channel, with `Variable:` headers under the
// names the dialplan set for AllVariables), CoreShowChannels (an EventList
// of CoreShowChannel events and CoreShowChannelsComplete with ListItems), Command (from
// SetCommand; unknown commands get Asterisk's `No such command` error), Logoff (Goodbye,
// then close). Any other action gets Asterisk's `Invalid/unknown command` error unless a
// handler is installed with Handle. Before login every action but Login, Challenge and
// Logoff gets `Permission denied`.
//
// WithTLS serves the protocol over TLS on the same listener (manager.conf tlsenable);
// NewSelfSignedCert makes a certificate for it.
//
// Events go to every logged-in session whose Login did not say `Events: off`. Writes block
// while a client does not read: back-pressure reaches the caller of Send or Replay, so a
// load test measures the client, not a queue.
package amitest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
)

// Defaults of a new server.
const (
	DefaultUsername = "omlcrm"
	DefaultSecret   = "omlcrm-secret"
	DefaultBanner   = "Asterisk Call Manager/11.0.0"
)

// maxRecorded bounds the actions kept for Actions.
const maxRecorded = 10000

// ErrNoSessions is returned when events are sent while no client is logged in.
var ErrNoSessions = errors.New("amitest: no logged-in session to send to")

// Option configures a Server.
type Option func(*Server)

// WithCredentials sets the accepted username and secret (default omlcrm / omlcrm-secret).
func WithCredentials(username, secret string) Option {
	return func(s *Server) { s.username, s.secret = username, secret }
}

// WithBanner sets the greeting line (default `Asterisk Call Manager/11.0.0`).
func WithBanner(banner string) Option { return func(s *Server) { s.banner = banner } }

// WithLogf sends the server's diagnostics to logf (NewServer uses t.Logf).
func WithLogf(logf func(format string, args ...any)) Option {
	return func(s *Server) { s.logf = logf }
}

// WithAddress listens on addr instead of 127.0.0.1:0.
func WithAddress(addr string) Option { return func(s *Server) { s.addr = addr } }

// WithTLS serves TLS with cfg (which must hold a certificate) on the server's listener,
// as Asterisk does with manager.conf tlsenable: the handshake comes first, then the
// banner. A failed handshake is logged and the connection closed.
func WithTLS(cfg *tls.Config) Option { return func(s *Server) { s.tls = cfg } }

// NewSelfSignedCert makes a self-signed ECDSA P-256 certificate valid for one day for
// hosts (IP addresses or DNS names; default 127.0.0.1), and a pool that trusts it: the
// certificate for WithTLS and the RootCAs for a client that verifies it.
func NewSelfSignedCert(hosts ...string) (tls.Certificate, *x509.CertPool, error) {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("amitest: generating a key: %w", err)
	}
	serial, err := crand.Int(crand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("amitest: generating a serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "amitest " + hosts[0], Organization: []string{"oml-crm amitest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed: it is its own authority
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("amitest: creating a certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("amitest: parsing the certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

// ActionFunc answers an action installed with Handle. It returns the response headers,
// starting with `Response`; the server inserts the request's ActionID after it.
type ActionFunc func(req *ami.Message) []ami.Header

// Channel is one live channel, listed by CoreShowChannels and known to Getvar.
type Channel struct {
	Name, Uniqueid, Linkedid  string
	CallerIDNum, CallerIDName string
	Context, Exten, Priority  string
	Application, Data         string
	BridgeID                  string
	Vars                      map[string]string // for Getvar
}

// Headers returns the CoreShowChannel headers Asterisk 22 sends for the channel (without
// Event and ActionID), in its order.
func (c Channel) Headers() []ami.Header {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	return []ami.Header{
		{Key: "Channel", Value: c.Name},
		{Key: "ChannelState", Value: "6"},
		{Key: "ChannelStateDesc", Value: "Up"},
		{Key: "CallerIDNum", Value: def(c.CallerIDNum, "<unknown>")},
		{Key: "CallerIDName", Value: def(c.CallerIDName, "<unknown>")},
		{Key: "ConnectedLineNum", Value: "<unknown>"},
		{Key: "ConnectedLineName", Value: "<unknown>"},
		{Key: "Language", Value: "en"},
		{Key: "AccountCode", Value: ""},
		{Key: "Context", Value: def(c.Context, "default")},
		{Key: "Exten", Value: def(c.Exten, "s")},
		{Key: "Priority", Value: def(c.Priority, "1")},
		{Key: "Uniqueid", Value: c.Uniqueid},
		{Key: "Linkedid", Value: def(c.Linkedid, c.Uniqueid)},
		{Key: "Application", Value: def(c.Application, "Wait")},
		{Key: "ApplicationData", Value: c.Data},
		{Key: "Duration", Value: "00:00:01"},
		{Key: "BridgeId", Value: c.BridgeID},
	}
}

// Server is a fake Asterisk manager interface. Its methods are safe for concurrent use.
type Server struct {
	addr     string
	banner   string
	username string
	secret   string
	logf     func(string, ...any)
	start    time.Time
	tls      *tls.Config // nil: plain TCP

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	globals  map[string]string
	channels []Channel
	commands map[string][]string
	handlers map[string]ActionFunc
	denied   map[string]bool // lower-case action names answered "Permission denied"
	filters  []string
	held     atomic.Uint64 // events sessions' Filter rules kept from them
	actions  []*ami.Message
	logins   int
	stalled  chan struct{} // non-nil while stalled; closed by Resume
	changed  chan struct{} // closed and replaced when sessions change
	closed   bool
	wg       sync.WaitGroup
}

// New starts a server on 127.0.0.1:0 (or WithAddress). Close stops it.
func New(opts ...Option) (*Server, error) {
	s := &Server{
		addr:     "127.0.0.1:0",
		banner:   DefaultBanner,
		username: DefaultUsername,
		secret:   DefaultSecret,
		logf:     func(string, ...any) {},
		start:    time.Now(),
		conns:    make(map[*conn]struct{}),
		globals:  make(map[string]string),
		commands: make(map[string][]string),
		handlers: make(map[string]ActionFunc),
		denied:   make(map[string]bool),
		changed:  make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	if err := s.Up(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewServer is New for tests: it fails the test on error, logs through t.Logf and closes
// the server when the test ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := New(append([]Option{WithLogf(t.Logf)}, opts...)...)
	if err != nil {
		t.Fatalf("amitest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Addr returns host:port. It stays the same across Restart and Down/Up.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Username and Secret return the credentials the server accepts.
func (s *Server) Username() string { s.mu.Lock(); defer s.mu.Unlock(); return s.username }

// Secret returns the secret the server accepts.
func (s *Server) Secret() string { s.mu.Lock(); defer s.mu.Unlock(); return s.secret }

// SetCredentials changes the accepted username and secret for later logins.
func (s *Server) SetCredentials(username, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.username, s.secret = username, secret
}

// Up starts listening (again) on the server's address. A server that was listening on
// port 0 keeps the port it was given first, so clients reconnect to the same address.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("amitest: server closed")
	}
	if s.ln != nil {
		return nil
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly after Down
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("amitest: listening on %s: %w", s.addr, err)
	}
	s.addr = ln.Addr().String()
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	s.wg.Go(func() { s.accept(ln) })
	return nil
}

// Down stops listening and closes every connection, like Asterisk stopping.
func (s *Server) Down() {
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	s.mu.Unlock()
	s.DropSessions()
}

// Restart is Down then Up on the same address.
func (s *Server) Restart() error {
	s.Down()
	return s.Up()
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	if s.stalled != nil {
		close(s.stalled)
		s.stalled = nil
	}
	s.mu.Unlock()
	s.Down()
	s.wg.Wait()
	return nil
}

// DropSessions closes every client connection (the listener stays up).
func (s *Server) DropSessions() {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.nc.Close()
	}
}

func (s *Server) accept(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		c := &conn{srv: s, nc: nc, bw: bufio.NewWriterSize(nc, 64<<10)}
		s.mu.Lock()
		if s.closed || s.ln != ln { // Down ran while this connection was accepted
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.notifyLocked()
			s.mu.Unlock()
		})
	}
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Sessions returns how many clients are logged in now.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionsLocked()
}

func (s *Server) sessionsLocked() int {
	n := 0
	for c := range s.conns {
		if c.authed {
			n++
		}
	}
	return n
}

// Logins returns how many logins have succeeded since the server started.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// WaitSessions waits until at least n clients are logged in.
func (s *Server) WaitSessions(ctx context.Context, n int) error {
	return s.waitFor(ctx, func() bool { return s.sessionsLocked() >= n }, fmt.Sprintf("%d logged-in sessions", n))
}

// WaitLogins waits until at least n logins have succeeded since the server started.
func (s *Server) WaitLogins(ctx context.Context, n int) error {
	return s.waitFor(ctx, func() bool { return s.logins >= n }, fmt.Sprintf("%d logins", n))
}

func (s *Server) waitFor(ctx context.Context, cond func() bool, what string) error {
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("amitest: waiting for %s: %w", what, ctx.Err())
		}
	}
}

// Actions returns copies of the actions received so far (at most the last 10,000).
func (s *Server) Actions() []*ami.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*ami.Message, len(s.actions))
	copy(out, s.actions)
	return out
}

// EventsHeld returns how many events sessions' Filter rules have kept from them (each
// session counts apart) in Send and Replay.
func (s *Server) EventsHeld() uint64 { return s.held.Load() }

// Filters returns the Filter rules clients have added, in order.
func (s *Server) Filters() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.filters...)
}

// SetVar sets a variable for Getvar: on a channel, or a global when channel is "".
func (s *Server) SetVar(channel, name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if channel == "" {
		s.globals[name] = value
		return
	}
	for i := range s.channels {
		if s.channels[i].Name == channel {
			if s.channels[i].Vars == nil {
				s.channels[i].Vars = make(map[string]string)
			}
			s.channels[i].Vars[name] = value
			return
		}
	}
	s.channels = append(s.channels, Channel{Name: channel, Vars: map[string]string{name: value}})
}

// SetChannels replaces the live channels (CoreShowChannels, Getvar).
func (s *Server) SetChannels(chans ...Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels = append([]Channel(nil), chans...)
}

// SetCommand sets the output of a CLI command for the Command action.
func (s *Server) SetCommand(cmd string, output ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands[cmd] = append([]string(nil), output...)
}

// Handle installs (or with nil removes) a handler for an action name (case-insensitive).
// It takes precedence over the built-in answers, Login and Challenge excepted.
func (s *Server) Handle(action string, fn ActionFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		delete(s.handlers, strings.ToLower(action))
		return
	}
	s.handlers[strings.ToLower(action)] = fn
}

// Deny makes the server answer these actions (case-insensitive names) with Asterisk's
// `Permission denied`, as it does when the manager user lacks the action's write class
// (e.g. Filter without `write = system`); Deny() with no names allows all again.
func (s *Server) Deny(actions ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.denied)
	for _, a := range actions {
		s.denied[strings.ToLower(a)] = true
	}
}

// Stall stops the server: new connections get no banner, actions get no answer (they are
// read and dropped) until Resume. Clients see silence, as with a hung Asterisk.
func (s *Server) Stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stalled == nil {
		s.stalled = make(chan struct{})
	}
}

// Resume ends a Stall.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stalled != nil {
		close(s.stalled)
		s.stalled = nil
	}
}

func (s *Server) isStalled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalled != nil
}

// eventConns returns the sessions that receive events.
func (s *Server) eventConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if c.authed && c.events {
			out = append(out, c)
		}
	}
	return out
}

// Send writes raw bytes, unchanged, to every logged-in session (partial messages and
// garbage included) and flushes them.
func (s *Server) Send(raw []byte) error {
	conns := s.eventConns()
	if len(conns) == 0 {
		return ErrNoSessions
	}
	var errs []error
	for _, c := range conns {
		held, err := c.writeFiltered(raw)
		s.held.Add(uint64(held))
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SendEvent writes one event built from headers (the first should be `Event`) in
// Asterisk's wire form.
func (s *Server) SendEvent(headers ...ami.Header) error {
	m := ami.Message{Headers: headers}
	return s.Send(m.Append(nil))
}

// ReplayFile is Replay over a recorded file.
func (s *Server) ReplayFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("amitest: %w", err)
	}
	defer f.Close()
	n, err := s.Replay(f)
	if err != nil {
		return n, fmt.Errorf("amitest: replaying %s: %w", path, err)
	}
	return n, nil
}

// Replay streams the events of a recorded AMI session (a .ami capture: the bytes Asterisk
// sent, banner first) to every logged-in session, each message byte for byte as recorded,
// and returns how many it sent. It sends exactly the messages Asterisk emitted on its
// own: messages whose first header is `Event:` and that carry no `ActionID:`. It leaves
// out the banner, action responses, events that answered the recording session's own
// actions (list items such as CoreShowChannel, OriginateResponse — they carry its
// ActionID), and the FullyBooted and SuccessfulAuth events of the recorded login (this
// server sends its own FullyBooted at each login). A stream without a banner is accepted.
func (s *Server) Replay(r io.Reader) (int, error) {
	return s.ReplayWith(r, ReplayOptions{})
}

// ReplayOptions change how ReplayWith streams a recording.
type ReplayOptions struct {
	// Track keeps the recorded channels as this server's live channels, as Asterisk
	// holds them at each point of the recording: Newchannel adds one, VarSet sets its
	// variable (without the "_"/"__" inheritance prefix, as Asterisk stores it),
	// Newexten and DialBegin set its application, BridgeEnter/BridgeLeave its bridge,
	// Hangup removes it. CoreShowChannels, Status and Getvar then answer from them.
	Track bool
	// Skip, when it returns true, keeps an event from being sent (it still changes the
	// tracked state): e.g. VarSet, as for a manager user without the dialplan read class.
	Skip func(m *ami.Message) bool
	// Before is called before each event is applied and sent, with everything sent so
	// far flushed; it may block (e.g. until the client has seen the connect).
	Before func(m *ami.Message)
}

// ReplayWith is Replay with options.
func (s *Server) ReplayWith(r io.Reader, o ReplayOptions) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if head, _ := br.Peek(len("Asterisk Call Manager")); string(head) == "Asterisk Call Manager" {
		if _, err := br.ReadString('\n'); err != nil {
			return 0, err
		}
	}
	rd := ami.NewReader(br, ami.Limits{MaxLine: 1 << 20, MaxMessage: 16 << 20, MaxHeaders: 1 << 16})
	conns := s.eventConns()
	if len(conns) == 0 {
		return 0, ErrNoSessions
	}
	var m ami.Message
	sent := 0
	for {
		err := rd.ReadMessage(&m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return sent, err
		}
		if !replayable(&m) {
			continue
		}
		if o.Before != nil {
			for _, c := range conns {
				_ = c.flush()
			}
			o.Before(&m)
			conns = s.eventConns() // Before may have dropped and re-admitted sessions
		}
		if o.Track {
			s.track(&m)
		}
		if o.Skip != nil && o.Skip(&m) {
			continue
		}
		raw := []byte(m.Raw())
		for _, c := range conns {
			if c.rules.Load().allows(raw) {
				_ = c.write(raw, false) // a dropped session is the client's business
			} else {
				s.held.Add(1)
			}
		}
		sent++
	}
	for _, c := range conns {
		_ = c.flush()
	}
	return sent, nil
}

// track applies one replayed event to the live channels (ReplayOptions.Track).
func (s *Server) track(m *ami.Message) {
	// The channels keep copies: the Reader's strings share 16 KiB chunks, which a kept
	// one would pin for as long as the channel lives.
	get := func(key string) string { return strings.Clone(m.Get(key)) }
	name := m.Get("Channel")
	if name == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	find := func(name string) *Channel {
		for i := range s.channels {
			if s.channels[i].Name == name {
				return &s.channels[i]
			}
		}
		return nil
	}
	ch := find(name)
	switch m.Event() {
	case "Newchannel":
		if ch == nil {
			s.channels = append(s.channels, Channel{Name: strings.Clone(name)})
			ch = &s.channels[len(s.channels)-1]
		}
		ch.Uniqueid, ch.Linkedid = get("Uniqueid"), get("Linkedid")
		ch.CallerIDNum, ch.CallerIDName = get("CallerIDNum"), get("CallerIDName")
		ch.Context, ch.Exten, ch.Priority = get("Context"), get("Exten"), get("Priority")
	case "Hangup":
		for i := range s.channels {
			if s.channels[i].Name == name {
				s.channels = append(s.channels[:i], s.channels[i+1:]...)
				break
			}
		}
		return
	}
	if ch == nil {
		return
	}
	if l := m.Get("Linkedid"); l != "" && l != ch.Linkedid {
		ch.Linkedid = strings.Clone(l)
	}
	switch m.Event() {
	case "VarSet":
		v := strings.TrimPrefix(strings.TrimPrefix(get("Variable"), "_"), "_")
		if ch.Vars == nil {
			ch.Vars = make(map[string]string)
		}
		ch.Vars[v] = unescapeC(get("Value")) // VarSet shows it C-escaped; the channel holds it raw
	case "Newexten":
		ch.Context, ch.Exten, ch.Priority = get("Context"), get("Extension"), get("Priority")
		ch.Application, ch.Data = get("Application"), get("AppData")
	case "DialBegin":
		// Asterisk names the callee's application after the caller's: AppQueue for a
		// queue member, AppDial for Dial.
		if d := find(m.Get("DestChannel")); d != nil {
			d.Application = "AppDial"
			if ch.Application == "Queue" {
				d.Application = "AppQueue"
			}
			d.Data = "(Outgoing Line)"
		}
	case "BridgeEnter":
		ch.BridgeID = get("BridgeUniqueid")
	case "BridgeLeave":
		ch.BridgeID = ""
	}
}

// unescapeC undoes Asterisk's ast_escape_c (\\ \' \" \? and \a \b \f \n \r \t \v).
func unescapeC(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		if j := strings.IndexByte("abfnrtv", s[i]); j >= 0 {
			b.WriteByte("\a\b\f\n\r\t\v"[j])
		} else if strings.IndexByte(`\'"?`, s[i]) >= 0 {
			b.WriteByte(s[i])
		} else {
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func replayable(m *ami.Message) bool {
	if len(m.Headers) == 0 || !strings.EqualFold(m.Headers[0].Key, "Event") {
		return false
	}
	if _, ok := m.Lookup("ActionID"); ok {
		return false
	}
	switch m.Headers[0].Value {
	case "FullyBooted", "SuccessfulAuth":
		return false
	}
	return true
}

// CloseMidMessage sends the first half of an event to every session and closes them.
func (s *Server) CloseMidMessage() {
	for _, c := range s.eventConns() {
		_ = c.write([]byte("Event: Newchannel\r\nPrivilege: call,all\r\nChannel: Local/100@oml-ag"), true)
		c.nc.Close()
	}
}

// SendGarbage sends bytes that are not AMI: binary noise and lines without a colon,
// closed by an empty line.
func (s *Server) SendGarbage() error {
	return s.Send([]byte("\x00\x01\xfe\xff garbage\r\nno colon on this line\r\n\x1b[31m\r\n\r\n"))
}

// SendLongLine sends an event with one header line of n bytes (to break the client's
// MaxLine). It does not wait for the client to read it all.
func (s *Server) SendLongLine(n int) {
	var b bytes.Buffer
	b.WriteString("Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: long\r\nData: ")
	b.Write(bytes.Repeat([]byte{'x'}, n))
	b.WriteString("\r\n\r\n")
	for _, c := range s.eventConns() {
		s.wg.Go(func() { _ = c.write(b.Bytes(), true) }) // the client hangs up half way
	}
}

// conn is one client connection.
type conn struct {
	srv *Server
	nc  net.Conn

	wmu sync.Mutex
	bw  *bufio.Writer

	// under srv.mu
	authed bool
	events bool

	rules atomic.Pointer[sessionFilter] // this session's Filter rules (nil: none)

	challenge string // touched by the serving goroutine only
}

func (c *conn) write(b []byte, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.bw.Write(b); err != nil {
		return err
	}
	if flush {
		return c.bw.Flush()
	}
	return nil
}

// writeFiltered writes raw through the session's Filter rules and flushes; it returns
// how many events the rules held back.
func (c *conn) writeFiltered(raw []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	held, err := c.rules.Load().writeFiltered(c.bw, raw)
	if err != nil {
		return held, err
	}
	return held, c.bw.Flush()
}

func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.bw.Flush()
}

func (c *conn) serve() {
	defer c.nc.Close()
	s := c.srv
	s.mu.Lock()
	stalled := s.stalled
	s.mu.Unlock()
	if stalled != nil {
		<-stalled
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.logf("amitest: TLS handshake with %s: %v", c.nc.RemoteAddr(), err)
			}
			return
		}
	}
	if err := c.write([]byte(s.banner+"\r\n"), true); err != nil {
		return
	}
	rd := ami.NewReader(c.nc, ami.Limits{})
	var m ami.Message
	for {
		if err := rd.ReadMessage(&m); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.logf("amitest: %s: %v", c.nc.RemoteAddr(), err)
			}
			return
		}
		s.record(&m)
		if s.isStalled() {
			continue
		}
		if !c.handle(&m) {
			return
		}
	}
}

func (s *Server) record(m *ami.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.actions) == maxRecorded {
		s.actions = append(s.actions[:0], s.actions[1:]...)
	}
	s.actions = append(s.actions, m.Clone())
}

// reply writes a response: kind (Success, Error, Goodbye…), the request's ActionID, then
// headers.
func (c *conn) reply(req *ami.Message, kind string, headers ...ami.Header) error {
	return c.write(replyBytes(req, kind, headers...), true)
}

func replyBytes(req *ami.Message, kind string, headers ...ami.Header) []byte {
	m := ami.Message{Headers: make([]ami.Header, 0, len(headers)+2)}
	m.Headers = append(m.Headers, ami.Header{Key: "Response", Value: kind})
	if id, ok := req.Lookup("ActionID"); ok {
		m.Headers = append(m.Headers, ami.Header{Key: "ActionID", Value: id})
	}
	m.Headers = append(m.Headers, headers...)
	return m.Append(nil)
}

func msg(text string) ami.Header { return ami.Header{Key: "Message", Value: text} }

// handle answers one action; false closes the connection.
func (c *conn) handle(req *ami.Message) bool {
	s := c.srv
	action := strings.ToLower(req.Get("Action"))
	s.mu.Lock()
	authed := c.authed
	fn := s.handlers[action]
	denied := s.denied[action]
	s.mu.Unlock()

	switch action {
	case "challenge":
		if !strings.EqualFold(req.Get("AuthType"), "MD5") {
			return c.reply(req, "Error", msg("Must specify AuthType")) == nil
		}
		c.challenge = strconv.Itoa(100000000 + rand.IntN(900000000))
		return c.reply(req, "Success", ami.Header{Key: "Challenge", Value: c.challenge}) == nil
	case "login":
		return c.login(req)
	case "logoff":
		_ = c.reply(req, "Goodbye", msg("Thanks for all the fish."))
		return false
	}
	if !authed || denied {
		return c.reply(req, "Error", msg("Permission denied")) == nil
	}
	if fn != nil {
		resp := ami.Message{Headers: fn(req)}
		if len(resp.Headers) > 0 {
			if id, ok := req.Lookup("ActionID"); ok {
				resp.Headers = append(resp.Headers[:1], append([]ami.Header{{Key: "ActionID", Value: id}}, resp.Headers[1:]...)...)
			}
		}
		return c.write(resp.Append(nil), true) == nil
	}
	switch action {
	case "ping":
		now := time.Now()
		ts := fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)
		return c.reply(req, "Success", ami.Header{Key: "Ping", Value: "Pong"}, ami.Header{Key: "Timestamp", Value: ts}) == nil
	case "events":
		on := !strings.EqualFold(req.Get("EventMask"), "off")
		s.mu.Lock()
		c.events = on
		s.mu.Unlock()
		state := "Off"
		if on {
			state = "On"
		}
		return c.reply(req, "Success", ami.Header{Key: "Events", Value: state}) == nil
	case "filter":
		return c.filter(req)
	case "getvar":
		return c.getvar(req)
	case "status":
		return c.status(req)
	case "coreshowchannels":
		return c.coreShowChannels(req)
	case "command":
		return c.command(req)
	}
	return c.reply(req, "Error", msg(fmt.Sprintf("Invalid/unknown command: %s. Use Action: ListCommands to show available commands.", req.Get("Action")))) == nil
}

func (c *conn) login(req *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	user, secret := s.username, s.secret
	s.mu.Unlock()
	ok := req.Get("Username") == user
	if strings.EqualFold(req.Get("AuthType"), "MD5") {
		sum := md5.Sum([]byte(c.challenge + secret))
		ok = ok && c.challenge != "" && strings.EqualFold(req.Get("Key"), hex.EncodeToString(sum[:]))
	} else {
		ok = ok && req.Get("Secret") == secret
	}
	if !ok {
		s.logf("amitest: refused login as %q from %s", req.Get("Username"), c.nc.RemoteAddr())
		_ = c.reply(req, "Error", msg("Authentication failed"))
		return false
	}
	events := !strings.EqualFold(req.Get("Events"), "off")
	// The session counts as logged in before the client can see the Success: a client
	// (or test) that saw it can always be sent events. Holding the write lock meanwhile
	// keeps the Success ahead of any event sent to the new session. (Lock order: wmu then
	// s.mu; nothing writes while holding s.mu.)
	c.wmu.Lock()
	s.mu.Lock()
	c.authed, c.events = true, events
	s.logins++
	uptime := strconv.Itoa(int(time.Since(s.start).Seconds()))
	s.notifyLocked()
	s.mu.Unlock()
	_, err := c.bw.Write(replyBytes(req, "Success", msg("Authentication accepted")))
	if err == nil {
		err = c.bw.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		return false
	}
	if events {
		booted := ami.Message{Headers: []ami.Header{
			{Key: "Event", Value: "FullyBooted"}, {Key: "Privilege", Value: "system,all"},
			{Key: "Uptime", Value: uptime}, {Key: "LastReload", Value: uptime}, {Key: "Status", Value: "Fully Booted"},
		}}
		return c.write(booted.Append(nil), true) == nil
	}
	return true
}

// filter answers Filter as Asterisk 22.1+ does for a legacy rule (manager.c
// action_filter, manager_add_filter): a leading `!` makes it an exclude rule, the rest is
// a POSIX extended regex over the whole event text (compileLegacyFilter); an empty
// pattern is a format error, one that does not compile a compile error. The rule applies
// to this session's events from then on (not to action replies and list items, which
// Asterisk writes to the session directly, nor to the FullyBooted sent at login). The
// advanced form (a MatchCriteria header, 22.1+) is refused: this fake does not implement
// it.
func (c *conn) filter(req *ami.Message) bool {
	if !strings.EqualFold(req.Get("Operation"), "Add") {
		return c.reply(req, "Error", msg("Unknown operation")) == nil
	}
	if _, ok := req.Lookup("MatchCriteria"); ok {
		return c.reply(req, "Error", msg("amitest: MatchCriteria (advanced filters) is not implemented")) == nil
	}
	rule := strings.Clone(req.Get("Filter")) // kept (s.filters, the regexp): not pinning a Reader chunk
	pattern, exclude := strings.CutPrefix(rule, "!")
	if pattern == "" {
		return c.reply(req, "Error", msg("Filter was formatted incorrectly.  Check the syntax of the filter given.")) == nil
	}
	re, err := compileRule(pattern)
	if err != nil {
		return c.reply(req, "Error", msg("Filter did not compile.  Check the syntax of the filter given.")) == nil
	}
	// Under the write lock: no event is written half-way through the change.
	c.wmu.Lock()
	c.rules.Store(c.rules.Load().with(re, exclude))
	c.wmu.Unlock()
	s := c.srv
	s.mu.Lock()
	s.filters = append(s.filters, rule)
	s.mu.Unlock()
	return c.reply(req, "Success", msg("Success")) == nil
}

func (c *conn) getvar(req *ami.Message) bool {
	name := req.Get("Variable")
	if name == "" {
		return c.reply(req, "Error", msg("No variable specified")) == nil
	}
	s := c.srv
	channel := req.Get("Channel")
	s.mu.Lock()
	var value string
	found := channel == ""
	if found {
		value = s.globals[name]
	} else {
		for _, ch := range s.channels {
			if ch.Name == channel {
				found, value = true, ch.Vars[name]
				break
			}
		}
	}
	s.mu.Unlock()
	if !found {
		return c.reply(req, "Error", msg("No such channel")) == nil
	}
	return c.reply(req, "Success", ami.Header{Key: "Variable", Value: name}, ami.Header{Key: "Value", Value: value}) == nil
}

// status answers Status as Asterisk 22 does: a list of Status events, one per channel
// (or only the named one), with `Variable: NAME=value` headers under the names the
// dialplan set when AllVariables is true, or for the names of `Variables:` (looked up
// case-sensitively, like Getvar).
func (c *conn) status(req *ami.Message) bool {
	s := c.srv
	name := req.Get("Channel")
	s.mu.Lock()
	var chans []Channel
	for _, ch := range s.channels {
		if name == "" || ch.Name == name {
			cp := ch
			cp.Vars = make(map[string]string, len(ch.Vars))
			for k, v := range ch.Vars {
				cp.Vars[k] = v
			}
			chans = append(chans, cp)
		}
	}
	s.mu.Unlock()
	if name != "" && len(chans) == 0 {
		return c.reply(req, "Error", msg("No such channel")) == nil
	}
	var all bool
	switch strings.ToLower(req.Get("AllVariables")) {
	case "true", "yes", "1", "on":
		all = true
	}
	var wanted []string
	for _, v := range strings.Split(req.Get("Variables"), ",") {
		if v = strings.TrimSpace(v); v != "" {
			wanted = append(wanted, v)
		}
	}
	id := req.Get("ActionID")
	start := ami.Message{Headers: []ami.Header{{Key: "Response", Value: "Success"}, {Key: "ActionID", Value: id},
		{Key: "EventList", Value: "start"}, {Key: "Message", Value: "Channel status will follow"}}}
	b := start.Append(nil)
	for _, ch := range chans {
		h := []ami.Header{{Key: "Event", Value: "Status"}, {Key: "Privilege", Value: "Call"}}
		for _, x := range ch.Headers() {
			switch x.Key {
			case "Duration":
			case "BridgeId":
				h = append(h, ami.Header{Key: "BridgeID", Value: x.Value})
			case "ApplicationData":
				h = append(h, ami.Header{Key: "Data", Value: x.Value})
			default:
				h = append(h, x)
			}
		}
		switch {
		case all:
			keys := make([]string, 0, len(ch.Vars))
			for k := range ch.Vars {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				h = append(h, ami.Header{Key: "Variable", Value: k + "=" + ch.Vars[k]})
			}
		default:
			for _, k := range wanted {
				h = append(h, ami.Header{Key: "Variable", Value: k + "=" + ch.Vars[k]})
			}
		}
		h = append(h, ami.Header{Key: "ActionID", Value: id})
		b = (&ami.Message{Headers: h}).Append(b)
	}
	done := ami.Message{Headers: []ami.Header{{Key: "Event", Value: "StatusComplete"}, {Key: "ActionID", Value: id},
		{Key: "EventList", Value: "Complete"}, {Key: "ListItems", Value: strconv.Itoa(len(chans))}, {Key: "Items", Value: strconv.Itoa(len(chans))}}}
	b = done.Append(b)
	return c.write(b, true) == nil
}

func (c *conn) coreShowChannels(req *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	chans := append([]Channel(nil), s.channels...)
	s.mu.Unlock()
	id := req.Get("ActionID")
	var b []byte
	start := ami.Message{Headers: []ami.Header{{Key: "Response", Value: "Success"}, {Key: "ActionID", Value: id},
		{Key: "EventList", Value: "start"}, {Key: "Message", Value: "Channels will follow"}}}
	b = start.Append(b)
	for _, ch := range chans {
		ev := ami.Message{Headers: append([]ami.Header{{Key: "Event", Value: "CoreShowChannel"}, {Key: "ActionID", Value: id}}, ch.Headers()...)}
		b = ev.Append(b)
	}
	done := ami.Message{Headers: []ami.Header{{Key: "Event", Value: "CoreShowChannelsComplete"}, {Key: "ActionID", Value: id},
		{Key: "EventList", Value: "Complete"}, {Key: "ListItems", Value: strconv.Itoa(len(chans))}}}
	b = done.Append(b)
	return c.write(b, true) == nil
}

func (c *conn) command(req *ami.Message) bool {
	cmd := req.Get("Command")
	s := c.srv
	s.mu.Lock()
	out, ok := s.commands[cmd]
	s.mu.Unlock()
	kind := "Success"
	if !ok {
		kind = "Error"
		word, _, _ := strings.Cut(cmd, " ")
		out = []string{fmt.Sprintf("No such command '%s' (type 'core show help %s' for other possible commands)", cmd, word)}
	}
	h := []ami.Header{msg("Command output follows")}
	for _, line := range out {
		h = append(h, ami.Header{Key: "Output", Value: line})
	}
	return c.reply(req, kind, h...) == nil
}
