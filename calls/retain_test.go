package calls_test

import (
	"errors"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/calls"
)

// TestTrackerKeepsNoMessageBytes: ami.Reader copies the messages it reads into shared
// chunks of 16 KiB, so a string the tracker kept from a Message without copying it would
// keep a whole chunk alive. The first half of busy-40-calls.ami (calls in progress when
// it stops) goes through a Reader into HandleAMI; every message's bytes get a cleanup.
// Once the Reader and the Message are gone, every cleanup must run while the tracker,
// still holding its live calls, is reachable: it holds no byte of any message.
func TestTrackerKeepsNoMessageBytes(t *testing.T) {
	data, err := os.ReadFile(sharedFile(t, "ami/busy-40-calls.ami"))
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := startTracker(t, calls.Options{Resolver: extResolver{}, Output: calls.OutputFuncs{}})
	var attached, ran atomic.Int64
	func() {
		r := ami.NewReader(&halfReader{data: data[:len(data)/2]}, ami.Limits{})
		if _, err := r.ReadBanner(); err != nil {
			t.Fatal(err)
		}
		var m ami.Message
		for {
			err := r.ReadMessage(&m)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			runtime.AddCleanup(unsafe.StringData(m.Raw()), func(*atomic.Int64) { ran.Add(1) }, &ran)
			attached.Add(1)
			tr.HandleAMI(&m)
		}
	}()
	settle(t, tr)
	if s := tr.Stats(); s.Channels == 0 || s.Calls == 0 {
		t.Fatalf("no call in progress half way through the capture: %+v", s)
	}
	waitFor(t, "every message's bytes to be collected", func() bool {
		runtime.GC()
		return ran.Load() == attached.Load()
	})
	if s := tr.Stats(); s.Channels == 0 {
		t.Fatalf("the tracker lost its channels: %+v", s)
	}
	runtime.KeepAlive(tr)
}

// halfReader serves data in small reads, as a socket would.
type halfReader struct{ data []byte }

func (h *halfReader) Read(p []byte) (int, error) {
	if len(h.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1500)], h.data)
	h.data = h.data[n:]
	return n, nil
}
