package amitest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// TestTrackedReplayAnswersAsAsterisk: a real call replayed with Track, its VarSet events
// held back: while it is up, Getvar is case-sensitive (only the dialplan's spelling
// answers), Status/AllVariables lists the variables under their real names (without
// the inheritance prefix, values raw, not C-escaped), CoreShowChannels lists the
// bridged channels with their bridge and application; after the hangups, nothing.
func TestTrackedReplayAnswersAsAsterisk(t *testing.T) {
	path := filepath.Join(pgtest.SharedDir(t), "testdata", "pjsip", "extras", "quote.ami")
	srv := amitest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := ami.Dial(ctx, ami.Config{Address: srv.Addr(), Username: srv.Username(), Secret: srv.Secret()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const cust = "PJSIP/trunk-0000002b"
	checked := false
	_, err = srv.ReplayWith(f, amitest.ReplayOptions{Track: true,
		Skip: func(m *ami.Message) bool { return m.Event() == "VarSet" },
		Before: func(m *ami.Message) {
			if checked || m.Event() != "BridgeLeave" {
				return
			}
			checked = true
			for name, want := range map[string]string{"OmlcrmOrigen": `O'Brien "VIP" ok?`, "Omlcrmorigen": "", "OMLCRMORIGEN": "", "Omlcrmticket": `C:\tmp\T-48`} {
				if got, err := cl.Getvar(ctx, cust, name); err != nil || got != want {
					t.Errorf("Getvar %s = %q, %v; want %q", name, got, err, want)
				}
			}
			list, err := cl.Status(ctx, cust, true)
			if err != nil || len(list) != 1 {
				t.Fatalf("Status: %d events, %v", len(list), err)
			}
			vars := map[string]string{}
			for _, v := range list[0].Values("Variable") {
				k, val, _ := strings.Cut(v, "=")
				vars[k] = val
			}
			if vars["OmlcrmOrigen"] != `O'Brien "VIP" ok?` || vars["OMLCAMPID"] != "7" || vars["__OmlcrmOrigen"] != "" {
				t.Errorf("Status variables %v", vars)
			}
			chans, err := cl.CoreShowChannels(ctx)
			if err != nil || len(chans) != 2 {
				t.Fatalf("CoreShowChannels: %d, %v", len(chans), err)
			}
			apps := map[string]string{}
			for _, c := range chans {
				if c.Get("BridgeId") == "" {
					t.Errorf("%s listed without its bridge", c.Get("Channel"))
				}
				apps[c.Get("Channel")] = c.Get("Application")
			}
			if apps[cust] != "Queue" || apps["PJSIP/1001-0000002c"] != "AppQueue" {
				t.Errorf("applications %v", apps)
			}
		}})
	if err != nil || !checked {
		t.Fatalf("replay: %v (checked %v)", err, checked)
	}
	var ae *ami.ActionError
	if _, err := cl.Status(ctx, cust, true); !errors.As(err, &ae) || ae.Message != "No such channel" {
		t.Errorf("Status after the hangup: %v", err)
	}
}
