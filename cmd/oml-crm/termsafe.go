package main

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// termSafe escapes what a terminal would act on instead of showing: C0 and C1 control
// characters and DEL (escape sequences that retitle, recolour or blank the operator's
// terminal), bidirectional-text overrides (which reorder what is shown) and invalid
// UTF-8. Everything printed from outside (a CRM's answer, a campaign name, a call id)
// goes through it.
func termSafe(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// jsonTermSafe escapes, in encoding/json output, DEL, the C1 controls and the bidi
// overrides that encoding/json leaves raw (it escapes C0 only); the JSON stays equal.
func jsonTermSafe(b []byte) []byte {
	if bytes.IndexFunc(b, jsonUnsafe) < 0 {
		return b
	}
	var out bytes.Buffer
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if jsonUnsafe(r) {
			fmt.Fprintf(&out, `\u%04x`, r)
		} else {
			out.Write(b[i : i+size])
		}
		i += size
	}
	return out.Bytes()
}

// jsonUnsafe: what encoding/json leaves raw (everything below 0x20 is escaped, invalid
// UTF-8 becomes U+FFFD) but a terminal acts on.
func jsonUnsafe(r rune) bool { return r >= 0x7f && r != utf8.RuneError && unsafeRune(r) }
