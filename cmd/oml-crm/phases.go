package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/config"
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
		return nil, fmt.Errorf("read the catalog's sites for their webhook_secrets: %w", err)
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
