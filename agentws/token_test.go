package agentws

import (
	"context"
	"errors"
	"net/http"
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

func TestTokenLifetimeMaximum(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	long, err := MintToken(testSecret, 3, now.Add(1000*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyTokenLifetime(testSecret, long, now, 24*time.Hour); !errors.Is(err, ErrTokenTooLong) {
		t.Errorf("1000h token under a 24h maximum: %v", err)
	}
	// Its last 24 hours are within the maximum.
	if id, err := VerifyTokenLifetime(testSecret, long, now.Add(977*time.Hour), 24*time.Hour); err != nil || id != 3 {
		t.Errorf("1000h token 977h later: %d %v", id, err)
	}
	day, _ := MintToken(testSecret, 3, now.Add(24*time.Hour))
	if _, err := VerifyTokenLifetime(testSecret, day, now, 24*time.Hour); err != nil {
		t.Errorf("24h token: %v", err)
	}
	if _, err := VerifyToken(testSecret, long, now); err != nil {
		t.Errorf("VerifyToken has no maximum: %v", err)
	}
}

func TestHubRefusesTokenBeyondMaxTTL(t *testing.T) {
	th := newTestHub(t, Options{TokenMaxTTL: 2 * time.Hour})
	long, err := MintToken(testSecret, 5, time.Now().Add(1000*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ws, status, _ := dialRaw(ctx, th.wsURL(), long, nil, nil); ws != nil || status != http.StatusUnauthorized {
		if ws != nil {
			ws.CloseNow()
		}
		t.Fatalf("1000h token: status %d, want 401", status)
	}
	ok, _ := MintToken(testSecret, 5, time.Now().Add(time.Hour))
	ws, status, err := dialRaw(ctx, th.wsURL(), ok, nil, nil)
	if err != nil {
		t.Fatalf("1h token: status %d: %v", status, err)
	}
	ws.CloseNow()
}
