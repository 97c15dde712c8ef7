package crmnotify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/omlcrm/oml-crm/catalog"
)

// ErrMisconfigured is wrapped by every Render error caused by the campaign's CRM set-up
// (unknown source, unfilled holder, bad site URL, method or format) as opposed to a bad
// call. The message names the campaign, site and parameter at fault; `oml-crm check`
// reports the same problems before any call arrives.
var ErrMisconfigured = errors.New("invalid CRM set-up (oml-crm check lists every problem)")

// DatetimeLayout is how the call parameter `datetime` renders CallData.At, always in UTC
// (as OMniLeads does with USE_TZ): "2019-06-04 17:06:22".
const DatetimeLayout = "2006-01-02 15:04:05"

// Content types of POST bodies. text/plain names its charset because its default is
// US-ASCII; JSON is UTF-8 by definition (RFC 8259 defines no charset parameter); the
// multipart one is "multipart/form-data; boundary=..." with the derived boundary.
const (
	ContentTypeForm = "application/x-www-form-urlencoded"
	ContentTypeText = "text/plain; charset=utf-8"
	ContentTypeJSON = "application/json"
)

// Render builds the HTTP request the campaign's CRM expects for one connected call. It is
// pure: the same Input always gives the same bytes (the multipart boundary is derived from
// the content), so it is tested exhaustively and fuzzed.
//
// Values, per parameter family:
//   - campaign: id, nombre (the name), tipo (Manual/Dialer/Entrante/Preview);
//   - contact: the named column of in.Contact (empty when no contact was identified);
//   - call: call_id, agent_id (in.Agent.ID, else CallData.AgentID, else empty),
//     agent_username, agent_name, telefono, id_contacto (CallData.ContactID verbatim),
//     rec_filename, call_wait_duration, datetime (CallData.At in UTC as DatetimeLayout,
//     empty when zero);
//   - fixed: the source itself;
//   - dialplan: CallData.Dialplan[source], matched case-insensitively (an exact match wins,
//     then the lexically smallest key), empty when the dialplan did not set it;
//   - disposition: id, name, subdisposition, form (Django urlsafe_base64 of the form
//     JSON, no padding) of Input.Disposition; empty in other phases (as OMniLeads renders
//     them outside its trigger 4);
//   - call_end: the journal values of Input.End (catalog.CallEndSources); empty in other
//     phases. An end-of-call notification whose campaign has no call_end parameter gets
//     every call_end value appended, named as its source.
//
// A parameter named `{holder}` fills that placeholder of the site URL (path and fragment:
// path-escaped, a whole "." or ".." segment as %2E; query: query-escaped); placeholders in
// the scheme or host are refused. When several parameters name the same placeholder the
// first one fills it; a placeholder parameter the URL does not hold is not sent at all.
// The rest of the URL is kept byte for byte (never normalised: "https://host?a=1" gets no
// '/'). The other parameters, in order, go to the GET query
// (appended to any query the URL already has, before any fragment; no parameters, no
// '?') or to the POST body. Duplicate names keep OMniLeads' semantics: the last value
// wins, at the position of the first. Request.Fields lists them in that order.
//
// POST bodies, by site format:
//   - multipart: one plain form field per parameter (no filename), ContentType
//     "multipart/form-data; boundary=oml-crm-<hash of the fields>";
//   - form: name=value&... query-escaped (space as '+'), ContentTypeForm;
//   - text: "name=value\r\n" per parameter, as browsers submit text/plain forms,
//     ContentTypeText; a line break inside a name or value (CR, LF, CRLF and the other
//     Unicode line terminators) becomes one space, so no value can add a line;
//   - json: an object in parameter order, ContentTypeJSON. Every value is a string, as
//     OMniLeads sends it. A site with JSONIDsAsNumbers gets the ids as numbers when they
//     are canonical decimal integers: campaign `id`, call `agent_id` and call
//     `id_contacto` (so "-1" → -1, "007" stays "007", an empty agent_id stays "").
//
// Render never sends half a request: an unknown family or source, a contact column the
// campaign's database lacks, a placeholder no parameter fills, a URL without scheme or
// host, or an unknown method or format is an error wrapping ErrMisconfigured.
func Render(in Input) (Request, error) {
	c := in.Campaign
	if c == nil {
		return Request{}, fmt.Errorf("no campaign to render: %w", ErrMisconfigured)
	}
	if c.Site == nil {
		return Request{}, fmt.Errorf("campaign %d (%s) has no external site: %w", c.ID, c.Name, ErrMisconfigured)
	}
	site := c.Site

	holders := make(map[string]string)
	fields := make([]Field, 0, len(c.Params))
	numeric := make([]bool, 0, len(c.Params)) // parallel to fields: JSON numbers
	for _, p := range c.Params {
		v, isNum, err := paramValue(in, p)
		if err != nil {
			return Request{}, fmt.Errorf("campaign %d (%s), site %d (%s), parameter %q: %w",
				c.ID, c.Name, site.ID, site.Name, p.Name, err)
		}
		if h, ok := p.Holder(); ok {
			// OMniLeads replaces the placeholder once: the first parameter fills it.
			if _, seen := holders[h]; !seen {
				holders[h] = v
			}
			continue
		}
		if i := fieldIndex(fields, p.Name); i >= 0 {
			fields[i].Value, numeric[i] = v, isNum
			continue
		}
		fields = append(fields, Field{Name: p.Name, Value: v})
		numeric = append(numeric, isNum)
	}

	if in.End != nil && !hasFamily(c.Params, catalog.FamilyCallEnd) {
		fields, numeric = callEndDefaults(in, fields, numeric)
	}

	base, err := FillURL(site.URL, holders)
	if err != nil {
		return Request{}, fmt.Errorf("campaign %d (%s), site %d (%s): %w", c.ID, c.Name, site.ID, site.Name, err)
	}
	// A javascript: or data: URL opened in the agent's console would run in its page.
	if scheme, _, _ := strings.Cut(base, ":"); !httpScheme(scheme) {
		return Request{}, fmt.Errorf("campaign %d (%s), site %d (%s): the site URL %q is not http or https: %w",
			c.ID, c.Name, site.ID, site.Name, DisplayURL(site.URL), ErrMisconfigured)
	}

	req := Request{Header: http.Header{}, Fields: fields}
	switch site.Method {
	case catalog.MethodGET:
		req.Method = http.MethodGet
		req.URL = appendQuery(base, fields)
	case catalog.MethodPOST:
		req.Method = http.MethodPost
		req.URL = base
		switch site.Format {
		case catalog.FormatMultipart:
			req.Body, req.ContentType = multipartBody(fields)
		case catalog.FormatForm:
			req.Body, req.ContentType = []byte(encodeForm(fields)), ContentTypeForm
		case catalog.FormatText:
			req.Body, req.ContentType = textBody(fields), ContentTypeText
		case catalog.FormatJSON:
			if !site.JSONIDsAsNumbers {
				clear(numeric) // OMniLeads' bytes: every value a string
			}
			req.Body, req.ContentType = jsonBody(fields, numeric), ContentTypeJSON
		default:
			return Request{}, fmt.Errorf("campaign %d (%s), site %d (%s): POST with %s; the format must be multipart, form, text or json: %w",
				c.ID, c.Name, site.ID, site.Name, site.Format, ErrMisconfigured)
		}
	default:
		return Request{}, fmt.Errorf("campaign %d (%s), site %d (%s): %s; the method must be GET or POST: %w",
			c.ID, c.Name, site.ID, site.Name, site.Method, ErrMisconfigured)
	}
	return req, nil
}

func fieldIndex(fields []Field, name string) int {
	for i := range fields {
		if fields[i].Name == name {
			return i
		}
	}
	return -1
}

// paramValue resolves one parameter. numeric reports a value that JSON bodies write as a
// number: the ids (campaign id, agent_id, id_contacto) when they are decimal integers.
func paramValue(in Input, p catalog.Param) (value string, numeric bool, err error) {
	c := in.Campaign
	switch p.Family {
	case catalog.FamilyCampaign:
		switch p.Source {
		case "id":
			return strconv.Itoa(c.ID), true, nil
		case "nombre":
			return c.Name, false, nil
		case "tipo":
			return c.Type.DisplayName(), false, nil
		}
		return "", false, fmt.Errorf("unknown campaign data %q (valid: %s): %w",
			p.Source, strings.Join(catalog.CampaignSources, ", "), ErrMisconfigured)
	case catalog.FamilyContact:
		if db := c.ContactDatabase; db != nil && !db.HasColumn(p.Source) {
			return "", false, fmt.Errorf("contact database %d has no column %q (it has: %s): %w",
				db.ID, p.Source, strings.Join(db.Columns, ", "), ErrMisconfigured)
		}
		if in.Contact == nil {
			return "", false, nil
		}
		return in.Contact.Fields[p.Source], false, nil
	case catalog.FamilyCall:
		return callValue(in, p.Source)
	case catalog.FamilyFixed:
		return p.Source, false, nil
	case catalog.FamilyDialplan:
		return dialplanValue(in.Call.Dialplan, p.Source), false, nil
	case catalog.FamilyDisposition:
		return dispositionValue(in, p.Source)
	case catalog.FamilyCallEnd:
		return callEndValue(in, p.Source)
	}
	return "", false, fmt.Errorf("unknown parameter family %d (valid: 1 campaign, 2 contact, 3 call, 4 fixed, 5 dialplan, 6 disposition, 7 call_end): %w",
		int(p.Family), ErrMisconfigured)
}

func callValue(in Input, source string) (string, bool, error) {
	call := in.Call
	switch source {
	case "call_id":
		return call.CallID, false, nil
	case "agent_id":
		switch {
		case in.Agent != nil:
			return strconv.Itoa(in.Agent.ID), true, nil
		case call.AgentID != 0:
			return strconv.Itoa(call.AgentID), true, nil
		}
		return "", false, nil
	case "agent_username":
		if in.Agent == nil {
			return "", false, nil
		}
		return in.Agent.Username, false, nil
	case "agent_name":
		if in.Agent == nil {
			return "", false, nil
		}
		return in.Agent.Name, false, nil
	case "telefono":
		return call.Phone, false, nil
	case "id_contacto":
		return call.ContactID, isDecimalInteger(call.ContactID), nil
	case "rec_filename":
		return call.RecFilename, false, nil
	case "call_wait_duration":
		return call.CallWaitDuration, false, nil
	case "datetime":
		if call.At.IsZero() {
			return "", false, nil
		}
		return call.At.UTC().Format(DatetimeLayout), false, nil
	}
	return "", false, fmt.Errorf("unknown call data %q (valid: %s): %w",
		source, strings.Join(catalog.CallSources, ", "), ErrMisconfigured)
}

// dialplanValue looks name up case-insensitively: OMniLeads stores `Omlcrmticket` while
// the dialplan may set OMLCRMTICKET. An exact match wins; among several case variants the
// lexically smallest key is used, so the result never depends on map order.
func dialplanValue(vars map[string]string, name string) string {
	if v, ok := vars[name]; ok {
		return v
	}
	var bestKey, best string
	found := false
	for k, v := range vars {
		if strings.EqualFold(k, name) && (!found || k < bestKey) {
			bestKey, best, found = k, v, true
		}
	}
	return best
}

// isDecimalInteger reports whether s is an optionally signed run of ASCII digits that
// fits an int64, written canonically (no leading zeros or '+'), so that writing it as a
// JSON number keeps its exact text.
func isDecimalInteger(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && strconv.FormatInt(n, 10) == s
}

// FillURL replaces the {holder} placeholders of a site URL with values (holder name →
// raw value). It does not otherwise touch the URL (no normalisation: "https://host?x"
// stays without a slash).
//
// Placeholders in the path and the fragment are path-escaped, so a value never adds a
// '/', '?' or '#', and a segment that would come out as exactly "." or ".." has its dots
// written %2E; placeholders in the query are query-escaped, so a value never adds a '&',
// '=' or '#'. A placeholder in the scheme, user info, host or port, a placeholder no value
// fills, and a URL without scheme or host are errors wrapping ErrMisconfigured.
func FillURL(raw string, values map[string]string) (string, error) {
	out, err := fillURL(raw, values)
	if err != nil {
		return "", err
	}
	if _, err := url.Parse(out); err != nil {
		return "", fmt.Errorf("site URL %q does not parse: %w: %w", DisplayURL(raw), urlParseReason(err), ErrMisconfigured)
	}
	return out, nil
}

// urlParseReason drops the URL that url.Error repeats (credentials included).
func urlParseReason(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// fillURL is FillURL without the final parse.
func fillURL(raw string, values map[string]string) (string, error) {
	sp, err := splitURL(raw)
	if err != nil {
		return "", err
	}
	if h, ok := firstHolder(raw[:sp.pathStart]); ok {
		return "", fmt.Errorf("site URL %q has the placeholder {%s} in its scheme or host; placeholders may only be in the path, query or fragment: %w",
			DisplayURL(raw), h, ErrMisconfigured)
	}
	var b strings.Builder
	b.Grow(len(raw) + 32)
	b.WriteString(raw[:sp.pathStart])
	if err := fillSegments(&b, raw, raw[sp.pathStart:sp.pathEnd], values); err != nil {
		return "", err
	}
	if sp.queryStart >= 0 {
		b.WriteByte('?')
		if err := fillQuery(&b, raw, raw[sp.queryStart:sp.queryEnd], values); err != nil {
			return "", err
		}
	}
	if sp.fragStart >= 0 {
		b.WriteByte('#')
		if err := fillSegments(&b, raw, raw[sp.fragStart:], values); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// urlParts holds byte offsets into a raw URL: the path is raw[pathStart:pathEnd], the
// query (without '?') raw[queryStart:queryEnd], the fragment (without '#') raw[fragStart:].
// queryStart and fragStart are -1 when absent.
type urlParts struct {
	pathStart, pathEnd   int
	queryStart, queryEnd int
	fragStart            int
}

// splitURL finds the parts of an absolute URL without decoding or normalising it.
func splitURL(raw string) (urlParts, error) {
	sep := strings.Index(raw, "://")
	if sep <= 0 || !validScheme(raw[:sep]) {
		return urlParts{}, fmt.Errorf("site URL %q has no scheme; write it in full, like https://crm.example.com/path: %w", raw, ErrMisconfigured)
	}
	authStart := sep + 3
	p := urlParts{queryStart: -1, fragStart: -1}
	p.pathStart = len(raw)
	if i := strings.IndexAny(raw[authStart:], "/?#"); i >= 0 {
		p.pathStart = authStart + i
	}
	if p.pathStart == authStart {
		return urlParts{}, fmt.Errorf("site URL %q has no host: %w", raw, ErrMisconfigured)
	}
	p.pathEnd = len(raw)
	if i := strings.IndexAny(raw[p.pathStart:], "?#"); i >= 0 {
		p.pathEnd = p.pathStart + i
	}
	rest := p.pathEnd
	if rest < len(raw) && raw[rest] == '?' {
		p.queryStart = rest + 1
		p.queryEnd = len(raw)
		if i := strings.IndexByte(raw[p.queryStart:], '#'); i >= 0 {
			p.queryEnd = p.queryStart + i
		}
		rest = p.queryEnd
	}
	if rest < len(raw) && raw[rest] == '#' {
		p.fragStart = rest + 1
	}
	return p, nil
}

// httpScheme reports http or https, in any case (schemes are case-insensitive).
func httpScheme(s string) bool { return strings.EqualFold(s, "http") || strings.EqualFold(s, "https") }

func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z':
		case i > 0 && (ch >= '0' && ch <= '9' || ch == '+' || ch == '-' || ch == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// holderAt reports the placeholder that starts at s[i] ('{'), its name and end (after '}').
func holderAt(s string, i int) (name string, end int, ok bool) {
	if s[i] != '{' {
		return "", 0, false
	}
	j := i + 1
	for j < len(s) && isHolderByte(s[j]) {
		j++
	}
	if j == i+1 || j >= len(s) || s[j] != '}' {
		return "", 0, false
	}
	return s[i+1 : j], j + 1, true
}

func isHolderByte(ch byte) bool {
	return ch == '_' || ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z'
}

func firstHolder(s string) (string, bool) {
	for i := strings.IndexByte(s, '{'); i >= 0; {
		if name, _, ok := holderAt(s, i); ok {
			return name, true
		}
		next := strings.IndexByte(s[i+1:], '{')
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return "", false
}

// URLHolders lists the placeholder names of a URL template in order of appearance,
// each once.
func URLHolders(raw string) []string {
	var names []string
	for i := 0; i < len(raw); i++ {
		if name, end, ok := holderAt(raw, i); ok {
			if !containsString(names, name) {
				names = append(names, name)
			}
			i = end - 1
		}
	}
	return names
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func missingHolder(raw, name string) error {
	return fmt.Errorf("site URL %q holds the placeholder {%s} but no parameter is named {%s}; refusing to send a half-filled URL: %w",
		DisplayURL(raw), name, name, ErrMisconfigured)
}

// fillSegments writes a path (or fragment) with its placeholders path-escaped, one
// '/'-separated segment at a time so that a filled segment can be checked for "."/"..".
func fillSegments(b *strings.Builder, raw, part string, values map[string]string) error {
	for {
		seg, rest, more := strings.Cut(part, "/")
		start := b.Len()
		filled := false
		for i := 0; i < len(seg); i++ {
			name, end, ok := holderAt(seg, i)
			if !ok {
				b.WriteByte(seg[i])
				continue
			}
			v, ok := values[name]
			if !ok {
				return missingHolder(raw, name)
			}
			b.WriteString(url.PathEscape(v))
			filled = true
			i = end - 1
		}
		if filled {
			// A value must never climb the path: "." and ".." segments become %2E.
			if s := b.String()[start:]; s == "." || s == ".." {
				out := b.String()[:start]
				b.Reset()
				b.WriteString(out)
				b.WriteString(strings.Repeat("%2E", len(s)))
			}
		}
		if !more {
			return nil
		}
		b.WriteByte('/')
		part = rest
	}
}

func fillQuery(b *strings.Builder, raw, query string, values map[string]string) error {
	for i := 0; i < len(query); i++ {
		name, end, ok := holderAt(query, i)
		if !ok {
			b.WriteByte(query[i])
			continue
		}
		v, ok := values[name]
		if !ok {
			return missingHolder(raw, name)
		}
		b.WriteString(url.QueryEscape(v))
		i = end - 1
	}
	return nil
}

// encodeForm is application/x-www-form-urlencoded: name=value pairs in order joined by
// '&', each query-escaped (space as '+'), as browsers and OMniLeads (urlencode) write it.
func encodeForm(fields []Field) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(f.Name))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(f.Value))
	}
	return b.String()
}

// appendQuery adds the fields to the URL's query: after an existing query with '&' (or
// directly when it ends in '?' or '&'), before any fragment. No fields, no '?'.
func appendQuery(u string, fields []Field) string {
	if len(fields) == 0 {
		return u
	}
	q := encodeForm(fields)
	frag := ""
	if i := strings.IndexByte(u, '#'); i >= 0 {
		u, frag = u[:i], u[i:]
	}
	switch {
	case !strings.Contains(u, "?"):
		u += "?" + q
	case strings.HasSuffix(u, "?") || strings.HasSuffix(u, "&"):
		u += q
	default:
		u += "&" + q
	}
	return u + frag
}

// textBody is text/plain as browsers submit a form (HTML's text/plain encoding): one
// "name=value" line per field, each ending in CRLF. Browsers write a value's line breaks
// as they are, so a value could forge a "name=value" line of its own; here every line
// break inside a name or value becomes one space (see appendOneLine), which keeps the
// text readable for the person or parser reading it and the lines exactly one per field.
// A '=' in a value stays: the first '=' of a line ends the name.
func textBody(fields []Field) []byte {
	n := 0
	for _, f := range fields {
		n += len(f.Name) + len(f.Value) + 3
	}
	b := make([]byte, 0, n)
	for _, f := range fields {
		b = appendOneLine(b, f.Name)
		b = append(b, '=')
		b = appendOneLine(b, f.Value)
		b = append(b, '\r', '\n')
	}
	return b
}

// appendOneLine appends s with each line break replaced by one space: CRLF, CR, LF, and
// the other characters that common line splitters (Python's str.splitlines, Java's \R,
// Unicode) treat as line ends: VT, FF, FS, GS, RS, NEL (U+0085), U+2028 and U+2029.
func appendOneLine(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\r':
			b = append(b, ' ')
			i++
			if i < len(s) && s[i] == '\n' {
				i++ // CRLF is one break
			}
			continue
		case c == '\n' || c == '\v' || c == '\f' || c >= 0x1c && c <= 0x1e:
			b = append(b, ' ')
			i++
			continue
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u0085' || r == '\u2028' || r == '\u2029' {
			b = append(b, ' ')
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// multipartBody is multipart/form-data with one plain form field per parameter. The
// boundary is derived from a hash of the fields: Render stays pure, and a value cannot
// contain the boundary without finding a SHA-256 preimage of itself.
func multipartBody(fields []Field) ([]byte, string) {
	h := sha256.New()
	var lenBuf []byte
	for _, f := range fields {
		// Length-prefixed so that ("ab","c") and ("a","bc") differ.
		lenBuf = strconv.AppendInt(lenBuf[:0], int64(len(f.Name)), 10)
		lenBuf = append(lenBuf, ':')
		h.Write(lenBuf)
		h.Write([]byte(f.Name))
		lenBuf = strconv.AppendInt(lenBuf[:0], int64(len(f.Value)), 10)
		lenBuf = append(lenBuf, ':')
		h.Write(lenBuf)
		h.Write([]byte(f.Value))
	}
	boundary := "oml-crm-" + hex.EncodeToString(h.Sum(nil)[:16])

	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	if err := w.SetBoundary(boundary); err != nil {
		panic("crmnotify: invalid generated multipart boundary: " + err.Error()) // cannot happen: hex
	}
	for _, f := range fields {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", `form-data; name="`+escapeFormName(f.Name)+`"`)
		part, err := w.CreatePart(hdr)
		if err == nil {
			_, err = part.Write([]byte(f.Value))
		}
		if err != nil {
			panic("crmnotify: writing multipart to memory: " + err.Error()) // bytes.Buffer never fails
		}
	}
	if err := w.Close(); err != nil {
		panic("crmnotify: closing multipart in memory: " + err.Error())
	}
	return body.Bytes(), w.FormDataContentType()
}

// escapeFormName escapes a field name inside a quoted Content-Disposition parameter as
// browsers do (HTML's multipart/form-data encoding): '"' → %22, CR → %0D, LF → %0A.
func escapeFormName(s string) string {
	if !strings.ContainsAny(s, "\"\r\n") {
		return s
	}
	r := strings.NewReplacer(`"`, "%22", "\r", "%0D", "\n", "%0A")
	return r.Replace(s)
}

// jsonBody is a JSON object of the fields in their order. Values are strings, except
// those numeric[i] marks (ids that are decimal integers), written as JSON numbers.
func jsonBody(fields []Field, numeric []bool) []byte {
	b := make([]byte, 0, 64)
	b = append(b, '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, f.Name)
		b = append(b, ':')
		if numeric[i] {
			b = append(b, f.Value...)
		} else {
			b = appendJSONString(b, f.Value)
		}
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string: '"', '\\' and control characters escaped,
// invalid UTF-8 replaced by U+FFFD, U+2028/U+2029 escaped (as encoding/json does), and
// everything else (ñ, emoji, '<', '&') written as is.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
