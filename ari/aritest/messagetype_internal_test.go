package aritest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/callsim"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// The fake reads an event's type for the application filter with the client's own scan
// (ari.PeekType) where it is sure; a mistake there would then show on both sides and be
// missed. So the fake's answer is held to a plain decoding (the exact key "type", the last
// of repeated ones, as Asterisk's jansson keeps it) on every recorded Asterisk 22 event,
// every simulated one, and edits of them that a scan could get wrong.
func TestMessageTypeLikeDecoding(t *testing.T) {
	var lines [][]byte
	files, _ := filepath.Glob(filepath.Join(pgtest.SharedDir(t), "testdata", "ari", "*.jsonl"))
	if len(files) == 0 {
		t.Fatal("no recorded ARI streams in the shared folder")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.Split(raw, []byte("\n")) {
			if l = bytes.TrimSpace(l); len(l) > 0 {
				lines = append(lines, l)
			}
		}
	}
	recorded := len(lines)
	ids := callsim.NewIDs(time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC).Unix())
	var cs []*callsim.Call
	for i, sc := range callsim.AllScenarios() {
		cs = append(cs, callsim.Build(ids, callsim.Params{Scenario: sc, Agent: callsim.Agent{ID: 1 + i}, SecondAgent: callsim.Agent{ID: 60 + i}}))
	}
	lines = append(lines, callsim.ARILines(callsim.Interleave(cs, time.Millisecond), time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC))...)
	whole := len(lines)
	edits := []func(string) string{
		func(s string) string { return strings.Replace(s, `"type":`, `"Type":`, 1) },
		func(s string) string { return strings.Replace(s, `"type":`, `"TYPE":`, 1) },
		func(s string) string { return strings.TrimSuffix(s, "}") + `,"type":"Dial"}` },
		func(s string) string { return strings.TrimSuffix(s, "}") + `,"Type":"Dial"}` },
		func(s string) string { return strings.Replace(s, `"type":`, `"\u0074ype":`, 1) },
		func(s string) string { return strings.Replace(s, `"type":"`, `"type":"\u0044`, 1) },
		func(s string) string { return strings.Replace(s, `"type":"`, `"type" : "`, 1) },
		func(s string) string { return strings.Replace(s, `"type":`, `"kind":`, 1) },
		func(s string) string { return strings.Replace(s, `"type":`, `"type":null,"x":`, 1) },
		func(s string) string { return strings.Replace(s, `"type":`, `"type":7,"x":`, 1) },
		func(s string) string { return `{"outer":` + s + `}` },
		func(s string) string { return s[:len(s)/2] },
		func(s string) string { return "\t " + s + "\n" },
	}
	for _, l := range lines[:whole] {
		for _, e := range edits {
			lines = append(lines, []byte(e(string(l))))
		}
	}
	scanned := 0
	for _, l := range lines {
		got, want := messageType(l), decodedType(l)
		if string(got) != string(want) || (got == nil) != (want == nil) {
			t.Fatalf("type %q, decoding gives %q, of\n%s", got, want, l)
		}
		if got != nil {
			scanned++
		}
	}
	t.Logf("%d messages (%d recorded, %d simulated, %d edits), %d with a type", len(lines), recorded, whole-recorded, len(lines)-whole, scanned)
	if recorded < 1000 || whole-recorded < 500 {
		t.Errorf("too few messages: %d recorded, %d simulated", recorded, whole-recorded)
	}
}
