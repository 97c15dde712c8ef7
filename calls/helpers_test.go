package calls_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/callsim"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// recorder is an Output that keeps every fact in order and checks the ordering
// contract: a call's Ended comes after all its Connected, and comes once.
type recorder struct {
	mu        sync.Mutex
	connected []calls.Connected
	ended     []calls.Ended
	endedSet  map[string]bool
	problems  []string
}

func (r *recorder) Connected(c calls.Connected) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.endedSet[c.CallID] {
		r.problems = append(r.problems, fmt.Sprintf("Connected of call %s (agent %d) after its Ended", c.CallID, c.AgentID))
	}
	r.connected = append(r.connected, c)
}

func (r *recorder) Ended(e calls.Ended) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.endedSet == nil {
		r.endedSet = map[string]bool{}
	}
	if r.endedSet[e.CallID] {
		r.problems = append(r.problems, "second Ended for call "+e.CallID)
	}
	r.endedSet[e.CallID] = true
	r.ended = append(r.ended, e)
}

func (r *recorder) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.connected), len(r.ended)
}

func (r *recorder) facts(t testing.TB) ([]calls.Connected, []calls.Ended) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Errorf("ordering: %s", p)
	}
	return append([]calls.Connected(nil), r.connected...), append([]calls.Ended(nil), r.ended...)
}

// extResolver resolves Set 1 / callsim agents: extension 1000+N is agent N.
type extResolver struct{}

func (extResolver) AgentByExtension(_ context.Context, ext string) (int, error) {
	n, err := strconv.Atoi(ext)
	if err != nil || n <= 1000 {
		return 0, fmt.Errorf("no agent with extension %q", ext)
	}
	return n - 1000, nil
}

// startTracker builds a tracker and runs it until the test ends.
func startTracker(t testing.TB, opts calls.Options) (*calls.Tracker, *recorder) {
	t.Helper()
	rec := &recorder{}
	if opts.Output == nil {
		opts.Output = rec
	}
	tr, err := calls.NewTracker(opts)
	if err != nil {
		t.Fatalf("NewTracker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	return tr, rec
}

// waitFor polls cond until it holds, failing the test after a generous bound (this
// waits for asynchronous delivery; it asserts nothing about speed).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func settle(t testing.TB, tr *calls.Tracker) {
	t.Helper()
	waitFor(t, "lazy reads to finish", func() bool { return tr.Stats().Pending == 0 })
}

func sharedFile(t testing.TB, rel string) string {
	t.Helper()
	return filepath.Join(pgtest.SharedDir(t), "testdata", rel)
}

// readAMI returns every message of a raw AMI capture (banner skipped).
func readAMI(t testing.TB, path string) []*ami.Message {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening capture: %v", err)
	}
	defer f.Close()
	r := ami.NewReader(f, ami.Limits{})
	if _, err := r.ReadBanner(); err != nil {
		t.Fatalf("reading banner of %s: %v", path, err)
	}
	var out []*ami.Message
	var m ami.Message
	for {
		err := r.ReadMessage(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		out = append(out, m.Clone())
	}
}

// readARI decodes every event of a .jsonl capture.
func readARI(t testing.TB, path string) []ari.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening capture: %v", err)
	}
	defer f.Close()
	var out []ari.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		ev, err := ari.DecodeEvent(sc.Bytes())
		if err != nil {
			t.Fatalf("decoding %s: %v", path, err)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return out
}

// want is the expected part of a Connected (At, CallWaitDuration and Missing are
// checked separately where they matter).
type want struct {
	CallID, LinkedID          string
	AgentID                   int
	AgentChannel, CustChannel string
	CampaignID, CampaignType  int
	Phone, ContactID          string
	RecordingFile             string
	Dialplan                  map[string]string
}

func wantOf(c calls.Connected) want {
	return want{c.CallID, c.LinkedID, c.AgentID, c.AgentChannel, c.CustomerChannel, c.CampaignID, c.CampaignType,
		c.Phone, c.ContactID, c.RecordingFile, c.Dialplan}
}

func checkConnected(t testing.TB, got calls.Connected, w want) {
	t.Helper()
	g := wantOf(got)
	if w.LinkedID == "" {
		g.LinkedID = ""
	}
	if w.AgentChannel == "" {
		g.AgentChannel, g.CustChannel = "", ""
	}
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("Connected mismatch\n got  %+v\n want %+v", g, w)
	}
	if len(got.Missing) != 0 {
		t.Errorf("Connected of call %s reports missing fields %v", got.CallID, got.Missing)
	}
}

var origin = "web ñ & más"

func set2Dialplan(ticket string) map[string]string {
	return map[string]string{"OMLCRM_ticket": ticket, "OMLCRMORIGIN": origin}
}

func set1Dialplan(ticket string) map[string]string {
	return map[string]string{"Omlcrmticket": ticket, "OmlcrmOrigen": origin}
}

func itoa(n int) string { return strconv.Itoa(n) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// feedDirect renders a call to AMI bytes and feeds the parsed messages to the tracker
// (no network).
func feedDirect(t testing.TB, tr *calls.Tracker, cs ...*callsim.Call) {
	t.Helper()
	var buf bytes.Buffer
	if err := callsim.WriteAMI(&buf, callsim.Interleave(cs, 10*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	r := ami.NewReader(&buf, ami.Limits{})
	var m ami.Message
	for {
		err := r.ReadMessage(&m)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		tr.HandleAMI(&m)
	}
}
