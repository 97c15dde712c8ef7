package ami

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
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
