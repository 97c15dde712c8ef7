package daemon

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/config"
)

// Reload applies what can change while running from next, a validated configuration
// re-read from path (SIGHUP), and logs what was applied and what needs a restart.
func (d *Daemon) Reload(path string, next *config.Config) {
	log := d.log
	changed := changedKeys(d.cfg, next)
	var applied, restart []string
	for _, k := range changed {
		switch {
		case k == "log.level":
			if d.levels == nil {
				restart = append(restart, k)
				continue
			}
			level, _ := zerolog.ParseLevel(next.Log.Level)
			d.levels.SetLevel(level)
			applied = append(applied, k)
		case k == "catalog.cache_ttl":
			// The file catalog has no cache: the TTL only paces the dialplan list refresh.
			if c, ok := d.catalog.(interface{ SetCacheTTL(time.Duration) }); ok {
				c.SetCacheTTL(next.Catalog.CacheTTL)
			}
			d.catalogTTL.Store(int64(next.Catalog.CacheTTL))
			applied = append(applied, k)
		case k == "agentws.pop_ttl":
			// In cluster mode the hub exists once Redis answered.
			if h := d.hub.get(); h != nil {
				h.SetPopTTL(next.AgentWS.PopTTL)
				applied = append(applied, k)
			} else {
				restart = append(restart, k)
			}
		case k == "delivery.sites":
			secrets, err := signingSecrets(next)
			if err != nil {
				log.Error().Err(err).Msg("SIGHUP: delivery.sites not reloaded")
				restart = append(restart, k)
				continue
			}
			whsec, err := webhookSecrets(context.Background(), next, d.catalog)
			if err != nil {
				log.Error().Err(err).Msg("SIGHUP: delivery.sites not reloaded")
				restart = append(restart, k)
				continue
			}
			if q := d.queue.get(); q != nil {
				q.SetSigningSecrets(secrets)
				d.disp.SetCallEndSites(callEndSites(next))
				if err := q.SetWebhookSecrets(whsec); err != nil {
					log.Error().Err(err).Msg("SIGHUP: delivery.sites webhook_secrets not reloaded")
				}
				applied = append(applied, k)
			} else {
				restart = append(restart, k)
			}
		default:
			// Everything else is read once at start.
			restart = append(restart, k)
		}
	}
	// Keep the applied values so a later SIGHUP diffs against what runs.
	cur := *d.cfg
	cur.Log.Level = next.Log.Level
	if contains(applied, "catalog.cache_ttl") {
		cur.Catalog.CacheTTL = next.Catalog.CacheTTL
	}
	if contains(applied, "agentws.pop_ttl") {
		cur.AgentWS.PopTTL = next.AgentWS.PopTTL
	}
	if contains(applied, "delivery.sites") {
		cur.Delivery.Sites = next.Delivery.Sites
	}
	d.cfg = &cur
	ev := log.Info()
	if len(restart) > 0 {
		ev = log.Warn()
	}
	ev.Str("config", path).Strs("reloaded", nonNil(applied)).Strs("restart_needed", nonNil(restart)).
		Msg("SIGHUP: configuration re-read" + reloadSummary(applied, restart))
}

func reloadSummary(applied, restart []string) string {
	var b strings.Builder
	if len(applied) == 0 && len(restart) == 0 {
		return ": nothing changed"
	}
	if len(applied) > 0 {
		b.WriteString("; applied: " + strings.Join(applied, ", "))
	}
	if len(restart) > 0 {
		b.WriteString("; changed but only applied after a restart: " + strings.Join(restart, ", "))
	}
	return b.String()
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

// changedKeys lists the configuration keys whose values differ, sorted. delivery.sites
// counts as one key.
func changedKeys(a, b *config.Config) []string {
	fa, fb := map[string]any{}, map[string]any{}
	flattenConfig(reflect.ValueOf(*a), "", fa)
	flattenConfig(reflect.ValueOf(*b), "", fb)
	var out []string
	for k, va := range fa {
		if !reflect.DeepEqual(va, fb[k]) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func flattenConfig(v reflect.Value, prefix string, out map[string]any) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if name == "" {
			continue
		}
		key := prefix + name
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type().PkgPath() == t.PkgPath() && fv.Type().Name() != "" && fv.NumField() > 0 && !isLeafStruct(fv) {
			flattenConfig(fv, key+".", out)
			continue
		}
		out[key] = fv.Interface()
	}
}

// isLeafStruct reports struct-typed values that are single settings (none today, but a
// struct without mapstructure tags is one).
func isLeafStruct(v reflect.Value) bool {
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).Tag.Get("mapstructure") != "" {
			return false
		}
	}
	return true
}
