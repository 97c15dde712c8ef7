package agentws

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tok, err := MintToken(testSecret, 17, now.Add(12*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "v1.17.1800043200.") {
		t.Fatalf("token %q", tok)
	}
	if id, err := VerifyToken(testSecret, tok, now); err != nil || id != 17 {
		t.Fatalf("verify: %d %v", id, err)
	}
	if _, err := VerifyToken(testSecret, tok, now.Add(12*time.Hour)); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("at expiry: %v", err)
	}
	sig := tok[strings.LastIndex(tok, ".")+1:]
	for name, bad := range map[string]string{
		"longer expiry": "v1.17.1900000000." + sig,
		"other agent":   "v1.18.1800043200." + sig,
		"bad signature": tok[:len(tok)-2] + "AA",
		"other version": "v2" + tok[2:],
		"no signature":  "v1.17.1800043200",
		"empty":         "",
		"huge":          strings.Repeat("a", 1000),
	} {
		if _, err := VerifyToken(testSecret, bad, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := VerifyToken([]byte("another-secret-0123456789"), tok, now); !errors.Is(err, ErrTokenSignature) {
		t.Errorf("other secret: %v", err)
	}
	if _, err := MintToken([]byte("short"), 1, now); err == nil {
		t.Error("short secret accepted")
	}
	if _, err := MintToken(testSecret, 0, now); err == nil {
		t.Error("agent 0 accepted")
	}
}
