// Package callsim generates realistic simulated OMniLeads calls as Asterisk 22 reports
// them: the AMI event stream (header names and order as Asterisk writes them) and the
// ARI /events JSON, together with the Connected facts a correct tracker derives. Tests,
// the demo and the load test use it to drive the fake Asterisk servers with any number
// of interleaved calls.
//
// A Call is a list of Steps, each at an offset from the call's start. Calls are built
// with an IDs sequence (unique ids and Local channel numbers, as Asterisk allocates
// them) so many calls can be generated and interleaved (Merge) without clashes.
// Rendering is streaming: Step.AppendAMI / Step.AppendARI append one event to a buffer.
package callsim

import (
	"fmt"
	"strconv"
	"time"

	"github.com/omlcrm/oml-crm/calls"
)

// Scenario is a kind of OMniLeads call.
type Scenario int

// The scenarios.
const (
	// InboundQueue: a customer calls a DID, goes through an inbound campaign's queue and
	// an agent answers (AgentConnect).
	InboundQueue Scenario = iota + 1
	// DialerQueue: the predictive dialer's call is answered by the customer and queued
	// to an agent.
	DialerQueue
	// Preview: click-to-call from a preview campaign: the agent's phone is originated
	// first (the mother channel), then Dial()s the customer.
	Preview
	// Manual: click-to-call from a manual campaign (as Preview).
	Manual
	// Abandon: inbound; the customer hangs up while the agent's phone rings.
	Abandon
	// BlindTransfer: inbound to Agent, who blind-transfers the customer to a queue
	// answered by SecondAgent (campaign transfer: OMLCAMPTRANSFERID).
	BlindTransfer
	// AttendedTransfer: inbound to Agent, who consults SecondAgent then completes the
	// transfer.
	AttendedTransfer
	// HoldUnhold: inbound; the agent puts the customer on hold (the customer leaves the
	// bridge for a holding bridge) and takes it back.
	HoldUnhold
	// LocalOptimization: inbound; the queue member is a Local channel without /n
	// (Local/<ext>@oml-agent-…;1/;2) whose ;2 dials the agent's phone
	// (PJSIP/<ext>-…). Once both halves are bridged, Asterisk optimises the Local pair
	// away: LocalOptimizationBegin, the phone is swapped into the customer's bridge in
	// place of ;1, LocalOptimizationEnd, and both halves hang up while the call goes
	// on. A correct tracker emits one Connected (on ;1, at the queue connect) and
	// Ended only when the customer and the phone are gone. AgentPJSIP is ignored.
	LocalOptimization
)

var scenarioNames = map[Scenario]string{
	InboundQueue: "inbound-queue", DialerQueue: "dialer-queue", Preview: "preview", Manual: "manual",
	Abandon: "abandon", BlindTransfer: "blind-transfer", AttendedTransfer: "attended-transfer", HoldUnhold: "hold-unhold",
	LocalOptimization: "local-optimization",
}

// String returns the scenario's name ("inbound-queue", …).
func (s Scenario) String() string {
	if n, ok := scenarioNames[s]; ok {
		return n
	}
	return "scenario(" + strconv.Itoa(int(s)) + ")"
}

// ParseScenario is the inverse of String.
func ParseScenario(name string) (Scenario, error) {
	for s, n := range scenarioNames {
		if n == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("callsim: unknown scenario %q", name)
}

// Scenarios lists the basic scenarios: the Generator's default mix. It leaves out
// LocalOptimization, which AllScenarios adds.
func Scenarios() []Scenario {
	return []Scenario{InboundQueue, DialerQueue, Preview, Manual, Abandon, BlindTransfer, AttendedTransfer, HoldUnhold}
}

// AllScenarios lists every scenario: Scenarios and LocalOptimization.
func AllScenarios() []Scenario {
	return append(Scenarios(), LocalOptimization)
}

// Naming selects which OMniLeads variable names the dialplan sets.
type Naming int

const (
	// NamingBoth sets both namings, as the Set 2 captures do (default).
	NamingBoth Naming = iota
	// NamingOML2 sets only OMLUNIQUEID, OMLCODCLI, OMLCAMPRECFILENAME (OMniLeads 2.x).
	NamingOML2
	// NamingCallID sets only OMLCALLID, OMLCONTACTID, OMLRECFILENAME.
	NamingCallID
)

// Agent is an OMniLeads agent: its id and SIP extension (1000+ID when empty).
type Agent struct {
	ID        int
	Extension string
}

func (a Agent) ext() string {
	if a.Extension != "" {
		return a.Extension
	}
	return strconv.Itoa(1000 + a.ID)
}

// Var is one dialplan variable (name as the dialplan author wrote it).
type Var struct{ Name, Value string }

// Params describe one call. Zero fields take realistic defaults.
type Params struct {
	Scenario     Scenario
	CampaignID   int // default: 7 inbound, 9 dialer, 115 preview, 11 manual
	CampaignType int // default from the scenario (1 manual, 2 dialer, 3 inbound, 4 preview)
	Agent        Agent
	SecondAgent  Agent  // transfers
	TransferCamp int    // BlindTransfer: the campaign of the transfer queue (default 9)
	Phone        string // default 3415550000+n
	ContactID    string // default "-1"
	// Dialplan is the dialplan data set on the mother channel (inherited); default
	// OMLCRM_ticket=T-<n> and OMLCRMORIGIN="web ñ & más". Their names are listed in
	// OMLCUSTOMDIALPLANVARS.
	Dialplan  []Var
	Recording string // base name without .wav; default "<prefix>-<camp>-<date>[-<agent>]-<phone>-<uniqueid>"
	Naming    Naming
	// AgentPJSIP names the agent's leg PJSIP/<ext>-xxxxxxxx (a real OMniLeads agent)
	// instead of the captures' Local/<ext>@oml-agent-xxxxxxxx;1.
	AgentPJSIP bool
	// NoAgentID leaves OMLAGENTID unset (the tracker must resolve the extension).
	NoAgentID bool
	// Omit lists variables the dialplan does not announce with VarSet (they exist on the
	// channel; the tracker must read them lazily). Use Getvars to answer those reads.
	Omit []string
	// ChanVars adds manager.conf / ari.conf channelvars to every channel event.
	ChanVars []string
	// Noise adds the Newexten / unrelated VarSet traffic Asterisk sends (most of a real
	// stream's volume). Default on; set Quiet to drop it.
	Quiet bool
	// Talk is how long the connected call lasts (default 8 s).
	Talk time.Duration
}

// Call is one generated call.
type Call struct {
	Params
	CallID   string // OMLCALLID / OMLUNIQUEID (the mother's unique id)
	LinkedID string
	Steps    []Step
	// Expected are the Connected facts a correct tracker emits (At, CallWaitDuration
	// and Missing are left zero).
	Expected []calls.Connected
	// Channels lists every channel of the call with every variable set on it
	// (announced or not): the answers to lazy reads.
	Channels []ChannelVars
	// Live lists the channels alive after the connect (a CoreShowChannels snapshot
	// taken mid-call).
	Live []LiveChannel
	// Duration is the offset of the last step.
	Duration time.Duration
}

// ChannelVars is a channel and its variables (names without "__").
type ChannelVars struct {
	Name, Uniqueid string
	Vars           map[string]string
}

// LiveChannel is one entry of a mid-call channel listing.
type LiveChannel struct {
	Name, Uniqueid, Linkedid, Context, Exten, Application, ApplicationData, BridgeID string
	State                                                                            int
	CallerIDNum, CallerIDName                                                        string
}

// IDs allocates Asterisk unique ids ("<epoch>.<sequence>"), Local channel numbers and
// bridge ids, as one Asterisk process does. Not safe for concurrent use.
type IDs struct {
	Epoch  int64
	seq    int
	local  int
	bridge int
	optim  int // Local channel optimisation ids
	// steps is Build's working space, reused from call to call: a call's steps are
	// copied out at the end into a slice of their exact length. Appended to a call's own
	// slice they took about three times their size (a load test's 200 calls a second
	// allocated 18 MB/s there, and the load test's collections were timed as latency).
	steps []Step
}

// NewIDs starts a sequence at epoch (Unix seconds).
func NewIDs(epoch int64) *IDs { return &IDs{Epoch: epoch} }

func (s *IDs) uniqueid() string {
	id := strconv.FormatInt(s.Epoch, 10) + "." + strconv.Itoa(s.seq)
	s.seq++
	return id
}

func (s *IDs) localSuffix() string {
	n := s.local
	s.local++
	return fmt.Sprintf("%08x", n)
}

func (s *IDs) optimizationID() string {
	n := s.optim
	s.optim++
	return strconv.Itoa(n)
}

func (s *IDs) bridgeID() string {
	n := s.bridge
	s.bridge++
	return fmt.Sprintf("%08x-5ca1-4e00-9000-%012x", s.Epoch&0xffffffff, n)
}

// Generator makes an endless sequence of calls for the demo and the load test: it
// cycles through Scenarios and Agents (defaults: every scenario, agents 1–20).
type Generator struct {
	IDs       *IDs
	Scenarios []Scenario
	Agents    []Agent
	// Base is applied to every call (Scenario, Agent and SecondAgent are set per call).
	Base Params
	n    int
}

// Next builds the next call.
func (g *Generator) Next() *Call {
	if g.IDs == nil {
		g.IDs = NewIDs(time.Now().Unix())
	}
	scs := g.Scenarios
	if len(scs) == 0 {
		scs = Scenarios()
	}
	p := g.Base
	p.Scenario = scs[g.n%len(scs)]
	if len(g.Agents) > 0 {
		p.Agent = g.Agents[g.n%len(g.Agents)]
		p.SecondAgent = g.Agents[(g.n+1)%len(g.Agents)]
	} else {
		p.Agent = Agent{ID: 1 + g.n%20}
		p.SecondAgent = Agent{ID: 1 + (g.n+1)%20}
	}
	g.n++
	return Build(g.IDs, p)
}
