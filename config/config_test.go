package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "oml-crm.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := Load("", flags(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Delivery.PostgresURL = want.Database.URL // Load fills it from database.url
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load with nothing set:\n%+v\nwant\n%+v", cfg, want)
	}
	if cfg.AgentWS.MaxFrame != 64<<10 || cfg.Catalog.CacheTTL != 10*time.Second || cfg.Asterisk.AMI.Events[0] != "Newchannel" ||
		cfg.Cluster.RedisPrefix != "omlcrm:" {
		t.Errorf("defaults: %+v", cfg)
	}
	// Out of the box, only the two secrets nobody can default are missing.
	err = cfg.Validate()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Validate() = %v, want Problems", err)
	}
	var keys []string
	for _, p := range ps {
		keys = append(keys, p.Key)
	}
	if !reflect.DeepEqual(keys, []string{"asterisk.ami.secret", "agentws.token_secret"}) {
		t.Errorf("default problems = %v", err)
	}
}

func TestPrecedence(t *testing.T) {
	path := writeFile(t, `
log:
  level: warn
  format: json
http:
  listen: 0.0.0.0:9000
asterisk:
  ami:
    address: 10.0.0.1:5038
    action_timeout: 7s
catalog:
  cache_ttl: 30s
agentws:
  max_frame: 1MiB
  allowed_origins: [https://oml.example.com]
cluster:
  redis_prefix: "oml-crm:site-a:"
`)
	// File only.
	cfg, err := Load(path, flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "warn" || cfg.HTTP.Listen != "0.0.0.0:9000" || cfg.Asterisk.AMI.Address != "10.0.0.1:5038" ||
		cfg.Asterisk.AMI.ActionTimeout != 7*time.Second || cfg.Catalog.CacheTTL != 30*time.Second ||
		cfg.AgentWS.MaxFrame != 1<<20 || !reflect.DeepEqual(cfg.AgentWS.AllowedOrigins, []string{"https://oml.example.com"}) ||
		cfg.Cluster.RedisPrefix != "oml-crm:site-a:" {
		t.Errorf("file values not applied: %+v", cfg)
	}
	if cfg.Log.Format != "json" || cfg.Asterisk.AMI.Username != "omlcrm" {
		t.Errorf("untouched keys must keep file/default values: %+v", cfg.Log)
	}

	// Environment beats the file.
	t.Setenv("OMLCRM_LOG_LEVEL", "error")
	t.Setenv("OMLCRM_ASTERISK_AMI_ADDRESS", "10.0.0.2:5038")
	t.Setenv("OMLCRM_ASTERISK_AMI_SECRET", "from-env-secret")
	t.Setenv("OMLCRM_CATALOG_CACHE_TTL", "1m")
	t.Setenv("OMLCRM_AGENTWS_ALLOWED_ORIGINS", "https://a.example.com,https://b.example.com")
	t.Setenv("OMLCRM_AGENTWS_MAX_FRAME", "128KiB")
	t.Setenv("OMLCRM_ASTERISK_AMI_TLS", "true")
	t.Setenv("OMLCRM_HTTP_LISTEN", "127.0.0.1:9100")
	cfg, err = Load(path, flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "error" || cfg.Asterisk.AMI.Address != "10.0.0.2:5038" || cfg.Asterisk.AMI.Secret.Reveal() != "from-env-secret" ||
		cfg.Catalog.CacheTTL != time.Minute || cfg.AgentWS.MaxFrame != 128<<10 || !cfg.Asterisk.AMI.TLS ||
		!reflect.DeepEqual(cfg.AgentWS.AllowedOrigins, []string{"https://a.example.com", "https://b.example.com"}) ||
		cfg.HTTP.Listen != "127.0.0.1:9100" {
		t.Errorf("environment must beat the file: %+v", cfg)
	}

	// Flags beat both; a flag left unset does not override.
	cfg, err = Load(path, flags(t, "--log-level", "debug", "--config", path))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("log.level = %q, want the flag's debug", cfg.Log.Level)
	}
	if cfg.HTTP.Listen != "127.0.0.1:9100" || cfg.Log.Format != "json" {
		t.Errorf("unset flags must not override env/file: listen %q format %q", cfg.HTTP.Listen, cfg.Log.Format)
	}
}

func TestDeliverySitesAndPostgresURL(t *testing.T) {
	path := writeFile(t, `
database:
  url: postgres://oml:dbpass@db.example.com:5432/omnileads
delivery:
  store: postgres
  sites:
    "3": {signing_secret: 0123456789abcdef-site3}
    7:
      signing_secret: 0123456789abcdef-site7
`)
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Delivery.PostgresURL != cfg.Database.URL {
		t.Errorf("delivery.postgres_url = %v, want database.url", cfg.Delivery.PostgresURL)
	}
	if len(cfg.Delivery.Sites) != 2 || cfg.Delivery.Sites["7"].SigningSecret.Reveal() != "0123456789abcdef-site7" {
		t.Errorf("delivery.sites = %#v", cfg.Delivery.Sites)
	}
}

func TestUnknownKeys(t *testing.T) {
	path := writeFile(t, `
log:
  levle: debug
asterisk:
  ami:
    adress: 1.2.3.4:5038
  amy: {}
delivery:
  sites:
    "3": {signing_secrte: x}
colour: blue
`)
	_, err := Load(path, nil)
	if err == nil {
		t.Fatal("Load accepted unknown keys")
	}
	for _, w := range []string{
		path + ":3: log.levle: unknown key (did you mean log.level?)",
		path + ":6: asterisk.ami.adress: unknown key (did you mean asterisk.ami.address?)",
		path + ":7: asterisk.amy: unknown key",
		path + ":10: delivery.sites.3.signing_secrte: unknown key",
		path + ":11: colour: unknown key",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q; got:\n%v", w, err)
		}
	}
	// The unknown keys come first, then every problem of the rest (here: the secrets
	// this file does not set), so one run shows everything to fix.
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 7 {
		t.Fatalf("want 5 unknown keys + 2 validation problems, got %v", err)
	}
	for i, p := range ps {
		if unknownKey := strings.Contains(p.Message, "unknown key"); unknownKey != (i < 5) {
			t.Errorf("problem %d = %v: unknown keys must come first", i, p)
		}
	}
	if ps[5].Key != "asterisk.ami.secret" || ps[6].Key != "agentws.token_secret" {
		t.Errorf("validation problems = %v, %v", ps[5], ps[6])
	}
}

func TestLoadFileErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(writeFile(t, "log: [\n"), nil); err == nil {
		t.Error("malformed YAML accepted")
	}
	if _, err := Load(writeFile(t, "- a\n- b\n"), nil); err == nil || !strings.Contains(err.Error(), "mapping") {
		t.Errorf("a list as the document: %v", err)
	}
	if _, err := Load(writeFile(t, "agentws:\n  max_frame: lots\n"), nil); err == nil || !strings.Contains(err.Error(), "max_frame") {
		t.Errorf("bad size: %v", err)
	}
	if _, err := Load(writeFile(t, "http:\n  shutdown_timeout: soon\n"), nil); err == nil || !strings.Contains(err.Error(), "shutdown_timeout") {
		t.Errorf("bad duration: %v", err)
	}
	if cfg, err := Load(writeFile(t, ""), nil); err != nil || cfg.Log.Level != "info" {
		t.Errorf("empty file: %v", err)
	}
}

func TestValidateEveryProblemAtOnce(t *testing.T) {
	cfg := Default()
	cfg.Log.Level = "verbose"
	cfg.Log.Format = "xml"
	cfg.HTTP.Listen = "127.0.0.1"
	cfg.HTTP.TLSCert = "/etc/cert.pem"
	cfg.HTTP.ShutdownTimeout = 0
	cfg.Asterisk.AMI.Address = "pbx.example.com"
	cfg.Asterisk.AMI.Secret = "ami-secret-value"
	cfg.Asterisk.AMI.Auth = "sha1"
	cfg.Asterisk.AMI.PingInterval = 20 // a bare number: 20ns
	cfg.Asterisk.ARI.URL = "ftp://pbx"
	cfg.Calls.DialplanPrefixes = nil
	cfg.Calls.MaxChannels = 0
	cfg.Catalog.Source = "file"
	cfg.Database.URL = "mysql://u:db-password-value@h/x"
	cfg.Delivery.Store = "redis"
	cfg.Delivery.PostgresSchema = "oml-crm"
	cfg.Delivery.Workers = -1
	cfg.Delivery.Sites = map[string]DeliverySite{"abc": {SigningSecret: "short-sig"}}
	cfg.AgentWS.TokenSecret = "tok-short"
	cfg.AgentWS.IdleTimeout = 10 * time.Second
	cfg.AgentWS.MaxFrame = 10
	cfg.AgentWS.FrameProbeInterval = -time.Minute
	cfg.AgentWS.AllowedOrigins = []string{"https://ok.example.com", "https://bad.example.com/path"}
	cfg.Cluster.RedisURL = "http://r:redis-password-value@x"
	cfg.Cluster.RedisPrefix = "oml crm*"

	err := cfg.Validate()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Validate() = %v", err)
	}
	for _, w := range []string{
		`log.level: unknown level "verbose"`,
		`log.format: "xml" is not one of auto|json|console`,
		"http.listen: missing port",
		"http.tls_key: required when http.tls_cert is set",
		"http.shutdown_timeout: must be a positive duration",
		"asterisk.ami.address: missing port",
		`asterisk.ami.auth: "sha1" is not one of plain|md5`,
		"asterisk.ami.ping_interval: 20ns is suspiciously short",
		`asterisk.ari.url: scheme "ftp" is not one of http|https`,
		"calls.dialplan_prefixes: empty",
		"calls.max_channels: must be positive",
		"catalog.file: required when catalog.source=file",
		`database.url: scheme "mysql" is not one of postgres|postgresql`,
		`delivery.store: "redis" is not one of sqlite|postgres`,
		`delivery.postgres_schema: "oml-crm" is not a plain SQL identifier`,
		"delivery.workers: must be positive",
		`delivery.sites.abc: "abc" is not a site id`,
		"delivery.sites.abc.signing_secret: too short",
		"agentws.token_secret: too short: at least 16 bytes",
		"agentws.max_frame: 10 is too small",
		"agentws.idle_timeout: must be longer than agentws.ping_interval",
		"agentws.frame_probe_interval: must be 0 (off) or positive, got -1m0s",
		`agentws.allowed_origins: entry 1 "https://bad.example.com/path"`,
		`cluster.redis_url: scheme "http" is not one of redis|rediss|unix`,
		`cluster.redis_prefix: "oml crm*" must not hold spaces`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate lacks %q", w)
		}
	}
	if len(ps) != 25 {
		t.Errorf("got %d problems, want 25:\n%v", len(ps), err)
	}
	for _, secret := range []string{"ami-secret-value", "db-password-value", "redis-password-value", "short-sig", "tok-short"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Validate error shows a secret %q:\n%v", secret, err)
		}
	}
}

func TestValidateConditional(t *testing.T) {
	cfg := Default()
	cfg.Asterisk.Source = "ari"
	cfg.AgentWS.Auth = "django-session"
	cfg.AgentWS.SessionCookie = ""
	cfg.Catalog.Source = "file"
	cfg.Catalog.File = "/etc/oml-crm/catalog.yaml"
	cfg.Database.URL = ""
	err := cfg.Validate()
	for _, w := range []string{
		"asterisk.ari.username: required when asterisk.source=ari",
		"asterisk.ari.password: required when asterisk.source=ari",
		"agentws.session_cookie: required when agentws.auth=django-session",
		"database.url: required",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate lacks %q; got %v", w, err)
		}
	}
	// AMI settings do not matter with ARI, nor the token secret with django-session.
	if err != nil && (strings.Contains(err.Error(), "asterisk.ami.secret") || strings.Contains(err.Error(), "token_secret")) {
		t.Errorf("problems for unused settings: %v", err)
	}

	good := Default()
	good.Asterisk.AMI.Secret = "s"
	good.AgentWS.TokenSecret = "0123456789abcdef"
	if err := good.Validate(); err != nil {
		t.Errorf("a complete configuration fails: %v", err)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	cfg := Default()
	cfg.Asterisk.AMI.Secret = "S-ami-1"
	cfg.Asterisk.ARI.Password = "S-ari-2"
	cfg.Database.URL = "postgres://oml:S-db-3@db:5432/omnileads?sslmode=disable"
	cfg.Delivery.PostgresURL = "postgres://q:S-q-4@db/queue?sslpassword=S-q-5"
	cfg.AgentWS.TokenSecret = "S-tok-6"
	cfg.AgentWS.DjangoSecretKey = "S-dj-7"
	cfg.Delivery.Sites = map[string]DeliverySite{"3": {SigningSecret: "S-sig-8"}}
	cfg.Cluster.RedisURL = "redis://:S-redis-9@r:6379/0"
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":     fmt.Sprintf("%v", cfg),
		"%+v":    fmt.Sprintf("%+v", cfg),
		"%#v":    fmt.Sprintf("%#v", *cfg),
		"String": cfg.Database.URL.String(),
		"json":   string(js),
	}
	secrets := []string{"S-ami-1", "S-ari-2", "S-db-3", "S-q-4", "S-q-5", "S-tok-6", "S-dj-7", "S-sig-8", "S-redis-9"}
	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s output shows the secret %s:\n%s", name, s, out)
			}
		}
	}
	if !strings.Contains(outputs["json"], `"url":"postgres://oml:xxxxx@db:5432/omnileads?sslmode=disable"`) {
		t.Errorf("database.url should print with its password masked: %s", outputs["json"])
	}
	if cfg.Database.URL.Reveal() != "postgres://oml:S-db-3@db:5432/omnileads?sslmode=disable" {
		t.Error("Reveal must return the real URL")
	}
}

func TestHelpHasNoSecrets(t *testing.T) {
	t.Setenv("OMLCRM_ASTERISK_AMI_SECRET", "S-env-secret")
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	RegisterFlags(fs)
	usage := fs.FlagUsages()
	for _, f := range []string{"--config", "--log-level", "--log-format", "--http-listen", "--asterisk-source"} {
		if !strings.Contains(usage, f) {
			t.Errorf("usage lacks %s:\n%s", f, usage)
		}
	}
	if strings.Contains(usage, "S-env-secret") || strings.Contains(strings.ToLower(usage), "secret") {
		t.Errorf("usage mentions a secret:\n%s", usage)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"65536": 65536, "64KiB": 65536, "1MiB": 1 << 20, "2 GiB": 2 << 30, "64KB": 64000, "10B": 10} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KiB", "-1", "1.5MiB", "1TiB", "99999999999GiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
	if s := ByteSize(64 << 10).String(); s != "64KiB" {
		t.Errorf("String = %s", s)
	}
}

func TestKeysAndEnvNames(t *testing.T) {
	keys := Keys()
	if len(keys) != 79 {
		t.Errorf("only %d keys: %v", len(keys), keys)
	}
	for _, k := range []string{"asterisk.ami.secret", "delivery.sites", "agentws.django_secret_key", "cluster.redis_url", "cluster.redis_prefix", "calls.lazy_var_timeout",
		"delivery.sqlite_synchronous", "delivery.instance_id", "delivery.poll_interval", "delivery.min_backoff",
		"delivery.max_backoff", "delivery.retention", "delivery.connect_timeout",
		"asterisk.ami.tls_ca", "asterisk.ami.tls_server_name", "asterisk.ami.tls_insecure_skip_verify", "agentws.frame_probe_interval",
		"asterisk.ami.max_line", "asterisk.ami.max_message", "asterisk.ari.server_filter"} {
		found := false
		for _, have := range keys {
			found = found || have == k
		}
		if !found {
			t.Errorf("Keys lacks %s", k)
		}
	}
	if got := EnvName("asterisk.ami.secret"); got != "OMLCRM_ASTERISK_AMI_SECRET" {
		t.Errorf("EnvName = %s", got)
	}
}

func TestDeliveryTuningKeys(t *testing.T) {
	d := Default().Delivery
	if d.Workers != 1000 || d.SQLiteSynchronous != "normal" || d.InstanceID != "" || d.PollInterval != time.Second ||
		d.MinBackoff != time.Second || d.MaxBackoff != 10*time.Minute || d.Retention != 720*time.Hour ||
		d.ConnectTimeout != 5*time.Second {
		t.Errorf("delivery defaults = %+v", d)
	}

	path := writeFile(t, `
delivery:
  workers: 2000
  sqlite_synchronous: full
  instance_id: oml-1.example.com:b
  poll_interval: 250ms
  min_backoff: 2s
  max_backoff: 5m
  retention: 168h
  connect_timeout: 3s
`)
	t.Setenv("OMLCRM_DELIVERY_MAX_BACKOFF", "15m")
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Delivery
	if got.Workers != 2000 || got.SQLiteSynchronous != "full" || got.InstanceID != "oml-1.example.com:b" ||
		got.PollInterval != 250*time.Millisecond || got.MinBackoff != 2*time.Second || got.MaxBackoff != 15*time.Minute ||
		got.Retention != 168*time.Hour || got.ConnectTimeout != 3*time.Second {
		t.Errorf("delivery keys from file and env = %+v", got)
	}
	cfg.Asterisk.AMI.Secret = "s"
	cfg.AgentWS.TokenSecret = "0123456789abcdef"
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid delivery keys rejected: %v", err)
	}

	// A short delivery.timeout with the default connect timeout stays valid: the attempt
	// timeout bounds the connect.
	cfg.Delivery.Timeout = 2 * time.Second
	cfg.Delivery.ConnectTimeout = 5 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Errorf("delivery.timeout below delivery.connect_timeout rejected: %v", err)
	}

	bad := Default()
	bad.Asterisk.AMI.Secret = "s"
	bad.AgentWS.TokenSecret = "0123456789abcdef"
	bad.Delivery.SQLiteSynchronous = "off"
	bad.Delivery.InstanceID = "two words"
	bad.Delivery.PollInterval = 0
	bad.Delivery.MinBackoff = 20 * time.Minute
	bad.Delivery.MaxBackoff = 10 * time.Minute
	bad.Delivery.Retention = -time.Hour
	bad.Delivery.ConnectTimeout = 5 // a bare number: 5ns
	err = bad.Validate()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Validate() = %v", err)
	}
	for _, w := range []string{
		`delivery.sqlite_synchronous: "off" is not one of normal|full`,
		`delivery.instance_id: "two words": want 1-128 letters`,
		"delivery.poll_interval: must be a positive duration",
		"delivery.max_backoff: shorter than delivery.min_backoff",
		"delivery.retention: must be a positive duration",
		"delivery.connect_timeout: 5ns is suspiciously short",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate lacks %q; got:\n%v", w, err)
		}
	}
	if len(ps) != 6 {
		t.Errorf("got %d problems, want 6:\n%v", len(ps), err)
	}

	if _, err := Load(writeFile(t, "delivery:\n  min_backof: 1s\n"), nil); err == nil ||
		!strings.Contains(err.Error(), "did you mean delivery.min_backoff?") {
		t.Errorf("typo of a delivery key: %v", err)
	}
}

// The AMI TLS settings: each needs asterisk.ami.tls, and the CA file must hold a PEM
// certificate; every problem names its key.
func TestAMITLSKeys(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		set  func(c *AMI)
		want []string // substrings of the problems, in order
	}{
		{"tls off with TLS settings", func(c *AMI) {
			c.TLSCA, c.TLSServerName, c.TLSInsecureSkipVerify = notPEM, "asterisk.example", true
		}, []string{"asterisk.ami.tls_ca: set, but asterisk.ami.tls is false",
			"asterisk.ami.tls_server_name: set, but asterisk.ami.tls is false",
			"asterisk.ami.tls_insecure_skip_verify: set, but asterisk.ami.tls is false"}},
		{"missing CA file", func(c *AMI) { c.TLS, c.TLSCA = true, filepath.Join(dir, "absent.pem") },
			[]string{"asterisk.ami.tls_ca: cannot read " + filepath.Join(dir, "absent.pem")}},
		{"CA file without PEM", func(c *AMI) { c.TLS, c.TLSCA = true, notPEM },
			[]string{"asterisk.ami.tls_ca: " + notPEM + " holds no PEM certificate"}},
		{"tls with server name", func(c *AMI) { c.TLS, c.TLSServerName = true, "asterisk.example" }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			cfg.Asterisk.AMI.Secret = "s3cret"
			cfg.AgentWS.TokenSecret = "0123456789abcdef0123"
			tc.set(&cfg.Asterisk.AMI)
			err := cfg.Validate()
			var got []string
			var probs Problems
			if errors.As(err, &probs) {
				for _, p := range probs {
					if strings.HasPrefix(p.Key, "asterisk.ami.tls") {
						got = append(got, p.Error())
					}
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
