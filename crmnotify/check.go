package crmnotify

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/omlcrm/oml-crm/catalog"
)

// Problem is one misconfiguration of a campaign's CRM set-up, found before any call by
// CheckCampaign. SiteID is 0 and SiteName empty when the campaign has no site; Param is
// the parameter's name (or the URL placeholder, like "{3}") when the problem is about one.
type Problem struct {
	CampaignID   int
	CampaignName string
	SiteID       int
	SiteName     string
	Param        string
	Message      string
}

// String is one line a telephony admin can act on:
// `campaign 11 (Ventas), site 1 (my_crm), parameter "{3}": ...`.
func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "campaign %d (%s)", p.CampaignID, p.CampaignName)
	if p.SiteID != 0 || p.SiteName != "" {
		fmt.Fprintf(&b, ", site %d (%s)", p.SiteID, p.SiteName)
	}
	if p.Param != "" {
		fmt.Fprintf(&b, ", parameter %q", p.Param)
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	return b.String()
}

// CheckCampaign reports everything that would make Render fail or send something the
// admin did not mean, for a campaign whose interaction uses its external site. It does
// not look at whether the campaign is active or its trigger fires on connect: callers
// decide which campaigns to check. No problems means Render succeeds for any call.
func CheckCampaign(c *catalog.Campaign) []Problem {
	var probs []Problem
	add := func(param, format string, args ...any) {
		p := Problem{CampaignID: c.ID, CampaignName: c.Name, Param: param, Message: fmt.Sprintf(format, args...)}
		if c.Site != nil {
			p.SiteID, p.SiteName = c.Site.ID, c.Site.Name
		}
		probs = append(probs, p)
	}
	if c.Type.DisplayName() == "" {
		add("", "unknown campaign type code %d (valid: 1 manual, 2 dialer, 3 inbound, 4 preview); the campaign parameter tipo renders empty", int(c.Type))
	}
	switch c.Interaction {
	case catalog.InteractionForm, catalog.InteractionSite, catalog.InteractionFormAndSite:
	default:
		add("", "unknown interaction code %d (tipo_interaccion; valid: 1 form, 2 site, 3 form and site): its calls never invoke the external site", int(c.Interaction))
		return probs
	}
	site := c.Site
	switch {
	case site == nil && c.SiteID != 0:
		add("", "the campaign's external site %d no longer exists: its calls never reach the CRM; assign an existing site", c.SiteID)
		return probs
	case site == nil:
		add("", "the campaign's interaction is %q (it opens an external site) but no external site is assigned to it", c.Interaction)
		return probs
	}

	checkSite(site, func(format string, args ...any) { add("", format, args...) })

	// Placeholders: every one in the URL filled, every holder parameter used, once.
	urlHolders := URLHolders(site.URL)
	filled := make(map[string]bool)
	plainNames := make(map[string]bool)
	for _, p := range c.Params {
		if h, ok := p.Holder(); ok {
			switch {
			case filled[h]:
				add(p.Name, "the placeholder {%s} is filled by more than one parameter; only the first one is used", h)
			case !containsString(urlHolders, h):
				add(p.Name, "this parameter fills the placeholder {%s} but the site URL %q has no {%s}; its value is never sent", h, DisplayURL(site.URL), h)
			}
			filled[h] = true
		} else {
			switch {
			case p.Name == "":
				add(p.Name, "the parameter has no name (%s data %q)", p.Family, p.Source)
			case strings.HasPrefix(p.Name, "{") && strings.HasSuffix(p.Name, "}"):
				add(p.Name, "the name looks like a URL placeholder but only letters, digits and _ may go inside the braces; it is sent as an ordinary parameter")
			case plainNames[p.Name]:
				add(p.Name, "more than one parameter is named %q; only the last value is sent", p.Name)
			}
			plainNames[p.Name] = true
		}
		checkParam(c, p, func(format string, args ...any) { add(p.Name, format, args...) })
	}
	for _, h := range urlHolders {
		if !filled[h] {
			add("{"+h+"}", "the site URL %q has the placeholder {%s} but no parameter is named {%s}; calls to this campaign would not reach the CRM", DisplayURL(site.URL), h, h)
		}
	}
	return probs
}

func checkSite(site *catalog.Site, add func(format string, args ...any)) {
	switch site.Trigger {
	case catalog.TriggerAgent, catalog.TriggerAutomatic:
		if site.Target != catalog.TargetEmbedded && site.Target != catalog.TargetNewTab {
			add("the site opens in the agent's browser (trigger %s) but has no valid target; set it to embedded (1) or new_tab (2)", site.Trigger)
		}
	case catalog.TriggerServer, catalog.TriggerDisposition, catalog.TriggerDynamicList:
	default:
		add("unknown trigger code %d (valid: 1 agent, 2 automatic, 3 server, 4 disposition, 5 dynamic list)", int(site.Trigger))
	}
	switch site.Method {
	case catalog.MethodGET:
	case catalog.MethodPOST:
		if site.Format.MIME() == "" {
			add("the site uses POST but its format (code %d) is not one of 1 multipart, 2 form, 3 text, 4 json", int(site.Format))
		}
	default:
		add("unknown method code %d (valid: 1 GET, 2 POST)", int(site.Method))
	}
	checkURL("site URL", site.URL, site.Trigger.FiredOnConnect(), add)
	if a := site.Auth; a != nil {
		checkURL(fmt.Sprintf("authentication %d (%s) login URL", a.ID, a.Name), a.URL, true, add)
		if a.TokenField == "" {
			add("authentication %d (%s) has no token field: the login response's token cannot be found", a.ID, a.Name)
		}
		if a.Duration == 0 && a.DurationField == "" {
			add("authentication %d (%s) has neither a token duration nor a duration field", a.ID, a.Name)
		}
	}
}

// checkURL reports a URL that does not parse, lacks scheme or host, holds a placeholder in
// its scheme or host, or (when httpOnly: the daemon requests it or the agent's browser
// opens it on connect) is not http(s).
func checkURL(what, raw string, httpOnly bool, add func(format string, args ...any)) {
	shown := DisplayURL(raw)
	if strings.TrimSpace(raw) == "" {
		add("the %s is empty", what)
		return
	}
	sp, err := splitURL(raw)
	if err != nil {
		add("the %s %q has no scheme or host; write it in full, like https://crm.example.com/path", what, shown)
		return
	}
	if h, ok := firstHolder(raw[:sp.pathStart]); ok {
		add("the %s %q has the placeholder {%s} in its scheme or host; placeholders may only be in the path, query or fragment", what, shown, h)
		return
	}
	// Parse with every placeholder filled by a harmless value, as Render would send it.
	values := make(map[string]string)
	for _, h := range URLHolders(raw) {
		values[h] = "x"
	}
	filled, err := fillURL(raw, values)
	if err != nil {
		add("the %s %q does not parse: %v", what, shown, err)
		return
	}
	u, err := url.Parse(filled)
	if err != nil {
		add("the %s %q does not parse: %v", what, shown, urlParseReason(err))
		return
	}
	if u.Host == "" {
		add("the %s %q has no host", what, shown)
	}
	if httpOnly && !httpScheme(u.Scheme) {
		add("the %s %q uses the scheme %q; oml-crm sends requests and opens pages only over http or https", what, shown, u.Scheme)
	}
}

func checkParam(c *catalog.Campaign, p catalog.Param, add func(format string, args ...any)) {
	switch p.Family {
	case catalog.FamilyCampaign:
		if !containsString(catalog.CampaignSources, p.Source) {
			add("unknown campaign data %q; valid campaign data are: %s", p.Source, strings.Join(catalog.CampaignSources, ", "))
		}
	case catalog.FamilyCall:
		if !containsString(catalog.CallSources, p.Source) {
			add("unknown call data %q; valid call data are: %s", p.Source, strings.Join(catalog.CallSources, ", "))
		}
	case catalog.FamilyContact:
		db := c.ContactDatabase
		switch {
		case db == nil:
			add("contact data %q but the campaign has no contact database; it would always be empty", p.Source)
		case !db.HasColumn(p.Source):
			name := ""
			if db.Name != "" {
				name = " (" + db.Name + ")"
			}
			add("contact data %q: the campaign's contact database %d%s has no column %q; its columns are: %s",
				p.Source, db.ID, name, p.Source, strings.Join(db.Columns, ", "))
		}
	case catalog.FamilyDisposition:
		if c.Site != nil && c.Site.Trigger.FiredOnConnect() {
			add("disposition data %q is only known once the agent dispositions the call, but this site (trigger %s) is fired when the call connects: it is always sent empty; put it on a site with trigger disposition",
				p.Source, c.Site.Trigger)
		}
		if !containsString(catalog.DispositionSources, p.Source) {
			add("unknown disposition data %q; valid disposition data are: %s", p.Source, strings.Join(catalog.DispositionSources, ", "))
		}
	case catalog.FamilyCallEnd:
		if !containsString(catalog.CallEndSources, p.Source) {
			add("unknown call_end data %q; valid call_end data are: %s", p.Source, strings.Join(catalog.CallEndSources, ", "))
		}
	case catalog.FamilyFixed:
	case catalog.FamilyDialplan:
		if strings.TrimSpace(p.Source) == "" {
			add("dialplan data with no variable name")
		}
	default:
		add("unknown parameter type code %d (valid: 1 campaign, 2 contact, 3 call, 4 fixed, 5 dialplan, 6 disposition, 7 call_end)", int(p.Family))
	}
}

// DisplayURL is a site URL fit for messages and logs: a password in the user info and
// the values of query keys that look like credentials (containing pass, secret, token,
// key or auth) are replaced by "xxxxx". Placeholders and everything else are left as is.
func DisplayURL(raw string) string {
	sp, err := splitURL(raw)
	if err != nil {
		return raw
	}
	authStart := strings.Index(raw, "://") + 3
	out := raw
	if at := strings.LastIndexByte(raw[authStart:sp.pathStart], '@'); at >= 0 {
		userinfo := raw[authStart : authStart+at]
		if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
			out = raw[:authStart] + user + ":xxxxx" + raw[authStart+at:]
			sp, _ = splitURL(out)
		}
	}
	if sp.queryStart < 0 {
		return out
	}
	pairs := strings.Split(out[sp.queryStart:sp.queryEnd], "&")
	for i, pair := range pairs {
		k, _, hasValue := strings.Cut(pair, "=")
		lk := strings.ToLower(k)
		if hasValue && (strings.Contains(lk, "pass") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") ||
			strings.Contains(lk, "key") || strings.Contains(lk, "auth")) {
			pairs[i] = k + "=xxxxx"
		}
	}
	return out[:sp.queryStart] + strings.Join(pairs, "&") + out[sp.queryEnd:]
}
