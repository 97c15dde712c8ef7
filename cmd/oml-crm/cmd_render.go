package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/crmnotify"
)

// catalogCommandTimeout bounds the catalog work of the one-shot commands (render, check),
// so an unreachable database ends them with an error instead of a hang.
const catalogCommandTimeout = 30 * time.Second

// renderOutput is what `oml-crm render` prints. Fields is there for browser-side sites,
// whose form the agent's browser rebuilds from the ordered pairs.
type renderOutput struct {
	Campaign    int               `json:"campaign"`
	Site        int               `json:"site"`
	Trigger     string            `json:"trigger"`
	Target      string            `json:"target"`
	Method      string            `json:"method"`
	URL         string            `json:"url"`
	Headers     map[string]string `json:"headers"`
	ContentType string            `json:"content_type"`
	Body        string            `json:"body"`
	Fields      []renderField     `json:"fields"`
}

type renderField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func runRender(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("render", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	registerCatalogCommandFlags(fs)
	catalogSpec := fs.String("catalog", "", "catalog to read: file:PATH (YAML) or a postgres:// URL of the OMniLeads database (default: catalog.source of the configuration)")
	campaignID := fs.Int("campaign", 0, "campaign id (required)")
	contactID := fs.Int("contact", 0, "contact id: loads the contact, and id_contacto renders it (without it no contact is identified and id_contacto renders -1, as OMniLeads sends for unknown callers)")
	agentID := fs.Int("agent", 0, "agent id (OMniLeads agenteprofile id); without it the agent's parameters render empty")
	callID := fs.String("call-id", "", "call id (OMniLeads OMLUNIQUEID), for call_id")
	phone := fs.String("phone", "", "customer phone number, for telefono")
	recFilename := fs.String("rec-filename", "", "recording file name, for rec_filename")
	waitDuration := fs.String("wait-duration", "", "seconds the caller waited, for call_wait_duration")
	at := fs.String("at", "", "time the call connected, RFC 3339 (default now), for datetime")
	vars := fs.StringArray("var", nil, "dialplan variable NAME=VALUE for dialplan data (repeatable; names match case-insensitively)")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: oml-crm render --campaign ID [--contact ID] [--agent ID] [--call-id S] [--phone S]")
		fmt.Fprintln(stdout, "                     [--rec-filename S] [--var NAME=VALUE ...] [--catalog file:PATH | --config F]")
		fmt.Fprintln(stdout, "\nPrints, as JSON, the CRM request the campaign's external site would get for a call")
		fmt.Fprintln(stdout, "with these data. Exit 0 on success, 1 when the campaign, contact or agent is unknown or")
		fmt.Fprintln(stdout, "the campaign's CRM set-up cannot be rendered, 2 on usage or catalog errors.")
		fmt.Fprintln(stdout, "\nFlags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(stderr)
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "oml-crm render: "+format+"\n", a...)
		return code
	}

	cfg, err := loadConfig(fs, args)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		return fail(2, "%v (see oml-crm render --help)", err)
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected arguments %q (see oml-crm render --help)", fs.Args())
	}
	if !fs.Changed("campaign") {
		return fail(2, "--campaign is required (see oml-crm render --help)")
	}
	call := crmnotify.CallData{
		CallID: *callID, Phone: *phone, ContactID: "-1", RecFilename: *recFilename,
		CallWaitDuration: *waitDuration, At: time.Now().UTC(),
	}
	if *at != "" {
		if call.At, err = time.Parse(time.RFC3339, *at); err != nil {
			return fail(2, "--at %q: want RFC 3339, like 2019-06-04T17:06:22Z", *at)
		}
	}
	if len(*vars) > 0 {
		call.Dialplan = make(map[string]string, len(*vars))
		for _, v := range *vars {
			name, value, ok := strings.Cut(v, "=")
			if !ok || name == "" {
				return fail(2, "--var %q: want NAME=VALUE", v)
			}
			call.Dialplan[name] = value
		}
	}

	ctx, cancel := context.WithTimeout(ctx, catalogCommandTimeout)
	defer cancel()
	cat, err := openCatalog(ctx, *catalogSpec, cfg, commandLogger(stderr, fs, cfg))
	if err != nil {
		return fail(2, "open catalog: %v", err)
	}
	defer cat.Close()

	in := crmnotify.Input{Call: call}
	if in.Campaign, err = cat.Campaign(ctx, *campaignID); err != nil {
		return lookupFailed(fail, err)
	}
	c := in.Campaign
	if c.Site == nil {
		return fail(1, "campaign %d (%s) has no external site: there is no CRM request to render", c.ID, c.Name)
	}
	if fs.Changed("contact") {
		if in.Contact, err = cat.Contact(ctx, *contactID); err != nil {
			return lookupFailed(fail, err)
		}
		in.Call.ContactID = strconv.Itoa(*contactID)
		if db := c.ContactDatabase; db != nil && in.Contact.DatabaseID != db.ID {
			fmt.Fprintf(stderr, "oml-crm render: warning: contact %d belongs to contact database %d, campaign %d (%s) uses %d\n",
				in.Contact.ID, in.Contact.DatabaseID, c.ID, c.Name, db.ID)
		}
	}
	if fs.Changed("agent") {
		if in.Agent, err = cat.Agent(ctx, *agentID); err != nil {
			return lookupFailed(fail, err)
		}
		in.Call.AgentID = *agentID
	}
	// Said on stderr, the request is still printed: the admin may be preparing the campaign.
	switch {
	case !c.Active():
		fmt.Fprintf(stderr, "oml-crm render: note: campaign %d (%s) is not active (state %d): its calls do not invoke the CRM\n", c.ID, c.Name, c.State)
	case !c.Interaction.UsesSite():
		fmt.Fprintf(stderr, "oml-crm render: note: campaign %d (%s) has interaction %q: its calls do not invoke the external site\n", c.ID, c.Name, c.Interaction)
	case !c.Site.Trigger.Known():
		fmt.Fprintf(stderr, "oml-crm render: note: site %d (%s) has the unknown trigger code %d (valid: 1 agent, 2 automatic, 3 server, 4 disposition, 5 dynamic list): oml-crm never sends it\n", c.Site.ID, c.Site.Name, int(c.Site.Trigger))
	case !c.Site.Trigger.FiredOnConnect():
		fmt.Fprintf(stderr, "oml-crm render: note: site %d (%s) has trigger %s: OMniLeads fires it itself, oml-crm never sends it\n", c.Site.ID, c.Site.Name, c.Site.Trigger)
	}

	req, err := crmnotify.Render(in)
	if err != nil {
		return fail(1, "%v", err)
	}
	out := renderOutput{
		Campaign: c.ID, Site: c.Site.ID,
		Trigger: c.Site.Trigger.String(), Target: c.Site.Target.String(),
		Method: req.Method, URL: req.URL, Headers: map[string]string{},
		ContentType: req.ContentType, Body: string(req.Body), Fields: []renderField{},
	}
	keys := make([]string, 0, len(req.Header))
	for k := range req.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out.Headers[k] = strings.Join(req.Header[k], ", ")
	}
	for _, f := range req.Fields {
		out.Fields = append(out.Fields, renderField(f))
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fail(2, "write output: %v", err)
	}
	return 0
}

// lookupFailed reports a failed catalog lookup: exit 1 for an id the catalog does not
// have, 2 for a catalog that could not answer. The catalog's errors already say what
// was being read ("read campaign 1: …"), so they are not wrapped again.
func lookupFailed(fail func(code int, format string, a ...any) int, err error) int {
	if errors.Is(err, catalog.ErrNotFound) {
		return fail(1, "%v in the catalog", err)
	}
	return fail(2, "%v", err)
}

// registerCatalogCommandFlags adds the configuration flags that matter to the one-shot
// catalog commands (render, check): --config and --log-level (config.Load binds them).
func registerCatalogCommandFlags(fs *pflag.FlagSet) {
	fs.String(config.ConfigFlag, "", "YAML configuration file (OMLCRM_* environment variables override it); needed for the OMniLeads database unless --catalog is given")
	fs.String("log-level", "", "log level on stderr: debug|info|warn|error (default warn; a configured log.level only makes it quieter)")
}

// commandLogger is the logger of one-shot commands: human-readable on stderr (stdout
// carries the command's output). Its level is --log-level when given, else warn or the
// configured log.level if that is quieter (the daemon's "info" would only add noise here).
func commandLogger(stderr io.Writer, fs *pflag.FlagSet, cfg *config.Config) zerolog.Logger {
	level := zerolog.WarnLevel
	if l, err := zerolog.ParseLevel(cfg.Log.Level); err == nil && (l > level || fs.Changed("log-level")) {
		level = l
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: stderr, NoColor: true, TimeFormat: time.RFC3339}).
		Level(level).With().Timestamp().Logger()
}
