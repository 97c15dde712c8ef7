package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
)

// depContacts is the /readyz entry of server deliveries waiting for their contact.
const depContacts = "contacts"

// rerenderWith renders a delivery queued without its contact again, over the catalog.
func rerenderWith(cat catalog.Catalog) func(context.Context, crmnotify.Deferred) (crmnotify.Request, error) {
	return func(ctx context.Context, def crmnotify.Deferred) (crmnotify.Request, error) {
		return crmnotify.Rerender(ctx, cat, def)
	}
}

// waitingForContacts fails (for /readyz) while server deliveries wait for contacts the
// OMniLeads database cannot give, saying how many and for how long.
func (s *queueSlot) waitingForContacts(ctx context.Context) error {
	q := s.get()
	if q == nil {
		return nil // the delivery store entry says why
	}
	st, err := q.Stats(ctx)
	if err != nil {
		return fmt.Errorf("counting deliveries waiting for their contact: %w", err)
	}
	if st.WaitingForContact == 0 {
		return nil
	}
	return fmt.Errorf("%d server deliveries wait for their contact, which the OMniLeads database cannot give (oldest %s): they are sent once it can be read, or dead-lettered after delivery.max_age",
		st.WaitingForContact, st.OldestWaiting.Round(time.Second))
}
