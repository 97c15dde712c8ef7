package ari_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// FuzzDecodeEvent: the decoder never panics, fails only on input that is not an event, and
// its typed and Unknown forms agree with a plain JSON decode of the common fields, and
// ScanEventType, when sure, names the same type.
// Seeds: testdata/fuzz/FuzzDecodeEvent (written for this repo) plus, when ../shared is
// present, every line of the real captures.
func FuzzDecodeEvent(f *testing.F) {
	dir := filepath.Join(pgtest.ModuleRoot(f), "..", "shared", "testdata", "ari")
	if files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl")); len(files) > 0 {
		for _, path := range files {
			for _, line := range readLines(f, path) {
				f.Add(line)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ari.DecodeEvent(data)

		// The common fields, decoded plainly with the same JSON rules.
		var plain struct {
			Type        string  `json:"type"`
			Application string  `json:"application"`
			AsteriskID  string  `json:"asterisk_id"`
			Timestamp   *string `json:"timestamp"`
		}
		plainErr := json.Unmarshal(data, &plain)

		// The skip path's scan (Config.EventTypes) is sure only of valid JSON, and then names
		// the type the full decode finds.
		if st, ok := ari.ScanEventType(data); ok {
			var syntax *json.SyntaxError
			if !json.Valid(data) || errors.As(plainErr, &syntax) {
				t.Fatalf("ScanEventType sure (%q) of invalid JSON: %v", st, plainErr)
			}
			if err == nil && string(st) != ev.EventType() {
				t.Fatalf("ScanEventType says %q, DecodeEvent %q", st, ev.EventType())
			}
			if plainErr == nil && string(st) != plain.Type {
				t.Fatalf("ScanEventType says %q, encoding/json %q", st, plain.Type)
			}
		}

		if err != nil {
			if ev != nil {
				t.Fatal("an event and an error")
			}
			if !errors.Is(err, ari.ErrMalformedEvent) {
				t.Fatalf("error %v does not wrap ErrMalformedEvent", err)
			}
			// Only an unusable envelope or a typed event with a wrong field may fail:
			// any other type always comes back as Unknown.
			if plainErr == nil && plain.Type != "" && !ari.IsTyped(plain.Type) {
				t.Fatalf("type %q failed instead of giving Unknown: %v", plain.Type, err)
			}
			return
		}
		if plainErr != nil || plain.Type == "" {
			t.Fatalf("decoded %T from input the plain decode rejects (%v, type %q)", ev, plainErr, plain.Type)
		}
		base := ev.EventBase()
		if ev.EventType() != plain.Type || base.Type != plain.Type || base.Application != plain.Application || base.AsteriskID != plain.AsteriskID {
			t.Fatalf("base %+v disagrees with %+v", *base, plain)
		}
		if plain.Timestamp != nil {
			if base.TimestampText != *plain.Timestamp {
				t.Fatalf("timestamp text %q, want %q", base.TimestampText, *plain.Timestamp)
			}
			want, perr := ari.ParseTime(*plain.Timestamp)
			if perr == nil && !base.Timestamp.Equal(want) || perr != nil && !base.Timestamp.IsZero() {
				t.Fatalf("timestamp %v from %q", base.Timestamp, *plain.Timestamp)
			}
		} else if !base.Timestamp.IsZero() {
			t.Fatalf("timestamp %v without one in the input", base.Timestamp)
		}

		if u, ok := ev.(*ari.Unknown); ok {
			if ari.IsTyped(plain.Type) {
				t.Fatalf("typed %q came back Unknown", plain.Type)
			}
			if !bytes.Equal(u.Raw, data) {
				t.Fatal("Unknown.Raw differs from the input")
			}
			if len(data) > 0 && &u.Raw[0] == &data[0] {
				t.Fatal("Unknown.Raw aliases the input buffer")
			}
			return
		}
		if !ari.IsTyped(plain.Type) {
			t.Fatalf("untyped %q came back as %T", plain.Type, ev)
		}
		// A typed event survives a round trip unchanged.
		once, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("marshal %T: %v", ev, err)
		}
		again, err := ari.DecodeEvent(once)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", once, err)
		}
		twice, _ := json.Marshal(again)
		if again.EventType() != ev.EventType() || !bytes.Equal(once, twice) {
			t.Fatalf("round trip changed the event:\n%s\n%s", once, twice)
		}
	})
}

// The committed seeds must stay loadable (a corrupt seed file silently shrinks the corpus).
func TestFuzzSeedsPresent(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzDecodeEvent"))
	if err != nil || len(entries) < 10 {
		t.Fatalf("fuzz seeds: %d files, %v", len(entries), err)
	}
}
