package agentws

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Django session errors; each refusal wraps one of them.
var (
	ErrNoSession        = errors.New("no live session in django_session")
	ErrSessionData      = errors.New("undecodable session_data")
	ErrSessionSigned    = errors.New("session_data signature does not match the Django SECRET_KEY")
	ErrNotAuthenticated = errors.New("session has no authenticated user")
	ErrNotAgent         = errors.New("user is not an active OMniLeads agent")
	ErrSessionHash      = errors.New("session hash does not match the user's password (changed since login)")
)

// AgentUser is what the hub needs of an OMniLeads user that is an agent.
type AgentUser struct {
	AgentID int // ominicontacto_app_agenteprofile.id
	// PasswordHash is ominicontacto_app_user.password: with the Django SECRET_KEY it
	// verifies _auth_user_hash, so that a password change ends the session as in Django.
	PasswordHash string
}

// SessionStore reads OMniLeads' Django sessions and agent profiles.
type SessionStore interface {
	// SessionData returns django_session.session_data of the session whose key is key and
	// whose expire_date is in the future; ErrNoSession (wrapped) when there is none.
	SessionData(ctx context.Context, key string) (string, error)
	// AgentUser returns the agent profile of user userID; ErrNotAgent (wrapped) when the
	// user has no live agent profile.
	AgentUser(ctx context.Context, userID int) (AgentUser, error)
}

// PGSessionStore is the SessionStore over the OMniLeads PostgreSQL database.
type PGSessionStore struct {
	pool *pgxpool.Pool
}

// NewPGSessionStore reads sessions through pool (the OMniLeads database).
func NewPGSessionStore(pool *pgxpool.Pool) *PGSessionStore { return &PGSessionStore{pool: pool} }

// SessionData implements SessionStore.
func (s *PGSessionStore) SessionData(ctx context.Context, key string) (string, error) {
	var data string
	err := s.pool.QueryRow(ctx,
		`SELECT session_data FROM django_session WHERE session_key = $1 AND expire_date > now()`, key).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNoSession
	}
	if err != nil {
		return "", fmt.Errorf("read django_session: %w", err)
	}
	return data, nil
}

// AgentUser implements SessionStore. Deleted (borrado) or inactive agents and users are
// not agents.
func (s *PGSessionStore) AgentUser(ctx context.Context, userID int) (AgentUser, error) {
	var a AgentUser
	err := s.pool.QueryRow(ctx, `
		SELECT ap.id, u.password
		  FROM ominicontacto_app_agenteprofile ap
		  JOIN ominicontacto_app_user u ON u.id = ap.user_id
		 WHERE ap.user_id = $1 AND NOT ap.borrado AND NOT ap.is_inactive
		   AND u.is_active AND NOT u.borrado
		 ORDER BY ap.id LIMIT 1`, userID).Scan(&a.AgentID, &a.PasswordHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return AgentUser{}, fmt.Errorf("%w: user %d", ErrNotAgent, userID)
	}
	if err != nil {
		return AgentUser{}, fmt.Errorf("read agent profile of user %d: %w", userID, err)
	}
	return a, nil
}

// djangoSession is the decoded part of a session the hub uses.
type djangoSession struct {
	UserID   int
	UserHash string // _auth_user_hash, "" when absent
}

// Salts Django 3.2 uses (django.contrib.sessions.backends.base.SessionBase.key_salt with
// the db backend's SessionStore class, and AbstractBaseUser.get_session_auth_hash).
const (
	djangoSessionSalt  = "django.contrib.sessions.SessionStore"
	djangoAuthHashSalt = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"
)

// maxSessionData bounds what is decoded (a session of a logged-in agent is ~200 bytes).
const maxSessionData = 64 << 10

// decodeDjangoSession decodes Django ≥3.1 session_data (signing.dumps output:
// "[.]<b64url payload>:<b62 timestamp>:<b64url signature>", "." meaning zlib). When
// secretKey is not empty the signature is verified first.
func decodeDjangoSession(data, secretKey string) (djangoSession, error) {
	if len(data) > maxSessionData {
		return djangoSession{}, fmt.Errorf("%w: %d bytes", ErrSessionData, len(data))
	}
	signed, sig, ok := cutLast(data, ":")
	if !ok {
		return djangoSession{}, fmt.Errorf("%w: not signing.dumps output (sessions older than Django 3.1 are not supported)", ErrSessionData)
	}
	payload, _, ok := strings.Cut(signed, ":")
	if !ok {
		return djangoSession{}, fmt.Errorf("%w: no timestamp", ErrSessionData)
	}
	if secretKey != "" {
		want := base64.RawURLEncoding.EncodeToString(djangoSaltedHMAC(djangoSessionSalt+"signer", secretKey, signed))
		if !hmac.Equal([]byte(sig), []byte(want)) {
			return djangoSession{}, ErrSessionSigned
		}
	}
	compressed := strings.HasPrefix(payload, ".")
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimPrefix(payload, "."), "="))
	if err != nil {
		return djangoSession{}, fmt.Errorf("%w: payload base64: %v", ErrSessionData, err)
	}
	if compressed {
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			return djangoSession{}, fmt.Errorf("%w: payload zlib: %v", ErrSessionData, err)
		}
		raw, err = io.ReadAll(io.LimitReader(zr, maxSessionData+1))
		if err != nil {
			return djangoSession{}, fmt.Errorf("%w: payload zlib: %v", ErrSessionData, err)
		}
		if len(raw) > maxSessionData {
			return djangoSession{}, fmt.Errorf("%w: decompressed payload too large", ErrSessionData)
		}
	}
	var fields struct {
		UserID   json.RawMessage `json:"_auth_user_id"`
		UserHash string          `json:"_auth_user_hash"`
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return djangoSession{}, fmt.Errorf("%w: payload JSON: %v", ErrSessionData, err)
	}
	if len(fields.UserID) == 0 || string(fields.UserID) == "null" {
		return djangoSession{}, ErrNotAuthenticated
	}
	// Django stores the primary key as a string ("2"); accept a bare number too.
	idText := string(fields.UserID)
	if unq, err := strconv.Unquote(idText); err == nil {
		idText = unq
	}
	uid, err := strconv.Atoi(idText)
	if err != nil || uid <= 0 {
		return djangoSession{}, fmt.Errorf("%w: _auth_user_id %s", ErrSessionData, fields.UserID)
	}
	return djangoSession{UserID: uid, UserHash: fields.UserHash}, nil
}

// verifyDjangoUserHash checks _auth_user_hash against the user's password hash as
// django.contrib.auth.get_user does (sha256, Django 3.2's default algorithm).
func verifyDjangoUserHash(s djangoSession, passwordHash, secretKey string) error {
	if secretKey == "" || s.UserHash == "" {
		return nil
	}
	want := hex.EncodeToString(djangoSaltedHMAC(djangoAuthHashSalt, secretKey, passwordHash))
	if !hmac.Equal([]byte(s.UserHash), []byte(want)) {
		return ErrSessionHash
	}
	return nil
}

// djangoSaltedHMAC is django.utils.crypto.salted_hmac with algorithm sha256:
// HMAC-SHA256 keyed by SHA256(keySalt + secret).
func djangoSaltedHMAC(keySalt, secret, value string) []byte {
	key := sha256.Sum256([]byte(keySalt + secret))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(value))
	return m.Sum(nil)
}
