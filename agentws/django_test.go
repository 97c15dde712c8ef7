package agentws

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// omlSecretKey is the SECRET_KEY of OMniLeads' oml_settings_local.py that signed the
// sample session (see ../shared/reference/omnileads-db-README.md).
const omlSecretKey = "s1+*bfrvb@=k@c&9=pm!0sijjewneu5p5rojil#q+!a2y&as-4"

const sampleSessionKey = "itra0tqlxylyiij4c8822dn0w3mgobne"

// djangoDumps is signing.dumps(obj, salt=SessionStore key salt, compress=True) as Django
// 3.2 writes session_data, for sessions the sample does not have.
func djangoDumps(t *testing.T, jsonPayload, secret string) string {
	t.Helper()
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(jsonPayload))
	zw.Close()
	payload := "." + base64.RawURLEncoding.EncodeToString(z.Bytes())
	signed := payload + ":" + base62(time.Now().Unix())
	return signed + ":" + base64.RawURLEncoding.EncodeToString(djangoSaltedHMAC(djangoSessionSalt+"signer", secret, signed))
}

func base62(n int64) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var out []byte
	for n > 0 {
		out = append([]byte{digits[n%62]}, out...)
		n /= 62
	}
	return string(out)
}

func TestDecodeDjangoSessionSample(t *testing.T) {
	// The sample row of the OMniLeads reference data, as its Django wrote it.
	const data = ".eJxVjDsOwjAUBO_iGlnGjj-hpM8ZrPV7Ng6gRIqTCnF3iJQC2p2ZfYmIba1xa3mJI4uL0OL0uyXQI0874Dum2yxpntZlTHJX5EGbHGbOz-vh_h1UtPqtEyN5MshKk6OC4FAYsKFY4xhKmzMHQs5M3vcGxpq-61QgDtC6C-L9ASkXOOY:1xVj4P:0D3uKTNNaQLkcR1_CPLz4Z0jmJdgG4JuMgXSyK5QUlI"
	s, err := decodeDjangoSession(data, omlSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	if s.UserID != 2 || s.UserHash != "bdab7c3ae02c6cfa86afdaa58f536da0231d8caeedc7793a35394408cd8a2248" {
		t.Fatalf("decoded %+v", s)
	}
	if _, err := decodeDjangoSession(data, "another secret"); !errors.Is(err, ErrSessionSigned) {
		t.Fatalf("wrong SECRET_KEY: %v", err)
	}
	for _, bad := range []string{"", "nocolons", "a:b", ".!!!:1xVj4P:sig", "eyJ4IjoxfQ:1xVj4P:sig"} {
		if _, err := decodeDjangoSession(bad, ""); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

// TestDjangoSessionAuth runs the django-session mode against OMniLeads' real 2.6.3 schema
// and sample rows in PostgreSQL.
func TestDjangoSessionAuth(t *testing.T) {
	dbURL := pgtest.NewOMniLeadsDatabase(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	insertSession := func(key, data string, expires string) {
		exec(`INSERT INTO django_session (session_key, session_data, expire_date) VALUES ($1, $2, now() + $3::interval)`, key, data, expires)
	}
	// user 1 (supervisor1) has no agent profile.
	insertSession("supervisorsession0000000000000000", djangoDumps(t, `{"_auth_user_id":"1","_auth_user_backend":"django.contrib.auth.backends.ModelBackend"}`, omlSecretKey), "1 hour")
	insertSession("expiredsession000000000000000000", djangoDumps(t, `{"_auth_user_id":"2"}`, omlSecretKey), "-1 second")
	insertSession("forgedsession0000000000000000000", djangoDumps(t, `{"_auth_user_id":"2"}`, "not-the-secret"), "1 hour")
	insertSession("stalehashsession0000000000000000", djangoDumps(t, `{"_auth_user_id":"2","_auth_user_hash":"00ff"}`, omlSecretKey), "1 hour")
	insertSession("anonymoussession0000000000000000", djangoDumps(t, `{"_language":"es"}`, omlSecretKey), "1 hour")

	// The password hash of agent user 2, for sessions with a valid _auth_user_hash.
	var password string
	if err := pool.QueryRow(context.Background(), `SELECT password FROM ominicontacto_app_user WHERE id = 2`).Scan(&password); err != nil {
		t.Fatal(err)
	}
	userHash := hex.EncodeToString(djangoSaltedHMAC(djangoAuthHashSalt, omlSecretKey, password))
	legacyHash := hex.EncodeToString(djangoSaltedHMACSHA1(djangoAuthHashSalt, omlSecretKey, password))
	insertSession("nohashsession0000000000000000000", djangoDumps(t, `{"_auth_user_id":"2"}`, omlSecretKey), "1 hour")
	insertSession("legacyhashsession000000000000000", djangoDumps(t, `{"_auth_user_id":"2","_auth_user_hash":"`+legacyHash+`"}`, omlSecretKey), "1 hour")

	store := NewPGSessionStore(pool)
	withKey := newTestHub(t, Options{Auth: AuthDjangoSession, Sessions: store, DjangoSecretKey: omlSecretKey})
	otherCookie := newTestHub(t, Options{Auth: AuthDjangoSession, Sessions: store, SessionCookie: "omlsid", DjangoSecretKey: omlSecretKey})
	// Without OMniLeads' SECRET_KEY nothing about a session can be verified: no hub.
	if _, err := New(Options{Auth: AuthDjangoSession, Sessions: store, Logger: zerolog.Nop(), Registerer: prometheus.NewRegistry()}); err == nil ||
		!strings.Contains(err.Error(), "agentws.django_secret_key") {
		t.Errorf("hub without the Django SECRET_KEY: %v", err)
	}

	bodies := map[string]string{}
	dial := func(th *testHub, cookie string) (int, int) {
		t.Helper()
		hdr := http.Header{}
		if cookie != "" {
			hdr.Set("Cookie", cookie)
		}
		ws, status, err := dialRaw(context.Background(), th.wsURL(), "", hdr, nil)
		if err != nil {
			bodies[cookie] = refusalBody(t, th, hdr)
			return 0, status
		}
		defer ws.CloseNow()
		_, b, err := ws.Read(context.Background())
		if err != nil {
			t.Fatalf("read hello: %v", err)
		}
		var hello struct {
			Type    string `json:"type"`
			AgentID int    `json:"agent_id"`
		}
		if err := json.Unmarshal(b, &hello); err != nil || hello.Type != TypeHello {
			t.Fatalf("hello %s: %v", b, err)
		}
		return hello.AgentID, 0
	}

	cases := []struct {
		name       string
		th         *testHub
		cookie     string
		wantAgent  int
		wantStatus int
	}{
		{"sample session of agent user 2 is agent 1", withKey, "sessionid=" + sampleSessionKey, 1, 0},
		{"configured cookie name", otherCookie, "omlsid=" + sampleSessionKey, 1, 0},
		{"configured cookie name only", otherCookie, "sessionid=" + sampleSessionKey, 0, http.StatusUnauthorized},
		{"session without _auth_user_hash", withKey, "sessionid=nohashsession0000000000000000000", 0, http.StatusUnauthorized},
		{"legacy sha1 _auth_user_hash (Django 3.2 accepts it)", withKey, "sessionid=legacyhashsession000000000000000", 1, 0},
		{"non-agent user (supervisor1)", withKey, "sessionid=supervisorsession0000000000000000", 0, http.StatusUnauthorized},
		{"expired session", withKey, "sessionid=expiredsession000000000000000000", 0, http.StatusUnauthorized},
		{"signature by another key", withKey, "sessionid=forgedsession0000000000000000000", 0, http.StatusUnauthorized},
		{"password changed since login", withKey, "sessionid=stalehashsession0000000000000000", 0, http.StatusUnauthorized},
		{"anonymous session", withKey, "sessionid=anonymoussession0000000000000000", 0, http.StatusUnauthorized},
		{"unknown session", withKey, "sessionid=nosuchsession", 0, http.StatusUnauthorized},
		{"no cookie", withKey, "", 0, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agent, status := dial(tc.th, tc.cookie)
			if agent != tc.wantAgent || status != tc.wantStatus {
				t.Fatalf("agent %d status %d, want agent %d status %d", agent, status, tc.wantAgent, tc.wantStatus)
			}
		})
	}

	// Tampering with the stored row breaks the signature: refused with SECRET_KEY.
	exec(`UPDATE django_session SET session_data = replace(session_data, ':1xVj4P:', ':1xVj4Q:') WHERE session_key = $1`, sampleSessionKey)
	if agent, status := dial(withKey, "sessionid="+sampleSessionKey); status != http.StatusUnauthorized {
		t.Fatalf("tampered sample row: agent %d status %d, want 401", agent, status)
	}

	// A user that is not (any more) an agent, inactive, or whose agent profile is deleted
	// (borrado) is refused even with a good session.
	exec(`UPDATE django_session SET session_data = $1 WHERE session_key = $2`,
		djangoDumps(t, `{"_auth_user_id":"2","_auth_user_hash":"`+userHash+`"}`, omlSecretKey), sampleSessionKey)
	if agent, _ := dial(withKey, "sessionid="+sampleSessionKey); agent != 1 {
		t.Fatalf("re-signed session: agent %d", agent)
	}
	for _, change := range []struct{ name, do, undo string }{
		{"user without is_agente", `UPDATE ominicontacto_app_user SET is_agente = false WHERE id = 2`, `UPDATE ominicontacto_app_user SET is_agente = true WHERE id = 2`},
		{"inactive user", `UPDATE ominicontacto_app_user SET is_active = false WHERE id = 2`, `UPDATE ominicontacto_app_user SET is_active = true WHERE id = 2`},
		{"inactive agent profile", `UPDATE ominicontacto_app_agenteprofile SET is_inactive = true WHERE user_id = 2`, `UPDATE ominicontacto_app_agenteprofile SET is_inactive = false WHERE user_id = 2`},
		{"deleted agent", `UPDATE ominicontacto_app_agenteprofile SET borrado = true WHERE user_id = 2`, `UPDATE ominicontacto_app_agenteprofile SET borrado = false WHERE user_id = 2`},
	} {
		exec(change.do)
		if _, status := dial(withKey, "sessionid="+sampleSessionKey); status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", change.name, status)
		}
		exec(change.undo)
	}
	exec(`UPDATE ominicontacto_app_agenteprofile SET borrado = true WHERE user_id = 2`)

	// No 401 body names a user or an agent id.
	if len(bodies) < 5 || !strings.Contains(bodies["sessionid=supervisorsession0000000000000000"], "not an active agent") {
		t.Errorf("refusal bodies not collected: %q", bodies)
	}
	for cookie, body := range bodies {
		if strings.Contains(body, "user 1") || strings.Contains(body, "user 2") || strings.Contains(body, "agent 1") {
			t.Errorf("401 body for %q reveals an id: %s", cookie, body)
		}
	}

	// The database down is 503 (retry), not 401 (log in again).
	pool.Close()
	if _, status := dial(withKey, "sessionid="+sampleSessionKey); status != http.StatusServiceUnavailable {
		t.Fatalf("database down: status %d, want 503", status)
	}
}

// refusalBody is the body of a refused /ws request (refusals come before the upgrade).
func refusalBody(t *testing.T, th *testHub, hdr http.Header) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, strings.Replace(th.wsURL(), "ws://", "http://", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
