package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/agentws"
)

func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	const secret = "file-secret-0123456789abcdef"
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "oml-crm.yaml")
	const cfgSecret = "config-secret-0123456789abcdef"
	if err := os.WriteFile(cfgFile, []byte("agentws:\n  token_secret: "+cfgSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := runToken(context.Background(), args, &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, _ := run("--help")
	if code != 0 || !strings.Contains(out, "--agent") || !strings.Contains(out, "--ttl") || !strings.Contains(out, "--secret-file") {
		t.Fatalf("--help: %d %q", code, out)
	}

	code, out, errs := run("--agent", "7", "--ttl", "1h", "--secret-file", secretFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	id, err := agentws.VerifyToken([]byte(secret), strings.TrimSpace(out), time.Now())
	if err != nil || id != 7 {
		t.Fatalf("minted token: %d %v", id, err)
	}
	if _, err := agentws.VerifyToken([]byte(secret), strings.TrimSpace(out), time.Now().Add(61*time.Minute)); err == nil {
		t.Error("token outlives --ttl 1h")
	}

	code, out, errs = run("--agent", "8", "--config", cfgFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if id, err := agentws.VerifyToken([]byte(cfgSecret), strings.TrimSpace(out), time.Now()); err != nil || id != 8 {
		t.Fatalf("token from --config: %d %v", id, err)
	}

	t.Setenv("OMLCRM_AGENTWS_TOKEN_SECRET", "env-secret-0123456789abcdef")
	code, out, _ = run("--agent", "9")
	if id, err := agentws.VerifyToken([]byte("env-secret-0123456789abcdef"), strings.TrimSpace(out), time.Now()); code != 0 || err != nil || id != 9 {
		t.Fatalf("token from env: %d %d %v", code, id, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--agent is required"},
		{[]string{"--agent", "1", "--ttl", "-1h"}, "--ttl"},
		{[]string{"--agent", "1", "--ttl", "1000h"}, "agentws.token_max_ttl"},
		{[]string{"--agent", "1", "--ttl", "25h"}, "agentws.token_max_ttl"},
		{[]string{"--agent", "1", "--secret-file", filepath.Join(dir, "missing")}, "--secret-file"},
	} {
		code, _, errs := run(tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to mention %s", tc.args, code, errs, tc.want)
		}
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tiny"), 0o600)
	code, _, errs = run("--agent", "1", "--secret-file", short)
	if code != 2 || strings.Contains(errs, "tiny") || !strings.Contains(errs, "shorter than") {
		t.Errorf("short secret: exit %d %q (the secret must not be printed)", code, errs)
	}

	// A configured maximum below the default --ttl lowers the default.
	t.Setenv("OMLCRM_AGENTWS_TOKEN_MAX_TTL", "2h")
	code, out, errs = run("--agent", "4")
	if code != 0 {
		t.Fatalf("default --ttl under a 2h maximum: exit %d %s", code, errs)
	}
	if _, err := agentws.VerifyTokenLifetime([]byte("env-secret-0123456789abcdef"), strings.TrimSpace(out), time.Now(), 2*time.Hour); err != nil {
		t.Errorf("default --ttl under a 2h maximum: %v", err)
	}
}
