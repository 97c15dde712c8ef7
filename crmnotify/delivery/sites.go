package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// SiteResolver finds a site's current settings for a queued delivery whose site logs
// in for a bearer token, when this process has not seen the site in an Enqueue (the
// delivery was queued before a restart, or by another instance). Credentials are never
// stored in the outbox, so they are read again from the catalog.
//
// Site returns the site siteID as the delivery (queued for campaignID) should use it.
// An error is recorded on the attempt, which is retried with the usual backoff until
// delivery.max_age dead-letters it; wrap catalog.ErrNotFound when the site is unknown.
type SiteResolver interface {
	Site(ctx context.Context, campaignID, siteID int) (*catalog.Site, error)
}

// SiteResolverFunc adapts a function to SiteResolver.
type SiteResolverFunc func(ctx context.Context, campaignID, siteID int) (*catalog.Site, error)

// Site calls f.
func (f SiteResolverFunc) Site(ctx context.Context, campaignID, siteID int) (*catalog.Site, error) {
	return f(ctx, campaignID, siteID)
}

// CatalogSites resolves sites through cat, which caches campaign reads:
//
//   - the delivery's campaign is looked up with cat.Campaign; when it still points at
//     the delivery's site, that site is used (its current login settings: rotated
//     credentials apply to queued deliveries too);
//   - when the campaign is gone or now points at another site (or none), the delivery
//     still goes to the URL it was rendered for, so it needs the login of the site it
//     was queued for, never the campaign's new one: the site is looked for among every
//     campaign (cat.Campaigns), and used when some campaign still references it;
//   - when no campaign references the site any more, its login settings cannot be
//     known: the error names campaign and site and the delivery is retried (an
//     operator may point a campaign back at the site) until delivery.max_age
//     dead-letters it. It is not dead-lettered at once because a catalog edit is
//     reversible and the outbox must not lose a notification over it.
//
// Catalog failures (the database is down) are returned as they are: retried too.
func CatalogSites(cat catalog.Catalog) SiteResolver {
	return SiteResolverFunc(func(ctx context.Context, campaignID, siteID int) (*catalog.Site, error) {
		now := "no site"
		if campaignID > 0 {
			c, err := cat.Campaign(ctx, campaignID)
			switch {
			case err == nil && c.Site != nil && c.Site.ID == siteID:
				return c.Site, nil
			case err == nil && c.Site != nil:
				now = fmt.Sprintf("site %d", c.Site.ID)
			case err == nil:
			case errors.Is(err, catalog.ErrNotFound):
				now = "gone from the catalog"
			default:
				return nil, fmt.Errorf("look up campaign %d for site %d: %w", campaignID, siteID, err)
			}
		}
		cs, err := cat.Campaigns(ctx)
		if err != nil {
			return nil, fmt.Errorf("look up site %d among the campaigns: %w", siteID, err)
		}
		for _, c := range cs {
			if c.Site != nil && c.Site.ID == siteID {
				return c.Site, nil
			}
		}
		if campaignID > 0 {
			return nil, fmt.Errorf("site %d is no longer used by campaign %d (now: %s) nor any other campaign: its login settings are unknown: %w",
				siteID, campaignID, now, catalog.ErrNotFound)
		}
		return nil, fmt.Errorf("site %d is used by no campaign: its login settings are unknown: %w", siteID, catalog.ErrNotFound)
	})
}

// resolver is the configured site lookup: Options.SiteResolver, else the older
// Options.Sites function, else none.
func (o *Options) resolver() SiteResolver {
	switch {
	case o.SiteResolver != nil:
		return o.SiteResolver
	case o.Sites != nil:
		sites := o.Sites
		return SiteResolverFunc(func(ctx context.Context, _, siteID int) (*catalog.Site, error) { return sites(ctx, siteID) })
	}
	return nil
}

// authFor returns the site's login settings: the last seen in an Enqueue of this
// process, else from the site resolver (a delivery picked up after a restart or queued
// by another instance). The error says why there are none; it becomes the attempt's
// error and the delivery is retried.
func (q *Queue) authFor(ctx context.Context, d *Delivery) (*catalog.SiteAuth, error) {
	if !d.SiteAuth {
		return nil, nil
	}
	now := q.clock.Now()
	q.mu.Lock()
	a := q.siteAuth[d.SiteID]
	if r, ok := q.resolved[d.SiteID]; a == nil && ok && now.Before(r.until) {
		a = r.auth
	}
	q.mu.Unlock()
	if a != nil {
		return a, nil
	}
	if q.resolver == nil {
		return nil, fmt.Errorf("site %d logs in for a token but its authentication settings are unknown to this process (no site resolver configured)", d.SiteID)
	}
	site, err := q.resolver.Site(ctx, d.CampaignID, d.SiteID)
	switch {
	case err != nil:
		return nil, fmt.Errorf("site %d logs in for a token: %w", d.SiteID, err)
	case site == nil || site.ID != d.SiteID:
		return nil, fmt.Errorf("site %d logs in for a token: the site resolver returned another site", d.SiteID)
	case site.Auth == nil:
		// Queued with a login, and the site has none now: sending without a token would
		// meet a 401 (final) if the CRM still wants one; wait for the catalog instead.
		return nil, fmt.Errorf("site %d was queued with a login but has no authentication configured now (campaign %d)", d.SiteID, d.CampaignID)
	}
	// Kept briefly, not for good like an Enqueue's: no new call may come to refresh it,
	// and credentials edited in the catalog must reach queued deliveries.
	q.mu.Lock()
	q.resolved[d.SiteID] = resolvedAuth{auth: site.Auth, until: now.Add(resolvedAuthTTL)}
	q.mu.Unlock()
	return site.Auth, nil
}

// resolvedAuthTTL is how long a site's login settings from the resolver are reused:
// long enough that a backlog of deliveries to one site after a restart costs one
// lookup, short enough that a credential fix in the catalog applies within it (plus the
// catalog's own cache TTL).
const resolvedAuthTTL = 30 * time.Second

type resolvedAuth struct {
	auth  *catalog.SiteAuth
	until time.Time
}
