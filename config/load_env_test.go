package config

import (
	"errors"
	"strings"
	"testing"
)

// A misspelt OMLCRM_* variable is reported like an unknown file key, with a suggestion;
// variables far from every key (other tools', the test suite's) are left alone.
func TestMisspeltEnvironmentVariable(t *testing.T) {
	t.Setenv("OMLCRM_ASTERISK_AMI_ADRESS", "10.0.0.1:5038")
	t.Setenv("OMLCRM_LOG_LEVL", "debug")
	t.Setenv("OMLCRM_TEST_SOMETHING_ELSE", "x")
	_, err := Load("", nil)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load = %v, want the misspelt variables reported", err)
	}
	want := []string{
		"environment: OMLCRM_ASTERISK_AMI_ADRESS: unknown variable (did you mean OMLCRM_ASTERISK_AMI_ADDRESS?)",
		"environment: OMLCRM_LOG_LEVL: unknown variable (did you mean OMLCRM_LOG_LEVEL?)",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q; got:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "OMLCRM_TEST_SOMETHING_ELSE") {
		t.Errorf("a variable that resembles no key was reported:\n%v", err)
	}
}

// A value of the wrong type names the key, the value and the file line (or the variable),
// instead of the decoder's "decoding failed due to the following error(s)".
func TestWrongTypeNamesKeyValueAndLine(t *testing.T) {
	path := writeFile(t, `
asterisk:
  ami:
    ping_interval: soon
    tls: maybe
agentws:
  send_queue: lots
  max_frame: huge
  allowed_origins: {a: b}
  token_secret: [not, a, string]
http:
  shutdown_timeout: 15
`)
	t.Setenv("OMLCRM_CATALOG_CACHE_TTL", "forever")
	_, err := Load(path, nil)
	if err == nil {
		t.Fatal("Load accepted values of the wrong type")
	}
	for _, w := range []string{
		path + `:4: asterisk.ami.ping_interval: "soon" is not a duration`,
		path + `:5: asterisk.ami.tls: "maybe" is not a boolean`,
		path + `:7: agentws.send_queue: "lots" is not a whole number`,
		path + `:8: agentws.max_frame: "huge" is not a size`,
		path + `:9: agentws.allowed_origins: must be a list`,
		path + `:10: agentws.token_secret: must be a single value`,
		`environment: OMLCRM_CATALOG_CACHE_TTL: "forever" is not a duration (e.g. 500ms, 10s, 2m, 1h) (catalog.cache_ttl)`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q; got:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "decoding failed") || strings.Contains(err.Error(), "shutdown_timeout") {
		t.Errorf("decoder noise or a valid value reported:\n%v", err)
	}
}
