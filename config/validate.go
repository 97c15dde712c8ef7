package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
)

// MinSecretLen is the shortest accepted HMAC key (agentws.token_secret, signing secrets).
const MinSecretLen = 16

// Validate checks every key and returns all problems at once as Problems (nil when the
// configuration is usable). Messages name the key and never quote a secret.
func (c *Config) Validate() error {
	var v validator

	if _, err := zerolog.ParseLevel(c.Log.Level); err != nil || c.Log.Level == "" {
		v.addf("log.level", "unknown level %q (want trace|debug|info|warn|error|fatal|panic|disabled)", c.Log.Level)
	}
	v.oneOf("log.format", c.Log.Format, "auto", "json", "console")

	v.hostPort("http.listen", c.HTTP.Listen, true)
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		if c.HTTP.TLSCert == "" {
			v.add("http.tls_cert", "required when http.tls_key is set")
		} else {
			v.add("http.tls_key", "required when http.tls_cert is set")
		}
	}
	v.positive("http.shutdown_timeout", c.HTTP.ShutdownTimeout)
	if c.HTTP.MaxConnections < 0 {
		v.addf("http.max_connections", "%d is negative (0 derives it from the file-descriptor limit)", c.HTTP.MaxConnections)
	}
	if c.HTTP.MaxConnectionsPerClient < 0 {
		v.addf("http.max_connections_per_client", "%d is negative (0 = half of http.max_connections)", c.HTTP.MaxConnectionsPerClient)
	}
	if _, err := c.HTTP.TrustedProxyPrefixes(); err != nil {
		v.add("http.trusted_proxies", err.Error())
	}
	v.positive("http.read_header_timeout", c.HTTP.ReadHeaderTimeout)
	v.positive("http.read_timeout", c.HTTP.ReadTimeout)
	v.positive("http.write_timeout", c.HTTP.WriteTimeout)
	v.positive("http.idle_timeout", c.HTTP.IdleTimeout)
	if c.HTTP.MaxHeaderBytes < 1024 || c.HTTP.MaxHeaderBytes > 1<<20 {
		v.addf("http.max_header_bytes", "%s is out of range (1KiB to 1MiB)", c.HTTP.MaxHeaderBytes)
	}

	v.phases(c.Phases)

	v.oneOf("asterisk.source", c.Asterisk.Source, "ami", "ari")
	ami := c.Asterisk.AMI
	useAMI := c.Asterisk.Source == "ami"
	v.hostPort("asterisk.ami.address", ami.Address, useAMI)
	if useAMI && ami.Username == "" {
		v.add("asterisk.ami.username", "required when asterisk.source=ami")
	}
	if useAMI && ami.Secret == "" {
		v.add("asterisk.ami.secret", "required when asterisk.source=ami")
	}
	v.oneOf("asterisk.ami.auth", ami.Auth, "plain", "md5")
	if useAMI && len(ami.Events) == 0 {
		v.add("asterisk.ami.events", "empty: the call tracker needs at least the default events")
	}
	for i, e := range ami.Events {
		if strings.TrimSpace(e) == "" || strings.ContainsAny(e, " \t\r\n:") {
			v.addf("asterisk.ami.events", "entry %d %q is not an AMI event name", i, e)
		}
	}
	if rb := c.Asterisk.ReceiveBuffer; rb != 0 && (rb < 64<<10 || rb > 1<<30) {
		v.addf("asterisk.receive_buffer", "must be 0 (the kernel's autotuning) or between 64KiB and 1GiB, got %s", rb)
	}
	if ami.MaxLine < 1<<10 || ami.MaxLine > 1<<30 {
		v.addf("asterisk.ami.max_line", "must be between 1KiB and 1GiB, got %s", ami.MaxLine)
	}
	if ami.MaxMessage < ami.MaxLine || ami.MaxMessage > 1<<30 {
		v.addf("asterisk.ami.max_message", "must be between asterisk.ami.max_line (%s) and 1GiB, got %s", ami.MaxLine, ami.MaxMessage)
	}
	for i, f := range ami.Filters {
		if strings.TrimSpace(f) == "" || strings.ContainsAny(f, "\r\n") {
			v.addf("asterisk.ami.filters", "entry %d is empty or spans lines", i)
		}
	}
	if !ami.TLS {
		for _, k := range []struct {
			key string
			set bool
		}{
			{"asterisk.ami.tls_ca", ami.TLSCA != ""},
			{"asterisk.ami.tls_server_name", ami.TLSServerName != ""},
			{"asterisk.ami.tls_insecure_skip_verify", ami.TLSInsecureSkipVerify},
		} {
			if k.set {
				v.add(k.key, "set, but asterisk.ami.tls is false")
			}
		}
	} else if ami.TLSCA != "" {
		if pem, err := os.ReadFile(ami.TLSCA); err != nil {
			v.addf("asterisk.ami.tls_ca", "cannot read %s: %v", ami.TLSCA, errors.Unwrap(err))
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			v.addf("asterisk.ami.tls_ca", "%s holds no PEM certificate", ami.TLSCA)
		}
	}
	v.positive("asterisk.ami.action_timeout", ami.ActionTimeout)
	v.positive("asterisk.ami.ping_interval", ami.PingInterval)

	ari := c.Asterisk.ARI
	useARI := c.Asterisk.Source == "ari"
	if ari.URL != "" || useARI {
		v.url("asterisk.ari.url", ari.URL, false, "http", "https")
	}
	if useARI && ari.Username == "" {
		v.add("asterisk.ari.username", "required when asterisk.source=ari")
	}
	if useARI && ari.Password == "" {
		v.add("asterisk.ari.password", "required when asterisk.source=ari")
	}
	if useARI && ari.App == "" {
		v.add("asterisk.ari.app", "required when asterisk.source=ari")
	}
	v.positive("asterisk.ari.request_timeout", ari.RequestTimeout)

	if len(c.Calls.DialplanPrefixes) == 0 {
		v.add("calls.dialplan_prefixes", "empty: no dialplan variable would ever be collected (OMniLeads uses Omlcrm)")
	}
	for i, p := range c.Calls.DialplanPrefixes {
		if strings.TrimSpace(p) == "" {
			v.addf("calls.dialplan_prefixes", "entry %d is empty (it would match every variable)", i)
		}
	}
	if c.Calls.MaxChannels <= 0 {
		v.addf("calls.max_channels", "must be positive, got %d", c.Calls.MaxChannels)
	}
	v.positive("calls.lazy_var_timeout", c.Calls.LazyVarTimeout)

	v.oneOf("catalog.source", c.Catalog.Source, "omldb", "file")
	if c.Catalog.Source == "file" && c.Catalog.File == "" {
		v.add("catalog.file", "required when catalog.source=file")
	}
	v.positive("catalog.cache_ttl", c.Catalog.CacheTTL)
	for i, id := range c.Catalog.JSONIDsAsNumbersSites {
		if id <= 0 {
			v.addf("catalog.json_ids_as_numbers_sites", "entry %d (%d) is not a site id (a positive integer)", i, id)
		}
	}
	if len(c.Catalog.JSONIDsAsNumbersSites) > 0 && c.Catalog.Source == "file" {
		v.add("catalog.json_ids_as_numbers_sites", "applies to catalog.source=omldb; with a file catalog set json_ids_as_numbers on the site")
	}

	needDB := c.Catalog.Source == "omldb" || c.AgentWS.Auth == "django-session"
	if c.Database.URL != "" || needDB {
		v.url("database.url", string(c.Database.URL), true, "postgres", "postgresql")
	}

	d := c.Delivery
	v.oneOf("delivery.store", d.Store, "sqlite", "postgres")
	if d.Store == "sqlite" && d.SQLitePath == "" {
		v.add("delivery.sqlite_path", "required when delivery.store=sqlite")
	}
	// An empty delivery.postgres_url means database.url (Load fills it in).
	if d.PostgresURL != "" && d.PostgresURL != c.Database.URL {
		v.url("delivery.postgres_url", string(d.PostgresURL), true, "postgres", "postgresql")
	} else if d.Store == "postgres" && c.Database.URL == "" {
		v.add("delivery.postgres_url", "required when delivery.store=postgres (or set database.url)")
	}
	if !sqlIdent.MatchString(d.PostgresSchema) {
		v.addf("delivery.postgres_schema", "%q is not a plain SQL identifier (letters, digits, _; max 63)", d.PostgresSchema)
	}
	v.positive("delivery.timeout", d.Timeout)
	v.positive("delivery.max_age", d.MaxAge)
	if d.MaxAge > 0 && d.Timeout > 0 && d.MaxAge < d.Timeout {
		v.add("delivery.max_age", "shorter than delivery.timeout: not even one attempt could finish")
	}
	if d.Workers <= 0 {
		v.addf("delivery.workers", "must be positive, got %d", d.Workers)
	}
	if d.MaxInFlightPerSite <= 0 {
		v.addf("delivery.max_in_flight_per_site", "must be positive, got %d", d.MaxInFlightPerSite)
	}
	v.oneOf("delivery.sqlite_synchronous", d.SQLiteSynchronous, "normal", "full")
	if d.InstanceID != "" && !instanceID.MatchString(d.InstanceID) {
		v.addf("delivery.instance_id", "%q: want 1-128 letters, digits or . _ : @ - (empty = the host name)", d.InstanceID)
	}
	v.positive("delivery.poll_interval", d.PollInterval)
	v.positive("delivery.min_backoff", d.MinBackoff)
	v.positive("delivery.max_backoff", d.MaxBackoff)
	if d.MinBackoff > 0 && d.MaxBackoff > 0 && d.MaxBackoff < d.MinBackoff {
		v.add("delivery.max_backoff", "shorter than delivery.min_backoff (raise both together)")
	}
	v.positive("delivery.retention", d.Retention)
	// A connect_timeout above delivery.timeout is not an error: the attempt's own
	// timeout cuts it short (delivery.timeout: 2s with the default 5s must stay valid).
	v.positive("delivery.connect_timeout", d.ConnectTimeout)
	for _, id := range slices.Sorted(maps.Keys(d.Sites)) {
		key := "delivery.sites." + id
		if n, err := strconv.Atoi(id); err != nil || n <= 0 {
			v.addf(key, "%q is not a site id (a positive integer)", id)
		}
		if s := d.Sites[id].SigningSecret; s != "" && len(s) < MinSecretLen {
			v.addf(key+".signing_secret", "too short: at least %d bytes", MinSecretLen)
		}
		for i, s := range d.Sites[id].WebhookSecrets {
			if _, err := catalog.WebhookKey(s); err != nil {
				v.addf(fmt.Sprintf("%s.webhook_secrets[%d]", key, i), "%v", err)
			}
		}
		if _, err := catalog.ParseCallEndMode(d.Sites[id].CallEnd); err != nil {
			v.addf(key+".call_end", "%v", err)
		}
	}

	a := c.AgentWS
	v.oneOf("agentws.auth", a.Auth, "token", "django-session")
	if a.Auth == "token" {
		switch {
		case a.TokenSecret == "":
			v.add("agentws.token_secret", "required when agentws.auth=token (generate one with: head -c 32 /dev/urandom | base64)")
		case len(a.TokenSecret) < MinSecretLen:
			v.addf("agentws.token_secret", "too short: at least %d bytes", MinSecretLen)
		}
	}
	if a.Auth == "django-session" && a.SessionCookie == "" {
		v.add("agentws.session_cookie", "required when agentws.auth=django-session")
	}
	if a.Auth == "django-session" && a.DjangoSecretKey == "" {
		v.add("agentws.django_secret_key", "required when agentws.auth=django-session: OMniLeads' Django SECRET_KEY (the SECRET_KEY line of ominicontacto/settings/oml_settings_local.py in the OMniLeads application); without it a session cannot be verified")
	}
	for i, o := range a.AllowedOrigins {
		if strings.TrimSpace(o) == "" || strings.ContainsAny(o, " \t/") && !strings.Contains(o, "://") {
			v.addf("agentws.allowed_origins", "entry %d %q is not an origin (scheme://host[:port]) or host pattern", i, o)
		} else if strings.Contains(o, "://") {
			if u, err := url.Parse(o); err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
				v.addf("agentws.allowed_origins", "entry %d %q is not an origin (scheme://host[:port])", i, o)
			}
		}
	}
	v.positive("agentws.pop_ttl", a.PopTTL)
	v.positive("agentws.token_max_ttl", a.TokenMaxTTL)
	if a.SendQueue <= 0 {
		v.addf("agentws.send_queue", "must be positive, got %d", a.SendQueue)
	}
	if a.MaxFrame < 1024 {
		v.addf("agentws.max_frame", "%s is too small (at least 1KiB)", a.MaxFrame)
	}
	v.positive("agentws.ping_interval", a.PingInterval)
	v.positive("agentws.idle_timeout", a.IdleTimeout)
	if a.IdleTimeout > 0 && a.PingInterval > 0 && a.IdleTimeout <= a.PingInterval {
		v.add("agentws.idle_timeout", "must be longer than agentws.ping_interval, or live clients get cut")
	}
	if a.FrameProbeInterval < 0 {
		v.addf("agentws.frame_probe_interval", "must be 0 (off) or positive, got %s", a.FrameProbeInterval)
	}

	if c.Cluster.RedisURL != "" {
		v.url("cluster.redis_url", string(c.Cluster.RedisURL), true, "redis", "rediss", "unix")
	}
	switch p := c.Cluster.RedisPrefix; {
	case p == "":
		v.add("cluster.redis_prefix", "must not be empty (default omlcrm:)")
	case len(p) > 64:
		v.addf("cluster.redis_prefix", "%d bytes is too long (at most 64)", len(p))
	case strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '*' || r == '?' || r == '[' }) >= 0:
		v.addf("cluster.redis_prefix", "%q must not hold spaces, control characters or the pattern characters * ? [", p)
	}

	if len(v.probs) == 0 {
		return nil
	}
	return v.probs
}

var sqlIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// instanceID is what a host name may look like, plus a few separators for "host:2".
var instanceID = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

type validator struct{ probs Problems }

func (v *validator) add(key, msg string) { v.probs = append(v.probs, Problem{Key: key, Message: msg}) }

func (v *validator) addf(key, format string, args ...any) { v.add(key, fmt.Sprintf(format, args...)) }

func (v *validator) oneOf(key, val string, allowed ...string) {
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.addf(key, "%q is not one of %s", val, strings.Join(allowed, "|"))
}

// positive wants a duration of at least a millisecond: a bare number in the file is
// read as nanoseconds, which is never what was meant.
func (v *validator) positive(key string, d time.Duration) {
	switch {
	case d <= 0:
		v.addf(key, "must be a positive duration such as 10s, got %s", d)
	case d < time.Millisecond:
		v.addf(key, "%s is suspiciously short: write the unit, e.g. 10s or 500ms", d)
	}
}

// hostPort checks a host:port address; an empty value is a problem only when required.
func (v *validator) hostPort(key, addr string, required bool) {
	if addr == "" {
		if required {
			v.add(key, "required (host:port)")
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			v.add(key, "missing port")
		} else {
			v.addf(key, "%q is not host:port", addr)
		}
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.addf(key, "port %q is not a number 0-65535", port)
	}
}

// url checks an absolute URL with one of the schemes. Secret URLs are never quoted.
func (v *validator) url(key, raw string, secret bool, schemes ...string) {
	shown := fmt.Sprintf(" %q", raw)
	if secret {
		shown = ""
	}
	if raw == "" {
		v.add(key, "required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		v.addf(key, "value%s is not a URL (want %s://…)", shown, schemes[0])
		return
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		v.addf(key, "scheme %q is not one of %s", u.Scheme, strings.Join(schemes, "|"))
		return
	}
	if u.Host == "" && u.Scheme != "unix" {
		v.addf(key, "value%s has no host", shown)
	}
}

// TrustedProxyPrefixes parses http.trusted_proxies (addresses or CIDR prefixes).
func (h HTTP) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range h.TrustedProxies {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q is neither an IP address nor a CIDR prefix", i, s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
