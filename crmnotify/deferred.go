package crmnotify

import (
	"context"
	"errors"
	"fmt"

	"github.com/omlcrm/oml-crm/catalog"
)

// MissingContact is the Notification.Missing name of a contact that could not be read.
const MissingContact = "contact"

// ErrCatalogUnavailable is wrapped by Rerender when the contact (or the campaign) still
// cannot be read: the caller keeps waiting (a server delivery) or keeps the incomplete pop.
var ErrCatalogUnavailable = errors.New("the OMniLeads database cannot be read yet")

// Deferred is what a notification rendered without its contact needs to be rendered
// again once the contact can be read. It is stored with a waiting server delivery, so
// its JSON form is part of the outbox format.
type Deferred struct {
	CampaignID int      `json:"campaign_id"`
	ContactID  int      `json:"contact_id"`
	Call       CallData `json:"call"`
}

// Rerender renders def's request again, now with its contact: the campaign (cached
// copies are fine), the contact (which must be readable now: a failure other than "not
// found" wraps ErrCatalogUnavailable) and the agent (best effort, as at connect). A
// contact deleted meanwhile renders as no contact, as at connect.
func Rerender(ctx context.Context, cat catalog.Catalog, def Deferred) (Request, error) {
	camp, err := cat.Campaign(ctx, def.CampaignID)
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			return Request{}, fmt.Errorf("campaign %d no longer exists: %w", def.CampaignID, err)
		}
		return Request{}, fmt.Errorf("campaign %d: %w: %w", def.CampaignID, ErrCatalogUnavailable, err)
	}
	in := Input{Campaign: camp, Call: def.Call}
	ct, err := cat.Contact(ctx, def.ContactID)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
	case err != nil:
		return Request{}, fmt.Errorf("contact %d: %w: %w", def.ContactID, ErrCatalogUnavailable, err)
	default:
		in.Contact = ct
	}
	if def.Call.AgentID > 0 {
		if ag, err := cat.Agent(ctx, def.Call.AgentID); err == nil {
			in.Agent = ag
		}
	}
	return Render(in)
}
