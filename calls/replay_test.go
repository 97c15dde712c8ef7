package calls

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// recorder is an Output that keeps every fact, in order.
type recorder struct {
	mu        sync.Mutex
	connected []Connected
	ended     []Ended
	order     []string // "C:<call>:<agent>" / "E:<call>"
}

func (r *recorder) Connected(c Connected) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connected = append(r.connected, c)
	r.order = append(r.order, "C:"+c.CallID)
}

func (r *recorder) Ended(e Ended) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, e)
	r.order = append(r.order, "E:"+e.CallID)
}

func (r *recorder) snapshot() ([]Connected, []Ended, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Connected(nil), r.connected...), append([]Ended(nil), r.ended...), append([]string(nil), r.order...)
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
