package ari_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// captureDir is ../shared/testdata/ari (real Asterisk 22 traffic; read, never copied).
func captureDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(pgtest.SharedDir(t), "testdata", "ari")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the shared folder has no testdata/ari: %v", err)
	}
	return dir
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 4<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			lines = append(lines, bytes.Clone(sc.Bytes()))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

type captureFacts struct {
	events, dialAnswer, dialAnswerWithCaller, enteredBridge, stasisStart int
}

// What the README of the captures says each one holds, counted once by hand from the scenario
// and checked here against the decoder.
var wantFacts = map[string]captureFacts{
	"inbound.jsonl": {131, 2, 1, 2, 0},
	"oml-inbound-queue-chanvars-observer.jsonl": {198, 2, 1, 2, 0},
	"oml-inbound-queue-observer.jsonl":          {194, 2, 1, 2, 0},
	"oml-preview-click2call-observer.jsonl":     {185, 2, 1, 2, 0},
	"oml-stasis-inbound-observer.jsonl":         {136, 2, 0, 2, 0},
	"oml-stasis-inbound.jsonl":                  {46, 1, 0, 2, 2},
	"preview.jsonl":                             {144, 2, 1, 2, 0},
	"transfer.jsonl":                            {206, 3, 2, 4, 0},
}

// TestDecodeCaptures decodes every line of every capture with no error and checks that each
// typed event keeps every field Asterisk sent, with the same value.
func TestDecodeCaptures(t *testing.T) {
	dir := captureDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .jsonl captures in %s (%v)", dir, err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			var got captureFacts
			for i, line := range readLines(t, path) {
				ev, err := ari.DecodeEvent(line)
				if err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				got.events++
				checkAgainstJSON(t, i+1, line, ev)
				switch e := ev.(type) {
				case *ari.DialEvent:
					if e.Dialstatus == "ANSWER" {
						got.dialAnswer++
						if e.Caller.ID != "" {
							got.dialAnswerWithCaller++
						}
					}
				case *ari.ChannelEnteredBridge:
					got.enteredBridge++
				case *ari.StasisStart:
					got.stasisStart++
				}
			}
			want, ok := wantFacts[name]
			if !ok {
				t.Logf("no expected facts for new capture %s: %+v", name, got)
				return
			}
			if got != want {
				t.Errorf("facts = %+v, want %+v", got, want)
			}
		})
	}
}

// checkAgainstJSON compares a decoded event with a generic decode of the same line.
func checkAgainstJSON(t *testing.T, lineNo int, line []byte, ev ari.Event) {
	t.Helper()
	var orig map[string]any
	if err := json.Unmarshal(line, &orig); err != nil {
		t.Fatalf("line %d: generic decode: %v", lineNo, err)
	}
	if ev.EventType() != orig["type"] {
		t.Fatalf("line %d: type %q, JSON says %v", lineNo, ev.EventType(), orig["type"])
	}
	base := ev.EventBase()
	if ts := base.Timestamp.Format(ari.TimeLayout); ts != orig["timestamp"] {
		t.Errorf("line %d: timestamp %s, JSON says %v", lineNo, ts, orig["timestamp"])
	}
	if base.Application != orig["application"] || base.AsteriskID != orig["asterisk_id"] {
		t.Errorf("line %d: base %+v differs from the JSON", lineNo, *base)
	}
	if u, ok := ev.(*ari.Unknown); ok {
		if ari.IsTyped(u.Type) {
			t.Errorf("line %d: %s came back Unknown", lineNo, u.Type)
		}
		if !bytes.Equal(u.Raw, line) {
			t.Errorf("line %d: Unknown.Raw is not the message", lineNo)
		}
		return
	}
	back, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("line %d: %v", lineNo, err)
	}
	var typed map[string]any
	if err := json.Unmarshal(back, &typed); err != nil {
		t.Fatal(err)
	}
	for k, v := range orig {
		tv, ok := typed[k]
		if !ok {
			t.Errorf("line %d: %s: field %q is not kept by the typed event", lineNo, ev.EventType(), k)
			continue
		}
		if !reflect.DeepEqual(v, tv) {
			t.Errorf("line %d: %s.%s = %v, JSON says %v", lineNo, ev.EventType(), k, tv, v)
		}
	}
}

func decodeFile(t *testing.T, name string) []ari.Event {
	t.Helper()
	var out []ari.Event
	for i, line := range readLines(t, filepath.Join(captureDir(t), name)) {
		ev, err := ari.DecodeEvent(line)
		if err != nil {
			t.Fatalf("%s line %d: %v", name, i+1, err)
		}
		out = append(out, ev)
	}
	return out
}

func TestCaptureChannelVars(t *testing.T) {
	want := []string{"OMLCALLID", "OMLCAMPID", "OMLCAMPTYPE", "OMLAGENTID", "OMLCONTACTID", "OMLRECFILENAME", "OMLCRM_ticket"}
	var withVars, campaign7, ticket int
	for _, ev := range decodeFile(t, "oml-inbound-queue-chanvars-observer.jsonl") {
		ch := channelOf(ev)
		if ch == nil {
			continue
		}
		withVars++
		for _, k := range want {
			if _, ok := ch.ChannelVars[k]; !ok {
				t.Fatalf("%s on %s: channelvars lack %s: %v", ev.EventType(), ch.Name, k, ch.ChannelVars)
			}
		}
		if len(ch.ChannelVars) != len(want) {
			t.Errorf("channelvars has %d entries, want %d: %v", len(ch.ChannelVars), len(want), ch.ChannelVars)
		}
		if ch.ChannelVars["OMLCAMPID"] == "7" {
			campaign7++
		}
		if ch.ChannelVars["OMLCRM_ticket"] == "T-123" {
			ticket++
		}
	}
	if withVars != 182 || campaign7 == 0 || ticket == 0 {
		t.Errorf("channels with channelvars %d (want 182), OMLCAMPID=7 on %d, OMLCRM_ticket=T-123 on %d", withVars, campaign7, ticket)
	}
	// Without ari.conf channelvars the field is absent.
	for _, ev := range decodeFile(t, "oml-inbound-queue-observer.jsonl") {
		if ch := channelOf(ev); ch != nil && ch.ChannelVars != nil {
			t.Fatalf("channelvars present without ari.conf channelvars: %v", ch.ChannelVars)
		}
	}
}

func channelOf(ev ari.Event) *ari.Channel {
	switch e := ev.(type) {
	case *ari.ChannelCreated:
		return &e.Channel
	case *ari.ChannelVarset:
		return &e.Channel
	case *ari.ChannelDialplan:
		return &e.Channel
	case *ari.ChannelDestroyed:
		return &e.Channel
	case *ari.ChannelStateChange:
		return &e.Channel
	case *ari.ChannelEnteredBridge:
		return &e.Channel
	case *ari.ChannelLeftBridge:
		return &e.Channel
	case *ari.ChannelHangupRequest:
		return &e.Channel
	case *ari.ChannelCallerId:
		return &e.Channel
	case *ari.ChannelConnectedLine:
		return &e.Channel
	case *ari.StasisStart:
		return &e.Channel
	case *ari.StasisEnd:
		return &e.Channel
	}
	return nil
}

func TestCaptureStasis(t *testing.T) {
	events := decodeFile(t, "oml-stasis-inbound.jsonl")
	var starts []*ari.StasisStart
	var ends int
	var entered []*ari.ChannelEnteredBridge
	for _, ev := range events {
		switch e := ev.(type) {
		case *ari.StasisStart:
			starts = append(starts, e)
		case *ari.StasisEnd:
			ends++
		case *ari.ChannelEnteredBridge:
			entered = append(entered, e)
		}
		if app := ev.EventBase().Application; app != "omlcrm-acd" {
			t.Fatalf("application %q, want omlcrm-acd", app)
		}
	}
	if len(starts) != 2 || ends != 2 || len(entered) != 2 {
		t.Fatalf("StasisStart %d, StasisEnd %d, ChannelEnteredBridge %d; want 2, 2, 2", len(starts), ends, len(entered))
	}
	customer := starts[0]
	if !slices.Equal(customer.Args, []string{"inbound", "75"}) {
		t.Errorf("customer args %q", customer.Args)
	}
	if customer.Channel.Dialplan.AppName != "Stasis" || customer.Channel.Dialplan.AppData != "omlcrm-acd,inbound,75" {
		t.Errorf("customer dialplan %+v", customer.Channel.Dialplan)
	}
	bridge := entered[0].Bridge
	agent := starts[1]
	if !slices.Equal(agent.Args, []string{"agent", bridge.ID, customer.Channel.ID}) {
		t.Errorf("agent args %q, want agent,%s,%s", agent.Args, bridge.ID, customer.Channel.ID)
	}
	if bridge.BridgeClass != "stasis" || bridge.BridgeType != "mixing" {
		t.Errorf("bridge %+v", bridge)
	}
	last := entered[1].Bridge
	if !slices.Contains(last.Channels, customer.Channel.ID) || !slices.Contains(last.Channels, agent.Channel.ID) {
		t.Errorf("after the agent entered, bridge channels %v lack customer %s or agent %s", last.Channels, customer.Channel.ID, agent.Channel.ID)
	}
	// The observer app sees the same call but never the Stasis events.
	for _, ev := range decodeFile(t, "oml-stasis-inbound-observer.jsonl") {
		switch ev.(type) {
		case *ari.StasisStart, *ari.StasisEnd:
			t.Fatalf("observer got %s", ev.EventType())
		}
	}
}

// TestCaptureConnect checks the "connected to agent" facts the calls package relies on: the
// answered Dial of an inbound queue call names the agent leg, and both legs enter one bridge.
func TestCaptureConnect(t *testing.T) {
	events := decodeFile(t, "oml-inbound-queue-observer.jsonl")
	var answered *ari.DialEvent
	bridges := map[string][]string{}
	for _, ev := range events {
		switch e := ev.(type) {
		case *ari.DialEvent:
			if e.Dialstatus == "ANSWER" && e.Caller.ID != "" {
				answered = e
			}
		case *ari.ChannelEnteredBridge:
			bridges[e.Bridge.ID] = append(bridges[e.Bridge.ID], e.Channel.ID)
		}
	}
	if answered == nil {
		t.Fatal("no answered Dial with a caller")
	}
	if answered.Peer.ID == "" || answered.Caller.Dialplan.AppName != "Queue" {
		t.Errorf("answered dial: caller %s in %s, peer %q", answered.Caller.Name, answered.Caller.Dialplan.AppName, answered.Peer.ID)
	}
	if len(bridges) != 1 {
		t.Fatalf("bridges %v, want one", bridges)
	}
	for _, legs := range bridges {
		if len(legs) != 2 || !slices.Contains(legs, answered.Caller.ID) {
			t.Errorf("bridge legs %v, want 2 including the queue caller %s", legs, answered.Caller.ID)
		}
	}
}
