package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// Headers oml-crm adds to every delivery.
const (
	// HeaderIdempotencyKey carries the notification id, identical on every retry.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderSignature carries "t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>"
	// when the site has a signing secret.
	HeaderSignature = "X-OMLCRM-Signature"
)

// attemptClass is how an attempt ended, as the metrics label it.
type attemptClass string

const (
	classSuccess attemptClass = "success"   // 2xx
	classRetry   attemptClass = "retryable" // network error, 408, 425, 429, 5xx, login failure
	classFinal   attemptClass = "final"     // other 4xx, 3xx not followed
)

type attemptResult struct {
	Attempt
	class      attemptClass
	retryAfter time.Duration
}

// maxDrain is how much of a response body is read past the excerpt so that the
// connection can be reused; a larger body closes the connection instead.
const maxDrain = 64 << 10

// sender makes the HTTP requests: one client verifying TLS, one that does not (sites
// whose auth has ssl_estricto = false).
type sender struct {
	strict, insecure *http.Client
	userAgent        string
	timeout          time.Duration
	clock            Clock
	tokens           *tokenCache
}

func newSender(o Options, clock Clock) *sender {
	s := &sender{
		strict:    &http.Client{Transport: newTransport(o, false), CheckRedirect: sameHostRedirects},
		insecure:  &http.Client{Transport: newTransport(o, true), CheckRedirect: sameHostRedirects},
		userAgent: o.UserAgent,
		timeout:   o.Timeout,
		clock:     clock,
	}
	s.tokens = newTokenCache(clock, o.Timeout, o.UserAgent)
	return s
}

func newTransport(o Options, insecure bool) *http.Transport {
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   o.TLSHandshakeTimeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// Every worker may talk to the same CRM at once: keep that many connections.
		MaxIdleConns:        o.Workers,
		MaxIdleConnsPerHost: o.Workers,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}, //nolint:gosec // per-site ssl_estricto = false
	}
}

// sameHostRedirects follows redirects only within the same scheme and host (at most
// 5): a CRM moving an endpoint on its own host keeps working, but a notification (with
// its bearer token and body) is never silently sent to another host. Nor is a redirect
// followed when it would change the method (a 301/302/303 turns a POST into a bodiless
// GET): the CRM would never see the data while the delivery counted as delivered. A
// redirect not followed ends the attempt with the 3xx response, which is final
// (dead-lettered, with the Location in the error so the admin can fix the site URL).
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return http.ErrUseLastResponse
	}
	first := via[0]
	if req.URL.Scheme != first.URL.Scheme || !strings.EqualFold(req.URL.Host, first.URL.Host) {
		return http.ErrUseLastResponse
	}
	if req.Method != first.Method {
		return http.ErrUseLastResponse
	}
	return nil
}

func (s *sender) close() {
	s.strict.CloseIdleConnections()
	s.insecure.CloseIdleConnections()
}

func (s *sender) client(insecure bool) *http.Client {
	if insecure {
		return s.insecure
	}
	return s.strict
}

// send makes one attempt of d (two when the CRM answers 401 to a cached token: log in
// again once and retry at once).
func (s *sender) send(ctx context.Context, d *Delivery, auth *catalog.SiteAuth, secret catalog.Secret, keys []webhookKey) []attemptResult {
	insecure := d.InsecureTLS
	if auth != nil {
		insecure = !auth.StrictTLS
	}
	client := s.client(insecure)
	secrets := []string{secret.Reveal()}
	if auth != nil {
		secrets = append(secrets, auth.Password.Reveal())
	}
	var out []attemptResult
	for try := 0; try < 2; try++ {
		token := ""
		if d.SiteAuth {
			started, at := time.Now(), s.clock.Now()
			if auth == nil {
				out = append(out, attemptResult{Attempt: Attempt{At: at, Error: fmt.Sprintf(
					"site %d logs in for a token but its authentication settings are unknown to this process (no catalog lookup)", d.SiteID)},
					class: classRetry})
				return out
			}
			var err error
			token, err = s.tokens.token(ctx, d.SiteID, auth, client)
			if err != nil {
				out = append(out, attemptResult{Attempt: Attempt{At: at, Latency: time.Since(started),
					Error: redact(err.Error(), secrets...)}, class: classRetry})
				return out
			}
		}
		r := s.do(ctx, client, d, token, secret, keys)
		r.Error = redact(r.Error, append(secrets, token)...)
		r.Response = redact(r.Response, append(secrets, token)...)
		out = append(out, r)
		if r.Status == http.StatusUnauthorized && d.SiteAuth && try == 0 {
			s.tokens.invalidate(d.SiteID, token)
			continue
		}
		return out
	}
	return out
}

// do sends one HTTP request and classifies the answer.
func (s *sender) do(ctx context.Context, client *http.Client, d *Delivery, token string, secret catalog.Secret, keys []webhookKey) attemptResult {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r := attemptResult{Attempt: Attempt{At: s.clock.Now()}}
	var body io.Reader
	if d.Body != nil {
		body = bytes.NewReader(d.Body)
	}
	req, err := http.NewRequestWithContext(ctx, d.Method, d.URL, body)
	if err != nil {
		// The URL was checked at enqueue; nothing a retry can fix.
		r.Error, r.class = fmt.Sprintf("build request: %v", err), classFinal
		return r
	}
	for k, vs := range d.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if d.ContentType != "" {
		req.Header.Set("Content-Type", d.ContentType)
	}
	req.Header.Set("User-Agent", s.userAgent)
	req.Header.Set(HeaderIdempotencyKey, d.ID)
	now := s.clock.Now()
	if secret != "" {
		req.Header.Set(HeaderSignature, Sign(secret, now, d.Body))
	}
	// Standard Webhooks 1.0: id and timestamp always, signatures when the site has keys.
	req.Header.Set(HeaderWebhookID, d.ID)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	if len(keys) > 0 {
		req.Header.Set(HeaderWebhookSignature, signWebhook(keys, d.ID, now, d.Body))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}

	started := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		r.Latency = time.Since(started)
		r.class = classRetry
		r.Error = describeNetError(err, s.timeout)
		return r
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseExcerpt))
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
	r.Latency = time.Since(started)
	r.Status = resp.StatusCode
	r.Response = strings.ToValidUTF8(string(excerpt), "\uFFFD")
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		r.class = classSuccess
	case code >= 300 && code < 400:
		r.class = classFinal
		r.Error = fmt.Sprintf("CRM answered %s redirecting to %q: redirects to another host, or that would turn a POST into a bodiless GET, are not followed (set the site URL to the final address)",
			resp.Status, resp.Header.Get("Location"))
	case code == http.StatusGone:
		// Standard Webhooks: 410 means the endpoint is gone for good; stop at once.
		r.class = classFinal
		r.Error = "CRM answered " + resp.Status + ": the endpoint is gone (final: not retried; fix the site URL and `oml-crm deliveries retry`)"
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests, code >= 500:
		r.class = classRetry
		r.Error = "CRM answered " + resp.Status
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.clock.Now())
	default:
		r.class = classFinal
		r.Error = "CRM answered " + resp.Status + " (final: not retried)"
	}
	return r
}

// describeNetError words a transport error; the URL in it has no password (net/http
// strips it).
func describeNetError(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Sprintf("%s %q: no complete answer within %s", ue.Op, ue.URL, timeout)
		}
		return fmt.Sprintf("no complete answer within %s", timeout)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return err.Error() + " (timeout)"
	}
	return err.Error()
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date. Zero when
// absent or unparsable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(365*24*3600))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Sign returns the X-OMLCRM-Signature value for body at time t:
// "t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>." + body)>". A CRM verifies it by
// recomputing the HMAC and rejecting stale timestamps.
func Sign(secret catalog.Secret, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret.Reveal()))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// redact replaces every occurrence of the secrets in s (a CRM echoing a header back, an
// error quoting a body) with [redacted].
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// checkURL accepts absolute http(s) URLs only.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("CRM URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("CRM URL %q: want an absolute http:// or https:// URL", u.Redacted())
	}
	return nil
}
