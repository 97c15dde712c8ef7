package ami

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// ReadMessageSelected drops an event on a header after its name (here VarSet's Variable)
// before copying it, and reads everything else exactly as ReadMessage does, even when the
// message straddles a buffer refill.
func TestReadMessageSelectedDropsOnALaterHeader(t *testing.T) {
	var stream strings.Builder
	stream.WriteString("Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n")
	for i := range 40 {
		v := "BRIDGEPEER"
		if i%3 == 0 {
			v = "__OMLCAMPID"
		}
		stream.WriteString("Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: Local/1001@oml-agent-00000001;1\r\n" +
			"Uniqueid: 1795483380." + strings.Repeat("7", i%5+1) + "\r\nVariable: " + v + "\r\nValue: 42\r\n\r\n")
		stream.WriteString("Event: Newchannel\r\nChannel: SIP/x-1\r\n\r\n")
	}
	all := readAll(t, NewReader(strings.NewReader(stream.String()), Limits{}))
	var want []string
	for _, m := range all {
		if m.Event() != "VarSet" || m.Get("Variable") == "__OMLCAMPID" {
			want = append(want, m.Raw())
		}
	}
	accept := func(v *View) bool {
		if !bytes.Equal(v.Event(), []byte("VarSet")) {
			t.Errorf("accept shown a %q", v.Event())
		}
		return bytes.HasPrefix(v.Get("variable"), []byte("__OML")) // keys compare case-insensitively
	}
	isVarSet := func(ev []byte) bool { return string(ev) == "VarSet" || string(ev) == "Newchannel" }
	for _, size := range []int{0, 80} { // 80: refills (and compaction) inside most messages
		r := newReaderSize(iotest.OneByteReader(strings.NewReader(stream.String())), Limits{MaxLine: 78}.withDefaults(), size)
		var got []string
		var m Message
		for {
			kept, err := r.ReadMessageSelected(&m, isVarSet, func(v *View) bool {
				if string(v.Event()) == "Newchannel" {
					return true
				}
				return accept(v)
			})
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if !kept {
				if len(m.Headers) != 0 || m.Raw() != "" {
					t.Fatalf("dropped message left in m: %v", m.Headers)
				}
				continue
			}
			got = append(got, m.Raw())
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("buffer %d: kept %d messages, want %d", size, len(got), len(want))
		}
	}
}

func TestReadMessageSelectedAllocatesNothingForADroppedEvent(t *testing.T) {
	msg := "Event: VarSet\r\nChannel: Local/1@x;1\r\nVariable: BRIDGEPEER\r\nValue: y\r\n\r\n"
	r := NewReader(&cycleReader{block: []byte(msg)}, Limits{})
	var m Message
	drop := func(v *View) bool { return v.Get("Variable") == nil }
	allocs := testing.AllocsPerRun(1000, func() {
		if kept, err := r.ReadMessageSelected(&m, nil, drop); kept || err != nil {
			t.Fatalf("kept %v, err %v", kept, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per dropped event, want 0", allocs)
	}
}
