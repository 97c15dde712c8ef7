package ami

import (
	"strings"
)

// Header is one `Key: Value` line of an AMI message. Keys keep the case and spelling
// Asterisk sent (for example `ChanVariable(Local/1001@oml-agent-00000001;1)`); values
// keep every byte after the single space that follows the colon.
//
// A line without a colon (Asterisk's UserEvent can emit one) is kept as a Header with an
// empty Key and the whole line as Value.
type Header struct{ Key, Value string }

// Message is one AMI message: an event, an action response, or an action we send. Headers
// are kept in order, repeats included (`Variable:`, `ChanVariable:`, `Output:`).
//
// Ownership: a Message filled by Reader.ReadMessage (and the one passed to
// Config.Handler) is reused for the next message: its Headers slice is overwritten. The
// strings themselves are immutable copies, never written again, so keeping a string such
// as m.Get("Uniqueid") is correct; keeping m or m.Headers is not. Clone the message to
// keep it. The Reader copies consecutive messages one after the other into chunks of up
// to 16 KiB (a message over 4 KiB gets an allocation of its own), so a kept string pins
// its whole chunk: state that outlives the handler should keep strings.Clone copies (the
// call tracker does), or up to 16 KiB stay alive per string kept.
type Message struct {
	Headers []Header

	raw string // the message's wire bytes when read by a Reader (see Raw)
}

// Get returns the value of the first header named key (compared ASCII case-insensitively),
// or "" when there is none.
func (m *Message) Get(key string) string {
	for i := range m.Headers {
		if equalFoldASCII(m.Headers[i].Key, key) {
			return m.Headers[i].Value
		}
	}
	return ""
}

// Lookup is Get that also tells whether the header is present (a present header may
// have an empty value, as Asterisk sends for an unset variable).
func (m *Message) Lookup(key string) (string, bool) {
	for i := range m.Headers {
		if equalFoldASCII(m.Headers[i].Key, key) {
			return m.Headers[i].Value, true
		}
	}
	return "", false
}

// Values returns the values of every header named key, in order (nil when none).
func (m *Message) Values(key string) []string {
	var out []string
	for i := range m.Headers {
		if equalFoldASCII(m.Headers[i].Key, key) {
			out = append(out, m.Headers[i].Value)
		}
	}
	return out
}

// Event returns the event name (Get("Event")); "" for a response.
func (m *Message) Event() string { return m.Get("Event") }

// IsResponse reports whether the message answers an action: its first header is
// `Response:`. (Only the first counts: OriginateResponse events carry a `Response:` header
// of their own.)
func (m *Message) IsResponse() bool {
	return len(m.Headers) > 0 && equalFoldASCII(m.Headers[0].Key, "Response")
}

// Raw returns the exact bytes the message was read from, line endings and the closing
// empty line included, or "" for a message that was built rather than read. Like the
// header strings it is an immutable copy.
func (m *Message) Raw() string { return m.raw }

// Reset empties the message, keeping the Headers storage for reuse.
func (m *Message) Reset() {
	clear(m.Headers)
	m.Headers = m.Headers[:0]
	m.raw = ""
}

// Clone returns a deep copy that shares no storage with m: the caller may keep it.
// All its strings live in one new allocation.
func (m *Message) Clone() *Message {
	n := 0
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	var b strings.Builder
	b.Grow(n)
	for _, h := range m.Headers {
		b.WriteString(h.Key)
		b.WriteString(h.Value)
	}
	s := b.String()
	c := &Message{Headers: make([]Header, len(m.Headers))}
	off := 0
	for i, h := range m.Headers {
		c.Headers[i].Key = s[off : off+len(h.Key)]
		off += len(h.Key)
		c.Headers[i].Value = s[off : off+len(h.Value)]
		off += len(h.Value)
	}
	if m.raw != "" {
		c.raw = strings.Clone(m.raw)
	}
	return c
}

// Append appends the message in wire form (`Key: Value` lines with CRLF, then an empty
// line) to dst and returns the extended slice. A header with an empty Key is written as
// its Value alone, as it was read (unless that would change how it reads back). Append does not validate; see ValidateHeader.
func (m *Message) Append(dst []byte) []byte {
	for _, h := range m.Headers {
		if h.Key != "" || h.Value == "" || strings.IndexByte(h.Value, ':') >= 0 {
			dst = append(dst, h.Key...)
			dst = append(dst, ':', ' ')
		}
		dst = append(dst, h.Value...)
		dst = append(dst, '\r', '\n')
	}
	return append(dst, '\r', '\n')
}

// String returns the message in wire form (see Append).
func (m *Message) String() string { return string(m.Append(nil)) }

// equalFoldASCII compares two header keys ASCII case-insensitively. Header keys are ASCII;
// unlike strings.EqualFold it never treats a multi-byte rune as equal to an ASCII letter.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}
