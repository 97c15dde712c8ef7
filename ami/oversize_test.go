package ami

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

// TestReaderSkipsOversized: with MaxSkip, a message over a limit (one long line, too
// many bytes, an unwanted event with a long line) is discarded whole, reported with what
// it was, and the next message is read normally, whatever the read sizes.
func TestReaderSkipsOversized(t *testing.T) {
	long := strings.Repeat("v", 100<<10)
	stream := "Event: Newchannel\r\nChannel: A\r\n\r\n" +
		"Event: VarSet\r\nChannel: A\r\nVariable: __BLOB\r\nValue: " + long + "\r\nUniqueid: 1\r\n\r\n" +
		"Event: Hangup\r\nChannel: A\r\n\r\n" +
		"Response: Success\r\nActionID: 7\r\nEventList: start\r\n" + strings.Repeat("Variable: X=yyyyyyyyyyyyyyyyyyyyyyyyy\r\n", 1000) + "\r\n" +
		"Event: Newexten\r\nApplication: Set\r\nAppData: " + long + "\n\n" +
		"Event: BridgeEnter\r\nChannel: A\r\n\r\n"
	for name, rd := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(stream) },
		"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(stream)) },
		"halves":   func() io.Reader { return iotest.HalfReader(strings.NewReader(stream)) },
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReader(rd(), Limits{MaxMessage: 32 << 10, MaxSkip: 1 << 20})
			var m Message
			next := func() (string, *OversizeError) {
				kept, err := r.ReadMessageFiltered(&m, func(ev []byte) bool { return string(ev) != "Newexten" })
				var oe *OversizeError
				if errors.As(err, &oe) {
					return "", oe
				}
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if !kept {
					return "(filtered)", nil
				}
				if m.Event() != "" {
					return m.Event(), nil
				}
				return m.Get("Response"), nil
			}
			if ev, _ := next(); ev != "Newchannel" {
				t.Fatalf("first = %q", ev)
			}
			_, oe := next()
			if oe == nil || oe.Event != "VarSet" || oe.Variable != "__BLOB" || oe.Limit.What != "line" || oe.Skipped < 100<<10 {
				t.Fatalf("second = %+v", oe)
			}
			if ev, _ := next(); ev != "Hangup" {
				t.Fatalf("third = %q", ev)
			}
			_, oe = next()
			if oe == nil || !oe.Response || oe.ActionID != "7" || oe.Limit.What != "message" {
				t.Fatalf("fourth = %+v", oe)
			}
			_, oe = next()
			if oe == nil || oe.Event != "Newexten" || oe.Limit.What != "line" {
				t.Fatalf("fifth = %+v", oe)
			}
			if ev, _ := next(); ev != "BridgeEnter" {
				t.Fatalf("last = %q", ev)
			}
			if _, err := r.ReadMessageFiltered(&m, nil); err != io.EOF {
				t.Fatalf("after the last: %v", err)
			}
		})
	}
}

// TestReaderSkipBounded: a message that never ends is not skipped forever: past
// MaxSkip the LimitError stands.
func TestReaderSkipBounded(t *testing.T) {
	stream := "Event: VarSet\r\nValue: " + strings.Repeat("v", 1<<20) + "\r\nMore: " + strings.Repeat("w", 1<<20)
	r := NewReader(strings.NewReader(stream), Limits{MaxSkip: 512 << 10})
	var m Message
	err := r.ReadMessage(&m)
	var le *LimitError
	var oe *OversizeError
	if !errors.As(err, &le) || errors.As(err, &oe) {
		t.Fatalf("err = %v, want a bare LimitError", err)
	}
}

// TestClientOversizedReplyFailsOnlyItsAction: an action whose reply (a list item) breaks
// the line limit fails with the OversizeError; the session goes on (the next action is
// answered on the same connection, no reconnect).
func TestClientOversizedReplyFailsOnlyItsAction(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer nc.Close()
				_, _ = io.WriteString(nc, "Asterisk Call Manager/11.0.0\r\n")
				rd := NewReader(nc, Limits{})
				var m Message
				for rd.ReadMessage(&m) == nil {
					id := m.Get("ActionID")
					var out string
					switch m.Get("Action") {
					case "Login":
						out = "Response: Success\r\nActionID: " + id + "\r\nMessage: Authentication accepted\r\n\r\n"
					case "Status":
						out = "Response: Success\r\nActionID: " + id + "\r\nEventList: start\r\nMessage: Channel status will follow\r\n\r\n" +
							"Event: Status\r\nPrivilege: Call\r\nChannel: PJSIP/1-1\r\nVariable: BLOB=" + strings.Repeat("b", 100<<10) + "\r\nActionID: " + id + "\r\n\r\n" +
							"Event: StatusComplete\r\nActionID: " + id + "\r\nEventList: Complete\r\nListItems: 1\r\nItems: 1\r\n\r\n"
					default:
						out = "Response: Success\r\nActionID: " + id + "\r\nPing: Pong\r\n\r\n"
					}
					if _, err := io.WriteString(nc, out); err != nil {
						return
					}
				}
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{Address: ln.Addr().String(), Username: "u", Secret: "s", EventNames: []string{"Newchannel"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(ctx, "PJSIP/1-1", true)
	var oe *OversizeError
	if !errors.As(err, &oe) || oe.Event != "Status" {
		t.Fatalf("Status: %v, want an OversizeError", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping after the oversized reply: %v", err)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (no reconnect)", n)
	}
}
