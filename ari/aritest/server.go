// Package aritest is an in-process fake Asterisk ARI server on 127.0.0.1 for tests, demos and
// load tests: the /ari/events websocket (fed by Send or by replaying a recorded .jsonl stream
// byte for byte), the REST calls the daemon uses (channels, a channel, its variables —
// case-sensitive names, as Asterisk's —, bridges and a bridge, applications and their
// event filter, applied to what Send writes), served from settable state
// or, with ReplayWith's Track, from the replayed recording as Asterisk holds it at each
// point, with Asterisk's own error bodies, and misbehaviour on demand (drop the connection mid-stream, garbage,
// oversize messages, unanswered pings, restart on the same port, changed credentials).
package aritest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/omlcrm/oml-crm/ari"
)

// Asterisk 22's bodies for the errors the fake reproduces.
const (
	BodyAuthRequired     = `{"message":"Authentication required"}`
	BodyVariableNotFound = `{"message":"Provided variable was not found"}`
	BodyChannelNotFound  = `{"message":"Provided channel was not found"}`
	BodyChannelGet404    = `{"message":"Channel not found"}`
	BodyBridgeGet404     = `{"message":"Bridge not found"}`
	BodyVariableRequired = `{"message":"Variable name is required"}`
	BodyResourceNotFound = `{"message":"Resource not found"}`
	BodyAppRequired      = `{"message":"Missing required parameter app"}`
	BodyWriteDenied      = `{"message":"Write access denied"}`
	BodyAppNotFound      = `{"message":"Application not found"}`
	BodyInvalidFilter    = `{"message":"Invalid format definition"}`
	BodyBadRequestBody   = `{"message":"Error parsing request body"}`
	BodyBodyTooLarge     = `{"message":"Request body too large"}`
	BodyInternalError    = `{"message":"Error processing request"}`
)

// defaultInfo is served by /ari/asterisk/info until SetInfo is called.
const defaultInfo = `{"build":{"os":"Linux","kernel":"aritest","machine":"x86_64","options":"","date":"","user":"aritest"},"system":{"version":"22.0.0-aritest","entity_id":"00:00:00:00:00:00"},"config":{"name":"","default_language":"en","setid":{"user":"","group":""}},"status":{"startup_time":"","last_reload_time":""}}`

// ErrNoClient is returned by Send when no events websocket is connected.
var ErrNoClient = errors.New("aritest: no events websocket connected")

// Options configures a Server.
type Options struct {
	// Username and Password are the accepted ari.conf credentials (basic auth, or the api_key
	// query parameter "user:password"). Empty Username: no authentication.
	Username, Password string
	// App, when set, is the only application name accepted on /ari/events (400 otherwise).
	App string
	// ReadOnly makes the user an ari.conf read_only one: every request but GET and OPTIONS
	// is answered 403 Write access denied, before routing, as Asterisk does.
	ReadOnly bool
	// NoEventFilter plays an Asterisk older than 16.3: PUT /applications/{name}/eventFilter
	// is no route (404 Resource not found).
	NoEventFilter bool
	// Addr to listen on; default "127.0.0.1:0".
	Addr string
}

// Server is a fake Asterisk ARI. All methods are safe for concurrent use.
type Server struct {
	mu       sync.Mutex
	addr     string
	ln       net.Listener
	srv      *http.Server
	serving  sync.WaitGroup
	sessions map[*session]struct{}
	changed  chan struct{} // closed and replaced when sessions change
	running  bool

	user, pass string
	readOnly   bool // set by New only, as noFilter
	app        string
	apps       map[string]*application // registered by their events websockets
	held       atomic.Uint64           // messages an application's event filter kept back
	filterPuts atomic.Uint64           // PUT .../eventFilter requests received
	filterFail int                     // how many more of them fail (FailEventFilter)
	failStatus int                     // with this status
	noFilter   bool
	stalled    bool
	info       []byte
	channels   []rawChannel
	vars       map[string]map[string]string
	bridges    map[string][]byte
	queries    []url.Values

	sendMu sync.Mutex // keeps concurrent Sends whole and ordered
}

type rawChannel struct {
	id  string
	raw []byte
}

type session struct {
	app    *application
	conn   *websocket.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

// TB is the part of testing.TB NewServer uses (kept small so the package does not import
// testing and can run in a demo binary).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// New starts a server. Close stops it.
func New(opts Options) (*Server, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s := &Server{
		addr:     addr,
		sessions: make(map[*session]struct{}),
		changed:  make(chan struct{}),
		user:     opts.Username,
		pass:     opts.Password,
		app:      opts.App,
		readOnly: opts.ReadOnly,
		noFilter: opts.NoEventFilter,
		apps:     make(map[string]*application),
		info:     []byte(defaultInfo),
		vars:     make(map[string]map[string]string),
		bridges:  make(map[string][]byte),
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewServer starts a server for a test and closes it when the test ends.
func NewServer(t TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("aritest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// URL is the base URL to put in ari.Config.URL ("http://127.0.0.1:port").
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.addr
}

// Addr is the listening address (the same across Stop/Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Start listens again on the same address after Stop (a restarted Asterisk).
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	var ln net.Listener
	var err error
	// The port was ours a moment ago; retry briefly in case the kernel has not released it.
	for i := 0; i < 50; i++ {
		ln, err = net.Listen("tcp", s.addr)
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("aritest: listen on %s: %w", s.addr, err)
	}
	s.addr = ln.Addr().String()
	s.ln = ln
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	s.running = true
	srv := s.srv
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		_ = srv.Serve(ln)
	}()
	return nil
}

// Stop closes the listener and drops every connection abruptly (a crashed Asterisk). The
// address is kept for Start.
func (s *Server) Stop() {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return
	}
	s.running = false
	srv := s.srv
	s.mu.Unlock()
	_ = srv.Close()
	s.serving.Wait()
	s.DropClients()
}

// Restart is Stop then Start on the same port.
func (s *Server) Restart() error {
	s.Stop()
	return s.Start()
}

// Close stops the server for good.
func (s *Server) Close() { s.Stop() }

// SetCredentials changes the accepted credentials (e.g. to make a client's login fail, then
// succeed). Connected clients are not affected.
func (s *Server) SetCredentials(username, password string) {
	s.mu.Lock()
	s.user, s.pass = username, password
	s.mu.Unlock()
}

// Stall makes every events websocket stop answering pings (a hung Asterisk whose TCP
// connection is still open) until Stall(false). Messages passed to Send are still written.
func (s *Server) Stall(on bool) {
	s.mu.Lock()
	s.stalled = on
	s.mu.Unlock()
}

func (s *Server) isStalled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalled
}

// SetInfo sets the body of GET /ari/asterisk/info (served as is).
func (s *Server) SetInfo(body []byte) {
	s.mu.Lock()
	s.info = bytes.Clone(body)
	s.mu.Unlock()
}

// SetChannelsJSON replaces the channels with those of a JSON array such as Asterisk's
// GET /ari/channels reply; each object is kept byte for byte.
func (s *Server) SetChannelsJSON(body []byte) error {
	var list []json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("aritest: channels: %w", err)
	}
	chans := make([]rawChannel, 0, len(list))
	for i, raw := range list {
		var id struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &id); err != nil || id.ID == "" {
			return fmt.Errorf("aritest: channels: element %d has no \"id\"", i)
		}
		chans = append(chans, rawChannel{id: id.ID, raw: bytes.Clone(raw)})
	}
	s.mu.Lock()
	s.channels = chans
	s.mu.Unlock()
	return nil
}

// AddChannelJSON adds (or replaces, by id) one channel object, kept byte for byte.
func (s *Server) AddChannelJSON(body []byte) error {
	var id struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &id); err != nil || id.ID == "" {
		return errors.New(`aritest: channel JSON must be an object with an "id"`)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rc := rawChannel{id: id.ID, raw: bytes.Clone(body)}
	for i := range s.channels {
		if s.channels[i].id == id.ID {
			s.channels[i] = rc
			return nil
		}
	}
	s.channels = append(s.channels, rc)
	return nil
}

// AddChannel adds (or replaces, by ID) a channel.
func (s *Server) AddChannel(ch ari.Channel) error {
	b, err := json.Marshal(ch)
	if err != nil {
		return fmt.Errorf("aritest: channel %s: %w", ch.ID, err)
	}
	return s.AddChannelJSON(b)
}

// RemoveChannel deletes a channel and its variables (a hangup).
func (s *Server) RemoveChannel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.channels {
		if s.channels[i].id == id {
			s.channels = append(s.channels[:i], s.channels[i+1:]...)
			break
		}
	}
	delete(s.vars, id)
}

// SetVariable sets a variable on a channel for GET /ari/channels/{id}/variable. The channel
// must also exist (AddChannel) for the variable to be served.
func (s *Server) SetVariable(channelID, name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vars[channelID] == nil {
		s.vars[channelID] = make(map[string]string)
	}
	s.vars[channelID][name] = value
}

// SetBridgeJSON adds (or replaces) a bridge for GET /ari/bridges/{id}, served byte for byte.
func (s *Server) SetBridgeJSON(body []byte) error {
	var id struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &id); err != nil || id.ID == "" {
		return errors.New(`aritest: bridge JSON must be an object with an "id"`)
	}
	s.mu.Lock()
	s.bridges[id.ID] = bytes.Clone(body)
	s.mu.Unlock()
	return nil
}

// EventsQueries returns the query of every /ari/events request that passed the credential
// and app checks, oldest first.
func (s *Server) EventsQueries() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]url.Values, len(s.queries))
	copy(out, s.queries)
	return out
}

// Clients is the number of events websockets connected now.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// WaitClients waits until exactly n events websockets are connected.
func (s *Server) WaitClients(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, ch := len(s.sessions), s.changed
		s.mu.Unlock()
		if got == n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("aritest: waiting for %d events clients (have %d): %w", n, got, ctx.Err())
		}
	}
}

// Send writes msg as one text message to every connected events websocket, in order with
// other Sends. It blocks while a client does not read (back-pressure), until ctx ends.
func (s *Server) Send(ctx context.Context, msg []byte) error {
	return s.send(ctx, websocket.MessageText, msg)
}

// SendBinary writes msg as a binary message (Asterisk never does).
func (s *Server) SendBinary(ctx context.Context, msg []byte) error {
	return s.send(ctx, websocket.MessageBinary, msg)
}

func (s *Server) send(ctx context.Context, typ websocket.MessageType, msg []byte) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	sessions := s.snapshot()
	if len(sessions) == 0 {
		return ErrNoClient
	}
	var evType []byte
	typed := false
	for _, ss := range sessions {
		if f := ss.app.filter.Load(); f != nil && typ == websocket.MessageText {
			if !typed {
				evType, typed = messageType(msg), true
			}
			if !f.allows(evType) {
				s.held.Add(1)
				continue
			}
		}
		if err := ss.conn.Write(ctx, typ, msg); err != nil {
			return fmt.Errorf("aritest: send: %w", err)
		}
	}
	return nil
}

// EventsHeld is how many messages Send did not write to a websocket because its
// application's event filter (PUT /applications/{name}/eventFilter) kept them back.
func (s *Server) EventsHeld() uint64 { return s.held.Load() }

// messageType is an event's top-level "type" as Asterisk's filter reads it (the key
// spelled exactly so, the last of repeated ones, a string): nil when it has none (or
// the message is not JSON). ari.PeekType answers the plain cases without decoding
// (TestMessageTypeLikeDecoding holds it to the decoding below); the others decode.
func messageType(msg []byte) []byte {
	if t := ari.PeekType(msg); t != nil {
		return t
	}
	return decodedType(msg)
}

// decodedType is messageType by decoding the message.
func decodedType(msg []byte) []byte {
	var top map[string]json.RawMessage
	var typ *string // nil: absent, or null
	if json.Unmarshal(msg, &top) != nil || json.Unmarshal(top["type"], &typ) != nil || typ == nil {
		return nil
	}
	return []byte(*typ)
}

// astTrue is Asterisk's ast_true: yes, true, y, t, 1, on, in any case.
func astTrue(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true", "y", "t", "1", "on":
		return true
	}
	return false
}

// SendPartial starts a message, writes its first n bytes (followed by 8 KiB of JSON
// whitespace, so the unfinished frame leaves the server's write buffer), then drops every
// connection: the client sees the websocket close in the middle of a message.
func (s *Server) SendPartial(ctx context.Context, msg []byte, n int) error {
	s.sendMu.Lock()
	sessions := s.snapshot()
	var err error
	for _, ss := range sessions {
		w, werr := ss.conn.Writer(ctx, websocket.MessageText)
		if werr != nil {
			err = werr
			continue
		}
		if _, werr := w.Write(msg[:min(n, len(msg))]); werr != nil {
			err = werr
		}
		if _, werr := w.Write(bytes.Repeat([]byte(" "), 8<<10)); werr != nil {
			err = werr
		}
		// No Close on w: the message stays unfinished.
	}
	s.sendMu.Unlock()
	s.DropClients()
	if len(sessions) == 0 {
		return ErrNoClient
	}
	if err != nil {
		return fmt.Errorf("aritest: partial send: %w", err)
	}
	return nil
}

// Replay sends every non-empty line of a .jsonl file as one message, byte for byte (without
// the line end). It returns how many messages were sent.
func (s *Server) Replay(ctx context.Context, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("aritest: replay: %w", err)
	}
	defer f.Close()
	n, err := s.ReplayReader(ctx, f)
	if err != nil {
		return n, fmt.Errorf("aritest: replay %s: %w", path, err)
	}
	return n, nil
}

// ReplayReader is Replay over any reader of JSON lines.
func (s *Server) ReplayReader(ctx context.Context, r io.Reader) (int, error) {
	return s.ReplayWith(ctx, r, ReplayOptions{})
}

// ReplayOptions change how ReplayWith streams a recording.
type ReplayOptions struct {
	// Track keeps the recorded channels and bridges as this server's state, as Asterisk
	// holds them at each point of the recording: every channel object an event carries
	// (channel, caller, peer) updates that channel (GET /channels, /channels/{id}),
	// ChannelVarset sets its variable (without the "_"/"__" prefix, as Asterisk's lookup
	// does; names stay case-sensitive), ChannelDestroyed removes it with its variables,
	// every bridge object updates that bridge (GET /bridges, /bridges/{id}) and
	// BridgeDestroyed removes it.
	Track bool
	// Skip, when it returns true for an event (its "type" and the whole line), keeps it
	// from being sent (it still changes the tracked state).
	Skip func(typ string, line []byte) bool
	// Before is called before each event is applied and sent; it may block.
	Before func(typ string, line []byte)
}

// ReplayWith is ReplayReader with options.
func (s *Server) ReplayWith(ctx context.Context, r io.Reader, o ReplayOptions) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	for {
		line, err := br.ReadBytes('\n')
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) > 0 {
			var head struct {
				Type string `json:"type"`
			}
			if o.Track || o.Skip != nil || o.Before != nil {
				_ = json.Unmarshal(line, &head)
			}
			if o.Before != nil {
				o.Before(head.Type, line)
			}
			if o.Track {
				s.track(head.Type, line)
			}
			if o.Skip != nil && o.Skip(head.Type, line) {
				if err == io.EOF {
					return n, nil
				}
				continue
			}
			if serr := s.Send(ctx, line); serr != nil {
				return n, serr
			}
			n++
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// track applies one replayed event to the channels and bridges (ReplayOptions.Track).
func (s *Server) track(typ string, line []byte) {
	var ev struct {
		Channel, Caller, Peer json.RawMessage
		Bridge                json.RawMessage
		Variable, Value       string
	}
	if json.Unmarshal(line, &ev) != nil {
		return
	}
	id := func(raw json.RawMessage) string {
		var x struct {
			ID string `json:"id"`
		}
		if len(raw) == 0 || json.Unmarshal(raw, &x) != nil {
			return ""
		}
		return x.ID
	}
	chID := id(ev.Channel)
	if typ == "ChannelDestroyed" {
		s.RemoveChannel(chID)
		return
	}
	for _, raw := range []json.RawMessage{ev.Channel, ev.Caller, ev.Peer} {
		if id(raw) != "" {
			_ = s.AddChannelJSON(raw)
		}
	}
	switch typ {
	case "ChannelVarset":
		if chID != "" {
			s.SetVariable(chID, strings.TrimPrefix(strings.TrimPrefix(ev.Variable, "_"), "_"), ev.Value)
		}
	case "BridgeDestroyed":
		s.mu.Lock()
		delete(s.bridges, id(ev.Bridge))
		s.mu.Unlock()
		return
	}
	if id(ev.Bridge) != "" {
		_ = s.SetBridgeJSON(ev.Bridge)
	}
}

// DropClients closes every events websocket abruptly (no close handshake).
func (s *Server) DropClients() {
	for _, ss := range s.snapshot() {
		ss.cancel()
		_ = ss.conn.CloseNow()
		<-ss.done
	}
}

func (s *Server) snapshot() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, ss)
	}
	return out
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ari/events", s.events)
	mux.HandleFunc("GET /ari/asterisk/info", s.getInfo)
	mux.HandleFunc("GET /ari/channels", s.getChannels)
	mux.HandleFunc("GET /ari/channels/{id}", s.getChannel)
	mux.HandleFunc("GET /ari/channels/{id}/variable", s.getVariable)
	mux.HandleFunc("GET /ari/bridges", s.getBridges)
	mux.HandleFunc("GET /ari/bridges/{id}", s.getBridge)
	mux.HandleFunc("GET /ari/applications", s.getApplications)
	mux.HandleFunc("GET /ari/applications/{name}", s.getApplication)
	if !s.noFilter {
		mux.HandleFunc("PUT /ari/applications/{name}/eventFilter", s.putEventFilter)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, []byte(BodyResourceNotFound))
	})
	// Asterisk checks credentials before routing.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/ari/applications/") && strings.HasSuffix(r.URL.Path, "/eventFilter") {
			s.filterPuts.Add(1)
		}
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="Asterisk REST Interface"`)
			writeJSON(w, http.StatusUnauthorized, []byte(BodyAuthRequired))
			return
		}
		if s.readOnly && r.Method != http.MethodGet && r.Method != http.MethodOptions {
			writeJSON(w, http.StatusForbidden, []byte(BodyWriteDenied))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	s.mu.Lock()
	wantUser, wantPass := s.user, s.pass
	s.mu.Unlock()
	if wantUser == "" {
		return true
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		key := r.URL.Query().Get("api_key")
		user, pass, ok = strings.Cut(key, ":")
	}
	return ok && subtle.ConstantTimeCompare([]byte(user), []byte(wantUser)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(wantPass)) == 1
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Server", "Asterisk/22.0.0-aritest")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) getInfo(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	body := s.info
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getChannels(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	s.mu.Lock()
	b.WriteByte('[')
	for i, ch := range s.channels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(ch.raw)
	}
	b.WriteByte(']')
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, b.Bytes())
}

func (s *Server) channel(id string) ([]byte, bool) {
	for _, ch := range s.channels {
		if ch.id == id {
			return ch.raw, true
		}
	}
	return nil, false
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	raw, ok := s.channel(r.PathValue("id"))
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, []byte(BodyChannelGet404))
		return
	}
	writeJSON(w, http.StatusOK, raw)
}

func (s *Server) getVariable(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("variable")
	if name == "" {
		writeJSON(w, http.StatusBadRequest, []byte(BodyVariableRequired))
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	_, ok := s.channel(id)
	value, set := s.vars[id][name]
	s.mu.Unlock()
	switch {
	case !ok:
		writeJSON(w, http.StatusNotFound, []byte(BodyChannelNotFound))
	case !set:
		writeJSON(w, http.StatusNotFound, []byte(BodyVariableNotFound))
	default:
		body, _ := json.Marshal(struct {
			Value string `json:"value"`
		}{value})
		writeJSON(w, http.StatusOK, body)
	}
}

// getBridges answers GET /ari/bridges: every bridge, oldest id first.
func (s *Server) getBridges(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.bridges))
	for id := range s.bridges {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b bytes.Buffer
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(s.bridges[id])
	}
	b.WriteByte(']')
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, b.Bytes())
}

func (s *Server) getBridge(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	raw, ok := s.bridges[r.PathValue("id")]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, []byte(BodyBridgeGet404))
		return
	}
	writeJSON(w, http.StatusOK, raw)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	app := q.Get("app")
	s.mu.Lock()
	want := s.app
	s.mu.Unlock()
	if app == "" || (want != "" && app != want) {
		writeJSON(w, http.StatusBadRequest, []byte(BodyAppRequired))
		return
	}
	// Recorded before the handshake reply, so a client that sees 101 also sees its query
	// here, and the application registered, as Asterisk registers it before it answers
	// the upgrade (websocket_attempted_cb).
	s.mu.Lock()
	s.queries = append(s.queries, q)
	a := s.apps[app]
	if a == nil {
		a = &application{name: app}
		s.apps[app] = a
	}
	a.sessions++
	a.subscribeAll = a.subscribeAll || astTrue(q.Get("subscribeAll"))
	s.mu.Unlock()
	release := func() { // s.mu held
		if a.sessions--; a.sessions == 0 && s.apps[app] == a {
			delete(s.apps, app)
		}
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		CompressionMode: websocket.CompressionDisabled,
		OnPingReceived: func(context.Context, []byte) bool {
			return !s.isStalled()
		},
	})
	if err != nil {
		s.mu.Lock()
		release()
		s.mu.Unlock()
		return
	}
	conn.SetReadLimit(64 << 10)
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{app: a, conn: conn, cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	if !s.running {
		release()
		s.mu.Unlock()
		cancel()
		_ = conn.CloseNow()
		return
	}
	s.sessions[ss] = struct{}{}
	s.notifyLocked()
	s.mu.Unlock()

	// Read to answer pings and notice the client leaving; ARI clients send no data.
	for {
		if _, _, err := conn.Read(ctx); err != nil {
			break
		}
	}
	cancel()
	_ = conn.CloseNow()
	s.mu.Lock()
	delete(s.sessions, ss)
	release()
	s.notifyLocked()
	s.mu.Unlock()
	close(ss.done)
}
