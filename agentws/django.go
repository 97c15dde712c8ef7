package agentws

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/hmac"
	"crypto/sha1"
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
	"github.com/jackc/pgx/v5/pgconn"
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
	ErrNoSessionHash    = errors.New("session has no _auth_user_hash (Django logs such a session out)")
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

// AgentUser implements SessionStore. A user must be active, not deleted (borrado) and
// flagged is_agente, as OMniLeads' agent console requires, with a live (not deleted, not
// inactive) agent profile.
func (s *PGSessionStore) AgentUser(ctx context.Context, userID int) (AgentUser, error) {
	var a AgentUser
	err := s.pool.QueryRow(ctx, `
		SELECT ap.id, u.password
		  FROM ominicontacto_app_agenteprofile ap
		  JOIN ominicontacto_app_user u ON u.id = ap.user_id
		 WHERE ap.user_id = $1 AND NOT ap.borrado AND NOT ap.is_inactive
		   AND u.is_active AND u.is_agente AND NOT u.borrado
		 ORDER BY ap.id LIMIT 1`, userID).Scan(&a.AgentID, &a.PasswordHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return AgentUser{}, fmt.Errorf("%w: user %d", ErrNotAgent, userID)
	}
	if err != nil {
		return AgentUser{}, fmt.Errorf("read agent profile of user %d: %w", userID, err)
	}
	return a, nil
}

// ErrNoGrant is wrapped by CheckAccess when the database role lacks a grant.
var ErrNoGrant = errors.New("the database role lacks a grant")

// CheckAccess runs the store's two queries with values that match no row, so that a
// missing SELECT grant (on django_session, or on the ominicontacto_app_user and
// ominicontacto_app_agenteprofile columns read) is found before an agent connects
// rather than as a 503 on every connection. A missing grant wraps ErrNoGrant and names
// the table; any other failure (database down) is returned as is.
func (s *PGSessionStore) CheckAccess(ctx context.Context) error {
	var errs []error
	if _, err := s.SessionData(ctx, ""); err != nil && !errors.Is(err, ErrNoSession) {
		errs = append(errs, grantError(err))
	}
	if _, err := s.AgentUser(ctx, 0); err != nil && !errors.Is(err, ErrNotAgent) {
		errs = append(errs, grantError(err))
	}
	return errors.Join(errs...)
}

func grantError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" { // insufficient_privilege
		return fmt.Errorf("%w: %s", ErrNoGrant, pgErr.Message)
	}
	return err
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
// secretKey is not empty the signature is verified first, as Django 3.2's Signer does:
// the sha256 signature, or the legacy sha1 one it still accepts.
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
		legacy := base64.RawURLEncoding.EncodeToString(djangoSaltedHMACSHA1(djangoSessionSalt+"signer", secretKey, signed))
		if !hmac.Equal([]byte(sig), []byte(want)) && !hmac.Equal([]byte(sig), []byte(legacy)) {
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

// verifyDjangoUserHash checks _auth_user_hash against the user's password hash as Django
// 3.2's django.contrib.auth.get_user does: a session without the hash, or whose hash
// matches neither the sha256 hash nor the legacy sha1 one, is logged out. Without the
// SECRET_KEY nothing can be verified, so nothing is accepted.
func verifyDjangoUserHash(s djangoSession, passwordHash, secretKey string) error {
	switch {
	case secretKey == "":
		return errors.New("no Django SECRET_KEY to verify the session with (agentws.django_secret_key)")
	case s.UserHash == "":
		return ErrNoSessionHash
	}
	want := hex.EncodeToString(djangoSaltedHMAC(djangoAuthHashSalt, secretKey, passwordHash))
	legacy := hex.EncodeToString(djangoSaltedHMACSHA1(djangoAuthHashSalt, secretKey, passwordHash))
	if !hmac.Equal([]byte(s.UserHash), []byte(want)) && !hmac.Equal([]byte(s.UserHash), []byte(legacy)) {
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

// djangoSaltedHMACSHA1 is salted_hmac with algorithm sha1, which Django 3.2 still accepts
// for signatures and session hashes made before DEFAULT_HASHING_ALGORITHM became sha256.
func djangoSaltedHMACSHA1(keySalt, secret, value string) []byte {
	key := sha1.Sum([]byte(keySalt + secret))
	m := hmac.New(sha1.New, key[:])
	m.Write([]byte(value))
	return m.Sum(nil)
}
