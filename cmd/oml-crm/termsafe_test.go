package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/crmnotify/delivery"
)

// hostileText retitles the terminal (OSC 0), clears it (CSI 2J, and C1 CSI), and
// reverses the text that follows (RLO).
const hostileText = "\x1b]0;pwned\x07\x1b[2J\u009b31m\u202eevil\x7f\xff"

func assertTerminalSafe(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\x07", "\u009b", "\u202e", "\x7f", "\xff"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s prints %q raw:\n%q", what, bad, out)
		}
	}
}

// TestDeliveriesEscapeTerminalControls: what a CRM answered, and names from the catalog,
// are printed with their control characters escaped.
func TestDeliveriesEscapeTerminalControls(t *testing.T) {
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		fmt.Fprint(w, hostileText)
	}))
	defer crm.Close()
	path := filepath.Join(t.TempDir(), "deliveries.db")
	q, err := delivery.Open(context.Background(), delivery.Options{Store: "sqlite:" + path, MinBackoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond, PollInterval: 10 * time.Millisecond, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = q.Run(ctx) }()
	defer func() { cancel(); <-done; q.Close() }()

	site := &catalog.Site{ID: 4, URL: crm.URL + "/hook", Trigger: catalog.TriggerServer, Method: catalog.MethodPOST, Format: catalog.FormatJSON}
	call := "esc-1" + hostileText
	n := crmnotify.Notification{ID: crmnotify.NotificationID(call, 2, 4), CallID: call, AgentID: 2,
		Campaign: &catalog.Campaign{ID: 20, Name: "Ventas" + hostileText}, Site: site, ConnectedAt: time.Now(),
		Request: crmnotify.Request{Method: "POST", URL: site.URL, ContentType: "application/json", Body: []byte(`{"x":1}`)}}
	if err := q.Enqueue(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	deliveriesWaitStatus(t, q, n.ID, delivery.StatusDead)

	code, out, errOut := deliveriesRun(t, "list", "--store", "sqlite:"+path)
	if code != 0 || !strings.Contains(out, `\x1b]0;pwned\x07`) {
		t.Fatalf("list: %d %q %s", code, out, errOut)
	}
	assertTerminalSafe(t, "list", out)
	code, out, errOut = deliveriesRun(t, "show", "--store", "sqlite:"+path, n.ID)
	if code != 0 || !strings.Contains(out, `\u202eevil`) || !strings.Contains(out, "Ventas") {
		t.Fatalf("show: %d %q %s", code, out, errOut)
	}
	assertTerminalSafe(t, "show", out)
	code, out, errOut = deliveriesRun(t, "show", "--json", "--store", "sqlite:"+path, n.ID)
	var shown map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || !strings.HasPrefix(shown["campaign_name"].(string), "Ventas\x1b]0;pwned") {
		t.Fatalf("show --json: %d %q %s", code, out, errOut)
	}
	assertTerminalSafe(t, "show --json", out)
}

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain ñandú 電話": "plain ñandú 電話",
		"a\x1b[2Jb":      `a\x1b[2Jb`,
		"\u009b1m":       `\u009b1m`,
		"x\u202ey":       `x\u202ey`,
		"bad\xffutf8":    `bad\xffutf8`,
		"tab\there":      `tab\x09here`,
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}
