package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/agentws"
	"github.com/omlcrm/oml-crm/config"
)

// maxSecretFile bounds what --secret-file reads (a secret is a line, not a file dump).
const maxSecretFile = 4096

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("token", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String(config.ConfigFlag, "", "YAML configuration file holding agentws.token_secret (OMLCRM_AGENTWS_TOKEN_SECRET overrides it)")
	agent := fs.Int("agent", 0, "OMniLeads agent id (ominicontacto_app_agenteprofile.id) the token is for (required)")
	ttl := fs.Duration("ttl", 12*time.Hour, "how long the token is valid (at most agentws.token_max_ttl, 24h by default)")
	secretFile := fs.String("secret-file", "", "file holding the token secret (first line); overrides agentws.token_secret")
	asJSON := fs.Bool("json", false, "print {\"token\", \"agent\", \"expires_at\"} instead of the bare token")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: oml-crm token --agent ID [--ttl 12h] [--secret-file F | --config F] [--json]")
		fmt.Fprintln(stdout, "\nMints an agent websocket token (agentws.auth=token): an HMAC-SHA256-signed agent id and")
		fmt.Fprintln(stdout, "expiry. Give it to the agent page as ?token=… or OmlCrm.connect({token}). The secret comes")
		fmt.Fprintln(stdout, "from --secret-file, else agentws.token_secret (--config file or OMLCRM_AGENTWS_TOKEN_SECRET);")
		fmt.Fprintln(stdout, "it must be the daemon's. Exit 0 on success, 2 on usage or configuration errors.")
		fmt.Fprintln(stdout, "\nFlags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "oml-crm token: "+format+"\n", a...)
		return 2
	}

	cfg, err := loadConfig(fs, args)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		return fail("%v (see oml-crm token --help)", err)
	}
	if fs.NArg() > 0 {
		return fail("unexpected arguments %q (see oml-crm token --help)", fs.Args())
	}
	if *agent <= 0 {
		return fail("--agent is required: a positive OMniLeads agent id")
	}
	if *ttl <= 0 {
		return fail("--ttl %s: must be positive", *ttl)
	}
	if !fs.Changed("ttl") && *ttl > cfg.AgentWS.TokenMaxTTL {
		*ttl = cfg.AgentWS.TokenMaxTTL // the default never exceeds the configured maximum
	}
	if *ttl > cfg.AgentWS.TokenMaxTTL {
		return fail("--ttl %s: longer than agentws.token_max_ttl (%s), which /ws enforces", *ttl, cfg.AgentWS.TokenMaxTTL)
	}

	secret, source := cfg.AgentWS.TokenSecret.Reveal(), "agentws.token_secret"
	if *secretFile != "" {
		source = "--secret-file " + *secretFile
		if secret, err = readSecretFile(*secretFile); err != nil {
			return fail("%v", err)
		}
	}
	if secret == "" {
		return fail("no token secret: set agentws.token_secret (--config or OMLCRM_AGENTWS_TOKEN_SECRET) or give --secret-file")
	}
	if len(secret) < agentws.MinTokenSecret {
		return fail("the token secret from %s is shorter than %d bytes", source, agentws.MinTokenSecret)
	}
	expires := time.Now().Add(*ttl)
	tok, err := agentws.MintToken([]byte(secret), *agent, expires)
	if err != nil {
		return fail("%v", err)
	}
	if *asJSON {
		out, _ := json.Marshal(map[string]any{"token": tok, "agent": *agent, "expires_at": expires.UTC().Truncate(time.Second)})
		fmt.Fprintln(stdout, string(out))
		return 0
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// readSecretFile returns the first line of path, without surrounding blanks.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read --secret-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("read --secret-file %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("--secret-file %s is larger than %d bytes: want the secret on one line", path, maxSecretFile)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), nil
}
