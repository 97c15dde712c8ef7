package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/crmnotify/delivery"
)

const deliveriesUsage = `usage: oml-crm deliveries <list|show|retry> [flags]

  list   [--status pending|failed|dead|delivered] [--campaign ID] [--since DUR] [--limit N] [--json]
  show   ID [--json]            the delivery and every attempt
  retry  ID | --dead            put a failed/dead delivery (or every dead one) back to pending;
                                the running daemon sends it within its poll interval

Statuses: pending (never tried, or put back by retry), failed (last attempt failed, a
retry is scheduled), dead (gave up: maximum age or a final 4xx), delivered.
The outbox is delivery.store of --config, or --store sqlite:PATH | postgres://URL.
Run 'oml-crm deliveries <list|show|retry> --help' for the flags of each.
`

func runDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, deliveriesUsage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, deliveriesUsage)
		return 0
	case "list":
		return deliveriesList(ctx, args[1:], stdout, stderr)
	case "show":
		return deliveriesShow(ctx, args[1:], stdout, stderr)
	case "retry":
		return deliveriesRetry(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "oml-crm deliveries: unknown subcommand %q\n\n%s", args[0], deliveriesUsage)
	return 2
}

// deliveriesFlags is a flag set with the store selection flags.
func deliveriesFlags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("oml-crm deliveries "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // usage and errors are printed by parseDeliveriesFlags
	fs.Usage = func() {}
	fs.String(config.ConfigFlag, "", "YAML configuration file: the outbox is delivery.store (delivery.sqlite_path, delivery.postgres_url, delivery.postgres_schema)")
	fs.String("store", "", "outbox to open instead of the configured one: sqlite:PATH or postgres://URL")
	fs.String("schema", "", "PostgreSQL schema of the outbox (default delivery.postgres_schema, oml_crm)")
	fs.SortFlags = false
	return fs
}

// openDeliveries parses args and opens the outbox. A nil queue with code ≥ 0 means
// "exit with code" (help printed, or an error reported).
func openDeliveries(ctx context.Context, fs *pflag.FlagSet, synopsis string, args []string, stdout, stderr io.Writer) (*delivery.Queue, int) {
	cfg, err := loadConfig(fs, args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: %s\n\n%s", synopsis, fs.FlagUsages())
		return nil, 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n\nusage: %s\n\n%s", fs.Name(), err, synopsis, fs.FlagUsages())
		return nil, 2
	}
	opts := delivery.Options{Logger: zerolog.Nop()}
	spec, _ := fs.GetString("store")
	schema, _ := fs.GetString("schema")
	switch {
	case spec != "":
		opts.Store = spec
	case cfg.Delivery.Store == "postgres":
		opts.Store = cfg.Delivery.PostgresURL.Reveal()
		if opts.Store == "" {
			fmt.Fprintf(stderr, "%s: delivery.postgres_url is empty (delivery.store=postgres)\n", fs.Name())
			return nil, 1
		}
	case cfg.Delivery.Store == "sqlite" || cfg.Delivery.Store == "":
		opts.Store = "sqlite:" + cfg.Delivery.SQLitePath
	default:
		fmt.Fprintf(stderr, "%s: delivery.store %q: want sqlite or postgres\n", fs.Name(), cfg.Delivery.Store)
		return nil, 1
	}
	opts.Schema = cmpOr(schema, cfg.Delivery.PostgresSchema)
	if cfg.Delivery.MaxAge > 0 {
		opts.MaxAge = cfg.Delivery.MaxAge // retry gives a delivery a fresh maximum age
	}
	if !strings.HasPrefix(opts.Store, "postgres://") && !strings.HasPrefix(opts.Store, "postgresql://") {
		path := strings.TrimPrefix(opts.Store, "sqlite:")
		// The CLI reads an existing outbox: a wrong path must not create an empty one.
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintf(stderr, "%s: no delivery outbox at %s (delivery.sqlite_path or --store): %v\n", fs.Name(), path, err)
			return nil, 1
		}
	}
	q, err := delivery.Open(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return nil, 1
	}
	return q, -1
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func deliveriesList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "oml-crm deliveries list [--status S] [--campaign ID] [--since DUR] [--limit N] [--json] [--config F | --store S]"
	fs := deliveriesFlags("list")
	status := fs.String("status", "", "only deliveries in this status: pending|failed|dead|delivered")
	campaign := fs.Int("campaign", 0, "only deliveries of this campaign id")
	since := fs.Duration("since", 0, "only deliveries created within this long (e.g. 30m, 24h)")
	limit := fs.Int("limit", 50, "at most this many deliveries, newest first")
	asJSON := fs.Bool("json", false, "print JSON (one array) instead of a table")
	q, code := openDeliveries(ctx, fs, synopsis, args, stdout, stderr)
	if q == nil {
		return code
	}
	defer q.Close()
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2
	}
	f := delivery.Filter{CampaignID: *campaign, Since: *since, Limit: *limit}
	if *status != "" {
		st, err := delivery.ParseStatus(*status)
		if err != nil {
			fmt.Fprintf(stderr, "%s: --status: %v\n", fs.Name(), err)
			return 2
		}
		f.Status = st
	}
	if *limit <= 0 || *since < 0 {
		fmt.Fprintf(stderr, "%s: --limit must be positive and --since not negative\n", fs.Name())
		return 2
	}
	list, err := q.List(ctx, f)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return 1
	}
	if *asJSON {
		out := make([]deliveryJSON, len(list))
		for i := range list {
			out[i] = toJSON(&list[i], false)
		}
		return writeJSON(stdout, stderr, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tCAMPAIGN\tSITE\tCALL\tAGENT\tATTEMPTS\tCREATED\tNEXT/DELIVERED\tLAST")
	for _, d := range list {
		when := "-"
		switch d.Status {
		case delivery.StatusDelivered:
			when = fmtTime(d.DeliveredAt)
		case delivery.StatusPending, delivery.StatusFailed:
			when = fmtTime(d.NextAttemptAt)
		}
		last := d.LastError
		if last == "" && d.LastStatus != 0 {
			last = strconv.Itoa(d.LastStatus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%d\t%s\t%s\t%s\n", termSafe(d.ID), d.Status, d.CampaignID, d.SiteID, termSafe(shorten(d.CallID, 60)), d.AgentID,
			d.Attempts, fmtTime(d.CreatedAt), when, termSafe(shorten(last, 60)))
	}
	tw.Flush()
	return 0
}

func deliveriesShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "oml-crm deliveries show ID [--json] [--config F | --store S]"
	fs := deliveriesFlags("show")
	asJSON := fs.Bool("json", false, "print JSON")
	q, code := openDeliveries(ctx, fs, synopsis, args, stdout, stderr)
	if q == nil {
		return code
	}
	defer q.Close()
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "%s: want exactly one delivery id\n", fs.Name())
		return 2
	}
	d, err := q.Get(ctx, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return 1
	}
	if *asJSON {
		return writeJSON(stdout, stderr, toJSON(d, true))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(k string, v any) {
		if s, ok := v.(string); ok {
			v = termSafe(s) // names, URLs and errors come from the catalog and the CRM
		}
		fmt.Fprintf(tw, "%s:\t%v\n", k, v)
	}
	row("id", d.ID)
	row("status", d.Status)
	row("campaign", fmt.Sprintf("%d %s", d.CampaignID, d.CampaignName))
	row("site", d.SiteID)
	row("call", d.CallID)
	row("agent", d.AgentID)
	row("request", d.Method+" "+d.URL)
	if d.ContentType != "" {
		row("content type", d.ContentType)
	}
	row("connected", fmtTime(d.ConnectedAt))
	row("created", fmtTime(d.CreatedAt))
	row("expires", fmtTime(d.ExpiresAt))
	row("attempts", d.Attempts)
	switch d.Status {
	case delivery.StatusDelivered:
		row("delivered", fmtTime(d.DeliveredAt))
		row("connect→CRM", d.Latency.Round(time.Millisecond))
	case delivery.StatusPending, delivery.StatusFailed:
		row("next attempt", fmtTime(d.NextAttemptAt))
	}
	if d.LastError != "" {
		row("last error", d.LastError)
	}
	tw.Flush()
	if len(d.AttemptLog) > 0 {
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tAT\tSTATUS\tLATENCY\tERROR\tRESPONSE")
		for _, a := range d.AttemptLog {
			st := "-"
			if a.Status != 0 {
				st = strconv.Itoa(a.Status)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", a.N, fmtTime(a.At), st, a.Latency.Round(100*time.Microsecond),
				termSafe(shorten(a.Error, 80)), termSafe(shorten(a.Response, 80)))
		}
		tw.Flush()
	}
	return 0
}

func deliveriesRetry(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const synopsis = "oml-crm deliveries retry ID | --dead [--config F | --store S]"
	fs := deliveriesFlags("retry")
	dead := fs.Bool("dead", false, "put every dead delivery back to pending")
	q, code := openDeliveries(ctx, fs, synopsis, args, stdout, stderr)
	if q == nil {
		return code
	}
	defer q.Close()
	switch {
	case *dead && fs.NArg() == 0:
		n, err := q.RetryDead(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
			return 1
		}
		fmt.Fprintf(stdout, "%d dead deliveries put back to pending; the running daemon sends them within its poll interval\n", n)
	case !*dead && fs.NArg() == 1:
		if err := q.Retry(ctx, fs.Arg(0)); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
			return 1
		}
		fmt.Fprintf(stdout, "delivery %s put back to pending; the running daemon sends it within its poll interval\n", fs.Arg(0))
	default:
		fmt.Fprintf(stderr, "%s: give one delivery id or --dead\n\nusage: %s\n", fs.Name(), synopsis)
		return 2
	}
	return 0
}

// deliveryJSON is the CLI's JSON shape of a delivery.
type deliveryJSON struct {
	ID            string        `json:"id"`
	Status        string        `json:"status"`
	CampaignID    int           `json:"campaign_id"`
	CampaignName  string        `json:"campaign_name"`
	SiteID        int           `json:"site_id"`
	CallID        string        `json:"call_id"`
	AgentID       int           `json:"agent_id"`
	Method        string        `json:"method"`
	URL           string        `json:"url"`
	ContentType   string        `json:"content_type,omitempty"`
	Body          *string       `json:"body,omitempty"` // show only; UTF-8 bodies as text, others base64 in body_base64
	BodyBase64    []byte        `json:"body_base64,omitempty"`
	ConnectedAt   time.Time     `json:"connected_at"`
	CreatedAt     time.Time     `json:"created_at"`
	ExpiresAt     time.Time     `json:"expires_at"`
	NextAttemptAt *time.Time    `json:"next_attempt_at,omitempty"`
	Attempts      int           `json:"attempts"`
	LastStatus    int           `json:"last_status,omitempty"`
	LastError     string        `json:"last_error,omitempty"`
	DeliveredAt   *time.Time    `json:"delivered_at,omitempty"`
	LatencyMS     *float64      `json:"latency_ms,omitempty"`
	AttemptLog    []attemptJSON `json:"attempt_log,omitempty"`
}

type attemptJSON struct {
	N         int       `json:"n"`
	At        time.Time `json:"at"`
	Status    int       `json:"status"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	Response  string    `json:"response,omitempty"`
}

func toJSON(d *delivery.Delivery, withBody bool) deliveryJSON {
	j := deliveryJSON{ID: d.ID, Status: string(d.Status), CampaignID: d.CampaignID, CampaignName: d.CampaignName, SiteID: d.SiteID,
		CallID: d.CallID, AgentID: d.AgentID, Method: d.Method, URL: d.URL, ContentType: d.ContentType,
		ConnectedAt: d.ConnectedAt, CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt, Attempts: d.Attempts,
		LastStatus: d.LastStatus, LastError: d.LastError}
	if withBody && d.Body != nil {
		if utf8.Valid(d.Body) {
			s := string(d.Body)
			j.Body = &s
		} else {
			j.BodyBase64 = d.Body
		}
	}
	if d.Status == delivery.StatusPending || d.Status == delivery.StatusFailed {
		t := d.NextAttemptAt
		j.NextAttemptAt = &t
	}
	if d.Status == delivery.StatusDelivered {
		t, ms := d.DeliveredAt, float64(d.Latency.Microseconds())/1000
		j.DeliveredAt, j.LatencyMS = &t, &ms
	}
	for _, a := range d.AttemptLog {
		j.AttemptLog = append(j.AttemptLog, attemptJSON{N: a.N, At: a.At, Status: a.Status,
			LatencyMS: float64(a.Latency.Microseconds()) / 1000, Error: a.Error, Response: a.Response})
	}
	return j
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "oml-crm deliveries: write JSON: %v\n", err)
		return 1
	}
	if _, err := stdout.Write(jsonTermSafe(buf.Bytes())); err != nil {
		fmt.Fprintf(stderr, "oml-crm deliveries: write JSON: %v\n", err)
		return 1
	}
	return 0
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// shorten keeps a table cell on one line.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
