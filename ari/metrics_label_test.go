package ari

import (
	"strings"
	"testing"
)

// Event types become label values only when they look like Asterisk's.
func TestTypeLabelsAreSafe(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"StasisStart": "StasisStart", "ChannelVarset": "ChannelVarset", "Stasis Start": "other",
		"": "other", strings.Repeat("A", 65): "other", "x\"}": "other",
	} {
		if got := m.typeLabel(in); got != want {
			t.Errorf("typeLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
