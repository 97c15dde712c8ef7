package calls_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/omlcrm/oml-crm/calls"
)

// syntheticCall feeds the events of one minimal queue call (customer Local pair, agent
// leg, AgentConnect, bridge, hangups) through the source-agnostic Event API, in
// phases so that many calls overlap.
func syntheticCall(tr *calls.Tracker, i int, phase int) {
	id := func(n int) string { return "1795480000." + strconv.Itoa(i*4+n) }
	linked := id(0)
	cust := calls.ChannelRef{ID: id(0), Name: fmt.Sprintf("Local/%d@oml-customer-%08x;1", 3415500000+i, i), LinkedID: linked}
	cust2 := calls.ChannelRef{ID: id(1), Name: fmt.Sprintf("Local/%d@oml-customer-%08x;2", 3415500000+i, i), LinkedID: linked}
	agent := calls.ChannelRef{ID: id(2), Name: fmt.Sprintf("PJSIP/%d-%08x", 1001+i%50, i), LinkedID: linked}
	bridge := fmt.Sprintf("bridge-%d", i)
	switch phase {
	case 0:
		tr.Handle(calls.Event{Kind: calls.KindChannel, Channel: cust})
		tr.Handle(calls.Event{Kind: calls.KindChannel, Channel: cust2})
		for _, v := range [][2]string{{"__OMLCALLID", linked}, {"__OMLCAMPID", "7"}, {"__OMLCAMPTYPE", "3"},
			{"__OMLOUTNUM", strconv.Itoa(3415500000 + i)}, {"__OMLCODCLI", strconv.Itoa(i)}, {"__Omlcrmticket", "T-" + strconv.Itoa(i)},
			{"__OMLCAMPRECFILENAME", "in-7-x-" + linked}} {
			tr.Handle(calls.Event{Kind: calls.KindVar, Channel: cust, Name: v[0], Value: v[1]})
		}
	case 1:
		tr.Handle(calls.Event{Kind: calls.KindChannel, Channel: agent})
		tr.Handle(calls.Event{Kind: calls.KindVar, Channel: agent, Name: "OMLAGENTID", Value: strconv.Itoa(1 + i%50)})
		tr.Handle(calls.Event{Kind: calls.KindDialAnswer, Channel: cust, Peer: agent})
		tr.Handle(calls.Event{Kind: calls.KindAgentConnect, Channel: cust, Peer: agent, MemberName: "1_agent1"})
		tr.Handle(calls.Event{Kind: calls.KindBridgeEnter, Channel: agent, Bridge: bridge})
		tr.Handle(calls.Event{Kind: calls.KindBridgeEnter, Channel: cust, Bridge: bridge})
	case 2:
		tr.Handle(calls.Event{Kind: calls.KindHangup, Channel: cust2})
		tr.Handle(calls.Event{Kind: calls.KindBridgeLeave, Channel: cust, Bridge: bridge})
		tr.Handle(calls.Event{Kind: calls.KindBridgeLeave, Channel: agent, Bridge: bridge})
		tr.Handle(calls.Event{Kind: calls.KindHangup, Channel: agent})
		tr.Handle(calls.Event{Kind: calls.KindHangup, Channel: cust})
	}
}

// TestHundredThousandInboundCallsFreeState pushes 100,000 inbound calls through (up to
// 1,000 in progress at once) and checks every call connected and ended once and the
// tracked state returns to zero.
func TestHundredThousandInboundCallsFreeState(t *testing.T) {
	const total, window = 100_000, 1000
	var connected, ended int
	tr, err := calls.NewTracker(calls.Options{Output: calls.OutputFuncs{
		OnConnected: func(c calls.Connected) {
			connected++
			if c.CampaignID != 7 || c.AgentID == 0 || len(c.Missing) != 0 {
				t.Errorf("bad Connected %+v", c)
			}
		},
		OnEnded: func(calls.Ended) { ended++ },
	}, EmittedMax: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	peak := 0
	for i := 0; i < total+2*window; i++ {
		if i < total {
			syntheticCall(tr, i, 0)
		}
		if j := i - window; j >= 0 && j < total {
			syntheticCall(tr, j, 1)
		}
		if j := i - 2*window; j >= 0 && j < total {
			syntheticCall(tr, j, 2)
		}
		if i%10000 == 0 {
			peak = max(peak, tr.Stats().Channels)
		}
	}
	if connected != total || ended != total {
		t.Errorf("%d Connected and %d Ended, want %d each", connected, ended, total)
	}
	s := tr.Stats()
	if s.Channels != 0 || s.Calls != 0 || s.Bridges != 0 || s.Pending != 0 {
		t.Errorf("state after %d calls: %+v", total, s)
	}
	if peak < window {
		t.Errorf("peak %d channels: the calls did not overlap as intended", peak)
	}
	if s.Emitted > 1<<16 {
		t.Errorf("emitted set holds %d keys, bound is %d", s.Emitted, 1<<16)
	}
}

// TestMaxChannelsEvictsOrphans: channels whose hangup was missed are dropped, oldest
// first, once MaxChannels is reached; their calls end.
func TestMaxChannelsEvictsOrphans(t *testing.T) {
	rec := &recorder{}
	tr, err := calls.NewTracker(calls.Options{Output: rec, MaxChannels: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		id := "1795480000." + strconv.Itoa(i)
		tr.Handle(calls.Event{Kind: calls.KindChannel, Channel: calls.ChannelRef{ID: id, Name: "PJSIP/trunk-" + strconv.Itoa(i), LinkedID: id}})
	}
	if s := tr.Stats(); s.Channels != 10 || s.Calls != 10 {
		t.Errorf("stats %+v, want 10 channels and calls", s)
	}
	_, ended := rec.facts(t)
	if len(ended) != 15 || ended[0].CallID != "1795480000.0" || ended[14].CallID != "1795480000.14" {
		t.Errorf("evicted calls ended: %+v", ended)
	}
}

// blockingReader holds lazy reads until released.
type blockingReader struct{ release chan struct{} }

func (b blockingReader) Getvar(ctx context.Context, _ calls.ChannelRef, name string) (string, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if name == "OMLCAMPID" {
		return "7", nil
	}
	return "", nil
}

// TestEndedNeverOvertakesConnected: the call hangs up while its Connected waits for a
// lazy read; the Ended is held back until the Connected is out.
func TestEndedNeverOvertakesConnected(t *testing.T) {
	release := make(chan struct{})
	rec := &recorder{}
	tr, _ := startTracker(t, calls.Options{Output: rec, VarReader: blockingReader{release}})
	linked := "1795480000.0"
	cust := calls.ChannelRef{ID: linked, Name: "PJSIP/trunk-00000001", LinkedID: linked}
	agent := calls.ChannelRef{ID: "1795480000.1", Name: "PJSIP/1001-00000002", LinkedID: linked}
	tr.Handle(calls.Event{Kind: calls.KindChannel, Channel: cust})
	tr.Handle(calls.Event{Kind: calls.KindVar, Channel: cust, Name: "__OMLCALLID", Value: linked})
	tr.Handle(calls.Event{Kind: calls.KindAgentConnect, Channel: cust, Peer: agent, MemberName: "1_agent1"})
	tr.Handle(calls.Event{Kind: calls.KindBridgeEnter, Channel: agent, Bridge: "b"})
	tr.Handle(calls.Event{Kind: calls.KindBridgeEnter, Channel: cust, Bridge: "b"})
	tr.Handle(calls.Event{Kind: calls.KindHangup, Channel: agent})
	tr.Handle(calls.Event{Kind: calls.KindHangup, Channel: cust})
	if n, e := rec.counts(); n != 0 || e != 0 {
		t.Fatalf("facts out before the lazy read finished: %d Connected, %d Ended", n, e)
	}
	if s := tr.Stats(); s.Channels != 0 || s.Pending != 1 {
		t.Errorf("stats while waiting: %+v", s)
	}
	close(release)
	waitFor(t, "Ended", func() bool { _, e := rec.counts(); return e == 1 })
	got, ended := rec.facts(t) // the recorder fails the test on Ended before Connected
	if len(got) != 1 || got[0].CampaignID != 7 || got[0].AgentID != 1 || len(ended) != 1 {
		t.Errorf("facts %+v %+v", got, ended)
	}
	if s := tr.Stats(); s.Calls != 0 || s.Pending != 0 {
		t.Errorf("state left: %+v", s)
	}
}

func TestNewTrackerValidates(t *testing.T) {
	if _, err := calls.NewTracker(calls.Options{}); err == nil {
		t.Error("no Output accepted")
	}
	if _, err := calls.NewTracker(calls.Options{Output: calls.OutputFuncs{}, DialplanPrefixes: []string{""}}); err == nil {
		t.Error("empty dialplan prefix accepted")
	}
}
