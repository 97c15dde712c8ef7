package daemon

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/disposition"
)

// webhookSecrets maps delivery.sites.<id>.webhook_secrets to the queue's site ids; a
// file-catalog site's own webhook_secrets fill in for sites the config does not name, so
// deliveries queued before a restart are signed before the site is seen again.
func webhookSecrets(ctx context.Context, cfg *config.Config, cat catalog.Catalog) (map[int][]catalog.Secret, error) {
	out := make(map[int][]catalog.Secret, len(cfg.Delivery.Sites))
	for k, s := range cfg.Delivery.Sites {
		id, err := strconv.Atoi(k)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("delivery.sites.%s: the key must be a site id (a positive integer)", k)
		}
		if len(s.WebhookSecrets) > 0 {
			out[id] = s.WebhookSecrets
		}
	}
	if cat == nil || cfg.Catalog.Source != "file" {
		return out, nil
	}
	cs, err := cat.Campaigns(ctx)
	if err != nil {
		// Not fatal: a site's secrets also come with each notification it gets.
		return out, nil
	}
	for _, c := range cs {
		if s := c.Site; s != nil && len(s.WebhookSecrets) > 0 {
			if _, set := out[s.ID]; !set {
				out[s.ID] = s.WebhookSecrets
			}
		}
	}
	return out, nil
}

// callEndSites maps delivery.sites.<id>.call_end (validated) to the dispatcher's
// overrides; sites without the key keep their catalog's setting.
func callEndSites(cfg *config.Config) map[int]catalog.CallEndMode {
	out := map[int]catalog.CallEndMode{}
	for k, s := range cfg.Delivery.Sites {
		id, err := strconv.Atoi(k)
		if err != nil || s.CallEnd == "" {
			continue
		}
		if m, err := catalog.ParseCallEndMode(s.CallEnd); err == nil {
			out[id] = m
		}
	}
	return out
}

// ringingCampaigns is phases.ringing_campaigns as a set.
func ringingCampaigns(cfg *config.Config) map[int]bool {
	out := make(map[int]bool, len(cfg.Phases.RingingCampaigns))
	for _, id := range cfg.Phases.RingingCampaigns {
		out[id] = true
	}
	return out
}

// startDispositions starts the disposition source phases.dispositions asks for: the
// OMniLeads database cursor (catalog.source omldb) or POST /dispositions (file catalog,
// mounted on the listener by startHTTP through d.routes).
func (d *Daemon) startDispositions(ctx context.Context, disp *crmnotify.Dispatcher) error {
	cfg := d.cfg
	if !cfg.Phases.Dispositions {
		return nil
	}
	if cfg.Catalog.Source != "omldb" {
		d.routes["/dispositions"] = disposition.HTTPHandler([]byte(cfg.AgentWS.TokenSecret.Reveal()), disp.HandleDisposition)
		return nil
	}
	pool, err := pgxpool.New(ctx, cfg.Database.URL.Reveal())
	if err != nil {
		return errors.New("phases.dispositions: database.url is not a valid PostgreSQL URL")
	}
	src, err := disposition.NewSource(disposition.Options{
		Pool: pool, Cursors: d.queue, Handle: disp.HandleDisposition,
		PollInterval: cfg.Phases.DispositionPollInterval, Settle: cfg.Phases.DispositionSettle,
		Logger: d.log,
	})
	if err != nil {
		pool.Close()
		return err
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		defer pool.Close()
		_ = src.Run(ctx)
	}()
	return nil
}

// Cursor implements disposition.CursorStore once the queue is open.
func (s *queueSlot) Cursor(ctx context.Context, name string) (int64, bool, error) {
	q, err := s.wait(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("delivery store not open yet: %w", err)
	}
	return q.Cursor(ctx, name)
}

// AdvanceCursor implements disposition.CursorStore once the queue is open.
func (s *queueSlot) AdvanceCursor(ctx context.Context, name string, v int64) error {
	q, err := s.wait(ctx)
	if err != nil {
		return fmt.Errorf("delivery store not open yet: %w", err)
	}
	return q.AdvanceCursor(ctx, name, v)
}

// Withdraw implements crmnotify.PhaseSink.
func (s *hubSlot) Withdraw(ctx context.Context, agentID int, popID, reason string) error {
	h, err := s.hub(ctx)
	if err != nil {
		return err
	}
	return h.Withdraw(ctx, agentID, popID, reason)
}
