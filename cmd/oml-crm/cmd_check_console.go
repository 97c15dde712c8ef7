package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify/framing"
)

// reportOMniLeadsFiring prints, per active campaign, what OMniLeads 2.x still fires itself
// once deploy/nginx/oml-crm.conf is included in its nginx, and what to change so that each
// connect invokes the CRM exactly once (docs/omnileads.md, "Exactly once"). It returns how
// many campaigns would invoke their CRM twice. It is advice: it does not change the exit
// status, since the check cannot see which nginx configuration is deployed.
func reportOMniLeadsFiring(w io.Writer, campaigns []*catalog.Campaign) int {
	twice := 0
	header := false
	say := func(c *catalog.Campaign, format string, a ...any) {
		if !header {
			fmt.Fprintln(w, "fired by OMniLeads itself (with deploy/nginx/oml-crm.conf in its nginx):")
			header = true
		}
		s := c.Site
		fmt.Fprintf(w, "  campaign %d (%s), site %d (%s, %s %s %s): %s\n", c.ID, c.Name, s.ID, s.Name,
			s.Trigger, s.Method, s.Target, fmt.Sprintf(format, a...))
	}
	for _, c := range campaigns {
		if !c.Active() || !c.Interaction.UsesSite() || c.Site == nil {
			continue
		}
		s := c.Site
		switch {
		case s.Trigger == catalog.TriggerAutomatic && s.Method == catalog.MethodGET && s.Target == catalog.TargetEmbedded:
			// views_calificacion_cliente.py CalificacionClienteFormView.dispatch redirects the
			// disposition form to the CRM whatever the call data says.
			twice++
			say(c, "OMniLeads ALSO opens it (its disposition view redirects the console's #dataView to the CRM "+
				"before any check nginx can influence): the CRM is invoked twice per connect. Change the site in "+
				"OMniLeads to method POST (if the CRM accepts a form POST; oml-crm then posts it into its panel) "+
				"or to target \"Nueva pestaña\"; or leave this campaign to OMniLeads by setting its interaction "+
				"to the form only and removing the site")
		case s.Trigger == catalog.TriggerDisposition:
			say(c, "OMniLeads fires it when the agent saves the disposition; oml-crm does not (once)")
		}
	}
	return twice
}

// probeFraming requests each embedded site of the active campaigns once and prints, per
// campaign, whether the CRM lets the agent console frame it.
func probeFraming(ctx context.Context, w io.Writer, client *http.Client, campaigns []*catalog.Campaign) {
	results := map[string]framing.Result{}
	fmt.Fprintln(w, "framing probe (embedded sites, one GET each):")
	n := 0
	for _, c := range campaigns {
		if !c.Active() || !c.Interaction.UsesSite() || c.Site == nil || !c.Site.Trigger.FiredOnConnect() {
			continue
		}
		target, ok := framing.ProbeURL(c.Site)
		if !ok {
			continue
		}
		res, seen := results[target]
		if !seen {
			res = framing.Probe(ctx, client, target)
			results[target] = res
		}
		n++
		var what string
		switch res.Verdict {
		case framing.Refused:
			what = "refuses framing (" + res.Reason + "): agents get an \"Open CRM in a tab\" button instead of the embedded CRM"
		case framing.Allowed:
			what = "can be framed"
		default:
			what = "unknown (" + res.Reason + "): agents get the embedded CRM plus an \"Open in a tab\" link"
		}
		fmt.Fprintf(w, "  campaign %d (%s), site %d (%s) %s: %s\n", c.ID, c.Name, c.Site.ID, c.Site.Name, target, what)
	}
	if n == 0 {
		fmt.Fprintln(w, "  no active campaign has an embedded site")
	}
}
