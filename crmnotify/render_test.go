package crmnotify

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// docsInput is the OMniLeads documentation's example: preview campaign 11, contact
// 321321321, agent 2, recording prev-115-20190604-2-4149014-1559667982.424.wav.
func docsInput(siteURL string, params ...catalog.Param) Input {
	return Input{
		Campaign: &catalog.Campaign{
			ID: 11, Name: "Ventas", Type: catalog.TypePreview, Interaction: catalog.InteractionSite, State: catalog.StateActive,
			Site: &catalog.Site{ID: 1, Name: "my_crm", URL: siteURL, Trigger: catalog.TriggerAutomatic,
				Method: catalog.MethodGET, Target: catalog.TargetEmbedded},
			Params:          params,
			ContactDatabase: &catalog.ContactDatabase{ID: 5, Name: "clientes", Columns: []string{"telefono", "nombre", "lang"}},
		},
		Contact: &catalog.Contact{ID: 321321321, DatabaseID: 5, Phone: "4149014",
			Fields: map[string]string{"telefono": "4149014", "nombre": "Juan", "lang": "es"}},
		Agent: &catalog.Agent{ID: 2, UserID: 7, Username: "agent2", Name: "Ana Pérez", SIPExtension: "1002"},
		Call: CallData{CallID: "1559667982.424", AgentID: 2, Phone: "4149014", ContactID: "321321321",
			RecFilename: "prev-115-20190604-2-4149014-1559667982.424.wav",
			At:          time.Date(2019, 6, 4, 17, 6, 22, 0, time.UTC)},
	}
}

func TestRenderDocumentationExamples(t *testing.T) {
	tests := []struct {
		name string
		url  string
		p    []catalog.Param
		want string
	}{
		{"example 1: query string", "https://my_crm.domain.com", []catalog.Param{
			{Family: catalog.FamilyCall, Source: "id_contacto", Name: "idClient"},
			{Family: catalog.FamilyCampaign, Source: "id", Name: "idCamp"},
			{Family: catalog.FamilyFixed, Source: "es", Name: "lang"},
			{Family: catalog.FamilyCall, Source: "rec_filename", Name: "recordingFile"},
		}, "https://my_crm.domain.com?idClient=321321321&idCamp=11&lang=es&recordingFile=prev-115-20190604-2-4149014-1559667982.424.wav"},
		{"example 2: clean URL", "https://my_crm.domain.com/{1}/{2}/{3}/{4}", []catalog.Param{
			{Family: catalog.FamilyCall, Source: "id_contacto", Name: "{1}"},
			{Family: catalog.FamilyCampaign, Source: "id", Name: "{2}"},
			{Family: catalog.FamilyFixed, Source: "es", Name: "{3}"},
			{Family: catalog.FamilyCall, Source: "rec_filename", Name: "{4}"},
		}, "https://my_crm.domain.com/321321321/11/es/prev-115-20190604-2-4149014-1559667982.424.wav"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Render(docsInput(tt.url, tt.p...))
			if err != nil {
				t.Fatal(err)
			}
			if req.URL != tt.want {
				t.Errorf("URL\n got %s\nwant %s", req.URL, tt.want)
			}
			if req.Method != "GET" || req.Body != nil || req.ContentType != "" {
				t.Errorf("GET request has method %q, body %q, content type %q", req.Method, req.Body, req.ContentType)
			}
		})
	}
}

// TestRenderFamilies renders one parameter of every family and source through GET.
func TestRenderFamilies(t *testing.T) {
	full := docsInput("https://crm.example.com/p")
	full.Campaign.Type = catalog.TypeInbound
	full.Call.CallWaitDuration = "12"
	full.Call.Dialplan = map[string]string{"OMLCRMTICKET": "T-123", "OmlcrmOrigen": "web ñ & más"}

	noContact := docsInput("https://crm.example.com/p")
	noContact.Contact = nil
	noContact.Agent = nil
	noContact.Call = CallData{AgentID: 9, ContactID: "-1"}

	tests := []struct {
		in     Input
		family catalog.Family
		source string
		want   string
	}{
		{full, catalog.FamilyCampaign, "id", "11"},
		{full, catalog.FamilyCampaign, "nombre", "Ventas"},
		{full, catalog.FamilyCampaign, "tipo", "Entrante"},
		{full, catalog.FamilyContact, "nombre", "Juan"},
		{full, catalog.FamilyContact, "telefono", "4149014"},
		{full, catalog.FamilyCall, "call_id", "1559667982.424"},
		{full, catalog.FamilyCall, "agent_id", "2"},
		{full, catalog.FamilyCall, "agent_username", "agent2"},
		{full, catalog.FamilyCall, "agent_name", "Ana Pérez"},
		{full, catalog.FamilyCall, "telefono", "4149014"},
		{full, catalog.FamilyCall, "id_contacto", "321321321"},
		{full, catalog.FamilyCall, "rec_filename", "prev-115-20190604-2-4149014-1559667982.424.wav"},
		{full, catalog.FamilyCall, "call_wait_duration", "12"},
		{full, catalog.FamilyCall, "datetime", "2019-06-04 17:06:22"},
		{full, catalog.FamilyFixed, "es", "es"},
		{full, catalog.FamilyFixed, "", ""},
		{full, catalog.FamilyDialplan, "Omlcrmticket", "T-123"},
		{full, catalog.FamilyDialplan, "OMLCRMORIGEN", "web ñ & más"},
		{full, catalog.FamilyDialplan, "Omlcrmabsent", ""},
		{full, catalog.FamilyDisposition, "name", ""},
		// No contact identified, agent unknown to the catalog: empty, or the call's own data.
		{noContact, catalog.FamilyContact, "nombre", ""},
		{noContact, catalog.FamilyCall, "agent_id", "9"},
		{noContact, catalog.FamilyCall, "agent_username", ""},
		{noContact, catalog.FamilyCall, "agent_name", ""},
		{noContact, catalog.FamilyCall, "id_contacto", "-1"},
		{noContact, catalog.FamilyCall, "datetime", ""},
		{noContact, catalog.FamilyDialplan, "Omlcrmticket", ""},
	}
	for _, tt := range tests {
		t.Run(tt.family.String()+"/"+tt.source, func(t *testing.T) {
			in := tt.in
			c := *in.Campaign
			c.Params = []catalog.Param{{Family: tt.family, Source: tt.source, Name: "v"}}
			in.Campaign = &c
			req, err := Render(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(req.Fields) != 1 || req.Fields[0] != (Field{"v", tt.want}) {
				t.Fatalf("fields = %q, want v=%q", req.Fields, tt.want)
			}
			want := "https://crm.example.com/p?v=" + url.QueryEscape(tt.want)
			if req.URL != want {
				t.Errorf("URL = %s, want %s", req.URL, want)
			}
		})
	}
}

func TestRenderDatetimeIsUTC(t *testing.T) {
	in := docsInput("https://crm.example.com/", catalog.Param{Family: catalog.FamilyCall, Source: "datetime", Name: "t"})
	in.Call.At = time.Date(2019, 6, 4, 14, 6, 22, 0, time.FixedZone("ART", -3*3600))
	req, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Fields[0].Value; got != "2019-06-04 17:06:22" {
		t.Errorf("datetime = %q, want the UTC time 2019-06-04 17:06:22", got)
	}
}

func TestRenderDialplanCaseVariantsAreDeterministic(t *testing.T) {
	in := docsInput("https://crm.example.com/", catalog.Param{Family: catalog.FamilyDialplan, Source: "Omlcrmticket", Name: "t"})
	in.Call.Dialplan = map[string]string{"OMLCRMTICKET": "upper", "omlcrmticket": "lower", "OmlcrmTicket": "mixed"}
	for i := 0; i < 20; i++ {
		req, err := Render(in)
		if err != nil {
			t.Fatal(err)
		}
		// No exact match: the lexically smallest key ("OMLCRMTICKET") wins, every time.
		if got := req.Fields[0].Value; got != "upper" {
			t.Fatalf("run %d: value %q, want %q", i, got, "upper")
		}
	}
	in.Call.Dialplan["Omlcrmticket"] = "exact"
	req, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Fields[0].Value; got != "exact" {
		t.Errorf("exact key not preferred: got %q", got)
	}
}

// nasty are the values every encoding must carry intact.
var nasty = []Field{
	{"slash", "a/b"},
	{"query", "a?b"},
	{"hash", "a#b"},
	{"amp", "a&b"},
	{"eq", "a=b"},
	{"plus", "a+b"},
	{"pct", "100%25"},
	{"dots", ".."},
	{"space", "Juan Pérez"},
	{"utf8", "ñandú 😀"},
	{"empty", ""},
	{"quote", `say "hi" \o/`},
	{"ctl", "line1\nline2\ttab"},
	{"nombre compuesto", "x"},
}

func nastyInput(method catalog.Method, format catalog.Format) Input {
	in := docsInput("https://crm.example.com/api/calls?src=oml")
	in.Campaign.Site.Method = method
	in.Campaign.Site.Format = format
	in.Campaign.Site.Trigger = catalog.TriggerServer
	in.Campaign.Site.Target = catalog.TargetNone
	in.Campaign.Params = nil
	for _, f := range nasty {
		in.Campaign.Params = append(in.Campaign.Params, catalog.Param{Family: catalog.FamilyFixed, Source: f.Value, Name: f.Name})
	}
	return in
}

func TestRenderMethodsAndFormats(t *testing.T) {
	wantForm := "slash=a%2Fb&query=a%3Fb&hash=a%23b&amp=a%26b&eq=a%3Db&plus=a%2Bb&pct=100%2525&dots=..&space=Juan+P%C3%A9rez" +
		"&utf8=%C3%B1and%C3%BA+%F0%9F%98%80&empty=&quote=say+%22hi%22+%5Co%2F&ctl=line1%0Aline2%09tab&nombre+compuesto=x"

	t.Run("GET appends to the existing query", func(t *testing.T) {
		req, err := Render(nastyInput(catalog.MethodGET, 0))
		if err != nil {
			t.Fatal(err)
		}
		if want := "https://crm.example.com/api/calls?src=oml&" + wantForm; req.URL != want {
			t.Fatalf("URL\n got %s\nwant %s", req.URL, want)
		}
		u, err := url.Parse(req.URL)
		if err != nil {
			t.Fatal(err)
		}
		assertValues(t, u.Query(), append([]Field{{"src", "oml"}}, nasty...))
		if !reflect.DeepEqual(req.Fields, nasty) {
			t.Errorf("fields = %q", req.Fields)
		}
	})

	t.Run("POST form", func(t *testing.T) {
		req := mustRender(t, nastyInput(catalog.MethodPOST, catalog.FormatForm))
		assertPOST(t, req, "application/x-www-form-urlencoded")
		if string(req.Body) != wantForm {
			t.Fatalf("body\n got %s\nwant %s", req.Body, wantForm)
		}
		vals, err := url.ParseQuery(string(req.Body))
		if err != nil {
			t.Fatal(err)
		}
		assertValues(t, vals, nasty)
	})

	t.Run("POST text/plain", func(t *testing.T) {
		req := mustRender(t, nastyInput(catalog.MethodPOST, catalog.FormatText))
		assertPOST(t, req, "text/plain; charset=utf-8")
		var want strings.Builder
		for _, f := range nasty {
			// The one line break among the nasty values ("line1\nline2") becomes a space.
			want.WriteString(f.Name + "=" + strings.ReplaceAll(f.Value, "\n", " ") + "\r\n")
		}
		if string(req.Body) != want.String() {
			t.Fatalf("body\n got %q\nwant %q", req.Body, want.String())
		}
	})

	t.Run("POST JSON", func(t *testing.T) {
		req := mustRender(t, nastyInput(catalog.MethodPOST, catalog.FormatJSON))
		assertPOST(t, req, "application/json")
		var got map[string]string
		if err := json.Unmarshal(req.Body, &got); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, req.Body)
		}
		if len(got) != len(nasty) {
			t.Errorf("decoded %d keys, want %d", len(got), len(nasty))
		}
		for _, f := range nasty {
			if got[f.Name] != f.Value {
				t.Errorf("%s = %q, want %q", f.Name, got[f.Name], f.Value)
			}
		}
		// Field order is kept in the text.
		wantStart := `{"slash":"a/b","query":"a?b","hash":"a#b","amp":"a&b","eq":"a=b","plus":"a+b","pct":"100%25","dots":"..",` +
			`"space":"Juan Pérez","utf8":"ñandú 😀","empty":"","quote":"say \"hi\" \\o/","ctl":"line1\nline2\ttab","nombre compuesto":"x"}`
		if string(req.Body) != wantStart {
			t.Errorf("body\n got %s\nwant %s", req.Body, wantStart)
		}
	})

	t.Run("POST multipart", func(t *testing.T) {
		req := mustRender(t, nastyInput(catalog.MethodPOST, catalog.FormatMultipart))
		mt, params, err := mime.ParseMediaType(req.ContentType)
		if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
			t.Fatalf("content type %q: %v", req.ContentType, err)
		}
		if req.URL != "https://crm.example.com/api/calls?src=oml" {
			t.Errorf("URL = %s", req.URL)
		}
		r := multipart.NewReader(bytes.NewReader(req.Body), params["boundary"])
		var got []Field
		for {
			part, err := r.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if part.FileName() != "" {
				t.Errorf("part %q is a file part (filename %q); want plain form fields", part.FormName(), part.FileName())
			}
			v, err := io.ReadAll(part)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, Field{part.FormName(), string(v)})
		}
		if !reflect.DeepEqual(got, nasty) {
			t.Errorf("parts\n got %q\nwant %q", got, nasty)
		}
	})
}

// TestRenderJSONStrings: OMniLeads sends every JSON value as a string, the ids
// included; a CRM written for OMniLeads expects "7", not 7.
func TestRenderJSONStrings(t *testing.T) {
	in := docsInput("https://crm.example.com/hook",
		catalog.Param{Family: catalog.FamilyCampaign, Source: "id", Name: "campaignId"},
		catalog.Param{Family: catalog.FamilyCall, Source: "agent_id", Name: "agentId"},
		catalog.Param{Family: catalog.FamilyCall, Source: "id_contacto", Name: "contactId"},
	)
	in.Campaign.Site.Method, in.Campaign.Site.Format = catalog.MethodPOST, catalog.FormatJSON
	in.Call.ContactID = "321321321"
	want := `{"campaignId":"11","agentId":"2","contactId":"321321321"}`
	if got := string(mustRender(t, in).Body); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

// TestRenderJSONNumbers: a site that opts in (JSONIDsAsNumbers) gets the ids as numbers.
func TestRenderJSONNumbers(t *testing.T) {
	in := docsInput("https://crm.example.com/hook",
		catalog.Param{Family: catalog.FamilyCampaign, Source: "id", Name: "campaign"},
		catalog.Param{Family: catalog.FamilyCall, Source: "agent_id", Name: "agent"},
		catalog.Param{Family: catalog.FamilyCall, Source: "id_contacto", Name: "contact"},
		catalog.Param{Family: catalog.FamilyCall, Source: "telefono", Name: "phone"},
		catalog.Param{Family: catalog.FamilyFixed, Source: "42", Name: "fixed"},
		catalog.Param{Family: catalog.FamilyCall, Source: "call_wait_duration", Name: "wait"},
	)
	in.Campaign.Site.Method, in.Campaign.Site.Format = catalog.MethodPOST, catalog.FormatJSON
	in.Campaign.Site.JSONIDsAsNumbers = true
	in.Call.CallWaitDuration = "7"
	tests := []struct {
		contactID string
		want      string
	}{
		{"321321321", `{"campaign":11,"agent":2,"contact":321321321,"phone":"4149014","fixed":"42","wait":"7"}`},
		{"-1", `{"campaign":11,"agent":2,"contact":-1,"phone":"4149014","fixed":"42","wait":"7"}`},
		// Not canonical integers: kept as the exact text, a string.
		{"007", `{"campaign":11,"agent":2,"contact":"007","phone":"4149014","fixed":"42","wait":"7"}`},
		{"", `{"campaign":11,"agent":2,"contact":"","phone":"4149014","fixed":"42","wait":"7"}`},
		{"abc", `{"campaign":11,"agent":2,"contact":"abc","phone":"4149014","fixed":"42","wait":"7"}`},
	}
	for _, tt := range tests {
		in.Call.ContactID = tt.contactID
		req := mustRender(t, in)
		if string(req.Body) != tt.want {
			t.Errorf("contact %q:\n got %s\nwant %s", tt.contactID, req.Body, tt.want)
		}
		if !json.Valid(req.Body) {
			t.Errorf("contact %q: invalid JSON %s", tt.contactID, req.Body)
		}
	}
	// Agent unknown everywhere: agent_id is an empty string, not a bogus 0.
	in.Agent, in.Call.AgentID, in.Call.ContactID = nil, 0, "5"
	if got := string(mustRender(t, in).Body); !strings.Contains(got, `"agent":""`) {
		t.Errorf("unknown agent rendered %s", got)
	}
}

func TestRenderJSONEscaping(t *testing.T) {
	// Control characters, invalid UTF-8 and line separators still give valid JSON that
	// decodes to the value (invalid bytes as U+FFFD, as encoding/json does).
	values := []string{"\x00\x01\x1f\x7f", "a\xffb", "\u2028\u2029", "<script>&", `\"`}
	for _, v := range values {
		in := docsInput("https://crm.example.com/", catalog.Param{Family: catalog.FamilyFixed, Source: v, Name: v})
		in.Campaign.Site.Method, in.Campaign.Site.Format = catalog.MethodPOST, catalog.FormatJSON
		req := mustRender(t, in)
		var got map[string]string
		if err := json.Unmarshal(req.Body, &got); err != nil {
			t.Fatalf("%q: %v: %s", v, err, req.Body)
		}
		want, _ := json.Marshal(map[string]string{v: v})
		var wantMap map[string]string
		_ = json.Unmarshal(want, &wantMap)
		if !reflect.DeepEqual(got, wantMap) {
			t.Errorf("%q decoded to %q, want %q", v, got, wantMap)
		}
	}
}

func TestRenderMultipartIsDeterministicAndContentBound(t *testing.T) {
	in := nastyInput(catalog.MethodPOST, catalog.FormatMultipart)
	a, b := mustRender(t, in), mustRender(t, in)
	if !bytes.Equal(a.Body, b.Body) || a.ContentType != b.ContentType {
		t.Fatal("two renders of the same input differ")
	}
	in.Campaign.Params[0].Source = "changed"
	c := mustRender(t, in)
	if c.ContentType == a.ContentType {
		t.Error("the boundary does not depend on the content")
	}
	// A name with a quote and a line break cannot break the part header.
	in = docsInput("https://crm.example.com/", catalog.Param{Family: catalog.FamilyFixed, Source: "v", Name: "a\"b\r\nX-Evil: 1"})
	in.Campaign.Site.Method, in.Campaign.Site.Format = catalog.MethodPOST, catalog.FormatMultipart
	req := mustRender(t, in)
	_, params, _ := mime.ParseMediaType(req.ContentType)
	part, err := multipart.NewReader(bytes.NewReader(req.Body), params["boundary"]).NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if part.Header.Get("X-Evil") != "" || part.FormName() != "a%22b%0D%0AX-Evil: 1" {
		t.Errorf("name escaped to %q, headers %v", part.FormName(), part.Header)
	}
}

func TestRenderNoFields(t *testing.T) {
	for _, u := range []string{"https://crm.example.com", "https://crm.example.com/a?x=1", "https://crm.example.com/{1}"} {
		in := docsInput(u, catalog.Param{Family: catalog.FamilyFixed, Source: "v", Name: "{1}"})
		req := mustRender(t, in)
		want := strings.Replace(u, "{1}", "v", 1)
		if req.URL != want || len(req.Fields) != 0 {
			t.Errorf("%s: URL %s (want %s), fields %q", u, req.URL, want, req.Fields)
		}
	}
	in := docsInput("https://crm.example.com/x")
	in.Campaign.Site.Method, in.Campaign.Site.Format = catalog.MethodPOST, catalog.FormatJSON
	if got := string(mustRender(t, in).Body); got != "{}" {
		t.Errorf("empty JSON body = %q", got)
	}
}

func TestRenderQueryPlacement(t *testing.T) {
	p := catalog.Param{Family: catalog.FamilyFixed, Source: "1 2", Name: "a"}
	tests := []struct{ url, want string }{
		{"https://crm.example.com", "https://crm.example.com?a=1+2"},
		{"https://crm.example.com/", "https://crm.example.com/?a=1+2"},
		{"https://crm.example.com/x?", "https://crm.example.com/x?a=1+2"},
		{"https://crm.example.com/x?k=v", "https://crm.example.com/x?k=v&a=1+2"},
		{"https://crm.example.com/x?k=v&", "https://crm.example.com/x?k=v&a=1+2"},
		{"https://crm.example.com/x#/ficha", "https://crm.example.com/x?a=1+2#/ficha"},
		{"https://crm.example.com/x?k=v#top", "https://crm.example.com/x?k=v&a=1+2#top"},
		{"http://127.0.0.1:8080/crm", "http://127.0.0.1:8080/crm?a=1+2"},
	}
	for _, tt := range tests {
		if got := mustRender(t, docsInput(tt.url, p)).URL; got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.url, got, tt.want)
		}
	}
}

func TestRenderHolders(t *testing.T) {
	fixed := func(name, value string) catalog.Param {
		return catalog.Param{Family: catalog.FamilyFixed, Source: value, Name: name}
	}
	tests := []struct {
		url    string
		params []catalog.Param
		want   string
	}{
		{"https://crm.example.com/c/{1}/x", []catalog.Param{fixed("{1}", "a/b?c#d")}, "https://crm.example.com/c/a%2Fb%3Fc%23d/x"},
		{"https://crm.example.com/c/{1}/x", []catalog.Param{fixed("{1}", "..")}, "https://crm.example.com/c/%2E%2E/x"},
		{"https://crm.example.com/c/{1}/x", []catalog.Param{fixed("{1}", ".")}, "https://crm.example.com/c/%2E/x"},
		{"https://crm.example.com/c/{1}{2}/x", []catalog.Param{fixed("{1}", "."), fixed("{2}", ".")}, "https://crm.example.com/c/%2E%2E/x"},
		{"https://crm.example.com/c/v{1}/x", []catalog.Param{fixed("{1}", "..")}, "https://crm.example.com/c/v../x"},
		{"https://crm.example.com/c/{1}/x", []catalog.Param{fixed("{1}", "...")}, "https://crm.example.com/c/.../x"},
		{"https://crm.example.com/c/{1}", []catalog.Param{fixed("{1}", "a&b=c+d%e f")}, "https://crm.example.com/c/a&b=c+d%25e%20f"},
		{"https://crm.example.com/c/{1}", []catalog.Param{fixed("{1}", "ñ😀")}, "https://crm.example.com/c/%C3%B1%F0%9F%98%80"},
		{"https://crm.example.com/c/{1}/x", []catalog.Param{fixed("{1}", "")}, "https://crm.example.com/c//x"},
		{"https://crm.example.com/{idClient}/{lang_2}", []catalog.Param{fixed("{lang_2}", "es"), fixed("{idClient}", "7")}, "https://crm.example.com/7/es"},
		// The same placeholder twice is filled twice; the first parameter naming it wins.
		{"https://crm.example.com/{1}/{1}", []catalog.Param{fixed("{1}", "a"), fixed("{1}", "b")}, "https://crm.example.com/a/a"},
		// In the query: query-escaped, so a value cannot add a parameter.
		{"https://crm.example.com/f.php?id={1}&x=1", []catalog.Param{fixed("{1}", "1&admin=1 #")}, "https://crm.example.com/f.php?id=1%26admin%3D1+%23&x=1"},
		// In the fragment (single-page CRMs): path-escaped.
		{"https://crm.example.com/#/ficha/{1}", []catalog.Param{fixed("{1}", "a/../b")}, "https://crm.example.com/#/ficha/a%2F..%2Fb"},
		// Braces that are not placeholders stay as they are.
		{"https://crm.example.com/{a-b}/{}", nil, "https://crm.example.com/{a-b}/{}"},
		// Holders and query parameters together, POST or GET alike.
		{"https://crm.example.com/{1}", []catalog.Param{fixed("q", "x y"), fixed("{1}", "a b")}, "https://crm.example.com/a%20b?q=x+y"},
	}
	for _, tt := range tests {
		req, err := Render(docsInput(tt.url, tt.params...))
		if err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		if req.URL != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.url, req.URL, tt.want)
		}
		for _, f := range req.Fields {
			if strings.HasPrefix(f.Name, "{") {
				t.Errorf("%s: holder %q leaked into the fields", tt.url, f.Name)
			}
		}
	}
}

func TestRenderHoldersApplyToEveryTrigger(t *testing.T) {
	for _, trig := range []catalog.Trigger{catalog.TriggerAgent, catalog.TriggerAutomatic, catalog.TriggerServer} {
		in := docsInput("https://crm.example.com/{1}", catalog.Param{Family: catalog.FamilyCampaign, Source: "id", Name: "{1}"})
		in.Campaign.Site.Trigger = trig
		in.Campaign.Site.Method, in.Campaign.Site.Format = catalog.MethodPOST, catalog.FormatForm
		if got := mustRender(t, in).URL; got != "https://crm.example.com/11" {
			t.Errorf("trigger %s: URL %s", trig, got)
		}
	}
}

func TestRenderDuplicateNamesLastWinsAtFirstPosition(t *testing.T) {
	in := docsInput("https://crm.example.com/",
		catalog.Param{Family: catalog.FamilyFixed, Source: "1", Name: "a"},
		catalog.Param{Family: catalog.FamilyFixed, Source: "2", Name: "b"},
		catalog.Param{Family: catalog.FamilyCampaign, Source: "id", Name: "a"},
	)
	in.Campaign.Site.Method, in.Campaign.Site.Format = catalog.MethodPOST, catalog.FormatJSON
	in.Campaign.Site.JSONIDsAsNumbers = true // the last value's kind wins too
	if got := string(mustRender(t, in).Body); got != `{"a":11,"b":"2"}` {
		t.Errorf("body = %s", got)
	}
}

func TestRenderErrors(t *testing.T) {
	p := func(f catalog.Family, source, name string) catalog.Param {
		return catalog.Param{Family: f, Source: source, Name: name}
	}
	tests := []struct {
		name   string
		mutate func(in *Input)
		want   []string
	}{
		{"no campaign", func(in *Input) { in.Campaign = nil }, []string{"no campaign"}},
		{"no site", func(in *Input) { in.Campaign.Site = nil }, []string{"campaign 11 (Ventas)", "no external site"}},
		{"unknown campaign source", func(in *Input) { in.Campaign.Params = []catalog.Param{p(catalog.FamilyCampaign, "fecha", "f")} },
			[]string{"campaign 11 (Ventas)", `parameter "f"`, `"fecha"`, "id, nombre, tipo"}},
		{"unknown call source", func(in *Input) { in.Campaign.Params = []catalog.Param{p(catalog.FamilyCall, "uniqueid", "u")} },
			[]string{`parameter "u"`, `"uniqueid"`, "call_id, agent_id"}},
		{"unknown family", func(in *Input) { in.Campaign.Params = []catalog.Param{p(9, "x", "x")} },
			[]string{`parameter "x"`, "family 9"}},
		{"missing contact column", func(in *Input) { in.Campaign.Params = []catalog.Param{p(catalog.FamilyContact, "apellido", "ap")} },
			[]string{`parameter "ap"`, `no column "apellido"`, "telefono, nombre, lang"}},
		{"unfilled holder", func(in *Input) {
			in.Campaign.Site.URL = "https://crm.example.com/{1}/{3}"
			in.Campaign.Params = []catalog.Param{p(catalog.FamilyFixed, "a", "{1}")}
		},
			[]string{"site 1 (my_crm)", "{3}", "half-filled"}},
		{"holder in host", func(in *Input) {
			in.Campaign.Site.URL = "https://{1}.example.com/"
			in.Campaign.Params = []catalog.Param{p(catalog.FamilyFixed, "a", "{1}")}
		},
			[]string{"{1}", "scheme or host"}},
		{"no scheme", func(in *Input) { in.Campaign.Site.URL = "crm.example.com/x" }, []string{"no scheme"}},
		{"no host", func(in *Input) { in.Campaign.Site.URL = "https:///x" }, []string{"no host"}},
		{"bad host", func(in *Input) { in.Campaign.Site.URL = "https://crm example.com/x" }, []string{"invalid character"}},
		{"bad method", func(in *Input) { in.Campaign.Site.Method = 7 }, []string{"method(7)", "GET or POST"}},
		{"bad format", func(in *Input) { in.Campaign.Site.Method = catalog.MethodPOST; in.Campaign.Site.Format = 0 }, []string{"format(0)", "multipart, form, text or json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := docsInput("https://crm.example.com/x", p(catalog.FamilyFixed, "es", "lang"))
			tt.mutate(&in)
			_, err := Render(in)
			if err == nil {
				t.Fatal("Render succeeded")
			}
			if !errors.Is(err, ErrMisconfigured) {
				t.Errorf("%v does not wrap ErrMisconfigured", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRenderIsPure(t *testing.T) {
	for _, m := range []struct {
		method catalog.Method
		format catalog.Format
	}{{catalog.MethodGET, 0}, {catalog.MethodPOST, catalog.FormatMultipart}, {catalog.MethodPOST, catalog.FormatForm},
		{catalog.MethodPOST, catalog.FormatText}, {catalog.MethodPOST, catalog.FormatJSON}} {
		in := nastyInput(m.method, m.format)
		in.Call.Dialplan = map[string]string{"a": "1", "B": "2", "OMLCRMX": "3", "omlcrmx": "4"}
		in.Campaign.Params = append(in.Campaign.Params, catalog.Param{Family: catalog.FamilyDialplan, Source: "OmlcrmX", Name: "d"})
		first := mustRender(t, in)
		for i := 0; i < 10; i++ {
			if again := mustRender(t, in); !reflect.DeepEqual(first, again) {
				t.Fatalf("%s %s: render %d differs", m.method, m.format, i)
			}
		}
	}
}

func mustRender(t *testing.T, in Input) Request {
	t.Helper()
	req, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func assertPOST(t *testing.T, req Request, contentType string) {
	t.Helper()
	if req.Method != "POST" || req.ContentType != contentType {
		t.Errorf("method %q content type %q, want POST %q", req.Method, req.ContentType, contentType)
	}
	if req.URL != "https://crm.example.com/api/calls?src=oml" {
		t.Errorf("POST URL changed: %s", req.URL)
	}
	if !reflect.DeepEqual(req.Fields, nasty) {
		t.Errorf("fields = %q", req.Fields)
	}
}

func assertValues(t *testing.T, got url.Values, want []Field) {
	t.Helper()
	n := 0
	for _, vs := range got {
		n += len(vs)
	}
	if n != len(want) {
		t.Errorf("decoded %d values, want %d: %q", n, len(want), got)
	}
	for _, f := range want {
		if v := got.Get(f.Name); v != f.Value {
			t.Errorf("%s = %q, want %q", f.Name, v, f.Value)
		}
	}
}

// TestRenderTextCannotForgeLines: in the text format, no value (contact, dialplan or
// call data) and no name can add a "name=value" line: every line break becomes a space.
func TestRenderTextCannotForgeLines(t *testing.T) {
	breaks := []string{"\r\n", "\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\u0085", "\u2028", "\u2029"}
	for _, br := range breaks {
		in := docsInput("https://crm.example.com/text",
			catalog.Param{Family: catalog.FamilyDialplan, Source: "Omlcrmnota", Name: "dp"},
			catalog.Param{Family: catalog.FamilyCall, Source: "telefono", Name: "tel"},
			catalog.Param{Family: catalog.FamilyFixed, Source: "v", Name: "na" + br + "forged=1"},
		)
		in.Campaign.Site.Method, in.Campaign.Site.Format = catalog.MethodPOST, catalog.FormatText
		in.Call.Dialplan = map[string]string{"Omlcrmnota": "ok" + br + "forged=2" + br + br + "x"}
		in.Call.Phone = "41" + br + "forged3=3"
		body := string(mustRender(t, in).Body)
		want := "dp=ok forged=2  x\r\ntel=41 forged3=3\r\nna forged=1=v\r\n"
		if body != want {
			t.Errorf("break %q: body\n got %q\nwant %q", br, body, want)
		}
		lines := strings.FieldsFunc(body, func(r rune) bool {
			return r == '\r' || r == '\n' || r == '\v' || r == '\f' || r >= 0x1c && r <= 0x1e || r == 0x85 || r == 0x2028 || r == 0x2029
		})
		if len(lines) != 3 {
			t.Errorf("break %q: %d lines %q, want 3", br, len(lines), lines)
		}
	}
}

// TestRenderRefusesNonHTTPSite: a javascript: (or data:) site URL would run in the agent
// console's page when popped; Render refuses it whatever the trigger.
func TestRenderRefusesNonHTTPSite(t *testing.T) {
	for _, u := range []string{"javascript://crm/%0aalert(document.cookie)", "data://text/html,x", "JavaScript://x/y"} {
		in := docsInput(u, catalog.Param{Family: catalog.FamilyFixed, Source: "v", Name: "a"})
		_, err := Render(in)
		if !errors.Is(err, ErrMisconfigured) || !strings.Contains(err.Error(), "not http or https") {
			t.Errorf("%s: err = %v", u, err)
		}
	}
	in := docsInput("HTTPS://crm.example.com/x", catalog.Param{Family: catalog.FamilyFixed, Source: "v", Name: "a"})
	if _, err := Render(in); err != nil {
		t.Errorf("upper-case https refused: %v", err)
	}
}

// TestRenderMultipartValueCannotForgeAPart: a value carrying a boundary line and part
// headers (even the boundary of the same request without it) stays one value: the
// boundary is derived from the content that holds it.
func TestRenderMultipartValueCannotForgeAPart(t *testing.T) {
	in := docsInput("https://crm.example.com/",
		catalog.Param{Family: catalog.FamilyDialplan, Source: "Omlcrmnota", Name: "nota"},
		catalog.Param{Family: catalog.FamilyCall, Source: "telefono", Name: "tel"},
	)
	in.Campaign.Site.Method, in.Campaign.Site.Format = catalog.MethodPOST, catalog.FormatMultipart
	in.Call.Dialplan = map[string]string{"Omlcrmnota": "x"}
	_, params, _ := mime.ParseMediaType(mustRender(t, in).ContentType)
	forged := "x\r\n--" + params["boundary"] + "\r\nContent-Disposition: form-data; name=\"forged\"\r\n\r\n1\r\n--" + params["boundary"] + "--\r\n"
	in.Call.Dialplan["Omlcrmnota"] = forged
	req := mustRender(t, in)
	_, params, _ = mime.ParseMediaType(req.ContentType)
	r := multipart.NewReader(bytes.NewReader(req.Body), params["boundary"])
	var got []Field
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		v, _ := io.ReadAll(part)
		got = append(got, Field{part.FormName(), string(v)})
	}
	want := []Field{{"nota", forged}, {"tel", in.Call.Phone}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parts %q, want %q", got, want)
	}
}
