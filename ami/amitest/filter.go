package amitest

import (
	"bufio"
	"bytes"
	"errors"
	"regexp"
	"strings"
)

// sessionFilter is one session's event filters, as Asterisk keeps them (manager.c,
// should_send_event): with no rule every event is sent; with include rules only, an
// event matching one of them; with exclude rules only, an event matching none; with
// both, an event matching an include rule and no exclude rule. It is immutable: Filter
// replaces a session's filter with a copy holding one more rule.
type sessionFilter struct {
	include, exclude []matcher
}

func (f *sessionFilter) with(re matcher, exclude bool) *sessionFilter {
	n := &sessionFilter{}
	if f != nil {
		n.include = append(n.include, f.include...)
		n.exclude = append(n.exclude, f.exclude...)
	}
	if exclude {
		n.exclude = append(n.exclude, re)
	} else {
		n.include = append(n.include, re)
	}
	return n
}

// allows reports whether Asterisk would send the event whose whole text is ev.
func (f *sessionFilter) allows(ev []byte) bool {
	if f == nil {
		return true
	}
	if len(f.include) > 0 && !matchAny(f.include, ev) {
		return false
	}
	return !matchAny(f.exclude, ev)
}

func matchAny(res []matcher, ev []byte) bool {
	for _, re := range res {
		if re.Match(ev) {
			return true
		}
	}
	return false
}

// writeFiltered writes to w the bytes of raw that f lets through, and returns how many
// events it held back: every complete event (ended by its blank line) is tested whole,
// as Asterisk tests its event text; anything else (responses, an unterminated tail,
// garbage) passes unchanged. With no rule raw is written as is. Each part is written
// where it lies in raw: the fake Asterisk of the load test allocated a copy of every
// write here (16 % of the load test's allocations, whose collections were timed as the
// daemon's latency).
func (f *sessionFilter) writeFiltered(w *bufio.Writer, raw []byte) (held int, err error) {
	if f == nil {
		_, err = w.Write(raw)
		return 0, err
	}
	for len(raw) > 0 {
		end := bytes.Index(raw, []byte("\r\n\r\n"))
		if end < 0 {
			_, err = w.Write(raw)
			return held, err
		}
		msg := raw[:end+4]
		raw = raw[end+4:]
		if !bytes.HasPrefix(msg, []byte("Event:")) || f.allows(msg) {
			if _, err = w.Write(msg); err != nil {
				return held, err
			}
		} else {
			held++
		}
	}
	return held, nil
}

// errFilterSyntax is a pattern compileLegacyFilter cannot take.
var errFilterSyntax = errors.New("amitest: filter pattern not supported")

// compileLegacyFilter compiles a legacy eventfilter pattern (the `!` already removed)
// with the semantics Asterisk gives it: regcomp(REG_EXTENDED | REG_NOSUB) from glibc,
// applied by regexec to the whole event text. So `.` matches CR and LF too, `^` and `$`
// are the start and end of the event, a backslash before an ordinary character is that
// character (`\r` is the letter r, not a carriage return), and a backslash inside a
// bracket expression is itself. glibc's \w \W \s \S \b \B are kept; back-references and
// \< \> \` \' are refused (Go's regexp has no equivalent), as is [= =] and [. .].
func compileLegacyFilter(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("(?s)")
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch c {
		case '\\':
			if i+1 == len(pattern) {
				return nil, errFilterSyntax // a trailing backslash does not compile in glibc either
			}
			i++
			d := pattern[i]
			switch {
			case strings.IndexByte(`.[]()*+?{}|^$\`, d) >= 0, strings.IndexByte("wWsSbB", d) >= 0:
				b.WriteByte('\\')
				b.WriteByte(d)
			case '1' <= d && d <= '9', strings.IndexByte("<>`'", d) >= 0:
				return nil, errFilterSyntax
			default:
				b.WriteString(regexp.QuoteMeta(string(d)))
			}
		case '[':
			n, err := copyBracket(&b, pattern[i:])
			if err != nil {
				return nil, err
			}
			i += n - 1
		default:
			b.WriteByte(c)
		}
	}
	return regexp.Compile(b.String())
}

// copyBracket writes the POSIX bracket expression at the start of p in Go's syntax and
// returns its length.
func copyBracket(b *strings.Builder, p string) (int, error) {
	i := 1
	b.WriteByte('[')
	if i < len(p) && p[i] == '^' {
		b.WriteByte('^')
		i++
	}
	first := true
	for ; i < len(p); i++ {
		c := p[i]
		switch {
		case c == ']' && !first:
			b.WriteByte(']')
			return i + 1, nil
		case c == '[' && i+1 < len(p) && p[i+1] == ':':
			end := strings.Index(p[i+2:], ":]")
			if end < 0 {
				return 0, errFilterSyntax
			}
			b.WriteString(p[i : i+2+end+2])
			i += 2 + end + 1
		case c == '[' && i+1 < len(p) && (p[i+1] == '=' || p[i+1] == '.'):
			return 0, errFilterSyntax
		case c == '-':
			b.WriteByte('-')
		case c < 0x80 && !('a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9'):
			b.WriteByte('\\') // any punctuation, the backslash included, is literal here
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
		first = false
	}
	return 0, errFilterSyntax // unterminated
}
