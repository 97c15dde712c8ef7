package ari

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
)

// FastDecode is fastDecode, then finishBase as DecodeEvent does, for the differential tests.
func FastDecode(data []byte, eventType string) (Event, bool) {
	ev, ok := fastDecode(data, []byte(eventType))
	if ok {
		finishBase(ev.EventBase())
	}
	return ev, ok
}

// JSONDecodeTyped is what the fast decoder replaces: encoding/json into the typed struct of
// eventType, then finishBase.
func JSONDecodeTyped(data []byte, eventType string) (Event, error) {
	ev := newTyped([]byte(eventType))
	err := json.Unmarshal(data, ev)
	finishBase(ev.EventBase())
	return ev, err
}

// DecodeEventJSON is DecodeEvent without the fast decoder (encoding/json alone).
func DecodeEventJSON(data []byte) (Event, error) { return decodeJSON(data, peekType(data)) }

// PlainValid is plainValid (true: certainly valid JSON).
func PlainValid(data []byte) bool { return plainValid(data) }

// DialOwn dials addr as the client's own HTTP transport does (nil error: the
// connection).
func DialOwn(ctx context.Context, c *Client, addr string) (net.Conn, error) {
	return c.http.Transport.(*http.Transport).DialContext(ctx, "tcp", addr)
}
