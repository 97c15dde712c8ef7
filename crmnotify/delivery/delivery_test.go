package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/internal/logtest"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// forEachStore runs fn on a fresh SQLite outbox and a fresh PostgreSQL one.
func forEachStore(t *testing.T, fn func(t *testing.T, store string)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, "sqlite:"+filepath.Join(t.TempDir(), "deliveries.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, pgtest.NewDatabase(t))
	})
}

// fakeClock is the wall clock shifted by an offset the test advances.
type fakeClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

type harness struct {
	q     *Queue
	clock *fakeClock
	logs  *logtest.Buffer
	reg   *prometheus.Registry
}

// testOptions are fast: tiny backoffs and poll interval, so that retries take
// milliseconds (the test never sleeps for a backoff).
func testOptions(store string) Options {
	return Options{
		Store:        store,
		Timeout:      5 * time.Second,
		MinBackoff:   2 * time.Millisecond,
		MaxBackoff:   10 * time.Millisecond,
		PollInterval: 10 * time.Millisecond,
		Workers:      64,
		UserAgent:    "oml-crm/test",
	}
}

func startQueue(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{clock: &fakeClock{}, logs: &logtest.Buffer{}, reg: prometheus.NewRegistry()}
	if opts.Clock == nil {
		opts.Clock = h.clock
	}
	opts.Logger = zerolog.New(h.logs).Level(zerolog.DebugLevel)
	opts.Registerer = h.reg
	q, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open queue: %v", err)
	}
	h.q = q
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := q.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

// waitFor polls cond until it holds; it fails the test after a generous bound (this is
// not a timing assertion: a correct queue finishes in milliseconds).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) waitStatus(t *testing.T, id string, want Status) *Delivery {
	t.Helper()
	var d *Delivery
	waitFor(t, fmt.Sprintf("delivery %s to be %s", id, want), func() bool {
		var err error
		d, err = h.q.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		return d.Status == want
	})
	return d
}

// received is one request as the CRM saw it.
type received struct {
	Method, Path, RawQuery, ContentType, UserAgent string
	IdempotencyKey, Authorization, Signature       string
	Body                                           []byte
}

// crm is a scripted CRM on 127.0.0.1.
type crm struct {
	mu     sync.Mutex
	got    []received
	answer func(r *http.Request, n int) (int, http.Header, string) // n: 1-based request number
	srv    *httptest.Server
}

func newCRM(t *testing.T, tlsServer bool, answer func(r *http.Request, n int) (int, http.Header, string)) *crm {
	c := &crm{answer: answer}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.got = append(c.got, received{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"),
			UserAgent: r.Header.Get("User-Agent"), IdempotencyKey: r.Header.Get(HeaderIdempotencyKey),
			Authorization: r.Header.Get("Authorization"), Signature: r.Header.Get(HeaderSignature), Body: body})
		n := len(c.got)
		c.mu.Unlock()
		status, hdr, text := 200, http.Header(nil), "ok"
		if c.answer != nil {
			status, hdr, text = c.answer(r, n)
		}
		for k, v := range hdr {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		io.WriteString(w, text)
	})
	if tlsServer {
		c.srv = httptest.NewTLSServer(h)
	} else {
		c.srv = httptest.NewServer(h)
	}
	t.Cleanup(c.srv.Close)
	return c
}

func (c *crm) requests() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.got...)
}

func (c *crm) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

var testCallSeq atomic.Int64

// notification renders a real request with crmnotify.Render for a site pointing at url.
func notification(t *testing.T, url string, method catalog.Method, format catalog.Format, auth *catalog.SiteAuth) crmnotify.Notification {
	t.Helper()
	site := &catalog.Site{ID: 7, Name: "crm", URL: url, Trigger: catalog.TriggerServer, Method: method, Format: format, Auth: auth}
	camp := &catalog.Campaign{ID: 11, Name: "Ventas", Type: catalog.TypeInbound, Interaction: catalog.InteractionSite, State: catalog.StateActive,
		Site: site, ContactDatabase: &catalog.ContactDatabase{ID: 5, Columns: []string{"telefono", "nombre"}},
		Params: []catalog.Param{
			{Family: catalog.FamilyCall, Source: "id_contacto", Name: "idClient"},
			{Family: catalog.FamilyCampaign, Source: "id", Name: "idCamp"},
			{Family: catalog.FamilyFixed, Source: "es ñ&=", Name: "lang"},
			{Family: catalog.FamilyContact, Source: "nombre", Name: "nombre"},
		}}
	callID := fmt.Sprintf("1559667982.%d", testCallSeq.Add(1))
	in := crmnotify.Input{Campaign: camp, Contact: &catalog.Contact{ID: 321, DatabaseID: 5, Fields: map[string]string{"nombre": "Juan \"J\" Pérez"}},
		Agent: &catalog.Agent{ID: 2, Username: "agent2"},
		Call:  crmnotify.CallData{CallID: callID, AgentID: 2, Phone: "4149014", ContactID: "321", At: time.Now()}}
	req, err := crmnotify.Render(in)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return crmnotify.Notification{ID: crmnotify.NotificationID(callID, 2, site.ID), CallID: callID, AgentID: 2,
		Campaign: camp, Site: site, Request: req, ConnectedAt: time.Now()}
}

func enqueue(t *testing.T, q *Queue, n crmnotify.Notification) {
	t.Helper()
	if err := q.Enqueue(context.Background(), n); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

func TestDeliversEachFormatByteIdentical(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCRM(t, false, nil)
		h := startQueue(t, testOptions(store))
		cases := []struct {
			name   string
			method catalog.Method
			format catalog.Format
		}{
			{"get", catalog.MethodGET, 0},
			{"multipart", catalog.MethodPOST, catalog.FormatMultipart},
			{"form", catalog.MethodPOST, catalog.FormatForm},
			{"text", catalog.MethodPOST, catalog.FormatText},
			{"json", catalog.MethodPOST, catalog.FormatJSON},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := notification(t, c.srv.URL+"/crm/"+tc.name+"?src=oml", tc.method, tc.format, nil)
				before := c.count()
				enqueue(t, h.q, n)
				d := h.waitStatus(t, n.ID, StatusDelivered)
				got := c.requests()[before]
				if got.Method != n.Request.Method {
					t.Errorf("method = %s, want %s", got.Method, n.Request.Method)
				}
				if want := strings.TrimPrefix(n.Request.URL, c.srv.URL); got.Path+"?"+got.RawQuery != want {
					t.Errorf("path+query = %s?%s, want %s", got.Path, got.RawQuery, want)
				}
				if !bytes.Equal(got.Body, n.Request.Body) {
					t.Errorf("body = %q, want %q", got.Body, n.Request.Body)
				}
				if got.ContentType != n.Request.ContentType {
					t.Errorf("content type = %q, want %q", got.ContentType, n.Request.ContentType)
				}
				if got.IdempotencyKey != n.ID || got.UserAgent != "oml-crm/test" {
					t.Errorf("Idempotency-Key = %q, User-Agent = %q", got.IdempotencyKey, got.UserAgent)
				}
				if got.Signature != "" {
					t.Errorf("signature sent without a secret: %q", got.Signature)
				}
				if d.Attempts != 1 || len(d.AttemptLog) != 1 || d.AttemptLog[0].Status != 200 || d.AttemptLog[0].Response != "ok" {
					t.Errorf("attempts = %d, log = %+v", d.Attempts, d.AttemptLog)
				}
				if d.DeliveredAt.IsZero() || d.Latency <= 0 || d.CampaignID != 11 || d.SiteID != 7 || d.CallID != n.CallID || d.AgentID != 2 {
					t.Errorf("delivery = %+v", d)
				}
			})
		}
	})
}

func TestFailsFiveTimesThenDeliversOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCRM(t, false, func(r *http.Request, n int) (int, http.Header, string) {
			if n <= 5 {
				return 503, nil, "busy"
			}
			return 201, nil, "created"
		})
		h := startQueue(t, testOptions(store))
		n := notification(t, c.srv.URL+"/hook", catalog.MethodPOST, catalog.FormatJSON, nil)
		enqueue(t, h.q, n)
		d := h.waitStatus(t, n.ID, StatusDelivered)
		got := c.requests()
		if len(got) != 6 {
			t.Fatalf("CRM got %d requests, want 6", len(got))
		}
		for i, r := range got {
			if r.IdempotencyKey != n.ID || !bytes.Equal(r.Body, n.Request.Body) {
				t.Errorf("request %d: Idempotency-Key %q body %q", i+1, r.IdempotencyKey, r.Body)
			}
		}
		if d.Attempts != 6 || len(d.AttemptLog) != 6 {
			t.Fatalf("attempts = %d (log %d), want 6", d.Attempts, len(d.AttemptLog))
		}
		for i, a := range d.AttemptLog {
			want := 503
			if i == 5 {
				want = 201
			}
			if a.N != i+1 || a.Status != want || (want == 503) != (a.Error != "") {
				t.Errorf("attempt %d = %+v", i+1, a)
			}
		}
		if d.AttemptLog[0].Response != "busy" {
			t.Errorf("response excerpt = %q", d.AttemptLog[0].Response)
		}
		// Nothing more is sent once delivered.
		time.Sleep(50 * time.Millisecond)
		if c.count() != 6 {
			t.Errorf("CRM got %d requests after delivery, want 6", c.count())
		}
	})
}

func TestRetryAfterIsHonoured(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		date := time.Now().Add(3 * time.Hour).UTC().Format(http.TimeFormat)
		c := newCRM(t, false, func(r *http.Request, n int) (int, http.Header, string) {
			if strings.HasSuffix(r.URL.Path, "/date") {
				return 503, http.Header{"Retry-After": {date}}, "later"
			}
			return 429, http.Header{"Retry-After": {"120"}}, "slow down"
		})
		h := startQueue(t, testOptions(store))
		n := notification(t, c.srv.URL+"/secs", catalog.MethodGET, 0, nil)
		enqueue(t, h.q, n)
		d := h.waitStatus(t, n.ID, StatusFailed)
		if wait := d.NextAttemptAt.Sub(d.AttemptLog[0].At); wait < 119*time.Second || wait > 125*time.Second {
			t.Errorf("Retry-After 120: next attempt %s after the attempt", wait)
		}
		if d.LastStatus != 429 {
			t.Errorf("last status = %d", d.LastStatus)
		}
		n2 := notification(t, c.srv.URL+"/date", catalog.MethodGET, 0, nil)
		enqueue(t, h.q, n2)
		d2 := h.waitStatus(t, n2.ID, StatusFailed)
		if wait := d2.NextAttemptAt.Sub(d2.AttemptLog[0].At); wait < 3*time.Hour-5*time.Second || wait > 3*time.Hour+5*time.Second {
			t.Errorf("Retry-After date: next attempt %s after the attempt", wait)
		}
		if c.count() != 2 {
			t.Errorf("CRM got %d requests, want 2 (retries wait for Retry-After)", c.count())
		}
	})
}

func TestFinal4xxIsDead(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCRM(t, false, func(r *http.Request, n int) (int, http.Header, string) { return 422, nil, `{"error":"bad phone"}` })
		h := startQueue(t, testOptions(store))
		n := notification(t, c.srv.URL+"/x", catalog.MethodPOST, catalog.FormatForm, nil)
		enqueue(t, h.q, n)
		d := h.waitStatus(t, n.ID, StatusDead)
		if d.Attempts != 1 || d.LastStatus != 422 || !strings.Contains(d.LastError, "422") || d.AttemptLog[0].Response != `{"error":"bad phone"}` {
			t.Errorf("dead delivery = %+v", d)
		}
		time.Sleep(50 * time.Millisecond)
		if c.count() != 1 {
			t.Errorf("CRM got %d requests, want 1", c.count())
		}
		st, err := h.q.Stats(context.Background())
		if err != nil || st.Dead != 1 || st.Depth != 0 {
			t.Errorf("stats = %+v, %v", st, err)
		}
	})
}

func TestCrossHostRedirectIsNotFollowed(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		other := newCRM(t, false, nil)
		c := newCRM(t, false, func(r *http.Request, n int) (int, http.Header, string) {
			if r.URL.Path == "/old" {
				return 307, http.Header{"Location": {"/new"}}, ""
			}
			if r.URL.Path == "/away" {
				return 302, http.Header{"Location": {strings.Replace(other.srv.URL, "127.0.0.1", "localhost", 1) + "/steal"}}, ""
			}
			return 200, nil, "ok"
		})
		h := startQueue(t, testOptions(store))
		same := notification(t, c.srv.URL+"/old", catalog.MethodPOST, catalog.FormatJSON, nil)
		enqueue(t, h.q, same)
		h.waitStatus(t, same.ID, StatusDelivered)
		if got := c.requests(); len(got) != 2 || got[1].Path != "/new" || !bytes.Equal(got[1].Body, same.Request.Body) || got[1].IdempotencyKey != same.ID {
			t.Errorf("same-host 307 not followed with the body: %+v", got)
		}
		away := notification(t, c.srv.URL+"/away", catalog.MethodPOST, catalog.FormatJSON, nil)
		enqueue(t, h.q, away)
		d := h.waitStatus(t, away.ID, StatusDead)
		if other.count() != 0 || !strings.Contains(d.LastError, "another host") {
			t.Errorf("cross-host redirect: other host got %d requests, last error %q", other.count(), d.LastError)
		}
	})
}

// A same-host 302 would turn the POST into a bodiless GET: the CRM would never see the
// data while the delivery counted as delivered. It is not followed and the delivery is
// dead-lettered with the Location named, so the admin can fix the site URL.
func TestSameHost302OnPostIsNotFollowed(t *testing.T) {
	c := newCRM(t, false, func(r *http.Request, n int) (int, http.Header, string) {
		if r.URL.Path == "/moved" {
			return 302, http.Header{"Location": {"/new"}}, ""
		}
		return 200, nil, "ok"
	})
	opts := testOptions("sqlite:" + filepath.Join(t.TempDir(), "q.db"))
	opts.SigningSecrets = map[int]catalog.Secret{7: testSecret}
	h := startQueue(t, opts)
	n := notification(t, c.srv.URL+"/moved", catalog.MethodPOST, catalog.FormatJSON, nil)
	enqueue(t, h.q, n)
	h.waitStatus(t, n.ID, StatusDead)
	got := c.requests()
	if len(got) != 1 || got[0].Method != http.MethodPost || !bytes.Equal(got[0].Body, n.Request.Body) {
		t.Fatalf("requests = %+v, want only the original POST", got)
	}
	verifySignature(t, got[0], testSecret)
	d, err := h.q.Get(context.Background(), n.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.AttemptLog) != 1 || d.AttemptLog[0].Status != 302 || !strings.Contains(d.AttemptLog[0].Error, `"/new"`) {
		t.Errorf("attempts = %+v, want one 302 naming the Location", d.AttemptLog)
	}
}

// A same-host 307 keeps the method and body: it is followed.
func TestSameHost307OnPostIsFollowed(t *testing.T) {
	c := newCRM(t, false, func(r *http.Request, n int) (int, http.Header, string) {
		if r.URL.Path == "/moved" {
			return 307, http.Header{"Location": {"/new"}}, ""
		}
		return 200, nil, "ok"
	})
	h := startQueue(t, testOptions("sqlite:"+filepath.Join(t.TempDir(), "q.db")))
	n := notification(t, c.srv.URL+"/moved", catalog.MethodPOST, catalog.FormatJSON, nil)
	enqueue(t, h.q, n)
	h.waitStatus(t, n.ID, StatusDelivered)
	got := c.requests()
	if len(got) != 2 || got[1].Method != http.MethodPost || got[1].Path != "/new" || !bytes.Equal(got[1].Body, n.Request.Body) {
		t.Fatalf("requests = %+v", got)
	}
}

// authServer is a CRM with a login endpoint: tokens are "tok-<n>", valid until the
// test revokes them.
type authServer struct {
	*crm
	logins   atomic.Int64
	mu       sync.Mutex
	valid    map[string]bool
	loginGap time.Duration
	duration string      // value of the "expires_in" field ("" = absent)
	down     atomic.Bool // answer 503 to everything, login included
}

const (
	testPassword = "pa55-w0rd-s3cr3t"
	testSecret   = "signing-secret-0123456789"
)

func newAuthServer(t *testing.T, tlsServer bool) *authServer {
	a := &authServer{valid: map[string]bool{}}
	a.crm = newCRM(t, tlsServer, func(r *http.Request, n int) (int, http.Header, string) {
		if a.down.Load() {
			return 503, nil, "maintenance"
		}
		if r.URL.Path == "/login" {
			var creds map[string]string
			body := a.crm.requests()[n-1].Body
			if err := json.Unmarshal(body, &creds); err != nil || creds["username"] != "omlcrm" || creds["password"] != testPassword ||
				r.Header.Get("Content-Type") != "application/json" {
				return 403, nil, `{"detail":"bad credentials"}`
			}
			time.Sleep(a.loginGap)
			tok := fmt.Sprintf("tok-%d-%s", a.logins.Add(1), strings.Repeat("x", 8))
			a.mu.Lock()
			a.valid[tok] = true
			a.mu.Unlock()
			doc := map[string]any{"access": tok}
			if a.duration != "" {
				doc["expires_in"] = a.duration
			}
			b, _ := json.Marshal(doc)
			return 200, http.Header{"Content-Type": {"application/json"}}, string(b)
		}
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		a.mu.Lock()
		ok := a.valid[tok]
		a.mu.Unlock()
		if !ok {
			// A careless CRM echoing the credentials it refused: must be redacted.
			return 401, nil, "invalid token " + tok
		}
		return 200, nil, "ok"
	})
	return a
}

func (a *authServer) revokeAll() {
	a.mu.Lock()
	a.valid = map[string]bool{}
	a.mu.Unlock()
}

func (a *authServer) auth(strictTLS bool, duration int) *catalog.SiteAuth {
	return &catalog.SiteAuth{ID: 1, Name: "crm-auth", URL: a.srv.URL + "/login", Username: "omlcrm", Password: testPassword,
		TokenField: "access", Duration: duration, DurationField: "expires_in", StrictTLS: strictTLS}
}

// crmRequests are the requests other than logins.
func (a *authServer) crmRequests() []received {
	var out []received
	for _, r := range a.requests() {
		if r.Path != "/login" {
			out = append(out, r)
		}
	}
	return out
}

func TestSelfSignedTLSOnlyWithoutStrictTLS(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		a := newAuthServer(t, true)
		h := startQueue(t, testOptions(store))
		strict := notification(t, a.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, a.auth(true, 3600))
		enqueue(t, h.q, strict)
		d := h.waitStatus(t, strict.ID, StatusFailed)
		if !strings.Contains(d.LastError, "certificate") || len(a.crmRequests()) != 0 {
			t.Errorf("strict TLS accepted a self-signed certificate: %+v", d)
		}
		lax := notification(t, a.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, a.auth(false, 3600))
		lax.Site.ID = 8 // another site: auth settings are per site
		enqueue(t, h.q, lax)
		h.waitStatus(t, lax.ID, StatusDelivered)
		if got := a.crmRequests(); len(got) != 1 || !strings.HasPrefix(got[0].Authorization, "Bearer tok-") {
			t.Errorf("CRM requests = %+v", got)
		}
	})
}

func TestTokenLoginReuseExpiryAndRelogin(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		a := newAuthServer(t, false)
		opts := testOptions(store)
		opts.SigningSecrets = map[int]catalog.Secret{7: testSecret}
		h := startQueue(t, opts)
		auth := a.auth(true, 3600)
		var ids []string
		send := func() *Delivery {
			n := notification(t, a.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, auth)
			ids = append(ids, n.ID)
			enqueue(t, h.q, n)
			return h.waitStatus(t, n.ID, StatusDelivered)
		}
		for range 3 {
			send()
		}
		if a.logins.Load() != 1 {
			t.Fatalf("3 deliveries logged in %d times, want 1 (token reuse)", a.logins.Load())
		}
		// Expiry: an hour later the token is renewed before use.
		h.clock.Advance(3601 * time.Second)
		send()
		if a.logins.Load() != 2 {
			t.Fatalf("after expiry: %d logins, want 2", a.logins.Load())
		}
		// The CRM forgets the token: 401, one new login, immediate retry.
		a.revokeAll()
		d := send()
		if a.logins.Load() != 3 || d.Attempts != 2 || d.AttemptLog[0].Status != 401 || d.AttemptLog[1].Status != 200 {
			t.Fatalf("re-login on 401: logins %d, attempts %+v", a.logins.Load(), d.AttemptLog)
		}
		for _, r := range a.crmRequests() {
			if !strings.HasPrefix(r.Authorization, "Bearer tok-") {
				t.Errorf("request without bearer token: %+v", r)
			}
			verifySignature(t, r, testSecret)
		}
		// duration = 0: the lifetime comes from the answer's field (a numeric string).
		a.duration = "1"
		auth2 := a.auth(true, 0)
		auth2.ID = 2
		n := notification(t, a.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, auth2)
		enqueue(t, h.q, n)
		h.waitStatus(t, n.ID, StatusDelivered)
		before := a.logins.Load()
		h.clock.Advance(2 * time.Second)
		n = notification(t, a.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, auth2)
		enqueue(t, h.q, n)
		h.waitStatus(t, n.ID, StatusDelivered)
		if a.logins.Load() != before+1 {
			t.Errorf("token with duration_field 1 s not renewed after 2 s: logins %d → %d", before, a.logins.Load())
		}
		ids = append(ids, n.ID)
		assertNoSecrets(t, h, ids, testPassword, testSecret, "tok-")
	})
}

func verifySignature(t *testing.T, r received, secret string) {
	t.Helper()
	var ts, v1 string
	for _, part := range strings.Split(r.Signature, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		t.Fatalf("signature %q: bad timestamp", r.Signature)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(r.Body)
	if want := hex.EncodeToString(mac.Sum(nil)); v1 != want {
		t.Errorf("signature %q does not verify (want v1=%s)", r.Signature, want)
	}
}

// assertNoSecrets greps the logs, the attempt records and the listing for secrets.
func assertNoSecrets(t *testing.T, h *harness, ids []string, secrets ...string) {
	t.Helper()
	var all strings.Builder
	all.WriteString(h.logs.String())
	for _, id := range ids {
		d, err := h.q.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(d)
		all.Write(b)
	}
	list, err := h.q.List(context.Background(), Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(list)
	all.Write(b)
	if !strings.Contains(all.String(), "[redacted]") {
		t.Errorf("the CRM's echo of the refused token was not recorded redacted")
	}
	for _, s := range secrets {
		if strings.Contains(all.String(), s) {
			t.Errorf("secret %q appears in logs or delivery records", s)
		}
	}
}

func TestOneLoginInFlightForManyDeliveries(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		a := newAuthServer(t, false)
		a.loginGap = 100 * time.Millisecond // every delivery arrives while the login is in flight
		h := startQueue(t, testOptions(store))
		auth := a.auth(true, 3600)
		var wg sync.WaitGroup
		ns := make([]crmnotify.Notification, 50)
		for i := range ns {
			ns[i] = notification(t, a.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, auth)
		}
		for _, n := range ns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := h.q.Enqueue(context.Background(), n); err != nil {
					t.Errorf("enqueue: %v", err)
				}
			}()
		}
		wg.Wait()
		for _, n := range ns {
			h.waitStatus(t, n.ID, StatusDelivered)
		}
		if a.logins.Load() != 1 {
			t.Errorf("50 concurrent deliveries logged in %d times, want 1", a.logins.Load())
		}
	})
}

func TestLoginFailureRetriesWithoutLeakingPassword(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		a := newAuthServer(t, false)
		h := startQueue(t, testOptions(store))
		auth := a.auth(true, 3600)
		auth.Password = "wrong-" + testPassword
		n := notification(t, a.srv.URL+"/crm", catalog.MethodPOST, catalog.FormatJSON, auth)
		enqueue(t, h.q, n)
		d := h.waitStatus(t, n.ID, StatusFailed)
		if !strings.Contains(d.LastError, "login") || !strings.Contains(d.LastError, "403") || len(a.crmRequests()) != 0 {
			t.Errorf("login failure: %+v", d)
		}
		if all := h.logs.String() + d.LastError; strings.Contains(all, testPassword) {
			t.Errorf("password leaked: %s", all)
		}
	})
}

func TestSigningSecretsReload(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCRM(t, false, nil)
		h := startQueue(t, testOptions(store))
		n := notification(t, c.srv.URL+"/a", catalog.MethodPOST, catalog.FormatText, nil)
		enqueue(t, h.q, n)
		h.waitStatus(t, n.ID, StatusDelivered)
		h.q.SetSigningSecrets(map[int]catalog.Secret{7: testSecret})
		n = notification(t, c.srv.URL+"/b", catalog.MethodGET, 0, nil)
		enqueue(t, h.q, n)
		h.waitStatus(t, n.ID, StatusDelivered)
		got := c.requests()
		if got[0].Signature != "" {
			t.Errorf("signed before a secret was set")
		}
		verifySignature(t, got[1], testSecret)
	})
}

func TestDuplicateEnqueueIsNoop(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCRM(t, false, nil)
		h := startQueue(t, testOptions(store))
		n := notification(t, c.srv.URL+"/x", catalog.MethodPOST, catalog.FormatJSON, nil)
		enqueue(t, h.q, n)
		enqueue(t, h.q, n)
		h.waitStatus(t, n.ID, StatusDelivered)
		enqueue(t, h.q, n)
		time.Sleep(50 * time.Millisecond)
		if c.count() != 1 {
			t.Errorf("CRM got %d requests for one notification enqueued 3 times", c.count())
		}
		list, err := h.q.List(context.Background(), Filter{})
		if err != nil || len(list) != 1 {
			t.Errorf("list = %d rows, %v", len(list), err)
		}
	})
}

func TestMaxAgeDeadLetters(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCRM(t, false, func(r *http.Request, n int) (int, http.Header, string) { return 500, nil, "down" })
		opts := testOptions(store)
		opts.MinBackoff, opts.MaxBackoff = time.Minute, time.Minute // one attempt, then wait
		h := startQueue(t, opts)
		n := notification(t, c.srv.URL+"/x", catalog.MethodPOST, catalog.FormatJSON, nil)
		enqueue(t, h.q, n)
		h.waitStatus(t, n.ID, StatusFailed)
		h.clock.Advance(25 * time.Hour)
		d := h.waitStatus(t, n.ID, StatusDead)
		if !strings.Contains(d.LastError, "maximum age") || c.count() != 1 {
			t.Errorf("max age: %d requests, last error %q", c.count(), d.LastError)
		}
	})
}

func TestNetworkErrorRetriesAndListFilters(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		c := newCRM(t, false, nil)
		down := c.srv.URL
		c.srv.Close() // connection refused
		opts := testOptions(store)
		opts.MinBackoff, opts.MaxBackoff = time.Hour, time.Hour
		h := startQueue(t, opts)
		n := notification(t, down+"/x", catalog.MethodPOST, catalog.FormatJSON, nil)
		enqueue(t, h.q, n)
		d := h.waitStatus(t, n.ID, StatusFailed)
		if d.LastStatus != 0 || !strings.Contains(d.LastError, "refused") {
			t.Errorf("network error recorded as %d %q", d.LastStatus, d.LastError)
		}
		if wait := d.NextAttemptAt.Sub(d.AttemptLog[0].At); wait < 30*time.Minute {
			t.Errorf("backoff %s, want between 30 min and 1 h", wait)
		}
		ctx := context.Background()
		for _, f := range []Filter{{Status: StatusFailed}, {CampaignID: 11}, {Since: time.Hour}} {
			if l, err := h.q.List(ctx, f); err != nil || len(l) != 1 || l[0].ID != n.ID {
				t.Errorf("list %+v = %v, %v", f, l, err)
			}
		}
		for _, f := range []Filter{{Status: StatusDelivered}, {CampaignID: 12}} {
			if l, err := h.q.List(ctx, f); err != nil || len(l) != 0 {
				t.Errorf("list %+v = %v, %v", f, l, err)
			}
		}
		h.clock.Advance(2 * time.Hour)
		if l, err := h.q.List(ctx, Filter{Since: time.Hour}); err != nil || len(l) != 0 {
			t.Errorf("list since 1h after 2h = %v, %v", l, err)
		}
		if _, err := h.q.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("get unknown: %v", err)
		}
		st, err := h.q.Stats(ctx)
		if err != nil || st.Depth != 1 || st.OldestPending < 2*time.Hour {
			t.Errorf("stats = %+v, %v", st, err)
		}
	})
}

func TestRetryAndRetryDead(t *testing.T) {
	forEachStore(t, func(t *testing.T, store string) {
		var healthy atomic.Bool
		c := newCRM(t, false, func(r *http.Request, n int) (int, http.Header, string) {
			if healthy.Load() {
				return 200, nil, "ok"
			}
			return 404, nil, "no such endpoint"
		})
		h := startQueue(t, testOptions(store))
		var ns []crmnotify.Notification
		for range 3 {
			n := notification(t, c.srv.URL+"/x", catalog.MethodPOST, catalog.FormatJSON, nil)
			enqueue(t, h.q, n)
			h.waitStatus(t, n.ID, StatusDead)
			ns = append(ns, n)
		}
		healthy.Store(true)
		ctx := context.Background()
		if err := h.q.Retry(ctx, ns[0].ID); err != nil {
			t.Fatal(err)
		}
		h.waitStatus(t, ns[0].ID, StatusDelivered)
		if err := h.q.Retry(ctx, ns[0].ID); err == nil || !strings.Contains(err.Error(), "delivered") {
			t.Errorf("retry of a delivered delivery: %v", err)
		}
		if err := h.q.Retry(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("retry unknown: %v", err)
		}
		n, err := h.q.RetryDead(ctx)
		if err != nil || n != 2 {
			t.Fatalf("retry dead = %d, %v", n, err)
		}
		for _, n := range ns[1:] {
			h.waitStatus(t, n.ID, StatusDelivered)
		}
	})
}

func TestMetricsAreExported(t *testing.T) {
	c := newCRM(t, false, nil)
	h := startQueue(t, testOptions("sqlite:"+filepath.Join(t.TempDir(), "q.db")))
	n := notification(t, c.srv.URL+"/x", catalog.MethodPOST, catalog.FormatJSON, nil)
	enqueue(t, h.q, n)
	h.waitStatus(t, n.ID, StatusDelivered)
	waitFor(t, "metrics", func() bool {
		mfs, err := h.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				v := m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
				seen[mf.GetName()] += v
			}
		}
		return seen["omlcrm_delivery_finished_total"] == 1 && seen["omlcrm_delivery_attempts_total"] == 1 &&
			seen["omlcrm_delivery_connect_to_crm_seconds"] == 1 && seen["omlcrm_delivery_enqueued_total"] == 1
	})
}

func TestOpenRejectsBadStore(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, Options{}); err == nil || !strings.Contains(err.Error(), "delivery.store") {
		t.Errorf("empty store: %v", err)
	}
	if _, err := Open(ctx, Options{Store: "postgres://u:hunter2@127.0.0.1:1/x", Schema: "Bad-Schema"}); err == nil ||
		!strings.Contains(err.Error(), "delivery.postgres_schema") {
		t.Errorf("bad schema: %v", err)
	}
	_, err := Open(ctx, Options{Store: "postgres://u:hunter2@127.0.0.1:1/x"})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "delivery.postgres_url") {
		t.Errorf("unreachable PostgreSQL: %v", err)
	}
}

func TestEnqueueRejectsBadNotification(t *testing.T) {
	h := startQueue(t, testOptions("sqlite:"+filepath.Join(t.TempDir(), "q.db")))
	n := notification(t, "http://crm/x", catalog.MethodGET, 0, nil) // Render refuses ftp: forge the request
	n.Request.URL = "ftp://crm/x"
	if err := h.q.Enqueue(context.Background(), n); err == nil || !strings.Contains(err.Error(), "site 7") {
		t.Errorf("ftp URL: %v", err)
	}
	n.ID = ""
	if err := h.q.Enqueue(context.Background(), n); err == nil {
		t.Error("empty id accepted")
	}
}

// Ping answers while the store does and fails once it is gone: the outbox's database
// dropped (PostgreSQL), its connections closed, or the queue closed.
func TestPing(t *testing.T) {
	ctx := context.Background()
	open := func(t *testing.T, store string) *Queue {
		t.Helper()
		q, err := Open(ctx, testOptions(store))
		if err != nil {
			t.Fatalf("open queue: %v", err)
		}
		t.Cleanup(func() { q.Close() })
		if err := q.Ping(ctx); err != nil {
			t.Fatalf("Ping on an open store: %v", err)
		}
		return q
	}
	t.Run("sqlite", func(t *testing.T) {
		q := open(t, "sqlite:"+filepath.Join(t.TempDir(), "deliveries.db"))
		// The SELECT runs on the store: with its connections closed it fails.
		q.store.(*sqlStore).r.Close()
		if err := q.Ping(ctx); err == nil || !strings.Contains(err.Error(), "delivery store") {
			t.Errorf("Ping with the store's connections closed: %v, want a delivery store error", err)
		}
		q.Close()
		if err := q.Ping(ctx); err == nil {
			t.Error("Ping after Close succeeded")
		}
	})
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.NewDatabase(t)
		q := open(t, db)
		u, err := url.Parse(db)
		if err != nil {
			t.Fatal(err)
		}
		pgtest.Exec(t, pgtest.AdminURL(t), fmt.Sprintf(`DROP DATABASE %q WITH (FORCE)`, strings.TrimPrefix(u.Path, "/")))
		if err := q.Ping(ctx); err == nil || !strings.Contains(err.Error(), "delivery store") {
			t.Errorf("Ping with the database dropped: %v, want a delivery store error", err)
		}
	})
}

// Close while Run is still sweeping (the daemon's shutdown order): Run returns before
// the store closes, so no sweep ever runs against a closed database.
func TestCloseStopsRunFirst(t *testing.T) {
	for _, store := range []string{"sqlite:" + filepath.Join(t.TempDir(), "q.db"), "postgres"} {
		t.Run(strings.SplitN(store, ":", 2)[0], func(t *testing.T) {
			if store == "postgres" {
				store = pgtest.NewDatabase(t)
			}
			logs := &logtest.Buffer{}
			opts := testOptions(store)
			opts.PollInterval = time.Millisecond // sweep continuously
			opts.Logger = zerolog.New(logs).Level(zerolog.DebugLevel)
			q, err := Open(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			sweeps := &sweepCounter{store: q.store}
			q.store = sweeps
			done := make(chan error, 1)
			go func() { done <- q.Run(context.Background()) }()
			// Let it sweep a few times (counted: on a loaded machine a sleep was not
			// always enough for Run to have started, and Close then came first).
			waitFor(t, "three sweeps", func() bool { return sweeps.n.Load() >= 3 })
			if err := q.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(5 * time.Second):
				// Close waited for Run (its deferred Done), whose result may still be on
				// its way to done: a bound, not a timing.
				t.Fatal("Run still running after Close returned")
			}
			if strings.Contains(logs.String(), "closed") {
				t.Errorf("a sweep ran against the closed store:\n%s", logs.String())
			}
			if err := q.Run(context.Background()); err != nil {
				t.Errorf("Run after Close: %v", err)
			}
		})
	}
}

// sweepCounter counts the sweeper's claims.
type sweepCounter struct {
	store
	n atomic.Int64
}

func (c *sweepCounter) claimDue(ctx context.Context, now time.Time, limit int, owner string, lease time.Duration, exclude []int) ([]*Delivery, error) {
	c.n.Add(1)
	return c.store.claimDue(ctx, now, limit, owner, lease, exclude)
}
