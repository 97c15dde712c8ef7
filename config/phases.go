package config

import (
	"fmt"
	"time"
)

// Phases configures the call phases besides connect (issue "every phase of the call").
// End-of-call notifications are per site: delivery.sites.<id>.call_end.
type Phases struct {
	// Dispositions is phases.dispositions (false): fire disposition-trigger (OMniLeads
	// trigger 4) sites when an agent saves a disposition whose option has "Interacción
	// CRM". With catalog.source omldb the dispositions are read from the OMniLeads
	// database; with file they are posted to POST /dispositions. Leave it off while
	// OMniLeads fires those sites itself (docs/phases.md).
	Dispositions bool `mapstructure:"dispositions" json:"dispositions"`
	// DispositionPollInterval is phases.disposition_poll_interval (1s): how often the
	// OMniLeads disposition history is read.
	DispositionPollInterval time.Duration `mapstructure:"disposition_poll_interval" json:"disposition_poll_interval"`
	// DispositionSettle is phases.disposition_settle (2s): how old a disposition history
	// row must be before it is passed (a save committing late is still seen).
	DispositionSettle time.Duration `mapstructure:"disposition_settle" json:"disposition_settle"`
	// RingingCampaigns is phases.ringing_campaigns ([]): OMniLeads campaign ids whose
	// agent/automatic site also pops while the agent's phone rings (the file catalog has
	// the campaign key ringing).
	RingingCampaigns []int `mapstructure:"ringing_campaigns" json:"ringing_campaigns"`
}

func defaultPhases() Phases {
	return Phases{DispositionPollInterval: time.Second, DispositionSettle: 2 * time.Second, RingingCampaigns: []int{}}
}

func (v *validator) phases(p Phases) {
	v.positive("phases.disposition_poll_interval", p.DispositionPollInterval)
	v.positive("phases.disposition_settle", p.DispositionSettle)
	for i, id := range p.RingingCampaigns {
		if id <= 0 {
			v.addf(fmt.Sprintf("phases.ringing_campaigns[%d]", i), "%d is not a campaign id (a positive integer)", id)
		}
	}
}
