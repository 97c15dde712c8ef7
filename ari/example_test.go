package ari_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/ari"
	"github.com/omlcrm/oml-crm/ari/aritest"
)

// A daemon observing every call: connect with subscribeAll, react to typed events, read a
// variable over REST. aritest stands in for Asterisk here.
func Example() {
	asterisk, err := aritest.New(aritest.Options{Username: "omlcrm", Password: "secret"})
	if err != nil {
		panic(err)
	}
	defer asterisk.Close()
	_ = asterisk.AddChannel(ari.Channel{ID: "1795483613.447", Name: "Local/7500@oml-stasis-000000df;2", State: "Up"})
	asterisk.SetVariable("1795483613.447", "OMLCAMPID", "75")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answered := make(chan *ari.DialEvent, 1)
	client, err := ari.Dial(ctx, ari.Config{
		URL: asterisk.URL(), Username: "omlcrm", Password: "secret",
		App: "omlcrm", SubscribeAll: true,
		Handler: func(ev ari.Event) {
			switch e := ev.(type) {
			case *ari.DialEvent:
				if e.Dialstatus == "ANSWER" {
					answered <- e
				}
			case *ari.Unknown:
				// every other event type, with its raw JSON in e.Raw
			}
		},
		OnState: func(s ari.State, err error) {
			// on StateConnected after a StateDisconnected: resynchronise with client.Channels
		},
		Logger: zerolog.Nop(),
	})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	if err := client.WaitConnected(ctx); err != nil {
		panic(err)
	}
	_ = asterisk.WaitClients(ctx, 1) // the fake registers its end just after the handshake

	_ = asterisk.Send(ctx, []byte(`{"type":"Dial","timestamp":"2026-11-24T01:26:55.300+0000","dialstatus":"ANSWER","dialstring":"1003@oml-agent/n","peer":{"id":"1795483615.448","name":"Local/1003@oml-agent-000000e0;1"},"caller":{"id":"1795483613.447"},"application":"omlcrm"}`))
	d := <-answered
	campaign, err := client.Variable(ctx, d.Caller.ID, "OMLCAMPID")
	fmt.Println(d.Peer.Name, d.Timestamp.UTC().Format(time.RFC3339Nano), campaign, err)
	// Output: Local/1003@oml-agent-000000e0;1 2026-11-24T01:26:55.3Z 75 <nil>
}
