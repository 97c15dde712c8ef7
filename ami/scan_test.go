package ami

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// The fast path (scan, take) must read exactly as read's general loop does, which is the
// reference: same messages, same errors, same calls to keep and accept, same position in
// the stream. diffRead runs both over data in several buffer sizes, chunkings, limits
// and ways of reading, and fails at the first difference.
func diffRead(t *testing.T, data []byte) {
	t.Helper()
	limits := []Limits{
		{MaxLine: 200, MaxMessage: 1500, MaxHeaders: 24},
		{MaxLine: 200, MaxMessage: 1500, MaxHeaders: 24, MaxSkip: 4000},
		{MaxLine: 40, MaxMessage: 120, MaxHeaders: 4, MaxSkip: 300},
		{},
	}
	for li, lim := range limits {
		for _, size := range []int{0, 300, 4096} {
			for _, chunk := range []int{7, 64, 1 << 20} {
				for mode := range 3 {
					fast := newReaderSize(&chunkReader{data: data, n: chunk}, lim.withDefaults(), size)
					ref := newReaderSize(&chunkReader{data: data, n: chunk}, lim.withDefaults(), size)
					ref.slow = true
					var mf, mr Message
					var callsFast, callsRef []string
					for i := 0; i < 10000; i++ {
						keptF, errF := readMode(fast, &mf, mode, &callsFast)
						keptR, errR := readMode(ref, &mr, mode, &callsRef)
						where := func() string {
							return fmt.Sprintf("limits %d, buffer %d, chunk %d, mode %d, message %d", li, size, chunk, mode, i)
						}
						if keptF != keptR || !reflect.DeepEqual(errF, errR) {
							t.Fatalf("%s: fast path %v %v, reference %v %v\ninput %q", where(), keptF, errF, keptR, errR, data)
						}
						if !reflect.DeepEqual(mf.Headers, mr.Headers) || mf.Raw() != mr.Raw() {
							t.Fatalf("%s: fast path read %q (%q), reference %q (%q)\ninput %q", where(), mf.Headers, mf.Raw(), mr.Headers, mr.Raw(), data)
						}
						if !reflect.DeepEqual(callsFast, callsRef) {
							t.Fatalf("%s: fast path called %q, reference %q\ninput %q", where(), callsFast, callsRef, data)
						}
						if fast.r != ref.r || fast.w != ref.w || fast.n != ref.n {
							t.Fatalf("%s: fast path at %d/%d/%d, reference at %d/%d/%d\ninput %q", where(), fast.r, fast.w, fast.n, ref.r, ref.w, ref.n, data)
						}
						if errF != nil {
							if _, ok := errF.(*OversizeError); !ok {
								break
							}
						}
					}
				}
			}
		}
	}
}

// readMode reads one message: 0 ReadMessage, 1 ReadMessageFiltered keeping event names
// of even length, 2 ReadMessageSelected that also turns down a VarSet of Variable X.
// Every call to keep and accept is logged in calls.
func readMode(r *Reader, m *Message, mode int, calls *[]string) (bool, error) {
	keep := func(ev []byte) bool {
		*calls = append(*calls, "keep "+string(ev))
		return len(ev)%2 == 0
	}
	accept := func(v *View) bool {
		*calls = append(*calls, "accept "+string(v.Event())+" "+string(v.Get("Variable")))
		return string(v.Get("Variable")) != "X"
	}
	switch mode {
	case 0:
		return true, r.ReadMessage(m)
	case 1:
		return r.ReadMessageFiltered(m, keep)
	default:
		return r.ReadMessageSelected(m, keep, accept)
	}
}

// scanPieces are the parts random streams are made of: the separators the parser cares
// about, keys that matter to it, and bytes that must not.
var scanPieces = []string{
	"Event", "event", "Response", "Follows", "follows", "Success", "Privilege", "ActionID", "Output",
	"Variable", "VarSet", "Hangup", "X", "--END COMMAND--", "ChanVariable(SIP/a:b)", "ChanVariable(", "(", ")", "):",
	":", ": ", " ", "\r\n", "\n", "\r", "\r\n\r\n", "\n\n", "Event: VarSet\r\n", "Response: Follows\r\n",
	"Variable: X\r\n", "abcdefghijklmnopqrstuvwxyz", "0123456789", "\xff\x80:", "::", "\x00",
}

func randomStream(rng *rand.Rand) []byte {
	var b bytes.Buffer
	for range rng.IntN(120) {
		p := scanPieces[rng.IntN(len(scanPieces))]
		if rng.IntN(40) == 0 {
			p = strings.Repeat(p, rng.IntN(60))
		}
		b.WriteString(p)
	}
	return b.Bytes()
}

func TestScanMatchesGeneralLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 3500))
	n := 400
	if testing.Short() {
		n = 50
	}
	for range n {
		diffRead(t, randomStream(rng))
	}
	// Boundaries the fast path must leave to the general loop: the header count around
	// its fixed array and MaxHeaders, lines and messages around MaxLine and MaxMessage.
	for _, h := range []int{1, 3, 4, 5, 23, 24, 25, 63, 64, 65, 100} {
		var b strings.Builder
		for range 2 {
			b.WriteString("Event: VarSet\r\n")
			for i := range h - 1 {
				fmt.Fprintf(&b, "K%d: v\r\n", i)
			}
			b.WriteString("\r\n")
		}
		diffRead(t, []byte(b.String()))
	}
	for _, n := range []int{38, 39, 40, 41, 118, 119, 120, 121, 198, 199, 200, 201, 202} {
		for _, eol := range []string{"\r\n", "\n"} {
			v := strings.Repeat("v", n)
			diffRead(t, []byte("Event: A"+eol+"K:"+v+eol+eol+"Event: B"+eol+v+eol+eol+"Event: C"+eol+"K: "+v[:n/2]+eol+"L: "+v[n/2:]+eol+eol))
		}
	}
	for _, name := range []string{"busy-40-calls.ami", "actions.ami"} {
		data := loadCapture(t, name)
		diffRead(t, data[:min(len(data), 30000)])
	}
}

// FuzzScan: the fast path reads arbitrary bytes exactly as the general loop does.
func FuzzScan(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		f.Add(randomStream(rng))
	}
	f.Add([]byte("Response: Follows\r\nPrivilege: Command\r\nline\r\n\r\nmore\r\n--END COMMAND--\r\n\r\n"))
	f.Add([]byte("Event: X\r\nChanVariable(IAX2/1.2.3.4:4569-1): A=1\r\nno colon\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) { diffRead(t, data) })
}
