package ari_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
)

func TestScanEventType(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		want      string // "" = unsure (ok false)
	}{
		{"plain", `{"type":"Dial","application":"omlcrm"}`, "Dial"},
		{"type last", `{"application":"omlcrm","channel":{"id":"1.1"},"type":"StasisEnd"}`, "StasisEnd"},
		{"whitespace", " \r\n\t{ \"type\" :\t\"ChannelCreated\" , \"x\" : [ 1 , 2 ] }\n", "ChannelCreated"},
		{"nested type key ignored", `{"channel":{"type":"Dial","x":{"type":"Dial"}},"type":"ChannelVarset"}`, "ChannelVarset"},
		{"nested type in array ignored", `{"x":[{"type":"Dial"}],"type":"StasisStart"}`, "StasisStart"},
		{"type only nested", `{"channel":{"type":"Dial"}}`, ""},
		{"type text inside a string", `{"value":"\",\"type\":\"Dial","type":"ChannelVarset"}`, "ChannelVarset"},
		{"braces inside nested strings", `{"channel":{"name":"}{\"]["},"type":"ChannelDestroyed"}`, "ChannelDestroyed"},
		{"duplicate key: last wins", `{"type":"Dial","type":"PlaybackStarted"}`, "PlaybackStarted"},
		{"null keeps the earlier type", `{"type":"Dial","type":null}`, "Dial"},
		{"escaped type value", `{"type":"Di\u0061l"}`, ""},
		{"escaped key", `{"typ\u0065":"Dial"}`, ""},
		{"key in another case", `{"type":"Dial","Type":"PlaybackStarted"}`, ""},
		{"numeric type", `{"type":5}`, ""},
		{"later wrong kind", `{"type":"Dial","type":true}`, ""},
		{"empty type", `{"type":""}`, ""},
		{"non-ASCII type", "{\"type\":\"Dial\x85\"}", ""},
		{"no type", `{"application":"omlcrm"}`, ""},
		{"not an object", `["type","Dial"]`, ""},
		{"truncated", `{"type":"Dial","channel":{"id":"1"`, ""},
		{"bad literal after type", `{"type":"PlaybackStarted","x":tru}`, ""},
		{"trailing garbage", `{"type":"PlaybackStarted"} x`, ""},
		{"unterminated string", `{"type":"PlaybackStarted","x":"abc}`, ""},
		{"empty", ``, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := ari.ScanEventType([]byte(c.msg))
			if ok != (c.want != "") || string(got) != c.want {
				t.Fatalf("ScanEventType(%s) = %q, %v; want %q", c.msg, got, ok, c.want)
			}
			ev, err := ari.DecodeEvent([]byte(c.msg))
			if ok {
				if err != nil || ev.EventType() != c.want {
					t.Fatalf("scan says %q, DecodeEvent says %v, %v", got, ev, err)
				}
			}
		})
	}
	// Malformed JSON is never "sure": the client decodes it and reports it as today.
	for _, bad := range []string{`{"type":"PlaybackStarted",`, `{"type":"PlaybackStarted","a":01}`, `{"type":"PlaybackStarted","a":"\x01"}`} {
		if _, ok := ari.ScanEventType([]byte(bad)); ok {
			t.Errorf("ScanEventType(%q) is sure of invalid JSON", bad)
		}
		if _, err := ari.DecodeEvent([]byte(bad)); !errors.Is(err, ari.ErrMalformedEvent) {
			t.Errorf("DecodeEvent(%q) = %v, want ErrMalformedEvent", bad, err)
		}
	}
}

func TestScanEventTypeDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race (sync.Pool drops items); run without -race")
	}
	lines := readLines(t, filepath.Join(captureDir(t), "oml-inbound-queue-observer.jsonl"))
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := ari.ScanEventType(lines[i%len(lines)]); !ok {
			t.Fatalf("unsure of capture line %d", i%len(lines))
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per scan", allocs)
	}
}

// With EventTypes set, a real capture replayed through aritest arrives filtered, in order,
// decoded as without the filter; the rest is counted as skipped by type, and malformed
// messages are still reported as malformed whatever their type.
func TestEventTypesFilter(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	reg := prometheus.NewRegistry()
	metrics, err := ari.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	wanted := []string{"ChannelVarset", "Dial", "ChannelEnteredBridge", "StasisEnd"}
	rec := newRecorder()
	cfg := rec.config(srv, t)
	cfg.Metrics = metrics
	cfg.EventTypes = wanted
	dialRecorder(t, cfg)
	rec.expectState(t, ari.StateConnected)

	lines := readLines(t, filepath.Join(captureDir(t), "oml-inbound-queue-observer.jsonl"))
	var want []ari.Event
	skipped := map[string]int{}
	for _, l := range lines {
		ev, err := ari.DecodeEvent(l)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(wanted, ev.EventType()) {
			want = append(want, ev)
		} else {
			skipped[ev.EventType()]++
		}
	}
	if len(want) == 0 || len(skipped) == 0 {
		t.Fatalf("the capture has %d wanted events and %d skipped types: the test proves nothing", len(want), len(skipped))
	}
	for _, l := range lines {
		send(t, srv, l)
	}
	// The scan is unsure of these (escaped key, other-case key): decoded, then filtered.
	send(t, srv, []byte(`{"typ\u0065":"PlaybackStarted","application":"omlcrm"}`))
	send(t, srv, []byte(`{"Type":"PlaybackFinished","application":"omlcrm"}`))
	send(t, srv, []byte(`{"typ\u0065":"Dial","application":"omlcrm"}`)) // wanted
	skipped["PlaybackStarted"]++
	skipped["PlaybackFinished"]++
	// Invalid JSON of an unwanted type: malformed, as without the filter.
	send(t, srv, []byte(`{"type":"PlaybackStarted","x":tru}`))
	send(t, srv, []byte(`{"type":"PlaybackStarted",`))
	send(t, srv, varset(7, "last"))

	for i, w := range want {
		if got := rec.next(t); !sameEvent(got, w) {
			t.Fatalf("event %d: got %T %+v, want %T %+v", i, got, got, w, w)
		}
	}
	if d, ok := rec.next(t).(*ari.DialEvent); !ok {
		t.Fatalf("the wanted Dial with an escaped key did not arrive (got %T)", d)
	}
	if seqOf(t, rec.next(t)) != 7 {
		t.Fatal("wrong last event")
	}
	select {
	case ev := <-rec.events:
		t.Fatalf("unexpected event %T", ev)
	default:
	}
	for typ, n := range skipped {
		if v := metricValue(t, reg, "omlcrm_ari_skipped_events_total", map[string]string{"type": typ}); v != float64(n) {
			t.Errorf("skipped %s = %v, want %d", typ, v, n)
		}
		if v := metricValue(t, reg, "omlcrm_ari_events_total", map[string]string{"type": typ}); v != float64(n) {
			t.Errorf("events_total %s = %v, want %d (received, skipped included)", typ, v, n)
		}
	}
	if v := metricValue(t, reg, "omlcrm_ari_malformed_events_total", nil); v != 2 {
		t.Errorf("malformed counter %v, want 2", v)
	}
	if v := metricValue(t, reg, "omlcrm_ari_events_total", map[string]string{"type": "Dial"}); v == 0 {
		t.Error("no Dial counted as delivered")
	}
}

// A non-nil empty EventTypes delivers nothing (as ami.Config.EventNames); a blank name is a
// configuration error naming the field.
func TestEventTypesConfig(t *testing.T) {
	srv := aritest.NewServer(t, aritest.Options{Username: testUser, Password: testPass})
	rec := newRecorder()
	cfg := rec.config(srv, t)
	cfg.EventTypes = []string{"Dial", " "}
	if _, err := ari.Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "EventTypes[1]") {
		t.Fatalf("Dial with a blank event type: %v", err)
	}
	cfg.EventTypes = []string{}
	reg := prometheus.NewRegistry()
	metrics, err := ari.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = metrics
	dialRecorder(t, cfg)
	rec.expectState(t, ari.StateConnected)
	send(t, srv, varset(1, "dropped"))
	send(t, srv, []byte(`{"typ\u0065":"Dial"}`)) // unsure scan: decoded, then dropped
	// Messages are handled in order: once the second is counted, the first was not delivered.
	deadline := time.Now().Add(waitLong)
	for metricValue(t, reg, "omlcrm_ari_skipped_events_total", map[string]string{"type": "Dial"}) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the Dial was never counted as skipped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v := metricValue(t, reg, "omlcrm_ari_skipped_events_total", map[string]string{"type": "ChannelVarset"}); v != 1 {
		t.Errorf("skipped ChannelVarset = %v, want 1", v)
	}
	select {
	case ev := <-rec.events:
		t.Fatalf("an empty EventTypes delivered %T", ev)
	default:
	}
}
