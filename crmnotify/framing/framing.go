// Package framing finds out whether a CRM site refuses to be shown inside another site's
// page (X-Frame-Options, Content-Security-Policy frame-ancestors), so that an embedded
// pop of a refusing CRM is offered as "Open CRM in a tab" instead of a blank frame.
//
// A site is probed with one GET of its URL cut before the first placeholder and without
// query (the framing policy of a web application does not depend on the customer's id),
// following redirects only within the same host. The verdict is Refused, Allowed or Unknown
// (the probe failed, or frame-ancestors names origins this side cannot compare with the
// agent console's): the browser client shows Unknown as an iframe plus an "Open in a tab"
// link. Cache keeps one verdict per probed URL for a TTL and probes in the background.
package framing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// Verdict is what a probe found.
type Verdict int

// Verdicts.
const (
	Unknown Verdict = iota // not probed yet, the probe failed, or undecidable from here
	Allowed                // no header forbids framing by another origin
	Refused                // X-Frame-Options or CSP frame-ancestors forbids it
)

func (v Verdict) String() string {
	switch v {
	case Allowed:
		return "allowed"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// Result is one probe's outcome.
type Result struct {
	URL     string  // what was requested
	Verdict Verdict //
	Reason  string  // the header that decided, or why the verdict is unknown
}

// UserAgent is the User-Agent of probe requests: a CRM's logs show them under this name.
const UserAgent = "oml-crm-frame-probe"

// ProbeTimeout bounds one probe (connect, redirects, headers).
const ProbeTimeout = 5 * time.Second

// maxRedirects is how many same-host redirects a probe follows.
const maxRedirects = 3

// ProbeURL is the URL probed for site: its URL cut before the first placeholder, without
// query or fragment. ok is false when the site is not embedded or the URL has no usable
// scheme and host.
func ProbeURL(site *catalog.Site) (string, bool) {
	if site == nil || site.Target != catalog.TargetEmbedded {
		return "", false
	}
	raw := site.URL
	if i := strings.IndexByte(raw, '{'); i >= 0 {
		raw = raw[:i]
	}
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	return u.String(), true
}

// NewClient is the HTTP client probes use: no cookies, redirects only within the first
// request's host, at most maxRedirects of them.
func NewClient(transport http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: transport,
		Timeout:   ProbeTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return errTooManyRedirects
			}
			if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
				return errOtherHost
			}
			return nil
		},
	}
}

var (
	errTooManyRedirects = errors.New("too many redirects")
	errOtherHost        = errors.New("redirects to another host")
)

// Probe requests target once and judges its framing headers.
func Probe(ctx context.Context, client *http.Client, target string) Result {
	res := Result{URL: target}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		res.Reason = fmt.Sprintf("cannot build the request: %v", err)
		return res
	}
	// What a browser sends when it loads a frame; some servers answer frames differently.
	req.Header.Set("Sec-Fetch-Dest", "iframe")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	req.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
	req.Header.Set("User-Agent", UserAgent)
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && (errors.Is(ue.Err, errOtherHost) || errors.Is(ue.Err, errTooManyRedirects)) {
			res.Reason = ue.Err.Error()
		} else {
			res.Reason = fmt.Sprintf("probe failed: %v", err)
		}
		return res
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	res.Verdict, res.Reason = Judge(resp.Header)
	return res
}

// Judge reads a response's framing headers as a browser embedding it in a page of another
// origin would. CSP frame-ancestors, when present, decides (browsers then ignore
// X-Frame-Options); a list of origins cannot be compared with the console's here and gives
// Unknown.
func Judge(h http.Header) (Verdict, string) {
	sawAncestors := false
	verdict := Allowed
	reason := ""
	for _, csp := range h.Values("Content-Security-Policy") {
		for _, policy := range strings.Split(csp, ",") { // several policies: each is enforced
			for _, dir := range strings.Split(policy, ";") {
				fields := strings.Fields(dir)
				if len(fields) == 0 || !strings.EqualFold(fields[0], "frame-ancestors") {
					continue
				}
				sawAncestors = true
				v := judgeAncestors(fields[1:])
				if v == Refused {
					return Refused, "Content-Security-Policy: " + strings.TrimSpace(dir)
				}
				if v == Unknown && verdict == Allowed {
					verdict, reason = Unknown, "Content-Security-Policy "+strings.TrimSpace(dir)+" (allowed only for the origins listed)"
				}
				break // only the first frame-ancestors of a policy counts
			}
		}
	}
	if sawAncestors {
		return verdict, reason
	}
	if xfo := strings.TrimSpace(h.Get("X-Frame-Options")); xfo != "" {
		switch strings.ToUpper(strings.SplitN(xfo, ",", 2)[0]) {
		case "DENY", "SAMEORIGIN":
			return Refused, "X-Frame-Options: " + xfo
		}
		// ALLOW-FROM and invalid values are ignored by current browsers.
	}
	return Allowed, ""
}

// judgeAncestors judges a frame-ancestors source list for an embedding origin this side
// does not know (the agent console's).
func judgeAncestors(sources []string) Verdict {
	if len(sources) == 0 {
		return Refused // an empty list is 'none'
	}
	v := Refused
	for _, s := range sources {
		switch strings.ToLower(s) {
		case "'none'":
			return Refused
		case "'self'":
			// another origin than the CRM's: refused unless a later source allows it
		case "*", "http:", "https:":
			return Allowed
		default:
			v = Unknown // a listed origin: maybe the console's
		}
	}
	return v
}
