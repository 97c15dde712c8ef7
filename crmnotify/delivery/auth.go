package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// tokenCache holds one bearer token per site (OMniLeads AutenticacionSitioExterno),
// in memory only, until it expires. However many deliveries wait for a site's token,
// one login is in flight.
type tokenCache struct {
	clock     Clock
	timeout   time.Duration
	userAgent string

	mu    sync.Mutex
	sites map[int]*siteToken
}

type siteToken struct {
	fingerprint [32]byte // of the auth settings the token was obtained with
	token       string
	expires     time.Time
	login       *loginCall // in flight, nil when none
}

// loginCall is one login that any number of deliveries wait on.
type loginCall struct {
	done        chan struct{}
	fingerprint [32]byte
	token       string
	expires     time.Time
	err         error
}

func newTokenCache(clock Clock, timeout time.Duration, userAgent string) *tokenCache {
	return &tokenCache{clock: clock, timeout: timeout, userAgent: userAgent, sites: map[int]*siteToken{}}
}

func authFingerprint(a *catalog.SiteAuth) [32]byte {
	return sha256.Sum256([]byte(strings.Join([]string{a.URL, a.Username, a.Password.Reveal(), a.TokenField,
		strconv.Itoa(a.Duration), a.DurationField, strconv.FormatBool(a.StrictTLS)}, "\x00")))
}

// token returns a valid token for the site, logging in when there is none, it expired,
// or the auth settings changed.
func (c *tokenCache) token(ctx context.Context, siteID int, auth *catalog.SiteAuth, client *http.Client) (string, error) {
	fp := authFingerprint(auth)
	c.mu.Lock()
	st := c.sites[siteID]
	if st == nil {
		st = &siteToken{}
		c.sites[siteID] = st
	}
	if st.token != "" && st.fingerprint == fp && c.clock.Now().Before(st.expires) {
		tok := st.token
		c.mu.Unlock()
		return tok, nil
	}
	call := st.login
	if call == nil || call.fingerprint != fp {
		call = &loginCall{done: make(chan struct{}), fingerprint: fp}
		st.login = call
		// ctx is the queue's work context (cancelled by Close), shared by every waiter.
		lctx, cancel := context.WithTimeout(ctx, c.timeout)
		go func() {
			defer cancel()
			call.token, call.expires, call.err = c.login(lctx, siteID, auth, client)
			c.mu.Lock()
			if st.login == call {
				st.login = nil
				if call.err == nil {
					st.token, st.expires, st.fingerprint = call.token, call.expires, call.fingerprint
				}
			}
			c.mu.Unlock()
			close(call.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.token, call.err
	case <-ctx.Done():
		return "", fmt.Errorf("site %d login: %w", siteID, ctx.Err())
	}
}

// invalidate forgets the site's token when it is still the one that was refused, so
// that the next token call logs in (once, however many deliveries got the 401).
func (c *tokenCache) invalidate(siteID int, refused string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.sites[siteID]; st != nil && st.token == refused {
		st.token, st.expires = "", time.Time{}
	}
}

// loginFallbackLifetime is the token lifetime when duration = 0 and the response's
// duration field is missing or not a number: OMniLeads uses 1 s too.
const loginFallbackLifetime = time.Second

// login POSTs {"username","password"} as JSON to the auth URL and reads the token (and
// its lifetime) from the JSON answer. Errors never quote the body or the credentials.
func (c *tokenCache) login(ctx context.Context, siteID int, auth *catalog.SiteAuth, client *http.Client) (string, time.Time, error) {
	fail := func(format string, a ...any) (string, time.Time, error) {
		return "", time.Time{}, fmt.Errorf("site %d login to %s: %s", siteID, redactURL(auth.URL), fmt.Sprintf(format, a...))
	}
	payload, err := json.Marshal(map[string]string{"username": auth.Username, "password": auth.Password.Reveal()})
	if err != nil {
		return fail("encode credentials: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, auth.URL, bytes.NewReader(payload))
	if err != nil {
		return fail("bad auth URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return fail("%s", describeNetError(err, c.timeout))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail("read answer: %v", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fail("answered %s", resp.Status)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return fail("answer is not a JSON object (Content-Type %q)", resp.Header.Get("Content-Type"))
	}
	var token string
	switch v := doc[auth.TokenField].(type) {
	case string:
		token = v
	case json.Number:
		token = v.String()
	}
	if token == "" {
		return fail("answer has no token in field %q (token_field)", auth.TokenField)
	}
	now := c.clock.Now()
	lifetime := loginLifetime(auth.Duration, doc[auth.DurationField])
	// Renew a little early so that a token does not expire on the way to the CRM.
	margin := min(10*time.Second, lifetime/10)
	return token, now.Add(lifetime - margin), nil
}

// maxLoginLifetime caps a token's lifetime, configured or answered: a huge expires_in
// would overflow time.Duration (into the past: one login per delivery), and a day-old
// token is cheap to renew.
const maxLoginLifetime = 24 * time.Hour

// loginLifetime is the token lifetime from the site's duration (seconds), else from the
// answer's duration field, else loginFallbackLifetime; never above maxLoginLifetime.
func loginLifetime(configured int, answered any) time.Duration {
	secs := float64(configured)
	if configured <= 0 {
		secs = loginFallbackLifetime.Seconds()
		if v, ok := numberField(answered); ok && v > 0 {
			secs = v
		}
	}
	if secs >= maxLoginLifetime.Seconds() { // also +Inf; NaN fails every comparison below
		return maxLoginLifetime
	}
	if !(secs > 0) {
		return loginFallbackLifetime
	}
	return time.Duration(secs * float64(time.Second))
}

func numberField(v any) (float64, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func redactURL(raw string) string {
	if i := strings.Index(raw, "://"); i >= 0 {
		if j := strings.Index(raw[i+3:], "@"); j >= 0 && !strings.Contains(raw[i+3:i+3+j], "/") {
			return raw[:i+3] + "[redacted]@" + raw[i+3+j+1:]
		}
	}
	return raw
}
