package democrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
)

func start(t *testing.T, opts Options) (*Receiver, *httptest.Server) {
	t.Helper()
	r := New(opts)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func newReq(t *testing.T, method, url, contentType string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// renderFor renders a real CRM request for a site of the given method/format pointing at
// the receiver, with a value that needs escaping everywhere.
func renderFor(t *testing.T, base string, method catalog.Method, format catalog.Format) crmnotify.Request {
	t.Helper()
	db := &catalog.ContactDatabase{ID: 5, Columns: []string{"telefono", "nombre"}}
	camp := &catalog.Campaign{ID: 11, Name: "Ventas", Type: catalog.TypePreview, Interaction: catalog.InteractionSite,
		Site:            &catalog.Site{ID: 1, Name: "demo", URL: base + "/crm/contact/{1}", Trigger: catalog.TriggerServer, Method: method, Format: format},
		ContactDatabase: db,
		Params: []catalog.Param{
			{Family: catalog.FamilyCall, Source: "id_contacto", Name: "{1}"},
			{Family: catalog.FamilyContact, Source: "nombre", Name: "nombre"},
			{Family: catalog.FamilyCampaign, Source: "id", Name: "idCamp"},
			{Family: catalog.FamilyDialplan, Source: "Omlcrmorigen", Name: "origen"},
		}}
	req, err := crmnotify.Render(crmnotify.Input{
		Campaign: camp,
		Contact:  &catalog.Contact{ID: 321, DatabaseID: 5, Fields: map[string]string{"nombre": "Juan <b>&</b> Pérez"}},
		Call:     crmnotify.CallData{CallID: "1559667982.424", ContactID: "321", Dialplan: map[string]string{"OMLCRMORIGEN": "web ñ & más=1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestReceivesEveryFormatInOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method catalog.Method
		format catalog.Format
	}{
		{"get", catalog.MethodGET, 0},
		{"form", catalog.MethodPOST, catalog.FormatForm},
		{"multipart", catalog.MethodPOST, catalog.FormatMultipart},
		{"json", catalog.MethodPOST, catalog.FormatJSON},
		{"text", catalog.MethodPOST, catalog.FormatText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, srv := start(t, Options{})
			cr := renderFor(t, srv.URL, tc.method, tc.format)
			req := newReq(t, cr.Method, cr.URL, cr.ContentType, cr.Body)
			req.Header.Set("Idempotency-Key", "k1")
			code, page := do(t, req)
			if code != 200 {
				t.Fatalf("status %d: %s", code, page)
			}
			recs := r.Records()
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			rec := recs[0]
			if rec.Path != "/crm/contact/321" || rec.Method != cr.Method || rec.IdempotencyKey != "k1" || rec.DecodeError != "" {
				t.Errorf("record = %+v", rec)
			}
			got := rec.Fields()
			if len(got) != len(cr.Fields) {
				t.Fatalf("fields = %v, want %v", got, cr.Fields)
			}
			for i, f := range cr.Fields {
				if got[i].Name != f.Name || got[i].Value != f.Value {
					t.Errorf("field %d = %v, want %v", i, got[i], f)
				}
			}
			// The CRM page shows the contact, escaped.
			if !strings.Contains(page, "CRM: contact Juan &lt;b&gt;&amp;&lt;/b&gt; Pérez") || strings.Contains(page, "<b>&</b>") {
				t.Errorf("page does not show the escaped contact name:\n%s", page)
			}
		})
	}
}

func TestLogPagesEscapeAndList(t *testing.T) {
	_, srv := start(t, Options{})
	do(t, newReq(t, "GET", srv.URL+"/crm/x?nombre=%3Cscript%3Ealert(1)%3C%2Fscript%3E&call_id=42", "", nil))
	do(t, newReq(t, "POST", srv.URL+"/crm/y", "application/json", []byte(`{"b":1,"a":"two","c":{"d":true}}`)))

	code, html := do(t, newReq(t, "GET", srv.URL+"/crm/log", "", nil))
	if code != 200 || strings.Contains(html, "<script>alert(1)") || !strings.Contains(html, "&lt;script&gt;alert(1)") {
		t.Errorf("log page not escaped (%d):\n%s", code, html)
	}
	if !strings.Contains(html, `http-equiv="refresh"`) || !strings.Contains(html, "2 requests") {
		t.Errorf("log page lacks refresh or stats:\n%s", html)
	}

	code, body := do(t, newReq(t, "GET", srv.URL+"/crm/log.json", "", nil))
	var out struct {
		Stats   Stats
		Records []Record
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || code != 200 {
		t.Fatalf("log.json %d: %v\n%s", code, err, body)
	}
	if out.Stats.Requests != 2 || len(out.Records) != 2 || out.Records[0].Seq != 2 {
		t.Fatalf("log.json = %+v", out)
	}
	want := []Field{{"b", "1"}, {"a", "two"}, {"c", `{"d":true}`}}
	for i, f := range want {
		if out.Records[0].Form[i] != f {
			t.Errorf("JSON field %d = %v, want %v (order kept, non-strings as JSON)", i, out.Records[0].Form[i], f)
		}
	}
}

func TestIdempotencyKeysCountDuplicates(t *testing.T) {
	r, srv := start(t, Options{})
	send := func(key string) int {
		req := newReq(t, "POST", srv.URL+"/crm/d", "application/x-www-form-urlencoded", []byte("a=1"))
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("Accept", "application/json")
		code, _ := do(t, req)
		return code
	}
	send("k1")
	send("k2")
	send("k1")
	if s := r.Stats(); s.DuplicateDeliveries != 1 || s.Accepted != 3 || s.Keys != 2 {
		t.Errorf("stats = %+v, want 1 duplicate, 3 accepted, 2 keys", s)
	}
	if k := r.Key("k1"); k.Attempts != 2 || k.Accepted != 2 {
		t.Errorf("k1 = %+v", k)
	}
	recs := r.Records()
	if recs[2].Attempt != 2 || !recs[2].Duplicate || recs[0].Duplicate {
		t.Errorf("records = %+v", recs)
	}
}

func TestFaultInjection(t *testing.T) {
	r, srv := start(t, Options{})
	send := func(key, query string) int {
		req := newReq(t, "GET", srv.URL+"/crm/f"+query, "", nil)
		req.Header.Set("Idempotency-Key", key)
		code, _ := do(t, req)
		return code
	}

	// A CRM that recovers while the sender retries.
	r.SetFault(Fault{FailAttempts: 2})
	var codes []int
	for i := 0; i < 3; i++ {
		codes = append(codes, send("retry", ""))
	}
	if codes[0] != 503 || codes[1] != 503 || codes[2] != 200 {
		t.Errorf("codes = %v, want 503 503 200", codes)
	}
	if k := r.Key("retry"); k.Attempts != 3 || k.Accepted != 1 {
		t.Errorf("retry key = %+v", k)
	}

	// An outage, overridden per request.
	r.SetFault(Fault{Status: 500})
	if c := send("o", ""); c != 500 {
		t.Errorf("outage: %d, want 500", c)
	}
	if c := send("o", "?democrm_status=200"); c != 200 {
		t.Errorf("per-request success during an outage: %d", c)
	}
	r.SetFault(Fault{})
	if c := send("p", "?democrm_status=429"); c != 429 {
		t.Errorf("per-request failure: %d, want 429", c)
	}
	if s := r.Stats(); s.Failed != 4 || s.Accepted != 2 || s.DuplicateDeliveries != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestDelayedRequestAbandonedBySender(t *testing.T) {
	received := make(chan Record, 1)
	r, srv := start(t, Options{OnReceive: func(rec Record) { received <- rec }})
	waiting := make(chan struct{})
	r.beforeDelay = func() { close(waiting) }
	ctx, cancel := context.WithCancel(context.Background())
	req := newReq(t, "GET", srv.URL+"/crm/slow", "", nil).WithContext(ctx)
	req.Header.Set("X-Democrm-Delay", "1m")
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-waiting // the handler has the request and is delaying its answer
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client err = %v, want canceled", err)
	}
	rec := <-received
	if rec.Status != 499 || rec.Delay != time.Minute {
		t.Errorf("record = %+v, want status 499 with the 1m delay", rec)
	}
}

func TestBoundedMemory(t *testing.T) {
	r, srv := start(t, Options{Capacity: 3, MaxKeys: 2, MaxBody: 16})
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		req := newReq(t, "GET", srv.URL+"/crm/b?i="+string(rune('0'+i)), "", nil)
		req.Header.Set("Idempotency-Key", k)
		do(t, req)
	}
	recs := r.Records()
	if len(recs) != 3 || recs[0].Seq != 3 || recs[2].Seq != 5 {
		t.Errorf("records = %v, want seq 3..5", recs)
	}
	if s := r.Stats(); s.Keys != 2 || s.Requests != 5 {
		t.Errorf("stats = %+v, want 2 keys kept of 5 requests", s)
	}
	if k := r.Key("a"); k.Attempts != 0 {
		t.Errorf("evicted key still counted: %+v", k)
	}
	code, _ := do(t, newReq(t, "POST", srv.URL+"/crm/big", "text/plain", bytes.Repeat([]byte("x"), 17)))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", code)
	}
	r.Reset()
	if len(r.Records()) != 0 || r.Stats().Requests != 0 {
		t.Error("Reset kept something")
	}
}

func TestHeadersKeptWithCredentialsMasked(t *testing.T) {
	r, srv := start(t, Options{})
	req := newReq(t, "GET", srv.URL+"/crm/h", "", nil)
	req.Header.Set("Authorization", "Bearer s3cr3t-token")
	req.Header.Set("X-Omlcrm-Signature", "t=1,v1=abc")
	do(t, req)
	h := r.Records()[0].Header
	if h.Get("Authorization") != "Bearer [12 bytes]" || h.Get("X-Omlcrm-Signature") != "t=1,v1=abc" {
		t.Errorf("headers = %v", h)
	}
}

func TestRouting(t *testing.T) {
	r, srv := start(t, Options{Prefix: "crm/"})
	if code, _ := do(t, newReq(t, "GET", srv.URL+"/other", "", nil)); code != 404 {
		t.Errorf("outside the prefix: %d, want 404", code)
	}
	if code, _ := do(t, newReq(t, "PUT", srv.URL+"/crm/x", "", nil)); code != 405 {
		t.Errorf("PUT: %d, want 405", code)
	}
	if code, _ := do(t, newReq(t, "GET", srv.URL+"/crm", "", nil)); code != 200 {
		t.Errorf("the prefix itself: %d, want 200", code)
	}
	if n := len(r.Records()); n != 1 {
		t.Errorf("%d records, want only the accepted GET", n)
	}
}

func TestHeadline(t *testing.T) {
	for want, fields := range map[string][]Field{
		"contact Juan": {{"idClient", "1"}, {"Nombre", "Juan"}},
		"contact #321": {{"idClient", "321"}},
		"call 1.2":     {{"call_id", "1.2"}},
		"request #7":   {{"x", "y"}},
	} {
		if got := headline(Record{Seq: 7, Path: "/crm/x", Query: fields}); got != want {
			t.Errorf("headline(%v) = %q, want %q", fields, got, want)
		}
	}
	if got := headline(Record{Path: "/crm/contacts/321%20A/campaign/11"}); got != "contact #321 A" {
		t.Errorf("clean URL headline = %q", got)
	}
}
