package ami

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Action sends an action with a fresh ActionID (headers must not carry one) and waits
// for its response, at most Config.ActionTimeout unless ctx ends sooner. A list action's
// events are collected into the Response. When Asterisk answers `Response: Error`, Action
// returns the Response and an *ActionError. Header keys and values must not contain line
// breaks (that would inject lines into the action); keys must not contain a colon.
func (c *Client) Action(ctx context.Context, action string, headers ...Header) (*Response, error) {
	if err := checkAction(action, headers); err != nil {
		return nil, err
	}
	s := c.cur.Load()
	if s == nil {
		return nil, fmt.Errorf("ami: %s: %w", action, ErrNotConnected)
	}
	return c.send(ctx, s, action, headers)
}

// send runs one action on session s.
func (c *Client) send(ctx context.Context, s *session, action string, headers []Header) (*Response, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.ActionTimeout, ErrActionTimeout)
	defer cancel()
	id := c.nextID()
	p := &pending{action: action, ch: make(chan result, 1)}
	if err := s.register(id, p); err != nil {
		return nil, fmt.Errorf("ami: %s: %w", action, err)
	}
	start := time.Now()
	deadline, _ := ctx.Deadline()
	if err := s.write(deadline, appendAction(nil, action, id, headers)); err != nil {
		s.abandon(id)
		c.cfg.Metrics.observeAction(action, "disconnected", time.Since(start).Seconds())
		return nil, fmt.Errorf("ami: sending %s (ActionID %s): %w: %w", action, id, ErrDisconnected, err)
	}
	select {
	case r := <-p.ch:
		elapsed := time.Since(start).Seconds()
		if r.err != nil {
			c.cfg.Metrics.observeAction(action, "disconnected", elapsed)
			return nil, fmt.Errorf("ami: %s (ActionID %s): %w", action, id, r.err)
		}
		if equalFoldASCII(r.resp.Get("Response"), "Error") {
			c.cfg.Metrics.observeAction(action, "error", elapsed)
			return r.resp, &ActionError{Action: action, ActionID: id, Message: r.resp.Get("Message")}
		}
		c.cfg.Metrics.observeAction(action, "success", elapsed)
		return r.resp, nil
	case <-ctx.Done():
		s.abandon(id)
		cause := context.Cause(ctx)
		result := "timeout"
		if !errors.Is(cause, ErrActionTimeout) && !errors.Is(cause, context.DeadlineExceeded) {
			result = "canceled"
		}
		c.cfg.Metrics.observeAction(action, result, time.Since(start).Seconds())
		if errors.Is(cause, ErrActionTimeout) {
			return nil, fmt.Errorf("ami: %s (ActionID %s): %w after %s", action, id, cause, c.cfg.ActionTimeout)
		}
		return nil, fmt.Errorf("ami: %s (ActionID %s): %w", action, id, cause)
	}
}

// Getvar returns the value of variable on channel (a global variable when channel is "").
// Name the variable without its inheritance underscores (OMLCRM_ticket, not
// __OMLCRM_ticket). An unset variable is "" without error; a missing channel is an
// *ActionError with Message "No such channel".
func (c *Client) Getvar(ctx context.Context, channel, variable string) (string, error) {
	h := make([]Header, 0, 2)
	if channel != "" {
		h = append(h, Header{"Channel", channel})
	}
	h = append(h, Header{"Variable", variable})
	resp, err := c.Action(ctx, "Getvar", h...)
	if err != nil {
		return "", err
	}
	return resp.Get("Value"), nil
}

// Status lists channels with the Status action: one Status event per channel (every
// channel when channel is ""). With allVariables each event carries one
// `Variable: NAME=value` header per channel variable, under the name the dialplan set
// (Getvar, unlike it, matches names case-sensitively). A missing channel is an
// *ActionError with Message "No such channel".
func (c *Client) Status(ctx context.Context, channel string, allVariables bool) ([]*Message, error) {
	h := make([]Header, 0, 2)
	if channel != "" {
		h = append(h, Header{"Channel", channel})
	}
	if allVariables {
		h = append(h, Header{"AllVariables", "true"})
	}
	resp, err := c.Action(ctx, "Status", h...)
	if err != nil {
		return nil, err
	}
	return resp.Events, nil
}

// CoreShowChannels lists the live channels: one CoreShowChannel event per channel.
func (c *Client) CoreShowChannels(ctx context.Context) ([]*Message, error) {
	resp, err := c.Action(ctx, "CoreShowChannels")
	if err != nil {
		return nil, err
	}
	return resp.Events, nil
}

// Command runs a CLI command and returns its output lines exactly as Asterisk sent them
// (one `Output:` header per line, leading spaces and empty lines kept; the legacy
// `Response: Follows` form gives the same). For an unknown command Asterisk answers
// `Response: Error` with the explanation in the output: both are returned.
func (c *Client) Command(ctx context.Context, cmd string) ([]string, error) {
	resp, err := c.Action(ctx, "Command", Header{"Command", cmd})
	if resp == nil {
		return nil, err
	}
	return resp.Values("Output"), err
}

// Ping sends Ping and waits for Asterisk's Pong.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Action(ctx, "Ping")
	return err
}

// appendAction serialises an action in wire form.
func appendAction(dst []byte, action, id string, headers []Header) []byte {
	dst = append(dst, "Action: "...)
	dst = append(dst, action...)
	dst = append(dst, "\r\nActionID: "...)
	dst = append(dst, id...)
	dst = append(dst, '\r', '\n')
	for _, h := range headers {
		dst = append(dst, h.Key...)
		dst = append(dst, ':', ' ')
		dst = append(dst, h.Value...)
		dst = append(dst, '\r', '\n')
	}
	return append(dst, '\r', '\n')
}

// ValidateHeader reports whether h can be sent in an action without changing its
// framing: a non-empty key without colon, spaces or line breaks, and a value without line
// breaks.
func ValidateHeader(h Header) error {
	if h.Key == "" || strings.ContainsAny(h.Key, ": \t\r\n") {
		return fmt.Errorf("ami: header key %q is empty or contains a colon, space or line break", h.Key)
	}
	return checkValue("the value of header "+h.Key, h.Value)
}

func checkValue(what, v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return fmt.Errorf("ami: %s contains a line break", what)
	}
	return nil
}

func checkAction(action string, headers []Header) error {
	if action == "" || strings.ContainsAny(action, ": \t\r\n") {
		return fmt.Errorf("ami: action name %q is empty or contains a colon, space or line break", action)
	}
	for _, h := range headers {
		if err := ValidateHeader(h); err != nil {
			return fmt.Errorf("%w (action %s)", err, action)
		}
		if equalFoldASCII(h.Key, "ActionID") || equalFoldASCII(h.Key, "Action") {
			return fmt.Errorf("ami: %s: the %s header is set by the client", action, h.Key)
		}
	}
	return nil
}
