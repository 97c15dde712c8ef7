package delivery

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// swReceiver is a CRM that keeps every request's headers and body.
type swReceiver struct {
	mu     sync.Mutex
	hdrs   []http.Header
	bodies [][]byte
	srv    *httptest.Server
}

func newSWReceiver(t *testing.T, answer func(n int) int) *swReceiver {
	r := &swReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.hdrs = append(r.hdrs, req.Header.Clone())
		r.bodies = append(r.bodies, body)
		n := len(r.hdrs)
		r.mu.Unlock()
		w.WriteHeader(answer(n))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *swReceiver) get(i int) (http.Header, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hdrs[i], r.bodies[i]
}

func (r *swReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hdrs)
}

func newWhsec(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// swVerify is the Standard Webhooks 1.0 receiver algorithm, written from the
// specification and independent of the sender's code: the signed content is
// "<webhook-id>.<webhook-timestamp>.<body>", HMAC-SHA256 keyed with the base64-decoded
// part of the whsec_ secret, base64-encoded, one "v1,<sig>" among the space-separated
// signatures must match (constant-time), and the timestamp must be within 5 minutes.
func swVerify(secret string, h http.Header, body []byte, now time.Time) string {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return "missing webhook-id, webhook-timestamp or webhook-signature"
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "webhook-timestamp is not Unix seconds: " + ts
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return "webhook-timestamp too far from now"
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "bad test secret"
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if ok && version == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return ""
		}
	}
	return "no v1 signature verifies"
}

func sqliteOptions(t *testing.T) Options {
	return testOptions("sqlite:" + filepath.Join(t.TempDir(), "deliveries.db"))
}

// A rotation: the site has an old and a new secret in the config; a receiver knowing
// either verifies every request, retries included (re-signed, same webhook-id).
func TestStandardWebhooksSignaturesVerifyWithEitherRotatedSecret(t *testing.T) {
	oldSec, newSec, other := newWhsec(t), newWhsec(t), newWhsec(t)
	rcv := newSWReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	opts := sqliteOptions(t)
	opts.WebhookSecrets = map[int][]catalog.Secret{7: {catalog.Secret(oldSec), catalog.Secret(newSec)}}
	h := startQueue(t, opts)
	n := notification(t, rcv.srv.URL+"/hook", catalog.MethodPOST, catalog.FormatJSON, nil)
	enqueue(t, h.q, n)
	h.waitStatus(t, n.ID, StatusDelivered)
	if rcv.count() != 2 {
		t.Fatalf("receiver got %d requests, want 2 (a 503 then a 200)", rcv.count())
	}
	for i := range 2 {
		hdr, body := rcv.get(i)
		for _, sec := range []string{oldSec, newSec} {
			if why := swVerify(sec, hdr, body, time.Now()); why != "" {
				t.Errorf("request %d: %s", i+1, why)
			}
		}
		if why := swVerify(other, hdr, body, time.Now()); why == "" {
			t.Errorf("request %d verifies with a secret the site does not have", i+1)
		}
		if hdr.Get("webhook-id") != n.ID || hdr.Get("Idempotency-Key") != n.ID {
			t.Errorf("request %d: webhook-id %q, Idempotency-Key %q, want both %q", i+1, hdr.Get("webhook-id"), hdr.Get("Idempotency-Key"), n.ID)
		}
		if got := len(strings.Fields(hdr.Get("webhook-signature"))); got != 2 {
			t.Errorf("request %d: %d signatures, want 2 (one per secret)", i+1, got)
		}
	}
	// A tampered body does not verify.
	hdr, body := rcv.get(1)
	if why := swVerify(newSec, hdr, append(body, ' '), time.Now()); why == "" {
		t.Error("a modified body still verifies")
	}
}

// A file-catalog site carries its own secret; without one, id and timestamp are still
// sent (no signature).
func TestStandardWebhooksCatalogSiteSecretAndUnsignedSites(t *testing.T) {
	sec := newWhsec(t)
	rcv := newSWReceiver(t, func(int) int { return http.StatusOK })
	h := startQueue(t, sqliteOptions(t))
	signed := notification(t, rcv.srv.URL+"/a", catalog.MethodPOST, catalog.FormatForm, nil)
	signed.Site.WebhookSecrets = []catalog.Secret{catalog.Secret(sec)}
	enqueue(t, h.q, signed)
	h.waitStatus(t, signed.ID, StatusDelivered)
	hdr, body := rcv.get(0)
	if why := swVerify(sec, hdr, body, time.Now()); why != "" {
		t.Fatalf("catalog secret: %s", why)
	}

	plain := notification(t, rcv.srv.URL+"/b", catalog.MethodGET, 0, nil)
	plain.Site.ID = 8
	enqueue(t, h.q, plain)
	h.waitStatus(t, plain.ID, StatusDelivered)
	hdr, _ = rcv.get(1)
	if hdr.Get("webhook-id") != plain.ID || hdr.Get("webhook-timestamp") == "" || hdr.Get("webhook-signature") != "" {
		t.Errorf("unsigned site headers: id %q ts %q sig %q", hdr.Get("webhook-id"), hdr.Get("webhook-timestamp"), hdr.Get("webhook-signature"))
	}
}

func TestStandardWebhooksBadSecretIsRefusedNamingTheSite(t *testing.T) {
	for _, bad := range []string{"not-whsec", "whsec_%%%", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		opts := sqliteOptions(t)
		opts.WebhookSecrets = map[int][]catalog.Secret{3: {catalog.Secret(newWhsec(t)), catalog.Secret(bad)}}
		q, err := Open(context.Background(), opts)
		if err == nil {
			q.Close()
			t.Fatalf("secret %q accepted", bad)
		}
		if !strings.Contains(err.Error(), "site 3 webhook secret #2") || strings.Contains(err.Error(), bad) {
			t.Errorf("error %q: want it to name site 3's secret #2 and not quote it", err)
		}
	}
}

// 410 Gone: the endpoint is gone; the delivery is dead after one attempt, with the reason.
func TestStandardWebhooksGone410StopsRetrying(t *testing.T) {
	rcv := newSWReceiver(t, func(int) int { return http.StatusGone })
	h := startQueue(t, sqliteOptions(t))
	n := notification(t, rcv.srv.URL+"/gone", catalog.MethodPOST, catalog.FormatJSON, nil)
	enqueue(t, h.q, n)
	d := h.waitStatus(t, n.ID, StatusDead)
	if d.Attempts != 1 || d.LastStatus != http.StatusGone || !strings.Contains(d.LastError, "gone") {
		t.Errorf("dead delivery: attempts %d, status %d, error %q", d.Attempts, d.LastStatus, d.LastError)
	}
	time.Sleep(50 * time.Millisecond) // a wrongly scheduled retry would arrive within the test's 10 ms backoff
	if rcv.count() != 1 {
		t.Errorf("receiver got %d requests after a 410, want 1", rcv.count())
	}
}
