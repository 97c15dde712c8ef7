package ami

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzLimits are small so that the fuzzer reaches every limit and, with a buffer barely
// larger than a line, every refill path.
var fuzzLimits = Limits{MaxLine: 200, MaxMessage: 1500, MaxHeaders: 24}

// FuzzReadMessage feeds arbitrary bytes to two Readers, one parsing every message and
// one skipping every event, in different chunkings. Properties: no panic; both readers
// agree on where messages end and on errors; parsed messages respect the limits, contain
// no line break, and re-serialise to bytes that parse back to the same headers.
func FuzzReadMessage(f *testing.F) {
	for _, s := range []string{
		"Event: Hangup\r\nCause: 16\r\n\r\n",
		"Event:VarSet\nVariable:X\nValue:\n\n",
		"Response: Success\r\nActionID: 1\r\nOutput:    Members: \r\nOutput: \r\n\r\n",
		"Response: Follows\r\nActionID: 2\r\nline one\nActionID: x\n\n--END COMMAND--\r\n\r\n",
		"Event: X\r\nChanVariable(IAX2/1.2.3.4:4569-1): A=1\r\nno colon\r\n\r\n",
		"\r\n\r\nEvent: A\r\n\r\n\n",
	} {
		f.Add([]byte(s))
	}
	// Windows of the real captures, when the shared folder is present (never copied here).
	if files, _ := filepath.Glob(filepath.Join("..", "..", "shared", "testdata", "ami", "*.ami")); len(files) > 0 {
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(b[:min(len(b), 3000)])
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		full := newReaderSize(&chunkReader{data: data, n: 13}, fuzzLimits.withDefaults(), 0)
		skip := newReaderSize(&chunkReader{data: data, n: 64}, fuzzLimits.withDefaults(), 0)
		var m, s Message
		for i := 0; ; i++ {
			errFull := full.ReadMessage(&m)
			kept, errSkip := skip.ReadMessageFiltered(&s, func([]byte) bool { return false })
			if errClass(errFull) != errClass(errSkip) {
				t.Fatalf("message %d: full read %v, skipping read %v", i, errFull, errSkip)
			}
			if errFull != nil {
				var le *LimitError
				if errors.As(errFull, &le) && le.Size <= le.Max {
					t.Fatalf("limit error under its limit: %v", errFull)
				}
				return
			}
			checkMessage(t, &m)
			if kept != (len(m.Headers) == 0 || !equalFoldASCII(m.Headers[0].Key, "Event")) {
				t.Fatalf("message %d: skipped %v but first header %q", i, !kept, m.Headers[0])
			}
			if kept && !reflect.DeepEqual(s.Headers, m.Headers) {
				t.Fatalf("message %d: the two readers parsed %q and %q", i, m.Headers, s.Headers)
			}
		}
	})
}

func errClass(err error) string {
	var le *LimitError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &le):
		return "limit " + le.What
	case err == io.EOF:
		return "eof"
	case err == io.ErrUnexpectedEOF:
		return "unexpected eof"
	}
	return err.Error()
}

func checkMessage(t *testing.T, m *Message) {
	t.Helper()
	if len(m.Headers) == 0 || len(m.Headers) > fuzzLimits.MaxHeaders {
		t.Fatalf("%d headers", len(m.Headers))
	}
	if len(m.Raw()) > fuzzLimits.MaxMessage || !strings.HasSuffix(m.Raw(), "\n") {
		t.Fatalf("raw message of %d bytes: %q", len(m.Raw()), m.Raw())
	}
	for _, h := range m.Headers {
		if strings.ContainsRune(h.Key, '\n') || strings.ContainsRune(h.Value, '\n') || len(h.Key)+len(h.Value) > fuzzLimits.MaxLine {
			t.Fatalf("header %q", h)
		}
	}
	if equalFoldASCII(m.Headers[0].Key, "Response") && equalFoldASCII(m.Headers[0].Value, "Follows") {
		return // the legacy form re-serialises in the modern Output form, which reads differently
	}
	// Re-serialising adds at most the space after a colon to a line.
	lim := Limits{MaxLine: fuzzLimits.MaxLine + 1, MaxMessage: 2 * fuzzLimits.MaxMessage, MaxHeaders: fuzzLimits.MaxHeaders}
	again := new(Message)
	err := newReaderSize(bytes.NewReader(m.Append(nil)), lim.withDefaults(), 0).ReadMessage(again)
	if err != nil {
		if errors.Is(err, io.EOF) && len(bytes.TrimSpace([]byte(m.String()))) == 0 {
			return
		}
		t.Fatalf("re-reading %q: %v", m.String(), err)
	}
	if !reflect.DeepEqual(again.Headers, m.Headers) {
		t.Fatalf("round trip changed the message:\n%q\n%q", m.Headers, again.Headers)
	}
}

// FuzzSkipOversized: with MaxSkip, two Readers (one parsing every message, one skipping
// every event) in different chunkings agree message by message, an over-limit message
// included (both discard it whole and report it as an OversizeError), never panic, and
// the messages they do return respect the limits.
func FuzzSkipOversized(f *testing.F) {
	for _, s := range []string{
		"Event: VarSet\r\nVariable: X\r\nValue: " + strings.Repeat("v", 300) + "\r\n\r\nEvent: Hangup\r\n\r\n",
		"Event: A\r\n" + strings.Repeat("K: v\r\n", 30) + "\r\nResponse: Success\r\nActionID: 1\r\n\r\n",
		"Event: A\n" + strings.Repeat("x", 250) + "\r" + "\n\nEvent: B\n\n",
	} {
		f.Add([]byte(s))
	}
	lim := fuzzLimits
	lim.MaxSkip = 4000
	f.Fuzz(func(t *testing.T, data []byte) {
		full := newReaderSize(&chunkReader{data: data, n: 7}, lim.withDefaults(), 0)
		skip := newReaderSize(&chunkReader{data: data, n: 64}, lim.withDefaults(), 0)
		var m, s Message
		for i := 0; i < 10000; i++ {
			errFull := full.ReadMessage(&m)
			kept, errSkip := skip.ReadMessageFiltered(&s, func([]byte) bool { return false })
			var oeFull, oeSkip *OversizeError
			if errors.As(errFull, &oeFull) != errors.As(errSkip, &oeSkip) {
				t.Fatalf("message %d: full read %v, skipping read %v", i, errFull, errSkip)
			}
			if oeFull != nil {
				if oeFull.Skipped > lim.MaxSkip+int64(lim.MaxLine)+2 {
					t.Fatalf("discarded %d bytes past MaxSkip", oeFull.Skipped)
				}
				continue
			}
			if errClass(errFull) != errClass(errSkip) {
				t.Fatalf("message %d: full read %v, skipping read %v", i, errFull, errSkip)
			}
			if errFull != nil {
				return
			}
			checkMessage(t, &m)
			if kept && !reflect.DeepEqual(s.Headers, m.Headers) {
				t.Fatalf("message %d: the two readers parsed %q and %q", i, m.Headers, s.Headers)
			}
		}
	})
}
