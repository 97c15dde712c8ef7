package agentws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// errUnavailable marks an authentication that could not be decided (database down): 503,
// not 401, so that a browser retries instead of the agent being told to log in again.
var errUnavailable = errors.New("credential check unavailable")

// errNoCredentials is a request that carries none.
var errNoCredentials = errors.New("no credentials")

// authenticate returns the agent id of the request's credentials.
func (h *Hub) authenticate(r *http.Request) (int, error) {
	switch h.opts.Auth {
	case AuthToken:
		tok := requestToken(r)
		if tok == "" {
			return 0, fmt.Errorf("%w: want a token in Sec-WebSocket-Protocol (%s, token.<token>) or ?token=", errNoCredentials, Subprotocol)
		}
		return VerifyTokenLifetime(h.opts.TokenSecret, tok, time.Now(), h.opts.TokenMaxTTL)
	case AuthDjangoSession:
		ck, err := r.Cookie(h.opts.SessionCookie)
		if err != nil || ck.Value == "" {
			return 0, fmt.Errorf("%w: no %s cookie", errNoCredentials, h.opts.SessionCookie)
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.AuthTimeout)
		defer cancel()
		return h.djangoAgent(ctx, ck.Value)
	}
	return 0, fmt.Errorf("auth mode %q", h.opts.Auth)
}

// djangoAgent resolves a Django session key to an agent id.
func (h *Hub) djangoAgent(ctx context.Context, key string) (int, error) {
	if len(key) > 64 {
		return 0, ErrNoSession
	}
	data, err := h.opts.Sessions.SessionData(ctx, key)
	if err != nil {
		if errors.Is(err, ErrNoSession) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: %v", errUnavailable, err)
	}
	s, err := decodeDjangoSession(data, h.opts.DjangoSecretKey)
	if err != nil {
		return 0, err
	}
	u, err := h.opts.Sessions.AgentUser(ctx, s.UserID)
	if err != nil {
		if errors.Is(err, ErrNotAgent) {
			return 0, err
		}
		return 0, fmt.Errorf("%w: %v", errUnavailable, err)
	}
	if err := verifyDjangoUserHash(s, u.PasswordHash, h.opts.DjangoSecretKey); err != nil {
		return 0, err
	}
	return u.AgentID, nil
}

// requestToken finds the agent token in Sec-WebSocket-Protocol ("token.<token>") or ?token=.
func requestToken(r *http.Request) string {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); strings.HasPrefix(p, tokenSubprotocolPrefix) {
				return strings.TrimPrefix(p, tokenSubprotocolPrefix)
			}
		}
	}
	return r.URL.Query().Get("token")
}

// originAllowed implements Options.AllowedOrigins.
func (h *Hub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser: Origin protects browsers' cookies, others can forge it
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	full := strings.ToLower(u.Scheme + "://" + u.Host)
	host := strings.ToLower(u.Host)
	for _, p := range h.opts.AllowedOrigins {
		p = strings.ToLower(strings.TrimRight(strings.TrimSpace(p), "/"))
		target := host
		if strings.Contains(p, "://") {
			target = full
		}
		if p == "*" || p == target {
			return true
		}
		if ok, err := path.Match(p, target); err == nil && ok {
			return true
		}
	}
	return false
}

// refuse answers a refused upgrade and counts it.
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request, status int, reason, msg string) {
	h.metrics.refused.WithLabelValues(reason).Inc()
	// A page retrying with a stale token, or a scanner, would log every attempt.
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	h.refusals.Event(h.log.Info(), reason+" "+host).Str("remote", r.RemoteAddr).Str("origin", r.Header.Get("Origin")).
		Int("status", status).Str("reason", reason).Msg("websocket refused: " + msg)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `OmlCrm realm="agentws"`)
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(5))
	}
	http.Error(w, msg, status)
}

// refuseUnauthorized answers 401. The body says what to do, in words that name no user or
// agent (a session's user id, or an agent id, is nobody else's business); the log keeps
// the detail for the admin.
func (h *Hub) refuseUnauthorized(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("agent credentials refused")
	body := err.Error() // token errors name no agent: malformed, expired, bad signature
	if h.opts.Auth == AuthDjangoSession {
		switch {
		case errors.Is(err, errNoCredentials):
			body = "no OMniLeads session cookie: log in to OMniLeads"
		case errors.Is(err, ErrNotAgent):
			body = "the OMniLeads user of this session is not an active agent"
		default:
			body = "no valid OMniLeads session: log in to OMniLeads again"
		}
	}
	h.refuse(w, r, http.StatusUnauthorized, "credentials", body)
}
