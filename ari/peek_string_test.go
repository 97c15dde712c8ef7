package ari

import "testing"

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
