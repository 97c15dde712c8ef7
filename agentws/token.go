package agentws

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Agent tokens are "v1.<agent id>.<expiry, unix seconds>.<signature>", the signature being
// the unpadded base64url HMAC-SHA256, keyed by the token secret, of everything before the
// last dot. Every character is valid in a URL query and in a Sec-WebSocket-Protocol
// token, so the browser can carry it either way. Any backend that shares the secret can
// mint them.

// MinTokenSecret is the shortest token secret accepted, in bytes.
const MinTokenSecret = 16

const tokenVersion = "v1"

// Token errors; each refusal wraps one of them.
var (
	ErrTokenMalformed = errors.New("malformed agent token")
	ErrTokenSignature = errors.New("agent token signature does not match")
	ErrTokenExpired   = errors.New("agent token expired")
	ErrTokenTooLong   = errors.New("agent token lifetime exceeds agentws.token_max_ttl")
)

// tokenClockSkew is how far a minting backend's clock may run ahead of ours before a
// token at exactly the maximum lifetime is refused as too long.
const tokenClockSkew = time.Minute

// MintToken returns a token for agentID valid until expires.
func MintToken(secret []byte, agentID int, expires time.Time) (string, error) {
	if len(secret) < MinTokenSecret {
		return "", fmt.Errorf("mint agent token: the token secret must be at least %d bytes", MinTokenSecret)
	}
	if agentID <= 0 {
		return "", fmt.Errorf("mint agent token: agent id must be positive, got %d", agentID)
	}
	body := tokenVersion + "." + strconv.Itoa(agentID) + "." + strconv.FormatInt(expires.Unix(), 10)
	return body + "." + tokenSignature(secret, body), nil
}

// VerifyToken checks token's signature and expiry at now and returns its agent id.
func VerifyToken(secret []byte, token string, now time.Time) (int, error) {
	return VerifyTokenLifetime(secret, token, now, 0)
}

// VerifyTokenLifetime is VerifyToken that also refuses (ErrTokenTooLong) a token
// expiring more than maxTTL after now (a token carries no issue time: what is left of
// its life is what can be checked). maxTTL 0 = no maximum.
func VerifyTokenLifetime(secret []byte, token string, now time.Time, maxTTL time.Duration) (int, error) {
	if len(token) > 256 {
		return 0, fmt.Errorf("%w: too long", ErrTokenMalformed)
	}
	body, sig, ok := cutLast(token, ".")
	if !ok {
		return 0, ErrTokenMalformed
	}
	parts := strings.Split(body, ".")
	if len(parts) != 3 || parts[0] != tokenVersion {
		return 0, fmt.Errorf("%w: want %s.<agent>.<expiry>.<signature>", ErrTokenMalformed, tokenVersion)
	}
	// Check the signature before trusting any field.
	if !hmac.Equal([]byte(sig), []byte(tokenSignature(secret, body))) {
		return 0, ErrTokenSignature
	}
	agentID, err := strconv.Atoi(parts[1])
	if err != nil || agentID <= 0 {
		return 0, fmt.Errorf("%w: agent id", ErrTokenMalformed)
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: expiry", ErrTokenMalformed)
	}
	if !now.Before(time.Unix(exp, 0)) {
		return 0, fmt.Errorf("%w at %s", ErrTokenExpired, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	if maxTTL > 0 && time.Unix(exp, 0).After(now.Add(maxTTL+tokenClockSkew)) {
		return 0, fmt.Errorf("%w (%s): it expires at %s", ErrTokenTooLong, maxTTL, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	return agentID, nil
}

func tokenSignature(secret []byte, body string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
