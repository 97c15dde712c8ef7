package ari

import "encoding/json"

// validJSON is json.Valid, asked only when plainValid is unsure.
func validJSON(data []byte) bool { return plainValid(data) || json.Valid(data) }

// plainValid reports whether data is certainly valid JSON (json.Valid's answer is then
// true), in one tight pass instead of encoding/json's per-byte state machine: the skip path
// checks the syntax of every event it skips. false means "unsure": the caller asks
// json.Valid. It accepts exactly JSON's grammar (RFC 8259, as encoding/json's scanner:
// any byte from 0x20 up inside strings, UTF-8 unchecked), nesting up to 64 levels.
func plainValid(data []byte) bool {
	var objs uint64 // bit d: the container open at depth d is an object
	depth := 0
	i := 0
value:
	for {
		i = skipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if depth == 64 {
				return false
			}
			if c == '{' {
				objs |= 1 << depth
			} else {
				objs &^= 1 << depth
			}
			depth++
			i = skipSpace(data, i+1)
			if i < len(data) && data[i] == c+2 { // '{'+2 is '}', '['+2 is ']'
				depth--
				i++
				break
			}
			if c == '{' {
				if i = validMember(data, i); i < 0 {
					return false
				}
			}
			continue value
		case c == '"':
			if i = validString(data, i); i < 0 {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			if i = validNumber(data, i); i < 0 {
				return false
			}
		case c == 't':
			if i = validLiteral(data, i, "true"); i < 0 {
				return false
			}
		case c == 'f':
			if i = validLiteral(data, i, "false"); i < 0 {
				return false
			}
		case c == 'n':
			if i = validLiteral(data, i, "null"); i < 0 {
				return false
			}
		default:
			return false
		}
		// After a value: close containers until another value is due.
		for {
			i = skipSpace(data, i)
			if depth == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			obj := objs&(1<<(depth-1)) != 0
			switch c := data[i]; {
			case c == ',':
				i++
				if obj {
					if i = validMember(data, skipSpace(data, i)); i < 0 {
						return false
					}
				}
				continue value
			case obj && c == '}' || !obj && c == ']':
				depth--
				i++
			default:
				return false
			}
		}
	}
}

// validMember takes data[i] at an object key and returns the index after its ':' (-1: not a
// key and colon).
func validMember(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = validString(data, i); i < 0 {
		return -1
	}
	i = skipSpace(data, i)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return i + 1
}

// validString takes data[i] == '"' and returns the index after the closing quote, or -1 for
// a control character, a bad escape or no closing quote.
func validString(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return j + 1
		case c < 0x20:
			return -1
		case c == '\\':
			j++
			if j >= len(data) {
				return -1
			}
			switch data[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(data) {
					return -1
				}
				for _, h := range data[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1
					}
				}
				j += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// validNumber takes data[i] at '-' or a digit and returns the index after the number, or -1.
// What follows is checked by the caller (a number must be followed by a delimiter).
func validNumber(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case digits() == 0:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		i++
		if digits() == 0 {
			return -1
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if digits() == 0 {
			return -1
		}
	}
	return i
}

func validLiteral(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}
