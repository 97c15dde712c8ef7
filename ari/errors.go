package ari

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors matched by errors.Is against *HTTPError (and, for ErrStalled / ErrClosed,
// against connection errors).
var (
	// ErrUnauthorized: Asterisk answered 401 (wrong ari.conf user/password or api_key).
	ErrUnauthorized = errors.New("ari: unauthorized")
	// ErrNotFound: Asterisk answered 404 (a missing channel, variable, bridge or resource).
	ErrNotFound = errors.New("ari: not found")
	// ErrChannelNotFound: 404 because the channel does not exist (any longer).
	ErrChannelNotFound = errors.New("ari: channel not found")
	// ErrVariableNotFound: 404 because the channel exists but the variable is not set.
	ErrVariableNotFound = errors.New("ari: variable not found")
	// ErrBridgeNotFound: 404 because the bridge does not exist.
	ErrBridgeNotFound = errors.New("ari: bridge not found")
	// ErrBadRequest: Asterisk answered 400 (a missing or invalid parameter).
	ErrBadRequest = errors.New("ari: bad request")
	// ErrForbidden: Asterisk answered 403 (a read_only ari.conf user asking for a change:
	// "Write access denied"; or the user's ACL).
	ErrForbidden = errors.New("ari: forbidden")

	// ErrStalled: the events websocket went silent and did not answer a ping in time.
	ErrStalled = errors.New("ari: events websocket stalled")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("ari: client closed")
)

// Asterisk's 404 messages, as Asterisk 22 sends them.
const (
	msgVariableNotFound    = "Provided variable was not found"
	msgChannelNotFound     = "Provided channel was not found"
	msgChannelGetNotFound  = "Channel not found"
	msgBridgeNotFound      = "Bridge not found"
	msgProvidedBridgeNotFd = "Provided bridge was not found"
	// msgResourceNotFound: no such route (e.g. eventFilter on an Asterisk before 16.3).
	msgResourceNotFound = "Resource not found"
)

// HTTPError is a non-2xx reply from Asterisk's REST interface (or from the events websocket
// handshake). Message is Asterisk's "message" (or the start of a non-JSON body).
type HTTPError struct {
	Status  int
	Message string
	Method  string
	// Path is the request path without credentials (an api_key never appears here).
	Path string
}

func (e *HTTPError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("ari: %s %s: HTTP %d: %s", e.Method, e.Path, e.Status, msg)
}

// Is makes errors.Is(err, ErrNotFound) and friends work.
func (e *HTTPError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrVariableNotFound:
		return e.Status == http.StatusNotFound && e.Message == msgVariableNotFound
	case ErrChannelNotFound:
		return e.Status == http.StatusNotFound && (e.Message == msgChannelNotFound || e.Message == msgChannelGetNotFound)
	case ErrBridgeNotFound:
		return e.Status == http.StatusNotFound && (e.Message == msgBridgeNotFound || e.Message == msgProvidedBridgeNotFd)
	}
	return false
}
