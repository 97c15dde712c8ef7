package ari_test

import (
	"errors"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ari"
)

func TestDecodeEventForms(t *testing.T) {
	ev, err := ari.DecodeEvent([]byte(`{"variable":"GLOBAL_X","value":"1","type":"ChannelVarset","timestamp":"2025-03-02T10:11:13.250-0300","application":"crm"}`))
	if err != nil {
		t.Fatal(err)
	}
	vs := ev.(*ari.ChannelVarset)
	if vs.Channel.ID != "" || vs.Variable != "GLOBAL_X" || vs.Value != "1" {
		t.Errorf("global varset %+v", vs)
	}
	if want := time.Date(2025, 3, 2, 13, 11, 13, 250e6, time.UTC); !vs.Timestamp.Equal(want) {
		t.Errorf("timestamp %v, want %v", vs.Timestamp, want)
	}
	if vs.TimestampText != "2025-03-02T10:11:13.250-0300" {
		t.Errorf("timestamp text %q", vs.TimestampText)
	}

	// A timestamp Asterisk would never send keeps the event, with a zero time.
	ev, err = ari.DecodeEvent([]byte(`{"type":"StasisEnd","timestamp":"soon","channel":{"id":"1.2"}}`))
	if err != nil || !ev.EventBase().Timestamp.IsZero() || ev.(*ari.StasisEnd).Channel.ID != "1.2" {
		t.Errorf("bad timestamp: %+v, %v", ev, err)
	}

	// The last "type" wins, as in encoding/json; the quick scan must not change that.
	ev, err = ari.DecodeEvent([]byte(`{"type":"Dial","dialstatus":"ANSWER","type":"PlaybackStarted"}`))
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := ev.(*ari.Unknown); !ok || u.Type != "PlaybackStarted" {
		t.Errorf("duplicate type: %T %+v", ev, ev)
	}
	ev, err = ari.DecodeEvent([]byte(`{"TYPE":"PlaybackStarted", "type" : "Dial", "dialstatus":"BUSY"}`))
	if d, ok := ev.(*ari.DialEvent); err != nil || !ok || d.Dialstatus != "BUSY" {
		t.Errorf("spaced type key: %T %v", ev, err)
	}
	// A "type" inside a nested object is not the event's.
	ev, err = ari.DecodeEvent([]byte(`{"x":{"type":"Dial"},"y":["type","Dial"],"type":"DeviceStateChanged","device_state":{"name":"PJSIP/1001","state":"INUSE"}}`))
	if d, ok := ev.(*ari.DeviceStateChanged); err != nil || !ok || d.DeviceState.State != "INUSE" {
		t.Errorf("nested type: %T %v", ev, err)
	}
	// An escaped key is still "type".
	ev, err = ari.DecodeEvent([]byte(`{"t\u0079pe":"StasisStart","args":["a","b"]}`))
	if s, ok := ev.(*ari.StasisStart); err != nil || !ok || len(s.Args) != 2 {
		t.Errorf("escaped key: %T %v", ev, err)
	}

	for _, bad := range []string{``, `null`, `[]`, `"Dial"`, `{}`, `{"type":""}`, `{"type":1}`, `{"type":"Dial","peer":[]}`, `{"type":"Dial"} trailing`, `{"type":"Dial"`} {
		if ev, err := ari.DecodeEvent([]byte(bad)); err == nil || !errors.Is(err, ari.ErrMalformedEvent) {
			t.Errorf("%q: %T, %v; want ErrMalformedEvent", bad, ev, err)
		}
	}

	data := []byte(`{"type":"ChannelTalkingStarted","channel":{"id":"9"}}`)
	ev, err = ari.DecodeEvent(data)
	if err != nil {
		t.Fatal(err)
	}
	u := ev.(*ari.Unknown)
	data[2] = 'X'
	if string(u.Raw) != `{"type":"ChannelTalkingStarted","channel":{"id":"9"}}` {
		t.Errorf("Unknown.Raw shares the caller's buffer: %s", u.Raw)
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2026-11-24T01:23:00.263+0000": time.Date(2026, 11, 24, 1, 23, 0, 263e6, time.UTC),
		"2026-11-24T01:23:00+0000":     time.Date(2026, 11, 24, 1, 23, 0, 0, time.UTC),
		"2026-11-23T22:23:00.5-0300":   time.Date(2026, 11, 24, 1, 23, 0, 5e8, time.UTC),
		"2026-11-24T01:23:00.263Z":     time.Date(2026, 11, 24, 1, 23, 0, 263e6, time.UTC),
	} {
		got, err := ari.ParseTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ari.ParseTime("24/11/2026"); err == nil {
		t.Error("ParseTime accepted a non-timestamp")
	}
}
