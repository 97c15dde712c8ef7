package calls

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// lazyJob completes one Connected whose variables were not all known at connect time.
// Its reads run on one of Run's workers, never on the event path. The Connected sits in
// its call's outbox meanwhile, which holds back every later fact of that call
// (including Ended), so nothing overtakes it.
type lazyJob struct {
	t           *Tracker
	p           *pending
	cust, agent ChannelRef
	ext         string
	custom      string   // OMLCUSTOMDIALPLANVARS as known at connect time
	dpVars      []string // the tracker's DialplanVars at connect time
	recOff      bool     // OMLCAMPREC says the campaign does not record
	callIDOK    bool     // CallID came from OMLCALLID / OMLUNIQUEID
	fetchedCall string   // call id read lazily

	wantVars, wantAgent bool

	waitRead bool      // a recovered queue call: CallWaitDuration from QEHOLDTIME or missing
	guessed  bool      // roles were guessed: the campaign type was unknown (roles.go)
	swapped  bool      // checkRoles swapped them
	at       time.Time // of the connect
}

// plan decides what the job has to read.
func (j *lazyJob) plan() {
	c := &j.p.c
	if j.t.vars != nil {
		j.wantVars = !j.callIDOK || c.CampaignID == 0 || c.CampaignType == 0 || c.Phone == "" ||
			c.ContactID == "" || len(j.missingDialplan()) > 0
		if c.AgentID == 0 {
			j.wantAgent = true
		}
	}
	if c.AgentID == 0 && j.ext != "" && j.t.resolver != nil {
		j.wantAgent = true
	}
	if (j.guessed || j.waitRead) && j.t.vars != nil {
		j.wantVars = true
	}
}

func (j *lazyJob) needsWork() bool { return j.wantVars || j.wantAgent }

// missingDialplan lists dialplan-data names expected (OMLCUSTOMDIALPLANVARS,
// Options.DialplanVars) but absent.
func (j *lazyJob) missingDialplan() []string {
	var out []string
	check := func(n string) {
		if _, ok := j.p.c.DialplanValue(n); !ok {
			for _, o := range out {
				if o == n {
					return
				}
			}
			out = append(out, n)
		}
	}
	if j.custom != "" {
		for _, n := range splitVarList(j.custom) {
			check(n)
		}
	}
	for _, n := range j.dpVars {
		check(n)
	}
	return out
}

// run performs the reads (no lock held), then hands the Connected back to its call.
func (j *lazyJob) run(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, j.t.lazyTimeout)
	defer cancel()
	c := &j.p.c
	all := j.allVars(ctx)
	var spelled string // the name under which get found its value
	get := func(ch ChannelRef, names ...string) string {
		if vars, ok := all(ch); ok {
			// Every variable of the channel under its real name: match like the
			// live path does, case-insensitively.
			for _, n := range names {
				if v, real := findVar(vars, n); v != "" {
					spelled = real
					return v
				}
			}
			return ""
		}
		for _, n := range names {
			for _, spelling := range j.t.spellings(n) {
				if ctx.Err() != nil {
					return ""
				}
				j.t.m.lazyReads.Inc()
				v, err := j.t.vars.Getvar(ctx, ch, spelling)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						j.t.m.lazyErrors.Inc()
					}
					continue
				}
				if v != "" {
					spelled = spelling
					return v
				}
			}
		}
		return ""
	}
	if j.guessed && j.t.vars != nil {
		j.swapped = j.checkRoles(ctx, get)
	}
	if j.wantVars {
		if !j.callIDOK {
			j.fetchedCall = get(j.cust, varCallID, varUniqueID)
		}
		if c.CampaignID == 0 {
			camp := get(j.cust, varCampTransfer) // a campaign transfer wins, as on the live path
			if camp == "" {
				camp = get(j.agent, varCampTransfer)
			}
			if camp == "" {
				camp = get(j.cust, varCampID)
			}
			c.CampaignID, _ = strconv.Atoi(camp)
		}
		if c.CampaignType == 0 {
			c.CampaignType, _ = strconv.Atoi(get(j.cust, varCampType, varCallTypeID))
		}
		if c.Phone == "" {
			c.Phone = get(j.cust, varOutNum)
		}
		if c.ContactID == "" {
			c.ContactID = get(j.cust, varCodCli, varContactID)
		}
		if c.RecordingFile == "" && !j.recOff {
			c.RecordingFile = recordingFile(get(j.cust, varCampRecFile, varRecFile), "")
			if c.RecordingFile == "" {
				c.RecordingFile = recordingFile("", get(j.cust, varMixMonitor))
			}
		}
		if j.custom == "" {
			j.custom = get(j.cust, varCustomVarList)
		}
		if j.waitRead {
			hold := get(j.cust, varQueueHold)
			if hold == "" {
				hold = get(j.agent, varQueueHold)
			}
			if n, err := strconv.Atoi(hold); err == nil && n >= 0 {
				c.CallWaitDuration, j.waitRead = time.Duration(n)*time.Second, false
			}
		}
		j.addDialplan(all)
		for _, n := range j.missingDialplan() {
			if v := get(j.cust, n); v != "" {
				if c.Dialplan == nil {
					c.Dialplan = make(map[string]string)
				}
				c.Dialplan[spelled] = v // the dialplan's spelling, as a live connect has it
			}
		}
	}
	if j.wantAgent && c.AgentID == 0 {
		var resolveErr error
		if j.t.vars != nil {
			c.AgentID, _ = strconv.Atoi(get(j.agent, varAgentID))
		}
		if c.AgentID == 0 && j.ext != "" && j.t.resolver != nil && ctx.Err() == nil {
			j.t.m.resolves.Inc()
			id, err := j.t.resolver.AgentByExtension(ctx, j.ext)
			if err != nil {
				j.t.m.lazyErrors.Inc()
				resolveErr = err
			} else if id > 0 {
				c.AgentID = id
			}
		}
		if c.AgentID == 0 && ctx.Err() == nil {
			// AMI and ARI must agree on a call: say why this one has no agent (over ARI
			// there is never a queue MemberName to take the agent id from).
			j.t.log.Warn().Str("call_id", c.CallID).Str("channel", j.agent.Name).Str("extension", j.ext).
				AnErr("resolve_error", resolveErr).
				Msg("calls: the agent of a connect is unknown: no OMLAGENTID on the agent's channel, no queue MemberName " +
					"holding an agent id (ARI never carries one) and no catalog agent with that SIP extension; set OMLAGENTID " +
					"on the agent leg (queue pre-dial handler) or the agent's SIP extension in OMniLeads")
		}
	}
	j.t.mu.Lock()
	j.completeLocked()
	j.t.mu.Unlock()
}

// completeLocked marks the Connected ready and flushes its call. Lock held.
func (j *lazyJob) completeLocked() {
	if j.fetchedCall != "" {
		j.p.c.CallID = j.fetchedCall
		j.callIDOK = true
		if g := j.p.grp; !g.callIDFromVar {
			j.t.setCallID(g, j.fetchedCall)
		}
	}
	if j.swapped {
		j.dedupeSwapped()
	}
	j.finish()
	j.p.ready = true
	j.t.flush(j.p.grp)
}

// finish fills Connected.Missing.
func (j *lazyJob) finish() {
	c := &j.p.c
	var miss []string
	if !j.callIDOK {
		miss = append(miss, FieldCallID)
	}
	if c.AgentID == 0 {
		miss = append(miss, FieldAgentID)
	}
	if c.CampaignID == 0 {
		miss = append(miss, FieldCampaignID)
	}
	if c.CampaignType == 0 {
		miss = append(miss, FieldCampaignType)
	}
	if c.Phone == "" {
		miss = append(miss, FieldPhone)
	}
	if c.ContactID == "" {
		miss = append(miss, FieldContactID)
	}
	if c.RecordingFile == "" && !j.recOff {
		miss = append(miss, FieldRecordingFile)
	}
	if j.waitRead {
		miss = append(miss, FieldCallWaitDuration)
	}
	for _, n := range j.missingDialplan() {
		miss = append(miss, FieldDialplanPrefix+n)
	}
	c.Missing = miss
}

// Run runs the lazy-read workers until ctx is done or Close is called. Connects still
// waiting when it stops are emitted with what is known (Missing filled in). It must
// run for lazy reads to happen; it may be called once.
func (t *Tracker) Run(ctx context.Context) error {
	t.mu.Lock()
	if t.running {
		t.mu.Unlock()
		return errors.New("calls: Tracker.Run called twice")
	}
	t.running = true
	t.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // ends Run on Close
		defer wg.Done()
		select {
		case <-t.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	if t.lister != nil {
		wg.Add(1)
		go func() { // resynchronises on RequestResync
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.resync:
					if err := t.Resync(ctx, t.lister); err != nil && ctx.Err() == nil {
						t.log.Warn().Err(err).Msg("calls: resync after reconnect failed; calls in progress may be missed until they end")
					}
				}
			}
		}()
	}
	for i := 0; i < t.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-t.jobs:
					j.run(ctx)
				}
			}
		}()
	}
	wg.Wait()

	t.mu.Lock()
	t.stopped = true
	for {
		select {
		case j := <-t.jobs:
			j.completeLocked()
			continue
		default:
		}
		break
	}
	t.mu.Unlock()
	select {
	case <-t.closed:
		return nil
	default:
		return ctx.Err()
	}
}

// Close stops Run. Events fed afterwards are still tracked; connects are then emitted
// without lazy reads.
func (t *Tracker) Close() error {
	t.closeOnce.Do(func() { close(t.closed) })
	return nil
}
