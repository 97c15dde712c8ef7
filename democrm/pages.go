package democrm

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
)

// pageData feeds the CRM page shown to a pop.
type pageData struct {
	Headline string
	Record   Record
	Prefix   string
}

// The CRM page: what an embedded pop's iframe (or a new tab) shows. No frame-blocking
// headers are sent so that the agent page may embed it.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo CRM: {{.Headline}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1rem;color:#1d2733;background:#f7f9fb}
h1{font-size:1.4rem;margin:0 0 .3rem}
p.meta{color:#5b6b7b;margin:0 0 1rem;font-size:.85rem}
table{border-collapse:collapse;background:#fff;min-width:20rem}
td,th{border:1px solid #d5dde5;padding:.3rem .6rem;text-align:left;font-size:.9rem}
th{background:#eef2f6}
</style></head>
<body>
<h1 id="headline">CRM: {{.Headline}}</h1>
<p class="meta">Demo CRM received {{.Record.Method}} {{.Record.Path}} at {{.Record.At.Format "15:04:05.000"}} (request #{{.Record.Seq}}{{if .Record.Duplicate}}, duplicate{{end}}).
<a href="{{.Prefix}}/log" target="_blank">All requests</a></p>
<table id="fields"><tr><th>field</th><th>value</th></tr>
{{range .Record.Fields}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>
{{else}}<tr><td colspan="2">(no fields)</td></tr>
{{end}}</table>
</body></html>
`))

type logData struct {
	Stats   Stats
	Records []Record // newest first
	Prefix  string
}

var logTemplate = template.Must(template.New("log").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo CRM: received requests</title>
<meta http-equiv="refresh" content="2">
<style>
body{font-family:system-ui,sans-serif;margin:1rem;color:#1d2733}
table{border-collapse:collapse;width:100%}
td,th{border:1px solid #d5dde5;padding:.25rem .5rem;text-align:left;font-size:.85rem;vertical-align:top}
th{background:#eef2f6}
tr.fail td{background:#fdecea}
tr.dup td{background:#fff6d6}
code{white-space:pre-wrap;word-break:break-all}
</style></head>
<body>
<h1>Demo CRM: received requests</h1>
<p id="stats">{{.Stats.Requests}} requests, {{.Stats.Accepted}} accepted, {{.Stats.Failed}} failed,
{{.Stats.DuplicateDeliveries}} duplicate deliveries. Newest first; refreshes every 2 s.
<a href="{{.Prefix}}/log.json">JSON</a></p>
<table id="log">
<tr><th>#</th><th>received</th><th>phase</th><th>request</th><th>status</th><th>idempotency key</th><th>content type</th><th>fields</th></tr>
{{range .Records}}<tr class="{{if not .Accepted}}fail{{else if .Duplicate}}dup{{end}}">
<td>{{.Seq}}</td><td>{{.At.Format "15:04:05.000"}}</td><td>{{.Phase}}</td>
<td><code>{{.Method}} {{.URL}}</code></td>
<td>{{.Status}}{{if .Delay}} after {{.Delay}}{{end}}</td>
<td>{{if .IdempotencyKey}}<code>{{.IdempotencyKey}}</code> (attempt {{.Attempt}}{{if .Duplicate}}, duplicate{{end}}){{end}}</td>
<td>{{.ContentType}}</td>
<td>{{range .Fields}}<code>{{.Name}}={{.Value}}</code><br>{{end}}{{if .DecodeError}}<em>{{.DecodeError}}</em>{{end}}</td>
</tr>
{{else}}<tr><td colspan="8">Nothing received yet.</td></tr>
{{end}}</table>
</body></html>
`))

func (r *Receiver) newestFirst() []Record {
	recs := r.Records()
	slices.Reverse(recs)
	return recs
}

func (r *Receiver) serveLogHTML(w http.ResponseWriter) {
	var buf bytes.Buffer
	if err := logTemplate.Execute(&buf, logData{Stats: r.Stats(), Records: r.newestFirst(), Prefix: r.prefix}); err != nil {
		http.Error(w, "democrm: rendering the log: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

func (r *Receiver) serveLogJSON(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	recs := r.newestFirst()
	if recs == nil {
		recs = []Record{}
	}
	_ = json.NewEncoder(w).Encode(struct {
		Stats   Stats    `json:"stats"`
		Records []Record `json:"records"`
	}{r.Stats(), recs})
}
