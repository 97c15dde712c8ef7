package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/agentws"
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
		fmt.Fprintln(stdout, "placeholders, parameter sources, contact columns, site URL (http or https), method,")
		fmt.Fprintln(stdout, "format, target, trigger, campaign type and interaction codes, deleted sites. It lists the")
		fmt.Fprintln(stdout, "contact databases whose rows cannot be rebuilt column by column and, with")
		fmt.Fprintln(stdout, "agentws.auth=django-session, checks the database grants agent logins need.")
		fmt.Fprintln(stdout, "Sites fired at disposition time or as dynamic lists are listed as skipped.")
		fmt.Fprintln(stdout, "It also lists what OMniLeads would still fire itself beside oml-crm (docs/omnileads.md),")
		fmt.Fprintln(stdout, "and with --probe whether each embedded CRM refuses to be framed in the agent console.")
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
	var other []string
	if cfg.AgentWS.Auth == string(agentws.AuthDjangoSession) {
		problem, err := checkSessionGrants(ctx, cfg)
		if err != nil {
			return fail("agentws.auth=django-session: %v", err)
		}
		if problem != "" {
			other = append(other, problem)
		} else {
			fmt.Fprintln(stdout, "agentws.auth=django-session: the database role can read sessions and agents: ok")
		}
	}
	cat, err := openCatalog(ctx, *catalogSpec, cfg, commandLogger(stderr, fs, cfg))
	if err != nil {
		return fail("open catalog: %v", err)
	}
	defer cat.Close()
	if err := catalog.Ping(ctx, cat); err != nil {
		return fail("catalog unreachable: %v", err)
	}
	campaigns, err := cat.Campaigns(ctx)
	if err != nil {
		return fail("read campaigns: %v", err)
	}
	dbProblems, err := databaseProblems(ctx, cat, campaigns)
	if err != nil {
		return fail("%v", err)
	}
	code := reportCampaigns(stdout, campaigns, append(other, dbProblems...))
	reportOMniLeadsFiring(stdout, campaigns)
	if *probe {
		probeFraming(ctx, stdout, framing.NewClient(nil), campaigns)
	}
	return code
}

// checkSessionGrants runs the django-session queries against database.url: a missing
// grant is a problem to report (agents would get 503 on every connection), a database
// that does not answer an error.
func checkSessionGrants(ctx context.Context, cfg *config.Config) (string, error) {
	pool, err := pgxpool.New(ctx, cfg.Database.URL.Reveal())
	if err != nil {
		return "", fmt.Errorf("database.url: %w", err)
	}
	defer pool.Close()
	err = agentws.NewPGSessionStore(pool).CheckAccess(ctx)
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, agentws.ErrNoGrant):
		return fmt.Sprintf("agentws.auth=django-session: the role of database.url cannot read what agent logins need (%s); agents would be refused with 503 until it can: grant SELECT on django_session, on ominicontacto_app_agenteprofile and on the ominicontacto_app_user columns listed in docs/omnileads.md (section 4)",
			strings.ReplaceAll(err.Error(), "\n", "; ")), nil
	}
	return "", fmt.Errorf("reading sessions in database.url: %w", err)
}

// databaseProblems lists the contact databases whose contacts cannot be rebuilt column
// by column: every database when the catalog can list them (OMniLeads), otherwise those
// of the campaigns. Each line names the database by id and name and the campaigns using it.
func databaseProblems(ctx context.Context, cat catalog.Catalog, campaigns []*catalog.Campaign) ([]string, error) {
	users := map[int][]string{}
	var reports []catalog.DatabaseReport
	seen := map[int]bool{}
	for _, c := range campaigns {
		if db := c.ContactDatabase; db != nil {
			users[db.ID] = append(users[db.ID], strconv.Itoa(c.ID))
			if !seen[db.ID] {
				seen[db.ID] = true
				reports = append(reports, catalog.DatabaseReport{Database: db})
			}
		}
	}
	if l, ok := cat.(catalog.DatabaseLister); ok {
		all, err := l.ContactDatabases(ctx)
		if err != nil {
			return nil, fmt.Errorf("read contact databases: %w", err)
		}
		reports = all
	}
	var lines []string
	for _, r := range reports {
		db := r.Database
		used := "no campaign uses it"
		if u := users[db.ID]; len(u) > 0 {
			used = "used by campaign(s) " + strings.Join(u, ", ")
		}
		if db.Problem != "" {
			lines = append(lines, fmt.Sprintf("contact database %d (%s): %s; its contacts are sent with only their phone and external id, every other column empty (%s)",
				db.ID, db.Name, db.Problem, used))
		}
		if r.UnusableContacts > 0 {
			ids := make([]string, len(r.UnusableContactIDs))
			for i, id := range r.UnusableContactIDs {
				ids[i] = strconv.Itoa(id)
			}
			lines = append(lines, fmt.Sprintf("contact database %d (%s): %d contact(s) whose data (datos) is not a JSON list, e.g. contact %s; they are sent with only their phone and external id (%s)",
				db.ID, db.Name, r.UnusableContacts, strings.Join(ids, ", "), used))
		}
	}
	return lines, nil
}

// reportCampaigns checks the campaigns that invoke a CRM on connect and prints the
// problems grouped by campaign, then site-level problems before parameter ones, then the
// other problems found (contact databases, database grants), then the summary.
func reportCampaigns(w io.Writer, campaigns []*catalog.Campaign, other []string) int {
	var checked, inactive, noSite, withProblems, total int
	var skipped []string
	for _, c := range campaigns {
		switch {
		case !c.Active():
			inactive++
			continue
		case c.Interaction == catalog.InteractionForm:
			noSite++
			continue
		case c.Site != nil && !c.Site.Trigger.FiredOnConnect() && c.Site.Trigger.Known():
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
	for _, l := range other {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintf(w, "checked %d active campaign(s) with an external site (%d skipped, %d inactive, %d without site interaction): ",
		checked, len(skipped), inactive, noSite)
	switch {
	case total == 0 && len(other) == 0:
		fmt.Fprintln(w, "no problems")
		return checkClean
	case total == 0:
		fmt.Fprint(w, "no problems in campaigns")
	default:
		fmt.Fprintf(w, "%d problem(s) in %d campaign(s)", total, withProblems)
	}
	if len(other) > 0 {
		fmt.Fprintf(w, "; %d other problem(s) (contact databases, database grants)", len(other))
	}
	fmt.Fprintln(w)
	return checkProblems
}
