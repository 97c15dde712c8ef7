package aritest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// TestTrackedReplayAnswersAsAsterisk: a real call replayed with Track: while it is up,
// GET /bridges lists the bridge with both channels, GET /channels their applications,
// and the variable endpoint is case-sensitive; after the hangups, nothing is left.
func TestTrackedReplayAnswersAsAsterisk(t *testing.T) {
	path := filepath.Join(pgtest.SharedDir(t), "testdata", "pjsip", "c2c.ari.jsonl")
	srv := aritest.NewServer(t, aritest.Options{Username: "u", Password: "p"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := ari.Dial(ctx, ari.Config{URL: srv.URL(), Username: "u", Password: "p", App: "omlcrm", SubscribeAll: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := srv.WaitClients(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checked := false
	_, err = srv.ReplayWith(ctx, f, aritest.ReplayOptions{Track: true, Before: func(typ string, _ []byte) {
		if checked || typ != "ChannelLeftBridge" {
			return
		}
		checked = true
		bridges, err := cl.Bridges(ctx)
		if err != nil || len(bridges) != 1 || len(bridges[0].Channels) != 2 {
			t.Fatalf("bridges %+v, %v", bridges, err)
		}
		chans, err := cl.Channels(ctx)
		if err != nil || len(chans) != 2 {
			t.Fatalf("channels %d, %v", len(chans), err)
		}
		apps := map[string]string{}
		for _, c := range chans {
			apps[c.Name] = c.Dialplan.AppName
		}
		if apps["PJSIP/1002-00000004"] != "Dial" || apps["PJSIP/trunk-00000005"] != "AppDial" {
			t.Errorf("applications %v", apps)
		}
		for _, c := range chans {
			if c.Name != "PJSIP/1002-00000004" {
				continue
			}
			if v, err := cl.Variable(ctx, c.ID, "OmlcrmOrigen"); err != nil || v != "click ñ & más" {
				t.Errorf("OmlcrmOrigen = %q, %v", v, err)
			}
			if _, err := cl.Variable(ctx, c.ID, "Omlcrmorigen"); !errors.Is(err, ari.ErrVariableNotFound) {
				t.Errorf("Omlcrmorigen: %v, want not found (case-sensitive)", err)
			}
		}
	}})
	if err != nil || !checked {
		t.Fatalf("replay: %v (checked %v)", err, checked)
	}
	if chans, err := cl.Channels(ctx); err != nil || len(chans) != 0 {
		t.Errorf("after the call: %d channels, %v", len(chans), err)
	}
	if bridges, err := cl.Bridges(ctx); err != nil || len(bridges) != 0 {
		t.Errorf("after the call: %d bridges, %v", len(bridges), err)
	}
}
