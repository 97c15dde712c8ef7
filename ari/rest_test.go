package ari_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
)

const (
	testUser = "omlcrm"
	testPass = "s3cret-ñ&:x"
)

func readCapture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(captureDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// captureErrorBody returns the JSON body of a captured error reply (.txt files hold the body
// and an "HTTP nnn" line, in either order, or the body alone).
func captureErrorBody(t *testing.T, name string) string {
	t.Helper()
	for _, line := range strings.Split(string(readCapture(t, name)), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "{") {
			return line
		}
	}
	t.Fatalf("%s holds no JSON body", name)
	return ""
}

// newRESTClient dials a client for REST use against srv (the events loop runs too).
func newRESTClient(t *testing.T, srv *aritest.Server, mod func(*ari.Config)) *ari.Client {
	t.Helper()
	cfg := ari.Config{
		URL: srv.URL(), Username: testUser, Password: testPass, App: "omlcrm", SubscribeAll: true,
		Logger: zerolog.New(zerolog.NewTestWriter(t)),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := ari.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func capturedServer(t *testing.T) *aritest.Server {
	t.Helper()
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	srv.SetInfo(readCapture(t, "oml-rest-asterisk-info.json"))
	if err := srv.SetChannelsJSON(readCapture(t, "oml-rest-channels.json")); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddChannelJSON(readCapture(t, "oml-rest-channel-agent.json")); err != nil {
		t.Fatal(err)
	}
	if err := srv.SetBridgeJSON(readCapture(t, "oml-rest-bridge.json")); err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestRESTAgainstCapturedReplies(t *testing.T) {
	srv := capturedServer(t)
	const customer, agent = "1795483613.447", "1795483615.448"
	srv.SetVariable(customer, "OMLCAMPID", "75")
	srv.SetVariable(customer, "OMLCRM_ticket", "T-7500")
	srv.SetVariable(agent, "OMLRECFILENAME", "in-75-20261124-4149014-1795483613.447")
	srv.SetVariable(agent, "PJSIP_HEADER(read,Omlcrmticket)", "T-55 ñ&x=1/2")
	c := newRESTClient(t, srv, nil)
	ctx := context.Background()

	// A dialplan function as the variable name travels query-escaped.
	if v, err := c.Variable(ctx, agent, "PJSIP_HEADER(read,Omlcrmticket)"); err != nil || v != "T-55 ñ&x=1/2" {
		t.Errorf("PJSIP_HEADER = %q, %v", v, err)
	}

	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.System.Version != "22.10.1" || info.System.EntityID != "02:fc:00:00:00:01" || info.Config.MaxChannels != 1000 || info.Build.Machine != "x86_64" {
		t.Errorf("info %+v", info)
	}
	if st, err := ari.ParseTime(info.Status.StartupTime); err != nil || st.UTC().Format(time.RFC3339Nano) != "2026-11-24T01:22:54.596Z" {
		t.Errorf("startup time %q → %v, %v", info.Status.StartupTime, st, err)
	}

	chans, err := c.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 4 {
		t.Fatalf("%d channels, want 4", len(chans))
	}
	if ch := chans[1]; ch.ID != customer || ch.Name != "Local/7500@oml-stasis-000000df;2" || ch.Dialplan.AppData != "omlcrm-acd,inbound,75" || ch.Caller.Number != "4149014" || ch.Dialplan.Priority != 3 {
		t.Errorf("channel 1: %+v", ch)
	}

	ch, err := c.Channel(ctx, agent)
	if err != nil || ch.Name != "Local/1003@oml-agent-000000e0;1" || ch.State != "Up" {
		t.Errorf("Channel(agent) = %+v, %v", ch, err)
	}
	if _, err := c.Channel(ctx, "1.999"); !errors.Is(err, ari.ErrChannelNotFound) {
		t.Errorf("Channel(missing) err %v, want ErrChannelNotFound", err)
	}
	br, err := c.Bridge(ctx, "3871e67a-79e3-4bc7-b18e-f2842359a879")
	if err != nil || br.BridgeClass != "stasis" || len(br.Channels) != 2 {
		t.Errorf("Bridge = %+v, %v", br, err)
	}
	if _, err := c.Bridge(ctx, "nope"); !errors.Is(err, ari.ErrBridgeNotFound) {
		t.Errorf("Bridge(missing) err %v", err)
	}

	for _, tc := range []struct{ ch, name, capture string }{
		{customer, "OMLCAMPID", "oml-rest-variable.json"},
		{customer, "OMLCRM_ticket", "oml-rest-variable-dialplan-data.json"},
		{agent, "OMLRECFILENAME", "oml-rest-variable-recfilename.json"},
	} {
		v, err := c.Variable(ctx, tc.ch, tc.name)
		if err != nil {
			t.Fatalf("Variable(%s): %v", tc.name, err)
		}
		// The fake's reply must be Asterisk's, byte for byte.
		if body := `{"value":"` + v + `"}`; body != string(readCapture(t, tc.capture)) {
			t.Errorf("Variable(%s) = %q; Asterisk replied %s", tc.name, v, readCapture(t, tc.capture))
		}
	}
}

func TestRESTErrors(t *testing.T) {
	srv := capturedServer(t)
	c := newRESTClient(t, srv, nil)
	ctx := context.Background()

	_, err := c.Variable(ctx, "1795483613.447", "NOT_SET")
	var he *ari.HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("missing variable: %v, want *HTTPError", err)
	}
	wantMsg := strings.Trim(strings.TrimPrefix(captureErrorBody(t, "oml-rest-variable-missing.txt"), `{"message":`), `"}`)
	if he.Status != 404 || he.Message != wantMsg || he.Method != "GET" || he.Path != "/ari/channels/1795483613.447/variable?variable=NOT_SET" {
		t.Errorf("missing variable: %#v (want message %q)", he, wantMsg)
	}
	if !errors.Is(err, ari.ErrVariableNotFound) || !errors.Is(err, ari.ErrNotFound) || errors.Is(err, ari.ErrChannelNotFound) {
		t.Errorf("missing variable %v: wrong errors.Is matches", err)
	}

	_, err = c.Variable(ctx, "1795483613.999", "OMLCAMPID")
	if !errors.As(err, &he) || he.Status != 404 || `{"message":"`+he.Message+`"}` != captureErrorBody(t, "oml-rest-variable-nochannel.txt") {
		t.Errorf("missing channel: %v", err)
	}
	if !errors.Is(err, ari.ErrChannelNotFound) || !errors.Is(err, ari.ErrNotFound) || errors.Is(err, ari.ErrVariableNotFound) {
		t.Errorf("missing channel %v: wrong errors.Is matches", err)
	}

	_, err = c.Variable(ctx, "1795483613.447", "")
	if !errors.Is(err, ari.ErrBadRequest) {
		t.Errorf("empty variable name: %v, want ErrBadRequest", err)
	}

	bad := newRESTClient(t, srv, func(cfg *ari.Config) { cfg.Password = "wrong" })
	_, err = bad.Channels(ctx)
	if !errors.As(err, &he) || he.Status != 401 || `{"message":"`+he.Message+`"}` != captureErrorBody(t, "oml-rest-bad-auth.txt") {
		t.Errorf("bad credentials: %v", err)
	}
	if !errors.Is(err, ari.ErrUnauthorized) || errors.Is(err, ari.ErrNotFound) {
		t.Errorf("bad credentials %v: wrong errors.Is matches", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error reveals the password: %v", err)
	}
}

func TestRESTAPIKey(t *testing.T) {
	srv := capturedServer(t)
	c := newRESTClient(t, srv, func(cfg *ari.Config) { cfg.Username, cfg.Password, cfg.APIKey = "", "", testUser+":"+testPass })
	if _, err := c.Info(context.Background()); err != nil {
		t.Fatalf("api_key: %v", err)
	}
	bad := newRESTClient(t, srv, func(cfg *ari.Config) { cfg.Username, cfg.Password, cfg.APIKey = "", "", testUser+":nope-secret" })
	_, err := bad.Variable(context.Background(), "1795483613.447", "X")
	if !errors.Is(err, ari.ErrUnauthorized) {
		t.Fatalf("bad api_key: %v", err)
	}
	if strings.Contains(err.Error(), "nope-secret") || strings.Contains(err.Error(), "api_key") {
		t.Errorf("error reveals the api_key: %v", err)
	}
}

// TestRESTTimeout: a server that accepts and never answers makes the request fail after
// RequestTimeout with a deadline error, not hang.
func TestRESTTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { close(hold); srv.Close() })

	c, err := ari.Dial(context.Background(), ari.Config{
		URL: "http://" + ln.Addr().String(), Username: "u", Password: "p", App: "a",
		RequestTimeout: 200 * time.Millisecond, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Variable(context.Background(), "1.1", "OMLCAMPID")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want a deadline error", err)
	}
	if !strings.Contains(err.Error(), "/ari/channels/1.1/variable") {
		t.Errorf("error does not say what was requested: %v", err)
	}
}

// TestRESTResponseLimit: a reply larger than MaxResponse is refused, not read into memory.
func TestRESTResponseLimit(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	for i := range 50 {
		if err := srv.AddChannel(ari.Channel{ID: "1.1" + strings.Repeat("0", i), Name: "Local/x"}); err != nil {
			t.Fatal(err)
		}
	}
	c := newRESTClient(t, srv, func(cfg *ari.Config) { cfg.MaxResponse = 1024 })
	if _, err := c.Channels(context.Background()); err == nil || !strings.Contains(err.Error(), "MaxResponse") {
		t.Fatalf("err %v, want a MaxResponse error", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  ari.Config
		want string
	}{
		{ari.Config{Username: "u", App: "a"}, "URL is required"},
		{ari.Config{URL: "http://127.0.0.1:8088", Username: "u"}, "App"},
		{ari.Config{URL: "http://127.0.0.1:8088", App: "a"}, "APIKey"},
		{ari.Config{URL: "http://127.0.0.1:8088", App: "a", APIKey: "nocolon"}, "user:password"},
		{ari.Config{URL: "ftp://127.0.0.1", App: "a", Username: "u"}, "scheme"},
		{ari.Config{URL: "http://u:hunter2@127.0.0.1", App: "a", Username: "u"}, "credentials"},
	} {
		_, err := ari.Dial(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error reveals a password: %v", err)
		}
	}
}

// TestFakeServesCapturedBytes: the fake hands back the captured bodies byte for byte.
func TestFakeServesCapturedBytes(t *testing.T) {
	srv := capturedServer(t)
	get := func(path string, auth bool) (int, []byte) {
		req, _ := http.NewRequest("GET", srv.URL()+path, nil)
		if auth {
			req.SetBasicAuth(testUser, testPass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if err := srv.SetChannelsJSON(readCapture(t, "oml-rest-channels.json")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path    string
		auth    bool
		status  int
		capture string
	}{
		{"/ari/asterisk/info", true, 200, "oml-rest-asterisk-info.json"},
		{"/ari/channels", true, 200, "oml-rest-channels.json"},
		{"/ari/bridges/3871e67a-79e3-4bc7-b18e-f2842359a879", true, 200, "oml-rest-bridge.json"},
		{"/ari/channels/1795483613.447/variable?variable=NOPE", true, 404, "oml-rest-variable-missing.txt"},
		{"/ari/channels/1.404/variable?variable=OMLCAMPID", true, 404, "oml-rest-variable-nochannel.txt"},
		{"/ari/channels", false, 401, "oml-rest-bad-auth.txt"},
	} {
		status, body := get(tc.path, tc.auth)
		want := string(readCapture(t, tc.capture))
		if strings.HasSuffix(tc.capture, ".txt") {
			want = captureErrorBody(t, tc.capture)
		}
		if status != tc.status || string(body) != want {
			t.Errorf("GET %s: %d %s; Asterisk: %d %s", tc.path, status, body, tc.status, want)
		}
	}
	srv.RemoveChannel("1795483613.447")
	if status, _ := get("/ari/channels/1795483613.447", true); status != 404 {
		t.Errorf("removed channel still served: %d", status)
	}
}

// TestAPIKeyNeverInErrors: with api_key auth the secret is in the URL; no error may carry it.
func TestAPIKeyNeverInErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	const secret = "k3y-s3cr3t"
	c, err := ari.Dial(context.Background(), ari.Config{
		URL: "http://" + addr, APIKey: "omlcrm:" + secret, App: "omlcrm", Logger: zerolog.Nop(),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	wsErr := c.WaitConnected(ctx)
	_, restErr := c.Info(context.Background())
	for _, err := range []error{wsErr, restErr} {
		if err == nil {
			t.Fatal("no error from a closed port")
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "api_key") {
			t.Errorf("error reveals the api_key: %v", err)
		}
	}
}
