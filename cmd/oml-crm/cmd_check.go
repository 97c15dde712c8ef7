package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/crmnotify"
	"github.com/omlcrm/oml-crm/crmnotify/framing"
)

// Exit codes of `oml-crm check`.
const (
	checkClean    = 0 // configuration and every checked campaign are fine
	checkProblems = 1 // problems were found and printed
	checkCouldNot = 2 // the check could not run: bad flags, bad configuration, catalog unreachable
)

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("check", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	registerCatalogCommandFlags(fs)
	probe := fs.Bool("probe", false, "also request each embedded site once (GET, 5s timeout, same-host redirects only) and report, per campaign, whether the CRM refuses to be framed (X-Frame-Options, CSP frame-ancestors)")
	catalogSpec := fs.String("catalog", "", "catalog to check: file:PATH (YAML) or a postgres:// URL of the OMniLeads database (default: catalog.source of the configuration)")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: oml-crm check [--config F] [--catalog file:PATH | postgres-url] [--probe]")
		fmt.Fprintln(stdout, "\nValidates the configuration (when --config is given), opens the catalog and checks the")
		fmt.Fprintln(stdout, "CRM set-up of every active campaign whose interaction uses its external site: URL")
		fmt.Fprintln(stdout, "placeholders, parameter sources, contact columns, site URL, method, format and target.")
		fmt.Fprintln(stdout, "Sites fired at disposition time or as dynamic lists are listed as skipped. It also")
		fmt.Fprintln(stdout, "lists what OMniLeads would still fire itself beside oml-crm (docs/omnileads.md), and")
		fmt.Fprintln(stdout, "with --probe whether each embedded CRM refuses to be framed in the agent console.")
		fmt.Fprintln(stdout, "\nExit status: 0 all good, 1 problems found (printed on stdout), 2 the check could not run")
		fmt.Fprintln(stdout, "(bad flags, invalid configuration, catalog unreadable or unreachable).")
		fmt.Fprintln(stdout, "\nFlags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "oml-crm check: "+format+"\n", a...)
		return checkCouldNot
	}

	cfg, err := loadConfig(fs, args)
	if errors.Is(err, pflag.ErrHelp) {
		return checkClean
	}
	if err != nil {
		return fail("%v (see oml-crm check --help)", err)
	}
	if fs.NArg() > 0 {
		return fail("unexpected arguments %q (see oml-crm check --help)", fs.Args())
	}
	if fs.Changed(config.ConfigFlag) {
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "oml-crm check: the configuration %s is invalid:\n", fs.Lookup(config.ConfigFlag).Value)
			for _, line := range strings.Split(err.Error(), "\n") {
				fmt.Fprintf(stderr, "  %s\n", line)
			}
			return checkCouldNot
		}
		fmt.Fprintf(stdout, "configuration %s: ok\n", fs.Lookup(config.ConfigFlag).Value)
	}

	ctx, cancel := context.WithTimeout(ctx, catalogCommandTimeout)
	defer cancel()
	cat, err := openCatalog(ctx, *catalogSpec, cfg, commandLogger(stderr, fs, cfg))
	if err != nil {
		return fail("open catalog: %v", err)
	}
	defer cat.Close()
	if err := pingCatalog(ctx, cat); err != nil {
		return fail("catalog unreachable: %v", err)
	}
	campaigns, err := cat.Campaigns(ctx)
	if err != nil {
		return fail("read campaigns: %v", err)
	}
	code := reportCampaigns(stdout, campaigns)
	reportOMniLeadsFiring(stdout, campaigns)
	if *probe {
		probeFraming(ctx, stdout, framing.NewClient(nil), campaigns)
	}
	return code
}

// reportCampaigns checks the campaigns that invoke a CRM on connect and prints the
// problems grouped by campaign, then site-level problems before parameter ones.
func reportCampaigns(w io.Writer, campaigns []*catalog.Campaign) int {
	var checked, inactive, noSite, withProblems, total int
	var skipped []string
	for _, c := range campaigns {
		switch {
		case !c.Active():
			inactive++
			continue
		case !c.Interaction.UsesSite():
			noSite++
			continue
		case c.Site != nil && !c.Site.Trigger.FiredOnConnect() && validTrigger(c.Site.Trigger):
			skipped = append(skipped, fmt.Sprintf("campaign %d (%s): site %d (%s) has trigger %s, fired by OMniLeads itself, not on connect",
				c.ID, c.Name, c.Site.ID, c.Site.Name, c.Site.Trigger))
			continue
		}
		checked++
		probs := crmnotify.CheckCampaign(c)
		if len(probs) == 0 {
			continue
		}
		withProblems++
		total += len(probs)
		fmt.Fprintf(w, "campaign %d (%s)\n", c.ID, c.Name)
		if c.Site != nil {
			fmt.Fprintf(w, "  site %d (%s): %s %s %s\n", c.Site.ID, c.Site.Name, c.Site.Trigger, c.Site.Method, crmnotify.DisplayURL(c.Site.URL))
		}
		// Site-wide problems first, then per parameter in the order they were found.
		for _, p := range probs {
			if p.Param == "" {
				fmt.Fprintf(w, "    - %s\n", p.Message)
			}
		}
		for _, p := range probs {
			if p.Param != "" {
				fmt.Fprintf(w, "    - parameter %q: %s\n", p.Param, p.Message)
			}
		}
	}
	for _, s := range skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	fmt.Fprintf(w, "checked %d active campaign(s) with an external site (%d skipped, %d inactive, %d without site interaction): ",
		checked, len(skipped), inactive, noSite)
	if total == 0 {
		fmt.Fprintln(w, "no problems")
		return checkClean
	}
	fmt.Fprintf(w, "%d problem(s) in %d campaign(s)\n", total, withProblems)
	return checkProblems
}

func validTrigger(t catalog.Trigger) bool {
	return t >= catalog.TriggerAgent && t <= catalog.TriggerDynamicList
}
