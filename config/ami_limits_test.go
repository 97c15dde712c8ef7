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

func TestValidateReceiveBuffer(t *testing.T) {
	for _, tc := range []struct {
		size ByteSize
		want string // "" valid
	}{
		{4 << 20, ""},
		{0, ""},
		{64 << 10, ""},
		{1000, "asterisk.receive_buffer: must be 0 (the kernel's autotuning) or between 64KiB and 1GiB, got 1000"},
		{2 << 30, "asterisk.receive_buffer: must be 0 (the kernel's autotuning) or between 64KiB and 1GiB, got 2GiB"},
		{-1, "asterisk.receive_buffer: must be 0"},
	} {
		cfg := Default()
		cfg.Asterisk.AMI.Secret = "s"
		cfg.AgentWS.TokenSecret = "0123456789abcdef0123"
		cfg.Asterisk.ReceiveBuffer = tc.size
		err := cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("receive_buffer %d: Validate() = %v, want %q", tc.size, err, tc.want)
		}
	}
	if Default().Asterisk.ReceiveBuffer != 4<<20 {
		t.Errorf("default asterisk.receive_buffer %s, want 4MiB", Default().Asterisk.ReceiveBuffer)
	}
	cfg, err := Load(writeFile(t, "asterisk:\n  receive_buffer: 8MiB\n  ami:\n    secret: s\nagentws:\n  token_secret: 0123456789abcdef0123\n"), nil)
	if err != nil || cfg.Asterisk.ReceiveBuffer != 8<<20 {
		t.Errorf("Load receive_buffer 8MiB: %v, %v", cfg, err)
	}
}
