package ari

import (
	"encoding/json"
	"testing"
)

// peekString finds a top-level string only when encoding/json would certainly see the
// same value; otherwise it answers "unsure" and the event is decoded.
func TestPeekString(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"ChannelVarset","variable":"BRIDGEPEER","value":"x"}`:         "BRIDGEPEER",
		` { "channel" : {"variable":"NESTED"} , "variable" : "__OMLCAMPID" } `: "__OMLCAMPID",
		`{"type":"ChannelVarset","value":"x"}`:                                 "?", // absent
		`{"variable":"A","variable":"B"}`:                                      "?", // repeated: json keeps the last
		`{"Variable":"A"}`:                                                     "?", // json matches keys case-insensitively
		`{"variable":"A","VARIABLE":"B"}`:                                      "?",
		`{"variable":"OML\u0041"}`:                                             "?", // escaped
		`{"variable":"OMLñ"}`:                                                  "?", // not ASCII
		`{"variable":null}`:                                                    "?",
		`{"variable":12}`:                                                      "?",
		`{"a":"\"variable\":\"X\"","variable":"Y"}`:                            "Y", // an escaped value is skipped whole: only keys must be plain
		`["variable","X"]`:                                                     "?",
		`{"variable":"X"`:                                                      "?",
	} {
		v, ok := peekString([]byte(in), variableKey)
		got := string(v)
		if !ok {
			got = "?"
		}
		if got != want {
			t.Errorf("peekString(%s) = %q, want %q", in, got, want)
		}
	}
}

// peekTop answers for "type" exactly what peekType does, and a "variable" it is sure of is
// the one encoding/json decodes.
func FuzzPeekTop(f *testing.F) {
	for _, s := range []string{
		`{"variable":"CONTACT","value":"1","type":"ChannelVarset","channel":{"id":"1","variable":"x"}}`,
		`{"type":"Dial","Type":"x"}`, `{"variable":"A","VARIABLE":"B","type":"ChannelVarset"}`,
		`{"type":null,"variable":"\u00e9"}`, `{"type":"ChannelVarset","type":"StasisStart"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, v, ok := peekTop(data, variableKey)
		if want := peekType(data); string(typ) != string(want) || (typ == nil) != (want == nil) {
			t.Fatalf("peekTop type %q, peekType %q", typ, want)
		}
		if !ok {
			return
		}
		var m struct {
			Variable *string `json:"variable"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return // invalid JSON: the filter runs json.Valid before skipping
		}
		if m.Variable == nil || *m.Variable != string(v) {
			t.Fatalf("peekTop variable %q, encoding/json %v", v, m.Variable)
		}
	})
}
