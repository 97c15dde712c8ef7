package ami

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// loadCapture reads one of the recorded Asterisk 22 sessions in ../shared/testdata/ami.
func loadCapture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pgtest.SharedDir(t), "testdata", "ami", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// captureFacts were counted independently of this package (grep and awk over the files;
// the message count of oml-busy-50-calls.ami is the README's 10,635).
var captureFacts = []struct {
	file                      string
	messages, events, answers int // all messages; first header Event; first header Response
	agentConnect, bridgeEnter int
	unsolicited               int // events without ActionID, minus the login's FullyBooted/SuccessfulAuth
}{
	{"actions.ami", 248, 222, 26, 1, 2, 207},
	{"bad-login.ami", 1, 0, 1, 0, 0, 0},
	{"busy-40-calls.ami", 4496, 4448, 48, 20, 40, 4309},
	{"dialer-queue.ami", 160, 151, 9, 1, 2, 143},
	{"inbound-abandon.ami", 86, 81, 5, 0, 0, 78},
	{"inbound-queue.ami", 160, 151, 9, 1, 2, 143},
	{"manual-originate.ami", 165, 156, 9, 0, 2, 148},
	{"oml-abandon-ringing.ami", 178, 175, 3, 0, 0, 172},
	{"oml-agent-hangup.ami", 218, 213, 5, 1, 2, 210},
	{"oml-blind-transfer.ami", 362, 351, 11, 2, 4, 348},
	{"oml-busy-50-calls.ami", 10635, 10582, 53, 40, 100, 10329},
	{"oml-dialer-queue.ami", 218, 211, 7, 1, 2, 208},
	{"oml-inbound-queue-chanvars.ami", 225, 213, 12, 1, 2, 210},
	{"oml-inbound-queue.ami", 222, 210, 12, 1, 2, 207},
	{"oml-manual-click2call.ami", 198, 193, 5, 0, 2, 190},
	{"oml-preview-click2call.ami", 203, 193, 10, 0, 2, 190},
	{"oml-stasis-inbound.ami", 151, 147, 4, 0, 2, 139},
	{"preview-originate.ami", 165, 156, 9, 0, 2, 148},
	{"transfer-to-queue.ami", 245, 235, 10, 2, 4, 227},
	{"unauthenticated.ami", 2, 0, 2, 0, 0, 0},
}

func TestCaptures(t *testing.T) {
	dir := filepath.Join(pgtest.SharedDir(t), "testdata", "ami")
	files, _ := filepath.Glob(filepath.Join(dir, "*.ami"))
	if len(files) != len(captureFacts) {
		t.Errorf("%d captures in %s, facts for %d: update captureFacts", len(files), dir, len(captureFacts))
	}
	for _, f := range captureFacts {
		t.Run(f.file, func(t *testing.T) {
			data := loadCapture(t, f.file)
			r := NewReader(bytes.NewReader(data), Limits{})
			banner, err := r.ReadBanner()
			if err != nil || banner != "Asterisk Call Manager/11.0.0" {
				t.Fatalf("banner %q, %v", banner, err)
			}
			var messages, events, answers, ac, be, unsolicited int
			var m Message
			for {
				err := r.ReadMessage(&m)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d messages: %v", messages, err)
				}
				messages++
				switch {
				case m.IsResponse():
					answers++
				case m.Headers[0].Key == "Event":
					events++
					switch m.Event() {
					case "AgentConnect":
						ac++
					case "BridgeEnter":
						be++
					}
					if _, ok := m.Lookup("ActionID"); !ok && m.Event() != "FullyBooted" && m.Event() != "SuccessfulAuth" {
						unsolicited++
					}
				}
			}
			got := []int{messages, events, answers, ac, be, unsolicited}
			want := []int{f.messages, f.events, f.answers, f.agentConnect, f.bridgeEnter, f.unsolicited}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("messages, events, responses, AgentConnect, BridgeEnter, unsolicited = %v, want %v", got, want)
			}
			if r.BytesRead() != int64(len(data)) {
				t.Fatalf("read %d of %d bytes", r.BytesRead(), len(data))
			}

			// The skip path keeps exactly the responses and the wanted events.
			r = NewReader(bytes.NewReader(data), Limits{})
			if _, err := r.ReadBanner(); err != nil {
				t.Fatal(err)
			}
			kept := 0
			for {
				ok, err := r.ReadMessageFiltered(&m, func(ev []byte) bool { return string(ev) == "AgentConnect" })
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					kept++
				}
			}
			if kept != f.answers+f.agentConnect {
				t.Fatalf("skip path kept %d, want %d responses + %d AgentConnect", kept, f.answers, f.agentConnect)
			}
		})
	}
}

// readCapture parses a whole capture after its banner.
func readCapture(t *testing.T, name string) []*Message {
	data := loadCapture(t, name)
	r := NewReader(bytes.NewReader(data), Limits{})
	if _, err := r.ReadBanner(); err != nil {
		t.Fatal(err)
	}
	return readAll(t, r)
}

func findByActionID(ms []*Message, id string) []*Message {
	var out []*Message
	for _, m := range ms {
		if m.Get("ActionID") == id {
			out = append(out, m)
		}
	}
	return out
}

func TestCaptureActionsFacts(t *testing.T) {
	ms := readCapture(t, "actions.ami")

	// Command output lines are kept intact: leading spaces, trailing space, empty lines.
	cmd := findByActionID(ms, "command-4")
	if len(cmd) != 1 {
		t.Fatalf("command-4: %d messages", len(cmd))
	}
	wantOut := []string{
		"q8 has 0 calls (max unlimited) in 'ringall' strategy (0s holdtime, 0s talktime), W:0, C:0, A:1, SL:0.0%, SL2:0.0% within 0s",
		"   Members: ",
		"      9_agent9 (Local/1009@oml-agent/n) (ringinuse disabled) (Not in use) has taken no calls yet (login was 86 secs ago)",
		"   No Callers",
		"",
		"",
	}
	if got := cmd[0].Values("Output"); !reflect.DeepEqual(got, wantOut) {
		t.Fatalf("queue show output:\n%q\nwant\n%q", got, wantOut)
	}
	if e := findByActionID(ms, "command-5")[0]; e.Get("Response") != "Error" || !strings.HasPrefix(e.Get("Output"), "No such command 'no such cli command'") {
		t.Fatalf("unknown CLI command: %q", e.Headers)
	}
	for id, want := range map[string]string{"getvar-8": "No such channel", "getvar-9": "No variable specified"} {
		if m := findByActionID(ms, id)[0]; m.Get("Response") != "Error" || m.Get("Message") != want {
			t.Fatalf("%s: %q", id, m.Headers)
		}
	}
	// The CoreShowChannels list: start response, 4 CoreShowChannel events, Complete with ListItems 4.
	list := findByActionID(ms, "coreshowchannels-21")
	if len(list) != 6 || list[0].Get("EventList") != "start" || list[5].Get("EventList") != "Complete" || list[5].Get("ListItems") != "4" {
		t.Fatalf("CoreShowChannels list: %d messages", len(list))
	}
	for _, m := range list[1:5] {
		if m.Event() != "CoreShowChannel" || m.Get("Uniqueid") == "" {
			t.Fatalf("list item %q", m.Headers)
		}
	}
	// An unset variable: Success with an empty Value header present.
	empty := 0
	for _, m := range ms {
		if strings.HasPrefix(m.Get("ActionID"), "getvar-") {
			if v, ok := m.Lookup("Value"); ok && v == "" && m.Get("Response") == "Success" {
				empty++
			}
		}
	}
	if empty == 0 {
		t.Fatal("no Getvar answered an unset variable with an empty Value")
	}
}

func TestCaptureChanVariables(t *testing.T) {
	ms := readCapture(t, "oml-inbound-queue-chanvars.ami")
	var ac *Message
	for _, m := range ms {
		if m.Event() == "AgentConnect" {
			ac = m
		}
	}
	if ac == nil {
		t.Fatal("no AgentConnect")
	}
	want := []string{"OMLCALLID=1795483670.458", "OMLCAMPID=7", "OMLCAMPTYPE=3", "OMLAGENTID=", "OMLCONTACTID=321321321",
		"OMLRECFILENAME=in-7-20261124-3415551234-1795483670.458", "OMLCRM_ticket=T-123"}
	if got := ac.Values("ChanVariable"); !reflect.DeepEqual(got, want) {
		t.Fatalf("ChanVariable:\n%q\nwant\n%q", got, want)
	}
	if got := ac.Values("DestChanVariable"); len(got) != 7 || got[3] != "OMLAGENTID=21" {
		t.Fatalf("DestChanVariable: %q", got)
	}
	if ac.Get("MemberName") != "21_agent21" || ac.Get("DestChannel") != "Local/1021@oml-agent-000000e6;1" {
		t.Fatalf("AgentConnect %q", ac.Headers)
	}
	// OriginateResponse carries per-channel keys: ChanVariable(<channel>).
	for _, m := range ms {
		if m.Event() == "OriginateResponse" {
			key := "ChanVariable(Local/3415551234@oml-customer-000000e5;1)"
			if got := m.Values(key); len(got) != 7 || got[0] != "OMLCALLID=" {
				t.Fatalf("OriginateResponse %s: %q", key, got)
			}
			if m.IsResponse() || m.Get("Response") != "Success" {
				t.Fatal("OriginateResponse is an event that carries a Response header")
			}
			return
		}
	}
	t.Fatal("no OriginateResponse")
}
