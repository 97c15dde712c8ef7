package ari

import (
	"context"
	"encoding/base64"
	"encoding/json"
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

// get performs one REST GET under /ari and decodes a 2xx JSON reply into out. route is the
// path pattern used as the metrics label.
func (c *Client) get(ctx context.Context, route, path string, query url.Values, out any) error {
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("ari: GET %s: %w", safePath, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.cfg.Username != "" {
		req.Header.Set("Authorization", basicAuth(c.cfg.Username, c.cfg.Password))
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.metrics.restDone("GET "+route, 0, time.Since(start))
		return fmt.Errorf("ari: GET %s: %w", safePath, scrubURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.cfg.MaxResponse)+1))
	c.metrics.restDone("GET "+route, resp.StatusCode, time.Since(start))
	if err != nil {
		return fmt.Errorf("ari: GET %s: reading the reply: %w", safePath, err)
	}
	if len(body) > c.cfg.MaxResponse {
		return fmt.Errorf("ari: GET %s: reply larger than %d bytes (MaxResponse)", safePath, c.cfg.MaxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &HTTPError{Status: resp.StatusCode, Message: asteriskMessage(body), Method: http.MethodGet, Path: safePath}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("ari: GET %s: decoding the reply: %w", safePath, err)
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
