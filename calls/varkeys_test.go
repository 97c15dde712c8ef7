package calls

import "testing"

// The allocation-free helpers of setVar must agree with the plain definition they
// replace (upperASCII), Unicode names included; the Local-pair helpers give each name's
// other half.
func TestVarKeyHelpersMatchDefinitions(t *testing.T) {
	names := []string{"OMLCALLID", "Omlcrmticket", "omlcrmorigen", "OmlcrmÁrea", "OMLÁREA", "omlé", "ÉOML", "", "a", "Z", "OML_x1", "omlcrm\xff"}
	for _, name := range names {
		ascii, lower := asciiCase(name)
		e := newVarEntry(name, "value", true, ascii, lower)
		if e.key != upperASCII(name) || e.name != name || e.value != "value" || !e.inherited {
			t.Errorf("newVarEntry(%q) = %+v, want key %q", name, e, upperASCII(name))
		}
		for _, key := range names {
			if got, want := sameKey(upperASCII(key), name, ascii), upperASCII(key) == upperASCII(name); got != want {
				t.Errorf("sameKey(%q, %q) = %v, want %v", upperASCII(key), name, got, want)
			}
		}
	}
	chans := []string{"Local/1001@oml-agent-0000000d;1", "Local/1001@oml-agent-0000000d;2", "Local/1001@oml-agent-0000000e;2",
		"Local/x;3", "PJSIP/1001-0000002a", "Local/;1", "Local/;2", ";1", "", "Local/1001@ctx;1;2"}
	// The other half of each name; none for the rest.
	sibling := map[string]string{
		"Local/1001@oml-agent-0000000d;1": "Local/1001@oml-agent-0000000d;2",
		"Local/1001@oml-agent-0000000d;2": "Local/1001@oml-agent-0000000d;1",
		"Local/1001@oml-agent-0000000e;2": "Local/1001@oml-agent-0000000e;1",
		"Local/;1":                        "Local/;2",
		"Local/;2":                        "Local/;1",
		"Local/1001@ctx;1;2":              "Local/1001@ctx;1;1",
	}
	for _, a := range chans {
		want := sibling[a]
		if got := siblingName(a); got != want {
			t.Errorf("siblingName(%q) = %q, want %q", a, got, want)
		}
		if got := isLocalHalf(a); got != (want != "") {
			t.Errorf("isLocalHalf(%q) = %v, want %v", a, got, want != "")
		}
		for _, b := range chans {
			if got := localPair(a, b); got != (want != "" && want == b) {
				t.Errorf("localPair(%q, %q) = %v, want %v", a, b, got, want != "" && want == b)
			}
		}
	}
}

// A channel's sibling is found through a name longer than sibling's stack buffer too.
func TestSiblingOfLongLocalName(t *testing.T) {
	tr, err := NewTracker(Options{Output: OutputFuncs{}})
	if err != nil {
		t.Fatal(err)
	}
	long := "Local/1001@a-very-long-context-name-that-goes-on-and-on-and-on-beyond-ninety-six-bytes-0000000d"
	for _, name := range []string{"Local/1001@oml-agent-0000000d", long} {
		tr.Handle(Event{Kind: KindChannel, Channel: ChannelRef{ID: name + "1", Name: name + ";1"}})
		tr.Handle(Event{Kind: KindChannel, Channel: ChannelRef{ID: name + "2", Name: name + ";2"}})
		tr.mu.Lock()
		one, two := tr.chans[name+"1"], tr.chans[name+"2"]
		if tr.sibling(one) != two || tr.sibling(two) != one {
			t.Errorf("%s: the halves do not find each other", name)
		}
		tr.mu.Unlock()
	}
}

// ensure's last-channel shortcut must not return a channel that has hung up.
func TestChannelBackAfterHangup(t *testing.T) {
	tr, err := NewTracker(Options{Output: OutputFuncs{}})
	if err != nil {
		t.Fatal(err)
	}
	ch := ChannelRef{ID: "1796287433.2", Name: "PJSIP/1001-00000002", LinkedID: "1796287433.2"}
	tr.Handle(Event{Kind: KindVar, Channel: ch, Name: "OMLCAMPID", Value: "7"})
	tr.Handle(Event{Kind: KindHangup, Channel: ch})
	if s := tr.Stats(); s.Channels != 0 {
		t.Fatalf("%d channels after the hangup, want 0", s.Channels)
	}
	tr.Handle(Event{Kind: KindVar, Channel: ch, Name: "OMLCAMPID", Value: "8"})
	if s := tr.Stats(); s.Channels != 1 || s.Calls != 1 {
		t.Fatalf("after a VarSet on the same id again: %+v, want 1 channel in 1 call", s)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if got := tr.varOf(tr.chans[ch.ID], varCampID); got != "8" {
		t.Errorf("OMLCAMPID = %q, want 8 (a fresh channel)", got)
	}
}
