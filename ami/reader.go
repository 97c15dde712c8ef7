package ami

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"unsafe"
)

// Default limits (see Limits).
const (
	DefaultMaxLine    = 64 << 10
	DefaultMaxMessage = 1 << 20
	DefaultMaxHeaders = 1024
)

// maxLimit keeps offsets inside a message representable in the reader's int32 spans.
const maxLimit = 1<<31 - 1

// Limits bound what one message may cost. Zero fields take the defaults.
type Limits struct {
	MaxLine    int // bytes in one line, its line ending excluded (default 64 KiB)
	MaxMessage int // bytes in one message, line endings and the closing empty line included (default 1 MiB)
	MaxHeaders int // header lines in one message (default 1024)
	// MaxSkip, when positive, makes a message that breaks a limit non-fatal: the Reader
	// discards it to its closing empty line (without keeping it; at most MaxSkip bytes
	// in all, beyond which the LimitError stands) and returns an *OversizeError, the
	// stream still in step. Zero: the LimitError ends the stream.
	MaxSkip int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxLine <= 0 {
		l.MaxLine = DefaultMaxLine
	}
	if l.MaxMessage <= 0 {
		l.MaxMessage = DefaultMaxMessage
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	l.MaxLine = min(l.MaxLine, maxLimit-2)
	l.MaxMessage = min(l.MaxMessage, maxLimit)
	return l
}

// LimitError reports a message that broke one of the Limits. It is a protocol error: the
// stream position is mid-message afterwards, so the connection must be dropped.
type LimitError struct {
	What string // "line", "message" or "headers"
	Size int    // the offending size; the reader stops at the limit, so the real size is at least this
	Max  int    // the limit
}

func (e *LimitError) Error() string {
	unit := " bytes"
	if e.What == "headers" {
		unit = ""
	}
	return fmt.Sprintf("ami: %s too long: at least %d%s, limit %d%s", e.What, e.Size, unit, e.Max, unit)
}

// OversizeError reports a message that broke a limit and was discarded whole
// (Limits.MaxSkip): the stream is in step and the next message can be read. Event,
// Variable and ActionID are those headers when they came before or after the offending
// part in lines of a normal length ("" when unknown), so the caller can judge whether
// losing the message matters.
type OversizeError struct {
	Limit    *LimitError
	Response bool // the message was a response (first header `Response:`)
	Event    string
	Variable string
	ActionID string
	Skipped  int64 // bytes discarded, the message's lines before the offence included
}

func (e *OversizeError) Error() string {
	what := "event " + strconv.Quote(e.Event)
	if e.Response {
		what = "response"
	}
	if e.Variable != "" {
		what += " (variable " + strconv.Quote(e.Variable) + ")"
	}
	return fmt.Sprintf("ami: skipped an oversized %s of %d bytes: %v", what, e.Skipped, e.Limit)
}

// Unwrap returns the LimitError.
func (e *OversizeError) Unwrap() error { return e.Limit }

// ProtocolError reports bytes that are not the AMI protocol (for example a bad banner).
type ProtocolError struct {
	Msg  string
	Line string // the offending line, shortened
}

func (e *ProtocolError) Error() string {
	return "ami: protocol error: " + e.Msg + ": " + strconv.Quote(e.Line)
}

func protocolError(msg string, line []byte) *ProtocolError {
	const show = 80
	s := string(line[:min(len(line), show)])
	if len(line) > show {
		s += "…"
	}
	return &ProtocolError{Msg: msg, Line: s}
}

// errNoProgress mirrors io.ErrNoProgress for a source that keeps returning (0, nil).
var errNoProgress = io.ErrNoProgress

// Reader reads AMI messages from a byte stream: the banner line, then messages made of
// `Key: Value` lines closed by an empty line. It accepts CRLF and bare LF, `Key:Value`
// without the space, empty values, lines without a colon (kept with an empty Key),
// channel names with a colon inside `ChanVariable(...)` keys, empty lines between
// messages, and the legacy `Response: Follows` command output that ends with
// `--END COMMAND--` (its lines become `Output` headers, as Asterisk 14+ sends them).
//
// It owns one buffer of MaxLine+2 bytes (at least 64 KiB) and a scratch area bounded by
// MaxMessage; memory never grows past that whatever the peer sends. The messages it
// returns are copied into chunks of up to 16 KiB shared by consecutive messages (see
// Message).
// A Reader is not safe for concurrent use.
type Reader struct {
	rd    io.Reader
	buf   []byte
	r, w  int   // unread data is buf[r:w]
	err   error // sticky error from rd, returned once the buffered data is used up
	lim   Limits
	spans []span // headers of the message being read, as offsets into it
	pend  []byte // bytes of the message being read that were moved out of buf to refill it
	view  View   // shown to ReadMessageSelected's accept (a field: no allocation per call)
	n     int64  // bytes read from rd

	skipped [64]byte // name of the event being skipped (ReadMessageFiltered)
	slow    bool     // tests: read's general loop only, as the reference for scan
	fixed   [64]span // spans of a message read by scan (a power of two)

	// slab holds the bytes of the messages read, each copied once after the last (see
	// own). A strings.Builder never writes where a string it returned points.
	slab strings.Builder
}

// span locates one header inside a message's bytes. k0 < 0 marks an `Output` header
// synthesised from a legacy `Response: Follows` line, whose key is not in the bytes.
type span struct{ k0, k1, v0, v1 int32 }

// NewReader returns a Reader over rd with the given limits (zero fields take defaults).
func NewReader(rd io.Reader, lim Limits) *Reader {
	lim = lim.withDefaults()
	return newReaderSize(rd, lim, max(lim.MaxLine+2, 64<<10))
}

// newReaderSize lets tests use a buffer barely larger than a line, so that refills and
// compaction happen inside nearly every message.
func newReaderSize(rd io.Reader, lim Limits, size int) *Reader {
	return &Reader{rd: rd, buf: make([]byte, max(size, lim.MaxLine+2)), lim: lim}
}

// Limits returns the limits in force (defaults filled in).
func (r *Reader) Limits() Limits { return r.lim }

// BytesRead returns how many bytes the Reader has read from its source so far.
func (r *Reader) BytesRead() int64 { return r.n }

// ReadBanner reads the greeting line Asterisk sends on connect, for example
// `Asterisk Call Manager/11.0.0`, and returns it without its line ending. A line that is
// not an Asterisk Call Manager banner is a *ProtocolError.
func (r *Reader) ReadBanner() (string, error) {
	for {
		i := bytes.IndexByte(r.buf[r.r:r.w], '\n')
		if i < 0 {
			start := r.r
			if err := r.more(&start); err != nil {
				if err == io.EOF && r.w > r.r {
					err = io.ErrUnexpectedEOF
				}
				return "", fmt.Errorf("ami: reading the banner: %w", err)
			}
			continue
		}
		line := trimCR(r.buf[r.r : r.r+i])
		r.r += i + 1
		if len(line) > r.lim.MaxLine {
			return "", &LimitError{What: "line", Size: len(line), Max: r.lim.MaxLine}
		}
		if !bytes.HasPrefix(line, []byte("Asterisk Call Manager")) {
			return "", protocolError("not an Asterisk Call Manager banner", line)
		}
		return string(line), nil
	}
}

// BannerVersion returns the protocol version of a banner (`11.0.0` for
// `Asterisk Call Manager/11.0.0`), or "" when it has none.
func BannerVersion(banner string) string {
	_, v, ok := strings.Cut(banner, "/")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

// ParseMessage parses the first message in s (a convenience for tests and tools).
func ParseMessage(s string) (*Message, error) {
	m := new(Message)
	if err := NewReader(strings.NewReader(s), Limits{}).ReadMessage(m); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadMessage reads the next message into m, reusing m's Headers storage. It returns
// io.EOF when the stream ends cleanly between messages, io.ErrUnexpectedEOF when it ends
// inside one, and a *LimitError when the message breaks a limit.
func (r *Reader) ReadMessage(m *Message) error {
	_, err := r.read(m, nil, nil)
	return err
}

// ReadMessageFiltered is ReadMessage that can skip unwanted events without parsing or
// allocating: when the message's first header is `Event:`, keep is called with the event
// name (valid only during the call; comparing it with a map lookup `set[string(name)]`
// does not allocate). If keep returns false the rest of the message is discarded in place
// (still checked against the limits), m is left empty and kept is false. Responses and
// messages whose first header is not `Event:` are always read.
func (r *Reader) ReadMessageFiltered(m *Message, keep func(event []byte) bool) (kept bool, err error) {
	return r.read(m, keep, nil)
}

// ReadMessageSelected is ReadMessageFiltered with a second look: an event that keep
// accepted is shown to accept (when non-nil) as a View of its headers, still in the
// reader's buffer, before anything is copied. If accept returns false the event is
// dropped as keep would drop it (m left empty, kept false, no allocation). It is for
// filters on a header that comes after the event name, such as VarSet's Variable.
// Responses are always read.
func (r *Reader) ReadMessageSelected(m *Message, keep func(event []byte) bool, accept func(v *View) bool) (kept bool, err error) {
	return r.read(m, keep, accept)
}

// View shows the headers of a message still in a Reader's buffer (see
// ReadMessageSelected). Its byte slices are valid only during the call it is passed to.
type View struct {
	raw   []byte
	spans []span
}

// Get returns the value of the first header named key (ASCII case-insensitively), or nil.
func (v *View) Get(key string) []byte {
	for _, sp := range v.spans {
		// The length first, inline: most headers differ in it, and need no call.
		if sp.k0 >= 0 && int(sp.k1-sp.k0) == len(key) && equalFoldBytes(v.raw[sp.k0:sp.k1], key) {
			return v.raw[sp.v0:sp.v1]
		}
	}
	return nil
}

// Event returns the event name (the first header's value when it is `Event:`), or nil.
func (v *View) Event() []byte {
	if len(v.spans) > 0 && v.spans[0].k0 >= 0 && equalFoldBytes(v.raw[v.spans[0].k0:v.spans[0].k1], "Event") {
		return v.raw[v.spans[0].v0:v.spans[0].v1]
	}
	return nil
}

func (r *Reader) read(m *Message, keep func(event []byte) bool, accept func(v *View) bool) (bool, error) {
	m.Headers = m.Headers[:0]
	m.raw = ""
	r.spans = r.spans[:0]
	r.pend = r.pend[:0]
	size := 0    // bytes of the message's complete lines so far
	start := r.r // first byte of the message still in buf (earlier ones are in pend)
	follows := false
	event := false // the first header is Event:
	if !r.slow {
		// The fast path (scan), as long as it has not called keep, can leave the message
		// to the loop below from its start; after keep, from its second line.
		if n, sp, ok := r.firstEvent(keep); ok {
			name := r.buf[r.r+int(sp.v0) : r.r+int(sp.v1)]
			if !keep(name) {
				r.r += n
				return false, r.skip(name, n)
			}
			r.fixed[0] = sp
			if end, headers := r.scan(n, 1); end > 0 {
				r.spans = r.fixed[:headers]
				return r.take(m, end, accept), nil
			}
			r.r += n
			size, event = n, true
			r.spans = append(r.spans, sp)
		} else if end, headers := r.scan(0, 0); end > 0 {
			r.spans = r.fixed[:headers]
			if !r.follows() {
				return r.take(m, end, accept), nil
			}
			r.spans = r.spans[:0]
		}
	}
	for {
		i := bytes.IndexByte(r.buf[r.r:r.w], '\n')
		if i < 0 {
			if err := r.more(&start); err != nil {
				if err == io.EOF && (size > 0 || r.w > r.r) {
					err = io.ErrUnexpectedEOF
				}
				var le *LimitError
				if errors.As(err, &le) { // an unfinished line past MaxLine
					return false, r.oversize(start, size, le, false)
				}
				return false, err
			}
			continue
		}
		line := trimCR(r.buf[r.r : r.r+i])
		r.r += i + 1
		if len(line) > r.lim.MaxLine {
			return false, r.oversize(start, size+i+1, &LimitError{What: "line", Size: len(line), Max: r.lim.MaxLine}, true)
		}
		off := size
		size += i + 1
		if size > r.lim.MaxMessage {
			return false, r.oversize(start, size, &LimitError{What: "message", Size: size, Max: r.lim.MaxMessage}, true)
		}
		if len(line) == 0 && !follows {
			if off == 0 { // empty line between messages
				size, start = 0, r.r
				continue
			}
			break
		}
		if len(r.spans) == r.lim.MaxHeaders {
			return false, r.oversize(start, size, &LimitError{What: "headers", Size: len(r.spans) + 1, Max: r.lim.MaxHeaders}, true)
		}
		if follows {
			if r.followsLine(line, off) {
				follows = false
			}
			continue
		}
		sp := splitHeader(line, off)
		if len(r.spans) == 0 {
			key, val := line[:sp.k1-sp.k0], line[sp.v0-int32(off):]
			event = equalFoldBytes(key, "Event")
			if keep != nil && event && !keep(val) {
				return false, r.skip(val, size)
			}
			follows = equalFoldBytes(key, "Response") && equalFoldBytes(val, "Follows")
		}
		r.spans = append(r.spans, sp)
	}

	raw := r.buf[start:r.r]
	if len(r.pend) > 0 {
		r.pend = append(r.pend, raw...)
		raw = r.pend
	}
	if accept != nil && event {
		r.view = View{raw: raw, spans: r.spans}
		ok := accept(&r.view)
		r.view = View{}
		if !ok {
			return false, nil
		}
	}
	s := r.own(raw)
	m.raw = s
	if cap(m.Headers) < len(r.spans) {
		m.Headers = make([]Header, 0, len(r.spans)+len(r.spans)/2)
	}
	for _, sp := range r.spans {
		key := "Output"
		if sp.k0 >= 0 {
			key = s[sp.k0:sp.k1]
		}
		m.Headers = append(m.Headers, Header{Key: key, Value: s[sp.v0:sp.v1]})
	}
	return true, nil
}

// skip discards the rest of an event that keep turned down: name is its name, size the
// bytes of its first line.
func (r *Reader) skip(name []byte, size int) error {
	n := copy(r.skipped[:], name) // name's bytes may be overwritten while skipping
	if err := r.skipRest(size); err != nil {
		var le *LimitError
		if errors.As(err, &le) && r.lim.MaxSkip > 0 {
			return r.discard(&OversizeError{Limit: le, Event: string(r.skipped[:n])}, false)
		}
		return err
	}
	return nil
}

// firstEvent is the fast path's first look when keep is set: when buf[r.r:r.w] holds a
// whole first line within the limits and it is `Event:`, it returns the line's length
// (line ending included) and its span, for read to call keep as its general loop would
// have.
func (r *Reader) firstEvent(keep func(event []byte) bool) (n int, sp span, ok bool) {
	if keep == nil {
		return 0, sp, false
	}
	i := bytes.IndexByte(r.buf[r.r:r.w], '\n')
	if i < 0 || i+1 > r.lim.MaxMessage {
		return 0, sp, false
	}
	line := trimCR(r.buf[r.r : r.r+i])
	if len(line) == 0 || len(line) > r.lim.MaxLine {
		return 0, sp, false
	}
	sp = splitHeader(line, 0)
	if !equalFoldBytes(line[:sp.k1], "Event") {
		return 0, sp, false
	}
	return i + 1, sp, true
}

// scan is read's fast path, for a message that is whole in buf[r.r:r.w], shorter than
// MaxLine and MaxMessage, with at most len(r.fixed) headers and no more than
// MaxHeaders, no empty line before it, no '(' in a key (`ChanVariable(<channel>)`, see
// splitHeader) and not a `Response: Follows` (read checks that): it finds its headers
// (into r.fixed) and returns its length, line endings and the closing empty line
// included, and their number. For anything else it returns 0 and read's general loop
// reads the message: scan changes nothing but r.fixed. It starts at offset p (a line
// start) with n headers already in r.fixed.
func (r *Reader) scan(p, n int) (size, headers int) {
	// A '\n' at or past end: not whole here, or too long (a message shorter than
	// MaxLine has no line over it). Words are read from offsets up to end-1, so b must
	// hold 7 bytes more (possibly past r.w: never taken).
	end := min(r.w-r.r, r.lim.MaxMessage, r.lim.MaxLine, len(r.buf)-r.r-7)
	if end <= 0 {
		return 0, 0
	}
	b := r.buf[r.r : r.r+end+7]
	last := len(b) - 8
	// The loops read b through base, without bounds checks: every offset read is
	// checked against last first (a word at q <= last, a byte at most 7 past one).
	base := unsafe.Pointer(unsafe.SliceData(b))
	spans := &r.fixed
line:
	for {
		// The key ends at the first ':' (a '(' before it: general loop); a line without
		// one ends at its '\n'. All three are below ';': the first byte below it is found
		// a word at a time (the lowest byte flagged by (x-0x3b…)&^x&0x80… is exactly the
		// first one below 0x3b; flags above it may be false). No call in the loop: Go
		// keeps no register across one.
		q, c := p, 0
		for {
			if q > last {
				return 0, 0
			}
			// The word, little-endian, spelled out: binary.LittleEndian.Uint64 here left
			// two inlining-mark NOPs per word, executed each time (the loads still
			// combine into one).
			w := (*[8]byte)(unsafe.Add(base, q))
			x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 | uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
			if f := (x - 0x3b*lowBits) &^ x & highBits; f != 0 {
				c = q + bits.TrailingZeros64(f)/8
				ch := *(*byte)(unsafe.Add(base, c))
				if ch == ':' {
					break
				}
				if ch == '\n' { // a line without a colon: the whole line is the value
					if c > last { // past end
						return 0, 0
					}
					le := c
					if le > p && *(*byte)(unsafe.Add(base, le-1)) == '\r' {
						le--
					}
					if le == p { // an empty line
						if n == 0 { // before the message
							return 0, 0
						}
						p = c + 1
						break line
					}
					spans[n&(len(spans)-1)] = span{k0: int32(p), k1: int32(p), v0: int32(p), v1: int32(le)}
					n++
					p = c + 1
					continue line
				}
				if ch == '(' {
					return 0, 0
				}
				q = c + 1
				continue
			}
			q += 8
		}
		e := 0 // the line's '\n', after the colon
		for q = c + 1; ; q += 8 {
			if q > last {
				return 0, 0
			}
			w := (*[8]byte)(unsafe.Add(base, q))
			x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 | uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
			x ^= '\n' * lowBits
			if f := (x - lowBits) &^ x & highBits; f != 0 {
				e = q + bits.TrailingZeros64(f)/8
				break
			}
		}
		if e > last { // past end
			return 0, 0
		}
		le := e // the line's end, CR excluded (b[e-1] may be the colon, not a CR)
		if *(*byte)(unsafe.Add(base, e-1)) == '\r' {
			le--
		}
		v := c + 1 // a space there is before le
		if *(*byte)(unsafe.Add(base, v)) == ' ' {
			v++
		}
		spans[n&(len(spans)-1)] = span{k0: int32(p), k1: int32(c), v0: int32(v), v1: int32(le)}
		n++
		p = e + 1
	}
	// Past len(spans), n&(len(spans)-1) wrapped round: the message goes to the general loop.
	if n > min(len(r.fixed), r.lim.MaxHeaders) {
		return 0, 0
	}
	return p, n
}

// Word-at-a-time byte search constants (scan).
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// follows reports whether the message scan found at r.r is a `Response: Follows`, left
// to the general loop (its output may hold empty lines).
func (r *Reader) follows() bool {
	sp := r.spans[0]
	return sp.k1-sp.k0 == int32(len("Response")) &&
		equalFoldBytes(r.buf[r.r+int(sp.k0):r.r+int(sp.k1)], "Response") && equalFoldBytes(r.buf[r.r+int(sp.v0):r.r+int(sp.v1)], "Follows")
}

// take finishes a message that scan found whole, end bytes at r.r, as read's general
// loop does: an event accept turns down is consumed and dropped, anything else copied
// into m. It repeats the end of read rather than sharing it: one function for both
// (with read's `Output` keys, which scan never makes) measured +190 instructions per
// message on busy-40-calls.ami (callgrind, docs/bench/ami.md).
func (r *Reader) take(m *Message, end int, accept func(v *View) bool) bool {
	raw := r.buf[r.r : r.r+end]
	r.r += end
	spans := r.spans
	if accept != nil && equalFoldBytes(raw[spans[0].k0:spans[0].k1], "Event") {
		r.view = View{raw: raw, spans: spans}
		ok := accept(&r.view)
		r.view = View{}
		if !ok {
			return false
		}
	}
	// own, inline (a call here costs ~20 instructions per message).
	var s string
	if n := r.slab.Len(); r.slab.Cap()-n >= len(raw) {
		r.slab.Write(raw)
		s = r.slab.String()[n:]
	} else {
		s = r.ownNew(raw)
	}
	m.raw = s
	if cap(m.Headers) < len(spans) {
		m.Headers = make([]Header, 0, len(spans)+len(spans)/2)
	}
	hs := m.Headers[:len(spans)]
	// scan's spans lie inside the message, each before its line's '\n' (so none starts
	// past the end, even empty): unsafe.String without slicing's bounds checks and
	// empty-string guards (−24 instructions per message, docs/bench/ami.md).
	p := unsafe.Pointer(unsafe.StringData(s))
	for i, sp := range spans {
		hs[i] = Header{
			Key:   unsafe.String((*byte)(unsafe.Add(p, sp.k0)), uint32(sp.k1-sp.k0)),
			Value: unsafe.String((*byte)(unsafe.Add(p, sp.v0)), uint32(sp.v1-sp.v0)),
		}
	}
	m.Headers = hs
	return true
}

// slabSize is the size of the chunks own copies messages into, and so the most a string
// kept from a Message can pin. A Reader's first chunk is smaller (firstSlab), each next
// one twice the last up to slabSize, so that a Reader that reads a few messages (a
// login, ParseMessage) does not take 16 KiB.
const (
	slabSize  = 16 << 10
	firstSlab = 1 << 10
)

// own returns an immutable copy of a message's bytes raw. Messages are copied one after
// the other into the unused tail of a chunk (r.slab), a new chunk taken when the tail is
// too short; the old one is left to the strings pointing into it. A message over a
// quarter of slabSize gets an allocation of its own, so that a full-size chunk's unused
// tail is at most a quarter of it.
func (r *Reader) own(raw []byte) string {
	n := r.slab.Len()
	if r.slab.Cap()-n < len(raw) {
		return r.ownNew(raw)
	}
	r.slab.Write(raw)
	return r.slab.String()[n:]
}

// ownNew is own when the chunk's tail is too short (not inlined: rare).
func (r *Reader) ownNew(raw []byte) string {
	if len(raw) > slabSize/4 {
		return string(raw)
	}
	size := min(max(2*r.slab.Cap(), firstSlab, len(raw)), slabSize)
	r.slab.Reset()
	r.slab.Grow(size)
	r.slab.Write(raw)
	return r.slab.String()
}

// oversize handles a message that broke a limit: without MaxSkip, le; otherwise the
// headers read so far are looked at (the bytes before r.r from start, plus pend), the
// rest of the message is discarded and an *OversizeError returned. atLineStart says
// whether r.r is at the start of a line (false: inside the over-long line). size is the
// message's bytes consumed so far.
func (r *Reader) oversize(start, size int, le *LimitError, atLineStart bool) error {
	if r.lim.MaxSkip <= 0 {
		return le
	}
	oe := &OversizeError{Limit: le, Skipped: int64(size)}
	msg := r.pend
	if start <= r.r {
		msg = append(msg, r.buf[start:r.r]...)
	}
	for i, sp := range r.spans {
		if sp.k0 < 0 || int(sp.v1) > len(msg) {
			continue
		}
		r.note(oe, msg[sp.k0:sp.k1], msg[sp.v0:sp.v1], i == 0)
	}
	r.pend = r.pend[:0]
	r.spans = r.spans[:0]
	return r.discard(oe, !atLineStart)
}

// note records the headers of a discarded message that say what it was.
func (r *Reader) note(oe *OversizeError, key, val []byte, first bool) {
	switch {
	case first && equalFoldBytes(key, "Response"):
		oe.Response = true
	case equalFoldBytes(key, "Event") && oe.Event == "":
		oe.Event = string(val)
	case equalFoldBytes(key, "Variable") && oe.Variable == "":
		oe.Variable = string(val)
	case equalFoldBytes(key, "ActionID") && oe.ActionID == "":
		oe.ActionID = string(val)
	}
}

// discard reads and drops the rest of a message up to its closing empty line, noting
// the headers of its normal-length lines, at most MaxSkip bytes in all. inLine: r.r is
// inside a line (its start already consumed or over-long).
func (r *Reader) discard(oe *OversizeError, inLine bool) error {
	lineLen := 0 // bytes of the current line seen so far, CR excluded
	if inLine {
		lineLen = 1 // not an empty line, whatever follows
	}
	for {
		if oe.Skipped > r.lim.MaxSkip {
			return oe.Limit
		}
		i := bytes.IndexByte(r.buf[r.r:r.w], '\n')
		if i < 0 {
			n := r.w - r.r
			if n > 0 && r.buf[r.w-1] == '\r' {
				n-- // keep a CR that may end an empty line
			}
			lineLen += n
			oe.Skipped += int64(n)
			r.r += n
			copy(r.buf, r.buf[r.r:r.w])
			r.w -= r.r
			r.r = 0
			if err := r.fill(); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			continue
		}
		line := trimCR(r.buf[r.r : r.r+i])
		if lineLen == 0 && len(line) == 0 {
			r.r += i + 1
			oe.Skipped += int64(i + 1)
			return oe
		}
		if lineLen == 0 {
			if c := bytes.IndexByte(line, ':'); c > 0 {
				v := line[c+1:]
				if len(v) > 0 && v[0] == ' ' {
					v = v[1:]
				}
				r.note(oe, line[:c], v, false)
			}
		}
		r.r += i + 1
		oe.Skipped += int64(i + 1)
		lineLen = 0
	}
}

// fill reads more data into buf[r.w:] (after discard emptied buf, or more made room).
func (r *Reader) fill() error {
	if r.err != nil {
		return r.err
	}
	for range 100 {
		n, err := r.rd.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			return errors.New("ami: the source returned an invalid byte count")
		}
		r.w += n
		r.n += int64(n)
		if err != nil {
			r.err = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return errNoProgress
}

// followsLine handles one line of a legacy `Response: Follows` command response: headers
// (Privilege, ActionID) before the output, then raw output lines until `--END COMMAND--`.
// It reports whether the end marker was seen.
func (r *Reader) followsLine(line []byte, off int) bool {
	const marker = "--END COMMAND--"
	if bytes.HasSuffix(line, []byte(marker)) {
		if n := len(line) - len(marker); n > 0 { // output not ended by a newline
			r.spans = append(r.spans, span{k0: -1, v0: int32(off), v1: int32(off + n)})
		}
		return true
	}
	if !r.hasOutput() {
		sp := splitHeader(line, off)
		key := line[:sp.k1-sp.k0]
		if equalFoldBytes(key, "Privilege") || equalFoldBytes(key, "ActionID") {
			r.spans = append(r.spans, sp)
			return false
		}
	}
	r.spans = append(r.spans, span{k0: -1, v0: int32(off), v1: int32(off + len(line))})
	return false
}

func (r *Reader) hasOutput() bool {
	n := len(r.spans)
	return n > 0 && r.spans[n-1].k0 < 0
}

// skipRest discards the rest of a message whose first line has been read, checking the
// limits as it goes. It copies nothing.
func (r *Reader) skipRest(size int) error {
	headers := 1
	for {
		i := bytes.IndexByte(r.buf[r.r:r.w], '\n')
		if i < 0 {
			start := r.r
			if err := r.more(&start); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			continue
		}
		n := i
		if n > 0 && r.buf[r.r+n-1] == '\r' {
			n--
		}
		r.r += i + 1
		if n > r.lim.MaxLine {
			return &LimitError{What: "line", Size: n, Max: r.lim.MaxLine}
		}
		size += i + 1
		if size > r.lim.MaxMessage {
			return &LimitError{What: "message", Size: size, Max: r.lim.MaxMessage}
		}
		if n == 0 {
			return nil
		}
		if headers == r.lim.MaxHeaders {
			return &LimitError{What: "headers", Size: headers + 1, Max: r.lim.MaxHeaders}
		}
		headers++
	}
}

// more reads more data into buf. Bytes of the message being read, buf[*start:r.r], are
// kept: when buf must be compacted they move to pend and *start is reset. It fails with a
// *LimitError when the unfinished line is already longer than MaxLine.
func (r *Reader) more(start *int) error {
	if r.w-r.r > r.lim.MaxLine+1 { // +1: a CR may still be followed by its LF
		return &LimitError{What: "line", Size: r.w - r.r, Max: r.lim.MaxLine}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.buf)-r.w < len(r.buf)/8 {
		if *start < r.r {
			r.pend = append(r.pend, r.buf[*start:r.r]...)
		}
		n := copy(r.buf, r.buf[r.r:r.w])
		r.r, r.w, *start = 0, n, 0
	}
	return r.fill()
}

// splitHeader splits one line (at offset off in its message) at its first colon, or for
// a `ChanVariable(<channel>)` style key whose channel name holds a colon, at the colon
// after the closing parenthesis. One space after the colon is part of the separator.
func splitHeader(line []byte, off int) span {
	c := bytes.IndexByte(line, ':')
	if c < 0 {
		return span{k0: int32(off), k1: int32(off), v0: int32(off), v1: int32(off + len(line))}
	}
	if key := line[:c]; bytes.IndexByte(key, '(') >= 0 && bytes.IndexByte(key, ')') < 0 {
		if j := bytes.Index(line[c:], []byte("):")); j >= 0 {
			c += j + 1
		}
	}
	v := c + 1
	if v < len(line) && line[v] == ' ' {
		v++
	}
	return span{k0: int32(off), k1: int32(off + c), v0: int32(off + v), v1: int32(off + len(line))}
}

func trimCR(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}

// equalFoldBytes compares b with the ASCII word s, case-insensitively.
func equalFoldBytes(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		cb, cs := b[i], s[i]
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if 'A' <= cs && cs <= 'Z' {
			cs += 'a' - 'A'
		}
		if cb != cs {
			return false
		}
	}
	return true
}
