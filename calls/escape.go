package calls

import "strings"

// unescapeAMI undoes the C escaping AMI applies to VarSet's Value (ast_escape_c:
// backslash, quotes, '?' and control characters), so values arrive exactly as the
// dialplan set them, as Getvar and ARI report them. Unknown sequences are kept.
func unescapeAMI(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch n := s[i]; n {
		case '\\', '\'', '"', '?':
			b.WriteByte(n)
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		default:
			b.WriteByte('\\')
			b.WriteByte(n)
		}
	}
	return b.String()
}
