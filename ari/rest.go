package ari

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Info returns Asterisk's system information (GET /ari/asterisk/info).
func (c *Client) Info(ctx context.Context) (*AsteriskInfo, error) {
	var info AsteriskInfo
	if err := c.get(ctx, "/asterisk/info", "/asterisk/info", nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Channels lists the channels that exist now (GET /ari/channels).
func (c *Client) Channels(ctx context.Context) ([]Channel, error) {
	var chans []Channel
	if err := c.get(ctx, "/channels", "/channels", nil, &chans); err != nil {
		return nil, err
	}
	return chans, nil
}

// Channel returns one channel (GET /ari/channels/{id}); errors.Is(err, ErrChannelNotFound)
// when it does not exist.
func (c *Client) Channel(ctx context.Context, channelID string) (*Channel, error) {
	var ch Channel
	if err := c.get(ctx, "/channels/{id}", "/channels/"+url.PathEscape(channelID), nil, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// Bridge returns one bridge (GET /ari/bridges/{id}); errors.Is(err, ErrBridgeNotFound) when
// it does not exist.
func (c *Client) Bridge(ctx context.Context, bridgeID string) (*Bridge, error) {
	var b Bridge
	if err := c.get(ctx, "/bridges/{id}", "/bridges/"+url.PathEscape(bridgeID), nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Bridges lists the bridges (GET /ari/bridges), each with the ids of its channels: the
// membership a resynchronisation needs to recover connects made while the events
// websocket was down.
func (c *Client) Bridges(ctx context.Context) ([]Bridge, error) {
	var out []Bridge
	if err := c.get(ctx, "/bridges", "/bridges", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Variable returns a channel variable or dialplan function value
// (GET /ari/channels/{id}/variable?variable=name), e.g. "OMLCAMPID" or
// "PJSIP_HEADER(read,Omlcrmticket)". A variable that is not set gives an error matching
// ErrVariableNotFound; a channel that is gone gives ErrChannelNotFound (both match ErrNotFound).
func (c *Client) Variable(ctx context.Context, channelID, name string) (string, error) {
	var v struct {
		Value string `json:"value"`
	}
	q := url.Values{"variable": {name}}
	if err := c.get(ctx, "/channels/{id}/variable", "/channels/"+url.PathEscape(channelID)+"/variable", q, &v); err != nil {
		return "", err
	}
	return v.Value, nil
}

// Application is ARI's Application model (GET /applications/{name}, and the reply of
// PUT /applications/{name}/eventFilter).
type Application struct {
	Name        string   `json:"name"`
	ChannelIDs  []string `json:"channel_ids"`
	BridgeIDs   []string `json:"bridge_ids"`
	EndpointIDs []string `json:"endpoint_ids"`
	DeviceNames []string `json:"device_names"`
	// EventsAllowed and EventsDisallowed are the application's event filter: objects
	// with a "type" (Asterisk keeps them as given). Empty allowed: every type.
	EventsAllowed    []EventTypeFilter `json:"events_allowed"`
	EventsDisallowed []EventTypeFilter `json:"events_disallowed"`
}

// EventTypeFilter is one entry of an application's event filter.
type EventTypeFilter struct {
	Type string `json:"type"`
}

// SetEventFilter asks Asterisk to send the application App only the events of the given
// types (PUT /ari/applications/{App}/eventFilter with {"allowed": [{"type": …}, …]}, which
// also clears any disallowed list). Asterisk checks it as each event leaves for the
// websocket: the others never cross it. An empty list would allow every type, so it is
// refused here. A read_only ari.conf user gets 403 (ErrForbidden).
func (c *Client) SetEventFilter(ctx context.Context, types []string) (*Application, error) {
	if len(types) == 0 {
		return nil, errors.New("ari: SetEventFilter: no event type (an empty allowed list lets every event through)")
	}
	body := struct {
		Allowed    []EventTypeFilter `json:"allowed"`
		Disallowed []EventTypeFilter `json:"disallowed"`
	}{Allowed: make([]EventTypeFilter, len(types)), Disallowed: []EventTypeFilter{}}
	for i, t := range types {
		body.Allowed[i].Type = t
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("ari: SetEventFilter: %w", err)
	}
	var app Application
	path := "/applications/" + url.PathEscape(c.cfg.App) + "/eventFilter"
	if err := c.do(ctx, http.MethodPut, "/applications/{name}/eventFilter", path, nil, raw, &app); err != nil {
		return nil, err
	}
	return &app, nil
}

// get performs one REST GET under /ari and decodes a 2xx JSON reply into out. route is the
// path pattern used as the metrics label.
func (c *Client) get(ctx context.Context, route, path string, query url.Values, out any) error {
	return c.do(ctx, http.MethodGet, route, path, query, nil, out)
}

// do performs one REST request under /ari (body, when non-nil, is sent as JSON) and
// decodes a 2xx JSON reply into out.
func (c *Client) do(ctx context.Context, method, route, path string, query url.Values, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()

	u := *c.base
	u.Path += path
	safePath := u.Path
	if len(query) > 0 {
		safePath += "?" + query.Encode()
	}
	if c.cfg.Username == "" {
		if query == nil {
			query = url.Values{}
		}
		query.Set("api_key", c.cfg.APIKey)
	}
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("ari: %s %s: %w", method, safePath, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		// Exactly this: Asterisk reads a body only with Content-Type application/json,
		// and treats any other as no body at all.
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.Username != "" {
		req.Header.Set("Authorization", basicAuth(c.cfg.Username, c.cfg.Password))
	}

	label := method + " " + route
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.metrics.restDone(label, 0, time.Since(start))
		return fmt.Errorf("ari: %s %s: %w", method, safePath, scrubURLError(err))
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.cfg.MaxResponse)+1))
	c.metrics.restDone(label, resp.StatusCode, time.Since(start))
	if err != nil {
		return fmt.Errorf("ari: %s %s: reading the reply: %w", method, safePath, err)
	}
	if len(reply) > c.cfg.MaxResponse {
		return fmt.Errorf("ari: %s %s: reply larger than %d bytes (MaxResponse)", method, safePath, c.cfg.MaxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &HTTPError{Status: resp.StatusCode, Message: asteriskMessage(reply), Method: method, Path: safePath}
	}
	if err := json.Unmarshal(reply, out); err != nil {
		return fmt.Errorf("ari: %s %s: decoding the reply: %w", method, safePath, err)
	}
	return nil
}

// httpErrorFrom builds the error for a failed websocket handshake (coder/websocket keeps the
// first KiB of the body).
func httpErrorFrom(resp *http.Response, method, path string) *HTTPError {
	var body []byte
	if resp.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
	}
	return &HTTPError{Status: resp.StatusCode, Message: asteriskMessage(body), Method: method, Path: path}
}

// asteriskMessage extracts Asterisk's {"message": "..."} or, for another body, its bounded text.
func asteriskMessage(body []byte) string {
	var m struct {
		Message *string `json:"message"`
	}
	if err := json.Unmarshal(body, &m); err == nil && m.Message != nil {
		return *m.Message
	}
	s := strings.TrimSpace(string(body))
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}
