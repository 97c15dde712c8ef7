package ami

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"unsafe"
)

// slabStream returns n events of varied sizes, then one larger than a quarter of a
// chunk, then n more, in wire form, so that reading it fills several chunks.
func slabStream(n int) string {
	var b strings.Builder
	ev := func(i int) {
		fmt.Fprintf(&b, "Event: VarSet\r\nChannel: PJSIP/1001-%08x\r\nVariable: V%d\r\nValue: %s\r\nUniqueid: %d.%d\r\n\r\n",
			i, i, strings.Repeat("x", i%97), 1700000000+i, i)
	}
	for i := range n {
		ev(i)
	}
	fmt.Fprintf(&b, "Event: Big\r\nValue: %s\r\n\r\n", strings.Repeat("y", slabSize/4+1))
	for i := range n {
		ev(n + i)
	}
	return b.String()
}

// TestReaderStringsStayIntact keeps every string of every message read (header keys
// and values, Raw) and checks, after the whole stream has gone through the same Reader
// and Message, that none of them changed: the chunks messages are copied into are never
// written where a string points, neither when a message follows another in a chunk nor
// when a new chunk is taken or a large message gets an allocation of its own.
func TestReaderStringsStayIntact(t *testing.T) {
	in := slabStream(2000)
	for _, slow := range []bool{false, true} {
		r := NewReader(strings.NewReader(in), Limits{})
		r.slow = slow // the general loop copies through own as well
		type kept struct{ s, copy string }
		var all []kept
		var m Message
		for {
			err := r.ReadMessage(&m)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range m.Headers {
				all = append(all, kept{h.Key, strings.Clone(h.Key)}, kept{h.Value, strings.Clone(h.Value)})
			}
			all = append(all, kept{m.Raw(), strings.Clone(m.Raw())})
		}
		if len(all) < 4000*6 {
			t.Fatalf("slow=%v: read %d strings, want at least %d", slow, len(all), 4000*6)
		}
		var raw strings.Builder
		for _, k := range all {
			if k.s != k.copy {
				t.Fatalf("slow=%v: a kept string changed: %q, was %q", slow, k.s, k.copy)
			}
			if len(k.s) > 20 && strings.HasPrefix(k.s, "Event: ") {
				raw.WriteString(k.s)
			}
		}
		if raw.String() != in {
			t.Fatalf("slow=%v: the messages' Raw strings do not add up to the stream", slow)
		}
	}
}

// TestReaderCopiesIntoChunks checks the layout own promises: consecutive messages lie
// one after the other in a chunk, a message over a quarter of slabSize has an
// allocation of its own and leaves the chunk's tail to the next message, a new chunk is
// taken only when the last one's tail is too short, the first is firstSlab bytes, each
// next one twice the last, and none more than slabSize.
func TestReaderCopiesIntoChunks(t *testing.T) {
	r := NewReader(strings.NewReader(slabStream(200)), Limits{})
	var m Message
	var prev string
	chunks, used, adjacent := 1, 0, 0
	var sizes []int // each chunk's capacity
	for {
		prevCap := r.slab.Cap()
		err := r.ReadMessage(&m)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		raw := m.Raw()
		if m.Event() == "Big" {
			if r.slab.Len() != used {
				t.Fatalf("a large message went into the chunk (%d bytes used, was %d)", r.slab.Len(), used)
			}
			continue // prev stays: the next message follows it
		}
		switch {
		case prev == "":
			used = len(raw)
			sizes = append(sizes, r.slab.Cap())
		case unsafe.StringData(raw) == (*byte)(unsafe.Add(unsafe.Pointer(unsafe.StringData(prev)), len(prev))):
			adjacent++
			used += len(raw)
		default:
			chunks++
			if used+len(raw) <= prevCap {
				t.Fatalf("a new chunk with %d bytes of room left in the last one for %d", prevCap-used, len(raw))
			}
			used = len(raw)
			sizes = append(sizes, r.slab.Cap())
		}
		if used > r.slab.Cap() || r.slab.Cap() > slabSize {
			t.Fatalf("a chunk holds %d bytes (capacity %d), more than %d", used, r.slab.Cap(), slabSize)
		}
		prev = raw
	}
	if chunks < 7 || adjacent < 350 {
		t.Fatalf("%d chunks, %d messages right after the one before: the messages were not packed", chunks, adjacent)
	}
	for i, c := range sizes {
		want := min(firstSlab<<i, slabSize)
		if c != want {
			t.Fatalf("chunk sizes %v: chunk %d holds %d bytes, want %d", sizes, i, c, want)
		}
	}
}

// TestReaderAllocsPerKeptMessage: reading a kept message costs less than one
// allocation on average (a chunk is shared by tens of messages), both on scan's path
// and on the general loop's.
func TestReaderAllocsPerKeptMessage(t *testing.T) {
	in := slabStream(1000)
	for _, slow := range []bool{false, true} {
		r := NewReader(strings.NewReader(strings.Repeat(in, 20)), Limits{})
		r.slow = slow
		var m Message
		if err := r.ReadMessage(&m); err != nil { // m.Headers' storage
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(10000, func() {
			if err := r.ReadMessage(&m); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 0.1 {
			t.Fatalf("slow=%v: %.3f allocations per message, want at most 0.1", slow, allocs)
		}
	}
}
