package calls

import "testing"

func TestUnescapeAMI(t *testing.T) {
	for in, want := range map[string]string{
		`O\'Brien \"VIP\" ok\?`: `O'Brien "VIP" ok?`, // extras/quote's VarSet
		`C:\\tmp\\T-48`:         `C:\tmp\T-48`,
		`a\tb\nc\rd\ae\bf\fg\v`: "a\tb\nc\rd\ae\bf\fg\v",
		`plain ñ & más`:         `plain ñ & más`,
		`unknown \x kept`:       `unknown \x kept`,
		`trailing \`:            `trailing \`,
		``:                      ``,
	} {
		if got := unescapeAMI(in); got != want {
			t.Errorf("unescapeAMI(%q) = %q, want %q", in, got, want)
		}
	}
}
