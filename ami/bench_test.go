package ami

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// The benchmark stream is written by hand from the header names and order Asterisk 22
// emits for these five events (see the manager event documentation); the values imitate
// an OMniLeads inbound call on Local channels.

// channelHeaders is the channel snapshot block Asterisk 22 puts in every channel event.
const channelHeaders = "Channel: Local/%[1]d@oml-customer-%08[2]x;%[3]d\r\n" +
	"ChannelState: 6\r\n" +
	"ChannelStateDesc: Up\r\n" +
	"CallerIDNum: %[1]d\r\n" +
	"CallerIDName: Cliente %[1]d\r\n" +
	"ConnectedLineNum: 100%[3]d\r\n" +
	"ConnectedLineName: Agente %[3]d\r\n" +
	"Language: es\r\n" +
	"AccountCode: \r\n" +
	"Context: oml-inbound\r\n" +
	"Exten: 7000\r\n" +
	"Priority: %[4]d\r\n" +
	"Uniqueid: 1795483380.%[2]d\r\n" +
	"Linkedid: 1795483380.%[5]d\r\n"

var benchTemplates = []struct {
	name string
	body string // after the channel block
	pre  string // before the channel block (bridge events)
	priv string
}{
	{name: "Newchannel", priv: "call,all"},
	{name: "VarSet", priv: "dialplan,all", body: "Variable: __OMLCAMPID\r\nValue: %[6]d\r\n"},
	{name: "Newexten", priv: "dialplan,all", body: "Extension: 7000\r\nApplication: Set\r\nAppData: __OMLCRM_ticket=T-%[6]d\r\n"},
	{name: "VarSet", priv: "dialplan,all", body: "Variable: OMLRECFILENAME\r\nValue: in-7-20261124-%[1]d-1795483380.%[2]d\r\n"},
	{name: "Newexten", priv: "dialplan,all", body: "Extension: 7000\r\nApplication: Queue\r\nAppData: q7,tTr,,,300,,,sub-oml-agent-vars\r\n"},
	{name: "BridgeEnter", priv: "call,all", pre: "BridgeUniqueid: 59324fe3-4f56-4686-9204-%012[2]x\r\n" +
		"BridgeType: basic\r\nBridgeTechnology: simple_bridge\r\nBridgeCreator: <unknown>\r\n" +
		"BridgeName: <unknown>\r\nBridgeNumChannels: 2\r\nBridgeVideoSourceMode: none\r\n"},
	{name: "VarSet", priv: "dialplan,all", body: "Variable: BRIDGEPEER\r\nValue: Local/1003@oml-agent-%08[2]x;1\r\n"},
	{name: "Newexten", priv: "dialplan,all", body: "Extension: h\r\nApplication: NoOp\r\nAppData: hangup %[1]d\r\n"},
	{name: "Hangup", priv: "call,all", body: "Cause: 16\r\nCause-txt: Normal Clearing\r\n"},
}

// benchBlock renders n events cycling through benchTemplates with varying values.
func benchBlock(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		t := benchTemplates[i%len(benchTemplates)]
		call := i / len(benchTemplates)
		phone := 3415550000 + call%10000
		uid := 2*call + i%2
		fmt.Fprintf(&b, "Event: %s\r\nPrivilege: %s\r\n", t.name, t.priv)
		args := []any{phone, uid, 1 + i%2, 1 + i%7, 2 * call, call % 1000}
		for _, part := range []string{t.pre, channelHeaders, t.body} {
			if strings.Contains(part, "%") {
				fmt.Fprintf(&b, part, args...)
			} else {
				b.WriteString(part)
			}
		}
		b.WriteString("\r\n")
	}
	if bytes.Contains(b.Bytes(), []byte("%!")) {
		panic("benchmark template has a bad verb or argument")
	}
	return b.Bytes()
}

// cycleReader serves block over and over, like a socket that never runs dry.
type cycleReader struct {
	block []byte
	off   int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	n := copy(p, c.block[c.off:])
	c.off = (c.off + n) % len(c.block)
	return n, nil
}

// benchEvents is the length of the benchmark stream; its block of distinct events is
// served repeatedly to make up the million without holding half a gigabyte in memory.
const (
	benchEvents = 1_000_000
	blockEvents = 20_000
)

// BenchmarkAMIRead measures the Reader over a stream of Newchannel, VarSet, Newexten,
// BridgeEnter and Hangup events (16–23 headers each). One op is one event. "full" parses
// every event into a Message (the first events/s figure is this one); "skip" drops every
// event on its name, the path a client with EventNames takes for unwanted events.
func BenchmarkAMIRead(b *testing.B) {
	block := benchBlock(blockEvents)
	b.Run("full", func(b *testing.B) {
		benchRead(b, block, nil)
	})
	b.Run("skip", func(b *testing.B) {
		benchRead(b, block, func([]byte) bool { return false })
	})
}

func benchRead(b *testing.B, block []byte, keep func([]byte) bool) {
	r := NewReader(&cycleReader{block: block}, Limits{})
	var m Message
	headers := 0
	b.SetBytes(int64(len(block) / blockEvents))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%benchEvents == 0 && i > 0 {
			r = NewReader(&cycleReader{block: block}, Limits{}) // a fresh 1,000,000-event stream
		}
		kept, err := r.ReadMessageFiltered(&m, keep)
		if err != nil {
			b.Fatal(err)
		}
		if kept {
			headers += len(m.Headers)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if keep == nil && headers < 16*b.N {
		b.Fatalf("parsed %d headers for %d events", headers, b.N)
	}
}

var _ io.Reader = (*cycleReader)(nil)
