// Package democrm is a stand-in CRM for the demo, the end-to-end tests and the load
// test: an http.Handler that accepts any GET or POST under its prefix (default /crm/),
// records what arrived (method, URL, headers, decoded fields, receive time) in a bounded
// ring, answers with a small "CRM" page that an embedded pop can show in its iframe, and
// serves what it recorded at /crm/log (HTML, refreshing) and /crm/log.json. Delays and
// failures can be injected, globally (SetFault) or per request, to exercise retries and
// outages; requests are counted per Idempotency-Key to detect duplicate deliveries.
package democrm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Limits that keep one request's record small.
const (
	maxStoredBody   = 4 << 10 // raw body kept for display
	maxFields       = 200
	maxFieldValue   = 1 << 10
	maxHeaderValues = 64
)

// Options configure a Receiver. Zero values take the defaults.
type Options struct {
	// Prefix is the path the receiver owns; default "/crm". Requests go to Prefix+"/…",
	// the log to Prefix+"/log" and Prefix+"/log.json".
	Prefix string
	// Capacity is how many requests are kept (oldest dropped first); default 1000.
	Capacity int
	// MaxKeys is how many idempotency keys are counted (oldest forgotten first);
	// default 100,000.
	MaxKeys int
	// MaxBody is the largest body accepted (413 beyond); default 1 MiB.
	MaxBody int64
	// OnReceive, when set, is called with every record once it is stored, on the
	// request's goroutine (the load test measures connect→CRM latency with it).
	OnReceive func(Record)
	Logger    zerolog.Logger
	Now       func() time.Time
}

// Fault is injected into every request until changed. Per-request injection uses the
// query parameters democrm_delay (a Go duration such as 250ms) and democrm_status (an
// HTTP status), or the headers X-Democrm-Delay and X-Democrm-Status.
type Fault struct {
	// Delay before answering.
	Delay time.Duration
	// Status, when not 0, is the failure answered: to every request when FailAttempts
	// is 0 (an outage), else to the first FailAttempts requests of each idempotency key.
	Status int
	// FailAttempts fails the first N attempts of each idempotency key (Status, default
	// 503), then accepts: the shape of a CRM that recovers while the sender retries.
	FailAttempts int
}

// Field is one decoded (name, value) pair, in the order received.
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Record is one request as received.
type Record struct {
	Seq            uint64      `json:"seq"`
	At             time.Time   `json:"at"`
	Method         string      `json:"method"`
	URL            string      `json:"url"` // the request URI: path and query
	Path           string      `json:"path"`
	RemoteAddr     string      `json:"remote_addr"`
	Header         http.Header `json:"header"`
	ContentType    string      `json:"content_type,omitempty"`
	IdempotencyKey string      `json:"idempotency_key,omitempty"`
	// Phase is the call phase oml-crm notified (X-OMLCRM-Phase: ringing, disposition,
	// call_end); "connect" when the header is absent.
	Phase       string        `json:"phase"`
	Query       []Field       `json:"query,omitempty"`
	Form        []Field       `json:"form,omitempty"` // decoded body
	Body        string        `json:"body,omitempty"` // raw body, truncated
	BodySize    int64         `json:"body_size"`
	DecodeError string        `json:"decode_error,omitempty"`
	Status      int           `json:"status"`
	Delay       time.Duration `json:"delay_ns,omitempty"`
	// Attempt is the number of this request among those with the same idempotency key.
	Attempt int `json:"attempt,omitempty"`
	// Duplicate is true when an earlier request with the same key was already accepted.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Accepted reports whether the receiver answered 2xx.
func (r Record) Accepted() bool { return r.Status >= 200 && r.Status < 300 }

// Fields returns the query fields followed by the body fields.
func (r Record) Fields() []Field { return append(append([]Field(nil), r.Query...), r.Form...) }

// Lookup returns the first field named name (case-insensitively).
func (r Record) Lookup(name string) (string, bool) {
	for _, f := range r.Fields() {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// KeyCount is what the receiver saw for one idempotency key.
type KeyCount struct {
	Attempts int `json:"attempts"`
	Accepted int `json:"accepted"`
}

// Stats are the receiver's counters since start (or Reset).
type Stats struct {
	Requests uint64 `json:"requests"`
	Accepted uint64 `json:"accepted"`
	Failed   uint64 `json:"failed"` // injected failures and rejected bodies
	// DuplicateDeliveries counts accepted requests whose key had already been accepted.
	DuplicateDeliveries uint64 `json:"duplicate_deliveries"`
	// Keys is how many idempotency keys are being counted.
	Keys int `json:"keys"`
}

// Receiver is the demo CRM. It is safe for concurrent use.
type Receiver struct {
	prefix    string
	maxBody   int64
	onReceive func(Record)
	log       zerolog.Logger
	now       func() time.Time

	mu      sync.Mutex
	fault   Fault
	ring    []Record // circular; next is the slot of the next record
	next    int
	full    bool
	seq     uint64
	stats   Stats
	keys    map[string]*KeyCount
	keyRing []string // insertion order, circular, for eviction
	keyNext int

	beforeDelay func() // test hook: the handler is about to wait
}

// New returns a Receiver.
func New(opts Options) *Receiver {
	if opts.Prefix == "" {
		opts.Prefix = "/crm"
	}
	opts.Prefix = "/" + strings.Trim(opts.Prefix, "/")
	if opts.Capacity <= 0 {
		opts.Capacity = 1000
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 100_000
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Receiver{
		prefix:    opts.Prefix,
		maxBody:   opts.MaxBody,
		onReceive: opts.OnReceive,
		log:       opts.Logger,
		now:       opts.Now,
		ring:      make([]Record, opts.Capacity),
		keys:      make(map[string]*KeyCount),
		keyRing:   make([]string, opts.MaxKeys),
	}
}

// SetFault replaces the injected fault; Fault{} turns injection off.
func (r *Receiver) SetFault(f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault = f
}

// Records returns the kept records, oldest first.
func (r *Receiver) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	if r.full {
		out = append(out, r.ring[r.next:]...)
	}
	return append(out, r.ring[:r.next]...)
}

// Stats returns the counters.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Keys = len(r.keys)
	return s
}

// Key returns the counts of one idempotency key.
func (r *Receiver) Key(key string) KeyCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.keys[key]; ok {
		return *k
	}
	return KeyCount{}
}

// Reset forgets every record, key and counter (not the fault).
func (r *Receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.ring)
	clear(r.keyRing)
	r.next, r.full, r.keyNext, r.seq = 0, false, 0, 0
	r.stats = Stats{}
	r.keys = make(map[string]*KeyCount)
}

// ServeHTTP routes the log pages and records everything else under the prefix.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p := req.URL.Path
	switch {
	case p == r.prefix+"/log" && req.Method == http.MethodGet:
		r.serveLogHTML(w)
	case p == r.prefix+"/log.json" && req.Method == http.MethodGet:
		r.serveLogJSON(w)
	case p == r.prefix || strings.HasPrefix(p, r.prefix+"/"):
		r.receive(w, req)
	default:
		http.NotFound(w, req)
	}
}

func (r *Receiver) receive(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "democrm accepts GET and POST", http.StatusMethodNotAllowed)
		return
	}
	rec := Record{
		At:             r.now(),
		Method:         req.Method,
		URL:            req.URL.RequestURI(),
		Path:           req.URL.Path,
		RemoteAddr:     req.RemoteAddr,
		Header:         keptHeader(req.Header),
		IdempotencyKey: req.Header.Get("Idempotency-Key"),
		Phase:          phaseOf(req.Header),
		Query:          parseOrdered(req.URL.RawQuery),
		Status:         http.StatusOK,
	}
	rec.ContentType = req.Header.Get("Content-Type")

	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.maxBody))
	rec.BodySize = int64(len(body))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		rec.Status = http.StatusRequestEntityTooLarge
		rec.DecodeError = fmt.Sprintf("body larger than %d bytes", r.maxBody)
	case err != nil:
		rec.Status = http.StatusBadRequest
		rec.DecodeError = "reading the body: " + err.Error()
	default:
		rec.Form, err = decodeBody(rec.ContentType, body)
		if err != nil {
			rec.DecodeError = err.Error()
		}
	}
	rec.Body = truncate(string(body), maxStoredBody)

	attempt, fault := r.begin(rec.IdempotencyKey)
	rec.Attempt = attempt
	delay, failStatus := injected(req, fault, attempt)
	rec.Delay = delay
	if failStatus != 0 && rec.Status == http.StatusOK {
		rec.Status = failStatus
	}
	if delay > 0 {
		if r.beforeDelay != nil {
			r.beforeDelay()
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-req.Context().Done(): // the sender gave up: record that it saw nothing
			t.Stop()
			rec.Status = 499
		}
	}

	rec = r.store(rec)
	if r.onReceive != nil {
		r.onReceive(rec)
	}
	r.log.Debug().Uint64("seq", rec.Seq).Str("method", rec.Method).Str("url", rec.URL).
		Str("idempotency_key", rec.IdempotencyKey).Int("status", rec.Status).Msg("democrm request")
	if rec.Status == 499 {
		return
	}
	r.answer(w, req, rec)
}

// begin counts the attempt of the request's idempotency key and returns its number
// (0 without a key) with the fault in force, in one step so that concurrent retries of
// one key see distinct attempt numbers.
func (r *Receiver) begin(key string) (int, Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if key == "" {
		return 0, r.fault
	}
	k, ok := r.keys[key]
	if !ok {
		k = &KeyCount{}
		if old := r.keyRing[r.keyNext]; old != "" {
			delete(r.keys, old)
		}
		r.keyRing[r.keyNext] = key
		r.keyNext = (r.keyNext + 1) % len(r.keyRing)
		r.keys[key] = k
	}
	k.Attempts++
	return k.Attempts, r.fault
}

// injected returns the delay and failure status for this request: per-request values
// win over the global fault.
func injected(req *http.Request, f Fault, attempt int) (time.Duration, int) {
	delay, status := f.Delay, 0
	switch {
	case f.FailAttempts > 0:
		if attempt > 0 && attempt <= f.FailAttempts {
			status = f.Status
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
		}
	case f.Status != 0:
		status = f.Status
	}
	q := req.URL.Query()
	if v := first(q.Get("democrm_delay"), req.Header.Get("X-Democrm-Delay")); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 && d <= time.Minute {
			delay = d
		}
	}
	if v := first(q.Get("democrm_status"), req.Header.Get("X-Democrm-Status")); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 200 && s <= 599 {
			status = s
			if s < 300 {
				status = 0 // an explicit success overrides a global fault
			}
		}
	}
	return delay, status
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// store numbers the record, counts its acceptance and keeps it in the ring.
func (r *Receiver) store(rec Record) Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	rec.Seq = r.seq
	r.stats.Requests++
	if rec.Accepted() {
		r.stats.Accepted++
	} else {
		r.stats.Failed++
	}
	if k, ok := r.keys[rec.IdempotencyKey]; ok && rec.Accepted() {
		// (a key evicted since begin is simply not counted further)
		if k.Accepted > 0 {
			rec.Duplicate = true
			r.stats.DuplicateDeliveries++
		}
		k.Accepted++
	}
	r.ring[r.next] = rec
	r.next = (r.next + 1) % len(r.ring)
	if r.next == 0 {
		r.full = true
	}
	return rec
}

// answer writes the reply: JSON to clients that ask for it, else the CRM page (what an
// embedded pop shows).
func (r *Receiver) answer(w http.ResponseWriter, req *http.Request, rec Record) {
	w.Header().Set("Cache-Control", "no-store")
	if !rec.Accepted() {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(rec.Status)
		msg := "democrm: injected failure"
		if rec.DecodeError != "" {
			msg = "democrm: " + rec.DecodeError
		}
		fmt.Fprintln(w, msg)
		return
	}
	if strings.Contains(req.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Status)
		_ = json.NewEncoder(w).Encode(map[string]any{"received": rec.Seq, "duplicate": rec.Duplicate})
		return
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, pageData{Headline: headline(rec), Record: rec, Prefix: r.prefix}); err != nil {
		http.Error(w, "democrm: rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(rec.Status)
	_, _ = w.Write(buf.Bytes())
}

// keptHeader copies the request headers, bounded, with credentials masked.
func keptHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			if n == maxHeaderValues {
				return out
			}
			n++
			if k == "Authorization" || k == "Cookie" {
				v = maskCredential(v)
			}
			out[k] = append(out[k], truncate(v, maxFieldValue))
		}
	}
	return out
}

// maskCredential keeps the scheme and the length: enough to see that a token was sent.
func maskCredential(v string) string {
	scheme, rest, found := strings.Cut(v, " ")
	if !found {
		return fmt.Sprintf("[%d bytes]", len(v))
	}
	return fmt.Sprintf("%s [%d bytes]", scheme, len(rest))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parseOrdered decodes a query or form body keeping the order of the pairs (url.Values
// does not) and the raw text of pairs that do not decode.
func parseOrdered(raw string) []Field {
	var out []Field
	for raw != "" && len(out) < maxFields {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if v, err := url.QueryUnescape(value); err == nil {
			value = v
		}
		out = append(out, Field{Name: name, Value: truncate(value, maxFieldValue)})
	}
	return out
}

// decodeBody decodes the body by content type: form, multipart, JSON object or
// name=value text lines. Unknown types are kept only as the raw body.
func decodeBody(contentType string, body []byte) ([]Field, error) {
	if len(body) == 0 {
		return nil, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("content type %q: %w", contentType, err)
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		return parseOrdered(string(body)), nil
	case "multipart/form-data":
		return decodeMultipart(body, params["boundary"])
	case "application/json":
		return decodeJSONObject(body)
	case "text/plain":
		return decodeTextLines(string(body)), nil
	}
	return nil, nil
}

func decodeMultipart(body []byte, boundary string) ([]Field, error) {
	if boundary == "" {
		return nil, errors.New("multipart body without a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var out []Field
	for len(out) < maxFields {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("multipart: %w", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return out, fmt.Errorf("multipart part %q: %w", p.FormName(), err)
		}
		v := string(b)
		if p.FileName() != "" {
			v = fmt.Sprintf("(file %q, %d bytes)", p.FileName(), len(b))
		}
		out = append(out, Field{Name: p.FormName(), Value: truncate(v, maxFieldValue)})
	}
	return out, nil
}

// decodeJSONObject keeps the members' order; strings are shown unquoted, anything else
// as its JSON text.
func decodeJSONObject(body []byte) ([]Field, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("JSON body is not an object")
	}
	var out []Field
	for dec.More() && len(out) < maxFields {
		tok, err := dec.Token()
		if err != nil {
			return out, fmt.Errorf("JSON: %w", err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return out, fmt.Errorf("JSON member %q: %w", name, err)
		}
		v := string(raw)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			v = s
		}
		out = append(out, Field{Name: name, Value: truncate(v, maxFieldValue)})
	}
	return out, nil
}

func decodeTextLines(body string) []Field {
	var out []Field
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		if line == "" || len(out) == maxFields {
			continue
		}
		name, value, _ := strings.Cut(line, "=")
		out = append(out, Field{Name: name, Value: truncate(value, maxFieldValue)})
	}
	return out
}

// headline is what the CRM page shows in large: the contact's name when a field looks
// like one, else an id.
func headline(rec Record) string {
	for _, n := range []string{"nombre", "name", "contact_name", "nombre_cliente", "cliente", "first_name"} {
		if v, ok := rec.Lookup(n); ok && v != "" {
			return "contact " + v
		}
	}
	for _, n := range []string{"idClient", "id_contacto", "contact_id", "idcliente", "contacto"} {
		if v, ok := rec.Lookup(n); ok && v != "" {
			return "contact #" + v
		}
	}
	// A clean URL carries the id in its path: /crm/contacts/321/…
	segs := strings.Split(rec.Path, "/")
	for i := 0; i+1 < len(segs); i++ {
		if (segs[i] == "contacts" || segs[i] == "contact") && segs[i+1] != "" {
			if v, err := url.PathUnescape(segs[i+1]); err == nil {
				return "contact #" + v
			}
		}
	}
	for _, n := range []string{"call_id", "callid", "idCall"} {
		if v, ok := rec.Lookup(n); ok && v != "" {
			return "call " + v
		}
	}
	return fmt.Sprintf("request #%d", rec.Seq)
}

// phaseOf reads the X-OMLCRM-Phase header oml-crm puts on deliveries of the phases besides
// connect.
func phaseOf(h http.Header) string {
	if p := h.Get("X-OMLCRM-Phase"); p != "" {
		return p
	}
	return "connect"
}
