package ari_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/callsim"
)

// simulatedARI is the load test's ARI traffic: every callsim scenario rendered with
// Step.AppendARI (as loadtest's ariSink does), in each naming, with and without PJSIP agents
// and channelvars.
func simulatedARI(t testing.TB) [][]byte {
	t.Helper()
	ids := callsim.NewIDs(time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC).Unix())
	var cs []*callsim.Call
	i := 0
	for _, sc := range callsim.AllScenarios() {
		for _, naming := range []callsim.Naming{callsim.NamingBoth, callsim.NamingOML2, callsim.NamingCallID} {
			for _, pjsip := range []bool{false, true} {
				p := callsim.Params{Scenario: sc, Naming: naming, AgentPJSIP: pjsip,
					Agent: callsim.Agent{ID: 1 + i%50}, SecondAgent: callsim.Agent{ID: 60 + i%50}}
				if i%2 == 1 {
					p.ChanVars = []string{"OMLCALLID", "OMLCAMPID", "OMLAGENTID"}
				}
				cs = append(cs, callsim.Build(ids, p))
				i++
			}
		}
	}
	return callsim.ARILines(callsim.Interleave(cs, 5*time.Millisecond), time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC))
}

// fuzzSeeds reads the committed seeds of a fuzz target (the repository's own ari/testdata).
func fuzzSeeds(t testing.TB, target string) [][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	var out [][]byte
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s: not a one-[]byte fuzz seed", path)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, []byte(s))
	}
	return out
}

// checkFast compares the fast decoder with encoding/json for every type the fast decoder
// has code for, and DecodeEvent with its encoding/json-only form. It returns whether the fast
// decoder handled data under its own type.
func checkFast(t testing.TB, data []byte) (handled bool) {
	t.Helper()
	for _, typ := range calls.ARIEventTypes() {
		in := bytes.Clone(data)
		fast, ok := ari.FastDecode(in, typ)
		if !ok {
			continue
		}
		clear(in) // nothing decoded may alias the input
		want, err := ari.JSONDecodeTyped(data, typ)
		if err != nil {
			t.Fatalf("fast decoded %s as %s; encoding/json fails: %v", data, typ, err)
		}
		if fast.EventType() != typ {
			t.Fatalf("fast decoded %s as %s with type %q", data, typ, fast.EventType())
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("fast and encoding/json differ on %s as %s:\nfast %#v\njson %#v", data, typ, fast, want)
		}
		handled = true
	}
	if ari.PlainValid(data) && !json.Valid(data) {
		t.Fatalf("plainValid accepts %q, which json.Valid rejects", data)
	}
	got, gotErr := ari.DecodeEvent(data)
	want, wantErr := ari.DecodeEventJSON(data)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeEvent differs from encoding/json on %s:\n%#v, %v\n%#v, %v", data, got, gotErr, want, wantErr)
	}
	return handled
}

// Every recorded event, every committed fuzz seed and the load test's simulated events give
// the same result through the fast decoder as through encoding/json, and the fast decoder
// handles (almost) all the events of the types the tracker keeps.
func TestFastDecodeMatchesJSON(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(captureDir(t), "*.jsonl"))
	if len(files) == 0 {
		t.Fatal("no ARI captures")
	}
	var captures [][]byte
	for _, path := range files {
		captures = append(captures, readLines(t, path)...)
	}
	var seeds [][]byte
	for _, target := range []string{"FuzzDecodeEvent", "FuzzFastDecode"} {
		seeds = append(seeds, fuzzSeeds(t, target)...)
	}
	for _, set := range []struct {
		name  string
		lines [][]byte
		min   float64 // the share of kept-type events the fast decoder must handle
	}{
		{"captures", captures, 0.9},
		{"simulated", simulatedARI(t), 0.9},
		{"seeds", seeds, 0},
	} {
		kept, handled := 0, 0
		for _, line := range set.lines {
			if set.min > 0 && !ari.PlainValid(line) { // the skip path's check is sure of Asterisk's JSON
				t.Errorf("plainValid unsure of %s", line)
			}
			h := checkFast(t, line)
			typ, _ := ari.ScanEventType(line)
			if slices.Contains(calls.ARIEventTypes(), string(typ)) {
				kept++
				if h {
					handled++
				}
			} else if h {
				t.Errorf("fast decoder handled %s, not of a kept type", line)
			}
		}
		share := float64(handled) / float64(max(kept, 1))
		t.Logf("%s: %d lines, %d of the tracker's types, %d (%.1f%%) decoded by the fast path", set.name, len(set.lines), kept, handled, 100*share)
		if set.min > 0 && (kept == 0 || share < set.min) {
			t.Errorf("%s: the fast path handled %d of %d events, want at least %.0f%%", set.name, handled, kept, 100*set.min)
		}
	}
}

// fastMutations are variants of a recorded event that the fast decoder must either decode
// exactly as encoding/json or leave to it: escapes, keys in another case, repeats, nulls,
// odd numbers, invalid UTF-8, truncation, trailing bytes.
func fastMutations(line []byte) [][]byte {
	s := string(line)
	out := []string{
		strings.Replace(s, `"id":"`, `"id":"\u0031`, 1),
		strings.Replace(s, `"name":"`, `"name":"a\"b`, 1),
		strings.Replace(s, `"name":"`, `"name":"a\/b\n`, 1),
		strings.Replace(s, `"type"`, `"Type"`, 1),
		strings.Replace(s, `"channel"`, `"CHANNEL"`, 1),
		strings.Replace(s, `"id"`, `"Id"`, 1),
		strings.Replace(s, `"priority"`, `"PRIORITY"`, 1),
		strings.Replace(s, `{`, `{"type":"StasisEnd",`, 1),
		strings.Replace(s, `{`, `{"application":"x",`, 1),
		strings.Replace(s, `"caller":{`, `"caller":{"name":"dup",`, 1),
		strings.Replace(s, `"channelvars":{`, `"channelvars":{"OMLCALLID":"dup",`, 1),
		strings.Replace(s, `"channelvars":{`, `"channelvars":{"Z":"z"},"channelvars":{`, 1),
		strings.Replace(s, `"channel":{`, `"channel":{"name":"first","channelvars":{"Z":"z"}},"channel":{"channelvars":{"Y":"y"},`, 1),
		strings.Replace(s, `"application":"omlcrm"`, `"application":null`, 1),
		strings.Replace(s, `"caller":{"name":"","number":""}`, `"caller":null`, 1),
		strings.Replace(s, `"channelvars":{`, `"channelvars":{"X":null,`, 1),
		strings.Replace(s, `"priority":1`, `"priority":1.0`, 1),
		strings.Replace(s, `"priority":1`, `"priority":01`, 1),
		strings.Replace(s, `"priority":1`, `"priority":-0`, 1),
		strings.Replace(s, `"priority":1`, `"priority":"1"`, 1),
		strings.Replace(s, `"cause":`, `"cause":1e`, 1),
		strings.Replace(s, `"state":"`, "\"state\":\"\xff", 1),
		strings.Replace(s, `"state":"`, "\"state\":\"\u00f1\t", 1),
		strings.Replace(s, `"language":"en"`, `"language":"en","extra":{"a":[1,2]}`, 1),
		strings.Replace(s, `,`, ` ,`+"\n", -1),
		strings.Replace(s, `"args":[]`, `"args":["a","b"]`, 1),
		strings.Replace(s, `"channels":[`, `"channels":[1,`, 1),
		s[:len(s)/2],
		s[:len(s)-1],
		s + "x",
		s + " \n",
		" " + s,
		s + s,
	}
	res := make([][]byte, 0, len(out))
	for _, m := range out {
		if m != s {
			res = append(res, []byte(m))
		}
	}
	return res
}

// FuzzFastDecode: on any input, the fast decoder either gives up or gives exactly what
// encoding/json gives into the same struct (with no error), and DecodeEvent's result and
// error are those of its encoding/json-only form. Seeds: the real captures, the simulated
// events and mutations of both.
func FuzzFastDecode(f *testing.F) {
	var base [][]byte
	if files, _ := filepath.Glob(filepath.Join(captureDir(f), "*.jsonl")); len(files) > 0 {
		for _, path := range files {
			base = append(base, readLines(f, path)...)
		}
	}
	sim := simulatedARI(f)
	for i := 0; i < len(sim); i += 7 {
		base = append(base, sim[i])
	}
	for _, c := range jsonSyntaxCases {
		f.Add([]byte(c))
	}
	seen := map[string]bool{}
	for _, line := range base {
		typ, _ := ari.ScanEventType(line)
		f.Add(line)
		if !seen[string(typ)] { // the mutations of one event of each type
			seen[string(typ)] = true
			for _, m := range fastMutations(line) {
				f.Add(m)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFast(t, data)
	})
}

// The mutations are all checked in the ordinary test run too (not only when fuzzing), and
// the fast decoder gives up on the ones encoding/json decodes differently or rejects.
func TestFastDecodeMutations(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(captureDir(t), "*.jsonl"))
	seen := map[string]bool{}
	n := 0
	for _, path := range files {
		for _, line := range readLines(t, path) {
			typ, _ := ari.ScanEventType(line)
			if seen[string(typ)] {
				continue
			}
			seen[string(typ)] = true
			for _, m := range fastMutations(line) {
				checkFast(t, m)
				n++
			}
		}
	}
	if n == 0 {
		t.Fatal("no mutations checked")
	}
}

// jsonSyntaxCases are small inputs at the edges of JSON's grammar.
var jsonSyntaxCases = []string{
	``, ` `, `{}`, `[]`, `{ }`, `[ ]`, `{"a":1}`, `{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":}`, `{a:1}`,
	`[1,]`, `[,1]`, `[1 2]`, `[1,2]`, `{"a":[{"b":[]},{}]}`, `{"a":[}`, `{"a":{]}`, `[{]}`, `[}`, `{]`,
	`0`, `-0`, `01`, `-01`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-`, `--1`, `+1`,
	`1.5e3`, `0.0`, `00`, `2x`, `true`, `false`, `null`, `tru`, `truex`, `nul`, `nulll`, `True`,
	`"a"`, `"a`, `"\"`, `"\\"`, `"\u00e9"`, `"\u00G9"`, `"\u00e"`, `"\x"`, `"\/"`, `"\b\f\n\r\t"`,
	"\"\t\"", "\"\x7f\"", "\"\xff\xfe\"", "\"\u00f1\"", "{\"a\":1}\n", " \t\r\n{}", "{}x", "{}{}", "[1]]",
	`{"a":"b"}}`, `{"a":"b"`, `{"a":"b",`, `[1}`, `{"a":1]`, `[[1]}`, `{"a":{"b":1}]`, "\"\x1f\"", "\"\x00\"", `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
}

// plainValid never accepts what json.Valid rejects, and is sure of the plain valid cases.
func TestPlainValid(t *testing.T) {
	sure := 0
	for _, c := range jsonSyntaxCases {
		got, want := ari.PlainValid([]byte(c)), json.Valid([]byte(c))
		if got && !want {
			t.Errorf("plainValid(%q) true, json.Valid false", c)
		}
		if got {
			sure++
		}
		if want && !got && len(c) < 100 {
			t.Errorf("plainValid(%q) unsure of valid JSON", c)
		}
	}
	if sure < 20 {
		t.Errorf("plainValid sure of only %d cases", sure)
	}
}
