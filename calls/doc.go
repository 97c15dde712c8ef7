/*
Wiring (what cmd/oml-crm does):

	tracker, err := calls.NewTracker(calls.Options{
		Output:     out,                      // hands facts to the dispatcher's bounded queue
		Resolver:   agentsByExtension,        // catalog lookup, called off the event path
		VarReader:  calls.AMIVarReader(amiClient),
		Lister:     calls.AMILister(amiClient),
		Logger:     log, Registerer: reg,
	})
	go tracker.Run(ctx)                       // lazy reads and resyncs; Close stops it
	ami.Config{
		Handler: tracker.HandleAMI,
		OnState: func(s ami.State, _ error) {
			if s == ami.StateConnected {
				tracker.RequestResync()   // never blocks; Run lists the channels
			}
		},
	}

(ARI: HandleARI, ARIVarReader, ARILister and ari.Config's OnState the same way.) The
VarReader and Lister need the client, and the client's Config needs the tracker's
handler: build the tracker first, with small adapters that read the client from a
variable set once ami.Dial returns, or call tracker.Resync(ctx, lister) yourself from a
goroutine started on OnState.

# How a connect is recognised

Two channels in one bridge are a connect when one is an agent's leg and the other the
customer's. A channel is an agent's leg when a queue said so (AgentConnect's
DestChannel), when OMLAGENTID was set on it (or on its Local sibling) without the "__"
inheritance prefix (the queue pre-dial handler, the Stasis controller), or, for a pair
joined by Dial (DialEnd/ARI Dial with ANSWER and a caller), by the call type: manual (1)
and preview (4) calls are originated on the agent's phone, which is then the caller;
every other call dials the agent. In those other calls, what the ;2 half of an agent's
Local leg dials (Local/<ext>@oml-agent-…;2 → PJSIP/<ext>-…) is the agent's phone: it
counts as the agent's leg, so the phone bridged with ;2 before the queue connects is
not a connect, and after Local channel optimisation swaps the phone into the
customer's bridge it is the same agent. Two agent legs together (a consultation) are
not a connect. The Originate's own dial (no caller) is ignored.

# Exactly once per (call, agent)

The call id is OMLCALLID, else OMLUNIQUEID, else the Linkedid. Each Connected is
remembered under every identity of its agent known at that time (agent id, extension,
agent channel); a later connect of the same call matching any of them (hold/unhold
re-bridge, Local channel optimisation, a Resync after a reconnect) is not emitted. The
memory is bounded: a key lives Options.EmittedTTL (default 6 h) and at most
Options.EmittedMax keys (default 262,144) are kept, oldest first out.

# Ordering

Output is called with the tracker's lock held, never concurrently, so facts come out in
one order. A Connected whose variables are still missing waits in its call's outbox
while Run's workers read them (Getvar / ARI variable, bounded by LazyVarTimeout, off the
event goroutine: intake never waits). Everything later of that call, its Ended
included, queues behind it in the outbox; the worker that completes the read flushes
the outbox under the lock. So an Ended never overtakes a Connected of its call, and the
Connected facts of a call come out in connect order. Ended is emitted when the last
channel of the call is gone and nothing waits in its outbox; if several channel groups
carry the same call id (ARI without Linkedid), when the last of them ends.

# Memory

A channel's state (the OML*, MIXMONITOR_FILENAME and dialplan-prefix variables only)
is freed at its hangup, a call's when its last channel goes. Options.MaxChannels
(default 50,000) caps the channels: past it the oldest is dropped with a warning and
counted (omlcrm_calls_evicted_channels_total): its hangup was missed.

# Resync

After a reconnect, Resync lists the live channels: channels gone meanwhile hang up (their
calls end), new ones are added and bridged pairs re-examined, so a connect made while the
stream was down is emitted (AMI: CoreShowChannel says which bridge each channel is in and
which application it runs, Queue/AppQueue, Dial/AppDial; ARI: GET /bridges lists each
bridge's channels, GET /channels their applications) and one already emitted is not.
Channels created, or hung up, after the listing started are left as the events say. A
resync at daemon start emits the connects already in progress (downstream deduplicates by
call + agent + site). A recovered connect's values come from the lazy reads like a late
variable's; its wait is measured from the channels' creation, and a queue call's hold
time, only reported in AgentConnect, is read from QEHOLDTIME or named in Missing.

# Reading variables on demand

Asterisk's Getvar and ARI's variable endpoint match names case-sensitively. With a
ChannelVarReader (AMIVarReader over a client with Status) the lazy reads get every
variable of a channel at once under its real name and match case-insensitively, as the
live path does; otherwise they try the spellings the dialplan was seen to use, upper
case and the usual capitalisations. AMI's VarSet shows values C-escaped; HandleAMI
unescapes them, so every path gives the value as set. Over AMI a connect seen while no
VarSet ever arrived is warned about (the manager user lacks the dialplan read class).

# Roles that need a read

When neither channel of a bridged pair is marked as the agent's and the campaign type is
unknown (no VarSet seen, or a connect recovered by a resync), the dialed channel is
taken for the agent's and the lazy reads check the type first: for a manual or preview
call they swap the roles back and register the real identity, dropping the connect if it
was already emitted under it. A pair whose customer side is half of a Local channel
pair is looked through: the other half bridged with an agent is an attended transfer's
consultation (not a connect); bridged with someone else, that channel is the customer.
*/
package calls
