package config

import (
	"strings"
	"testing"
)

func TestValidateAMILimits(t *testing.T) {
	cfg := Default()
	cfg.Asterisk.AMI.Secret = "s"
	cfg.AgentWS.TokenSecret = "0123456789abcdef0123"
	cfg.Asterisk.AMI.MaxLine = 100
	cfg.Asterisk.AMI.MaxMessage = 50
	err := cfg.Validate()
	for _, w := range []string{"asterisk.ami.max_line: must be between 1KiB and 1GiB, got 100",
		"asterisk.ami.max_message: must be between asterisk.ami.max_line (100) and 1GiB, got 50"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want %q", err, w)
		}
	}
	if _, err := Load(writeFile(t, "asterisk:\n  ami:\n    secret: s\n    max_line: 256KiB\n    max_message: 4MiB\nagentws:\n  token_secret: 0123456789abcdef0123\n"), nil); err != nil {
		t.Errorf("Load with larger AMI limits: %v", err)
	}
}
