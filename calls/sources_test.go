package calls_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/ami"
	"github.com/omlcrm/oml-crm/ami/amitest"
	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
	"github.com/omlcrm/oml-crm/calls"
	"github.com/omlcrm/oml-crm/callsim"
)

// source is one way Asterisk reaches the tracker: the real AMI client against the fake
// AMI server, or the real ARI client against the fake ARI server. The same suite runs
// over both.
type source struct {
	name string
	// start connects a client feeding tr; it returns the source fed with steps.
	start func(t *testing.T, tr *calls.Tracker, opts sourceOpts) *feed
}

type sourceOpts struct {
	onConnected func() // called (from the client's goroutine) at each connect
}

// feed sends simulated calls to the fake server and answers lazy reads.
type feed struct {
	send    func(t *testing.T, steps []callsim.Timed)
	setVars func(c *callsim.Call) // make every variable of c readable lazily
	reader  calls.VarReader
	lister  calls.Lister
	restart func(t *testing.T)                     // drop the connection; the client reconnects
	setLive func(t *testing.T, c ...*callsim.Call) // channels listed after a reconnect
}

var simBase = time.Date(2026, 11, 24, 1, 23, 0, 0, time.UTC)

var sources = []source{
	{"ami", func(t *testing.T, tr *calls.Tracker, o sourceOpts) *feed {
		srv := amitest.NewServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		cl, err := ami.Dial(ctx, ami.Config{
			Address: srv.Addr(), Username: srv.Username(), Secret: srv.Secret(),
			Handler: tr.HandleAMI,
			OnState: func(s ami.State, _ error) {
				if s == ami.StateConnected && o.onConnected != nil {
					o.onConnected()
				}
			},
			ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatalf("ami.Dial: %v", err)
		}
		t.Cleanup(func() { cl.Close() })
		if err := srv.WaitLogins(ctx, 1); err != nil {
			t.Fatal(err)
		}
		return &feed{
			send: func(t *testing.T, steps []callsim.Timed) {
				var buf bytes.Buffer
				if err := callsim.WriteAMI(&buf, steps); err != nil {
					t.Fatal(err)
				}
				if err := srv.Send(buf.Bytes()); err != nil {
					t.Fatalf("amitest Send: %v", err)
				}
			},
			setVars: func(c *callsim.Call) {
				for _, ch := range c.Channels {
					for k, v := range ch.Vars {
						srv.SetVar(ch.Name, k, v)
					}
				}
			},
			reader: calls.AMIVarReader(cl),
			lister: calls.AMILister(cl),
			restart: func(t *testing.T) {
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
				if err := srv.WaitLogins(ctx, 2); err != nil {
					t.Fatal(err)
				}
			},
			setLive: func(t *testing.T, cs ...*callsim.Call) {
				var live []amitest.Channel
				for _, c := range cs {
					for _, l := range c.Live {
						live = append(live, amitest.Channel{Name: l.Name, Uniqueid: l.Uniqueid, Linkedid: l.Linkedid,
							CallerIDNum: l.CallerIDNum, CallerIDName: l.CallerIDName, Context: l.Context, Exten: l.Exten,
							Application: l.Application, Data: l.ApplicationData, BridgeID: l.BridgeID, Vars: varsOf(c, l.Name)})
					}
				}
				srv.SetChannels(live...)
			},
		}
	}},
	{"ari", func(t *testing.T, tr *calls.Tracker, o sourceOpts) *feed {
		srv := aritest.NewServer(t, aritest.Options{Username: "omlcrm", Password: "s3cret"})
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		cl, err := ari.Dial(ctx, ari.Config{
			URL: srv.URL(), Username: "omlcrm", Password: "s3cret", App: "omlcrm", SubscribeAll: true,
			Handler: tr.HandleARI,
			OnState: func(s ari.State, _ error) {
				if s == ari.StateConnected && o.onConnected != nil {
					o.onConnected()
				}
			},
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatalf("ari.Dial: %v", err)
		}
		t.Cleanup(func() { cl.Close() })
		if err := srv.WaitClients(ctx, 1); err != nil {
			t.Fatal(err)
		}
		return &feed{
			send: func(t *testing.T, steps []callsim.Timed) {
				for _, line := range callsim.ARILines(steps, simBase) {
					if err := srv.Send(ctx, line); err != nil {
						t.Fatalf("aritest Send: %v", err)
					}
				}
			},
			setVars: func(c *callsim.Call) {
				for _, ch := range c.Channels {
					if err := srv.AddChannel(ari.Channel{ID: ch.Uniqueid, Name: ch.Name, State: "Up"}); err != nil {
						panic(err)
					}
					for k, v := range ch.Vars {
						srv.SetVariable(ch.Uniqueid, k, v)
					}
				}
			},
			reader: calls.ARIVarReader(cl),
			lister: calls.ARILister(cl),
			restart: func(t *testing.T) {
				srv.DropClients()
				if err := srv.WaitClients(ctx, 1); err != nil {
					t.Fatal(err)
				}
			},
			setLive: func(t *testing.T, cs ...*callsim.Call) {
				var list []ari.Channel
				for _, c := range cs {
					for _, l := range c.Live {
						list = append(list, ari.Channel{ID: l.Uniqueid, Name: l.Name, State: "Up",
							Dialplan: ari.DialplanCEP{Context: l.Context, Exten: l.Exten, Priority: 1, AppName: l.Application, AppData: l.ApplicationData}})
					}
				}
				body, err := jsonMarshal(list)
				if err != nil {
					t.Fatal(err)
				}
				if err := srv.SetChannelsJSON(body); err != nil {
					t.Fatal(err)
				}
			},
		}
	}},
}

func varsOf(c *callsim.Call, name string) map[string]string {
	for _, ch := range c.Channels {
		if ch.Name == name {
			return ch.Vars
		}
	}
	return nil
}

func wantFromSim(e calls.Connected) want {
	return want{e.CallID, e.LinkedID, e.AgentID, e.AgentChannel, e.CustomerChannel, e.CampaignID, e.CampaignType,
		e.Phone, e.ContactID, e.RecordingFile, e.Dialplan}
}
