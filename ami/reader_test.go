package ami

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads every message of r until EOF, cloning them.
func readAll(t testing.TB, r *Reader) []*Message {
	t.Helper()
	var out []*Message
	var m Message
	for {
		err := r.ReadMessage(&m)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("message %d: %v", len(out)+1, err)
		}
		out = append(out, m.Clone())
	}
}

func headersOf(ms []*Message) [][]Header {
	out := make([][]Header, len(ms))
	for i, m := range ms {
		out[i] = m.Headers
	}
	return out
}

func TestReadMessageForms(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want [][]Header
	}{
		{"crlf", "Event: Hangup\r\nCause: 16\r\n\r\n",
			[][]Header{{{"Event", "Hangup"}, {"Cause", "16"}}}},
		{"bare LF", "Event: Hangup\nCause: 16\n\n",
			[][]Header{{{"Event", "Hangup"}, {"Cause", "16"}}}},
		{"mixed endings", "Event: A\r\nX: 1\n\r\nEvent: B\n\n",
			[][]Header{{{"Event", "A"}, {"X", "1"}}, {{"Event", "B"}}}},
		{"no space after colon", "Event:VarSet\r\nVariable:OMLCAMPID\r\nValue:7\r\n\r\n",
			[][]Header{{{"Event", "VarSet"}, {"Variable", "OMLCAMPID"}, {"Value", "7"}}}},
		{"empty values", "Event: Newchannel\r\nAccountCode: \r\nBridgeId:\r\n\r\n",
			[][]Header{{{"Event", "Newchannel"}, {"AccountCode", ""}, {"BridgeId", ""}}}},
		{"only one space is the separator", "Response: Success\r\nOutput:    Members: \r\nOutput: \r\n\r\n",
			[][]Header{{{"Response", "Success"}, {"Output", "   Members: "}, {"Output", ""}}}},
		{"value with colons", "Event: X\r\nRequestType: Action: NoSuchAction\r\nTime: 01:24:20\r\n\r\n",
			[][]Header{{{"Event", "X"}, {"RequestType", "Action: NoSuchAction"}, {"Time", "01:24:20"}}}},
		{"repeated keys in order", "Event: AgentConnect\r\nChanVariable: OMLCALLID=1.1\r\nChanVariable: OMLCAMPID=7\r\nDestChanVariable: OMLAGENTID=21\r\nChanVariable: OMLAGENTID=\r\n\r\n",
			[][]Header{{{"Event", "AgentConnect"}, {"ChanVariable", "OMLCALLID=1.1"}, {"ChanVariable", "OMLCAMPID=7"}, {"DestChanVariable", "OMLAGENTID=21"}, {"ChanVariable", "OMLAGENTID="}}}},
		{"ChanVariable(channel) keys", "Event: OriginateResponse\r\nChanVariable(Local/1@ctx-0000;1): OMLCALLID=\r\n\r\n",
			[][]Header{{{"Event", "OriginateResponse"}, {"ChanVariable(Local/1@ctx-0000;1)", "OMLCALLID="}}}},
		{"channel name with a colon", "Event: OriginateResponse\r\nChanVariable(IAX2/10.0.0.1:4569-1234): OMLCAMPID=7\r\n\r\n",
			[][]Header{{{"Event", "OriginateResponse"}, {"ChanVariable(IAX2/10.0.0.1:4569-1234)", "OMLCAMPID=7"}}}},
		{"line without colon", "Event: UserEvent\r\nUserEvent: x\r\njust text\r\n\r\n",
			[][]Header{{{"Event", "UserEvent"}, {"UserEvent", "x"}, {"", "just text"}}}},
		{"blank lines between messages", "\r\n\r\nEvent: A\r\n\r\n\n\r\nEvent: B\r\n\r\n\r\n",
			[][]Header{{{"Event", "A"}}, {{"Event", "B"}}}},
		{"values keep trailing spaces and tabs", "Event: A\r\nX: a b \t\r\n\r\n",
			[][]Header{{{"Event", "A"}, {"X", "a b \t"}}}},
		{"utf-8 and ampersand", "Event: VarSet\r\nValue: web ñ & más\r\n\r\n",
			[][]Header{{{"Event", "VarSet"}, {"Value", "web ñ & más"}}}},
		{"legacy Response: Follows", "Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\nq8 has 0 calls\n   Members: \n\nActionID: not a header\n--END COMMAND--\r\n\r\nEvent: After\r\n\r\n",
			[][]Header{
				{{"Response", "Follows"}, {"Privilege", "Command"}, {"ActionID", "7"}, {"Output", "q8 has 0 calls"}, {"Output", "   Members: "}, {"Output", ""}, {"Output", "ActionID: not a header"}},
				{{"Event", "After"}},
			}},
		{"legacy Follows, marker after the last line", "Response: Follows\r\nActionID: 8\r\nAsterisk 1.8--END COMMAND--\r\n\r\n",
			[][]Header{{{"Response", "Follows"}, {"ActionID", "8"}, {"Output", "Asterisk 1.8"}}}},
		{"Asterisk 14+ Output lines", "Response: Success\r\nActionID: command-4\r\nMessage: Command output follows\r\nOutput: q8 has 0 calls\r\nOutput:    Members: \r\nOutput: \r\n\r\n",
			[][]Header{{{"Response", "Success"}, {"ActionID", "command-4"}, {"Message", "Command output follows"}, {"Output", "q8 has 0 calls"}, {"Output", "   Members: "}, {"Output", ""}}}},
		{"EventList", "Response: Success\r\nActionID: c-1\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\nEvent: CoreShowChannel\r\nActionID: c-1\r\nChannel: Local/1@a-1;1\r\n\r\nEvent: CoreShowChannelsComplete\r\nActionID: c-1\r\nEventList: Complete\r\nListItems: 1\r\n\r\n",
			[][]Header{
				{{"Response", "Success"}, {"ActionID", "c-1"}, {"EventList", "start"}, {"Message", "Channels will follow"}},
				{{"Event", "CoreShowChannel"}, {"ActionID", "c-1"}, {"Channel", "Local/1@a-1;1"}},
				{{"Event", "CoreShowChannelsComplete"}, {"ActionID", "c-1"}, {"EventList", "Complete"}, {"ListItems", "1"}},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := headersOf(readAll(t, NewReader(strings.NewReader(tt.in), Limits{})))
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
			// The same bytes split at every boundary, and one byte at a time, read the same.
			for i := 1; i < len(tt.in); i++ {
				r := io.MultiReader(strings.NewReader(tt.in[:i]), strings.NewReader(tt.in[i:]))
				if got := headersOf(readAll(t, NewReader(r, Limits{}))); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("split at %d: got %q", i, got)
				}
			}
			r := iotest.OneByteReader(strings.NewReader(tt.in))
			if got := headersOf(readAll(t, NewReader(r, Limits{}))); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("one byte at a time: got %q", got)
			}
		})
	}
}

func TestMessageAccessors(t *testing.T) {
	m, err := ParseMessage("Event: AgentConnect\r\nchanvariable: A=1\r\nChanVariable: B=2\r\nValue: \r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if m.Event() != "AgentConnect" || m.Get("EVENT") != "AgentConnect" {
		t.Fatalf("Event() = %q", m.Event())
	}
	if got := m.Values("ChanVariable"); !reflect.DeepEqual(got, []string{"A=1", "B=2"}) {
		t.Fatalf("Values = %q", got)
	}
	if v, ok := m.Lookup("Value"); !ok || v != "" {
		t.Fatalf("Lookup(Value) = %q, %v", v, ok)
	}
	if _, ok := m.Lookup("Missing"); ok || m.Get("Missing") != "" || m.Values("Missing") != nil {
		t.Fatal("missing header found")
	}
	if m.IsResponse() {
		t.Fatal("an event is not a response")
	}
	if m.Raw() != "Event: AgentConnect\r\nchanvariable: A=1\r\nChanVariable: B=2\r\nValue: \r\n\r\n" {
		t.Fatalf("Raw = %q", m.Raw())
	}
	// Kelvin sign folds to k in Unicode, never in an AMI key.
	if (&Message{Headers: []Header{{"\u212aey", "x"}}}).Get("Key") != "" {
		t.Fatal("non-ASCII key matched an ASCII one")
	}
}

func TestReaderReusesStorageAndClone(t *testing.T) {
	r := NewReader(strings.NewReader("Event: A\r\nUniqueid: 1.1\r\n\r\nEvent: B\r\nUniqueid: 2.2\r\n\r\n"), Limits{})
	var m Message
	if err := r.ReadMessage(&m); err != nil {
		t.Fatal(err)
	}
	kept := m.Get("Uniqueid") // strings are immutable copies: safe to keep
	c := m.Clone()
	first := &m.Headers[0]
	if err := r.ReadMessage(&m); err != nil {
		t.Fatal(err)
	}
	if &m.Headers[0] != first {
		t.Fatal("ReadMessage did not reuse the Headers storage")
	}
	if kept != "1.1" || c.Get("Uniqueid") != "1.1" || c.Event() != "A" || m.Event() != "B" {
		t.Fatalf("kept %q, clone %q/%q, current %q", kept, c.Event(), c.Get("Uniqueid"), m.Event())
	}
}

func TestAppendRoundTrip(t *testing.T) {
	in := &Message{Headers: []Header{{"Event", "UserEvent"}, {"A", ""}, {"B", " lead"}, {"", "no colon"}, {"", "a: b"}, {"", ""}, {"ChanVariable(IAX2/1.2.3.4:5-6)", "X=1"}}}
	out, err := ParseMessage(in.String())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Headers, in.Headers) {
		t.Fatalf("round trip: got %q want %q", out.Headers, in.Headers)
	}
}

func TestReadMessageEOF(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want error
	}{
		{"", io.EOF},
		{"\r\n\r\n", io.EOF},
		{"Event: A\r\n", io.ErrUnexpectedEOF},
		{"Event: A\r\nPartial", io.ErrUnexpectedEOF},
		{"garbage", io.ErrUnexpectedEOF},
	} {
		var m Message
		err := NewReader(strings.NewReader(tt.in), Limits{}).ReadMessage(&m)
		if err != tt.want {
			t.Errorf("%q: got %v, want %v", tt.in, err, tt.want)
		}
		_, err = NewReader(strings.NewReader(tt.in), Limits{}).ReadMessageFiltered(&m, func([]byte) bool { return false })
		if err != tt.want {
			t.Errorf("%q skipped: got %v, want %v", tt.in, err, tt.want)
		}
	}
	// A source failing mid-stream: its error comes out once the buffered data is used.
	boom := errors.New("boom")
	r := NewReader(iotest.DataErrReader(io.MultiReader(strings.NewReader("Event: A\r\n\r\nEvent: B\r\n"), iotest.ErrReader(boom))), Limits{})
	var m Message
	if err := r.ReadMessage(&m); err != nil || m.Event() != "A" {
		t.Fatalf("first message: %v %q", err, m.Event())
	}
	if err := r.ReadMessage(&m); !errors.Is(err, boom) {
		t.Fatalf("second message: %v, want boom", err)
	}
}

func TestReadBanner(t *testing.T) {
	for _, tt := range []struct {
		in, banner, version string
	}{
		{"Asterisk Call Manager/11.0.0\r\n", "Asterisk Call Manager/11.0.0", "11.0.0"},
		{"Asterisk Call Manager/1.1\r\n", "Asterisk Call Manager/1.1", "1.1"},
		{"Asterisk Call Manager/2.10.6\n", "Asterisk Call Manager/2.10.6", "2.10.6"},
		{"Asterisk Call Manager/7.0.3\r\nResponse: Success\r\n\r\n", "Asterisk Call Manager/7.0.3", "7.0.3"},
		{"Asterisk Call Manager Proxy/1.0\r\n", "Asterisk Call Manager Proxy/1.0", "1.0"},
	} {
		r := NewReader(iotest.OneByteReader(strings.NewReader(tt.in)), Limits{})
		b, err := r.ReadBanner()
		if err != nil || b != tt.banner || BannerVersion(b) != tt.version {
			t.Errorf("%q: got %q (%q), %v", tt.in, b, BannerVersion(b), err)
		}
	}
	var pe *ProtocolError
	if _, err := NewReader(strings.NewReader("HTTP/1.1 400 Bad Request\r\n"), Limits{}).ReadBanner(); !errors.As(err, &pe) {
		t.Errorf("HTTP reply: got %v, want a ProtocolError", err)
	} else if !strings.Contains(err.Error(), "HTTP/1.1 400") {
		t.Errorf("error does not show the line: %v", err)
	}
	if _, err := NewReader(strings.NewReader("Asterisk Call"), Limits{}).ReadBanner(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut banner: got %v", err)
	}
	if _, err := NewReader(strings.NewReader(""), Limits{}).ReadBanner(); !errors.Is(err, io.EOF) {
		t.Errorf("no banner: got %v", err)
	}
	var le *LimitError
	if _, err := NewReader(strings.NewReader("Asterisk Call Manager/"+strings.Repeat("9", 200)+"\r\n"), Limits{MaxLine: 100}).ReadBanner(); !errors.As(err, &le) {
		t.Errorf("long banner: got %v", err)
	}
}

func TestLimits(t *testing.T) {
	lim := Limits{MaxLine: 100, MaxMessage: 800, MaxHeaders: 10}
	long := "Event: UserEvent\r\nData: " + strings.Repeat("x", 101-len("Data: ")) + "\r\n\r\n"
	big := "Event: UserEvent\r\n" + strings.Repeat("Data: "+strings.Repeat("y", 90)+"\r\n", 9) + "Data: " + strings.Repeat("y", 90) + "\r\n\r\n"
	many := "Event: UserEvent\r\n" + strings.Repeat("A: 1\r\n", 10) + "\r\n"
	endless := "Event: UserEvent\r\nData: " + strings.Repeat("z", 5000) // no line end at all
	tests := []struct {
		name, in, what string
		size           int
	}{
		{"line", long, "line", 101},
		{"line without end", endless, "line", 102},
		{"message", big, "message", 0}, // its size depends on where the limit is noticed
		{"headers", many, "headers", 11},
	}
	// Exactly at the limits is fine.
	okLine := "Event: UserEvent\r\nData: " + strings.Repeat("x", 100-len("Data: ")) + "\r\n\r\n"
	okHeaders := "Event: UserEvent\r\n" + strings.Repeat("A: 1\r\n", 9) + "\r\n"
	for _, in := range []string{okLine, okHeaders} {
		var m Message
		if err := NewReader(strings.NewReader(in), lim).ReadMessage(&m); err != nil {
			t.Fatalf("at the limit: %v", err)
		}
	}
	for _, tt := range tests {
		for _, skip := range []bool{false, true} {
			var m Message
			r := NewReader(iotest.HalfReader(strings.NewReader(tt.in)), lim)
			var err error
			if skip {
				_, err = r.ReadMessageFiltered(&m, func([]byte) bool { return false })
			} else {
				err = r.ReadMessage(&m)
			}
			var le *LimitError
			if !errors.As(err, &le) || le.What != tt.what {
				t.Fatalf("%s (skip %v): got %v, want a %s LimitError", tt.name, skip, err, tt.what)
			}
			if le.Size <= le.Max || !strings.Contains(err.Error(), "limit") {
				t.Fatalf("%s: size %d not over max %d: %v", tt.name, le.Size, le.Max, err)
			}
			if tt.what == "line" && tt.name == "line" && le.Size != tt.size {
				t.Fatalf("%s: size %d, want %d", tt.name, le.Size, tt.size)
			}
			if tt.what == "headers" && le.Size != tt.size {
				t.Fatalf("%s: size %d, want %d", tt.name, le.Size, tt.size)
			}
		}
	}
	// Memory stays bounded whatever the peer sends: an endless line is refused once the
	// buffer holds MaxLine bytes; the reader never grows its buffer.
	r := NewReader(io.MultiReader(strings.NewReader("Event: X\r\nData: "), neverEnding('a')), Limits{})
	var m Message
	var le *LimitError
	if err := r.ReadMessage(&m); !errors.As(err, &le) || le.What != "line" || cap(r.buf) > DefaultMaxLine+2 {
		t.Fatalf("endless line: %v (buffer %d)", err, cap(r.buf))
	}
	r = NewReader(neverEndingHeaders{}, Limits{})
	if err := r.ReadMessage(&m); !errors.As(err, &le) || le.What != "headers" {
		t.Fatalf("endless headers: %v", err)
	}
	r = NewReader(neverEndingHeaders{}, Limits{MaxHeaders: 1 << 20})
	if err := r.ReadMessage(&m); !errors.As(err, &le) || le.What != "message" || cap(r.pend) > 2*DefaultMaxMessage {
		t.Fatalf("endless message: %v (scratch %d)", err, cap(r.pend))
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

type neverEndingHeaders struct{}

func (neverEndingHeaders) Read(p []byte) (int, error) {
	const line = "Key: value\r\n"
	n := len(p) / len(line) * len(line)
	for i := 0; i < n; i += len(line) {
		copy(p[i:], line)
	}
	return n, nil
}

func TestReaderSkipsWithoutParsing(t *testing.T) {
	in := "Event: Newexten\r\nA: 1\r\n\r\nResponse: Success\r\nActionID: 1\r\n\r\nEvent: Hangup\r\nCause: 16\r\n\r\nPrivilege: x\r\nEvent: Late\r\n\r\n"
	r := NewReader(strings.NewReader(in), Limits{})
	var seen []string
	keep := func(ev []byte) bool { seen = append(seen, string(ev)); return string(ev) == "Hangup" }
	var got []string
	var m Message
	for {
		kept, err := r.ReadMessageFiltered(&m, keep)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if kept {
			got = append(got, m.Headers[0].Key+"="+m.Headers[0].Value)
		} else if len(m.Headers) != 0 {
			t.Fatal("a skipped message left headers behind")
		}
	}
	want := []string{"Response=Success", "Event=Hangup", "Privilege=x"}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(seen, []string{"Newexten", "Hangup"}) {
		t.Fatalf("kept %q (want %q), asked about %q", got, want, seen)
	}
}

// TestReaderSmallBuffers reads real captures through buffers barely larger than a line
// and in chunks of varying size, so that refills land inside lines and messages everywhere,
// and compares with a straightforward split of the same bytes.
func TestReaderSmallBuffers(t *testing.T) {
	data := loadCapture(t, "actions.ami")
	data = data[bytes.IndexByte(data, '\n')+1:] // after the banner
	want := naiveParse(string(data))
	lim := Limits{MaxLine: 1024, MaxMessage: 1 << 20, MaxHeaders: 1024}
	for size := 1026; size < 1026+700; size += 37 {
		for _, chunk := range []int{1, 7, 64, 1500, 4096} {
			if chunk == 1 && size > 1026+100 {
				continue // one byte at a time is slow; a few sizes suffice
			}
			r := newReaderSize(&chunkReader{data: data, n: chunk}, lim.withDefaults(), size)
			got := headersOf(readAll(t, r))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("buffer %d, chunks of %d: %d messages differ from the naive parse (%d)", size, chunk, len(got), len(want))
			}
		}
	}
}

// TestReaderEveryBoundaryOfCapture splits a window of a real capture (command output,
// errors, a list) at every byte boundary.
func TestReaderEveryBoundaryOfCapture(t *testing.T) {
	data := loadCapture(t, "actions.ami")
	data = data[bytes.IndexByte(data, '\n')+1:]
	end := 0
	for range 12 { // the first twelve messages: login, FullyBooted, Ping, Commands, Getvars…
		end += bytes.Index(data[end:], []byte("\r\n\r\n")) + 4
	}
	window := data[:end]
	want := naiveParse(string(window))
	if len(want) != 12 {
		t.Fatalf("window has %d messages", len(want))
	}
	for i := 1; i < len(window); i++ {
		r := io.MultiReader(bytes.NewReader(window[:i]), bytes.NewReader(window[i:]))
		if got := headersOf(readAll(t, NewReader(r, Limits{}))); !reflect.DeepEqual(got, want) {
			t.Fatalf("split at byte %d: messages differ", i)
		}
	}
	r := iotest.OneByteReader(bytes.NewReader(data))
	if got := headersOf(readAll(t, NewReader(r, Limits{}))); !reflect.DeepEqual(got, naiveParse(string(data))) {
		t.Fatal("the whole capture read one byte at a time differs")
	}
}

type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[n:]
	return n, nil
}

// naiveParse is an obviously-correct reading of well-formed CRLF captures (no legacy
// Follows output, no colon inside ChanVariable(...) keys): the oracle for the tests.
func naiveParse(s string) [][]Header {
	var out [][]Header
	for _, block := range strings.Split(s, "\r\n\r\n") {
		if block == "" {
			continue
		}
		var hs []Header
		for _, line := range strings.Split(block, "\r\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				hs = append(hs, Header{"", line})
				continue
			}
			hs = append(hs, Header{k, strings.TrimPrefix(v, " ")})
		}
		out = append(out, hs)
	}
	return out
}
