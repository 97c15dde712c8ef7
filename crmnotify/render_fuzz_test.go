package crmnotify

import (
	"net/url"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/catalog"
)

// holderTemplates are site URLs whose placeholders the fuzzer fills. The prefix of each,
// up to its first placeholder, must survive any values unchanged.
var holderTemplates = []string{
	"https://crm.example.com:8443/api/v1/{1}/x{2}y/{3}?src=oml#top",
	"http://my_crm.domain.com/{1}/{2}/{3}",
	"https://crm.example.com/ficha.php?id={1}&d={2}#/c/{3}",
}

// FuzzRenderHolders asserts that no holder value can move a request elsewhere: the scheme,
// host and path before the first placeholder never change, the path keeps its number of
// segments, every filled segment unescapes back to its template with the value in place,
// query placeholders and query parameters decode back to the values, and the result is a
// URL Go parses.
func FuzzRenderHolders(f *testing.F) {
	f.Add("321321321", "11", "es", "x")
	f.Add("..", ".", "a/b?c#d", "&=+%")
	f.Add("", "", "", "")
	f.Add("ñandú 😀", "%2F", "{1}", "\x00\xff")
	f.Add("../../admin", "@evil.com", "//evil.com", "#frag")
	f.Fuzz(func(t *testing.T, v1, v2, v3, q string) {
		values := map[string]string{"1": v1, "2": v2, "3": v3}
		for _, tmpl := range holderTemplates {
			in := Input{Campaign: &catalog.Campaign{
				ID: 1, Name: "fuzz", Type: catalog.TypeInbound,
				Site: &catalog.Site{ID: 1, Name: "s", URL: tmpl, Trigger: catalog.TriggerServer, Method: catalog.MethodGET},
				Params: []catalog.Param{
					{Family: catalog.FamilyFixed, Source: v1, Name: "{1}"},
					{Family: catalog.FamilyFixed, Source: v2, Name: "{2}"},
					{Family: catalog.FamilyFixed, Source: v3, Name: "{3}"},
					{Family: catalog.FamilyFixed, Source: q, Name: "q"},
				},
			}}
			req, err := Render(in)
			if err != nil {
				t.Fatalf("%s: %v", tmpl, err)
			}
			checkFilled(t, tmpl, req.URL, values, q)
		}
	})
}

func checkFilled(t *testing.T, tmpl, got string, values map[string]string, q string) {
	t.Helper()
	want, err := url.Parse(strings.NewReplacer("{1}", "x", "{2}", "x", "{3}", "x").Replace(tmpl))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatalf("%s rendered %q, which does not parse: %v", tmpl, got, err)
	}
	if u.Scheme != want.Scheme || u.Host != want.Host || u.User != nil {
		t.Fatalf("%s rendered %q: scheme/host %s://%s, want %s://%s", tmpl, got, u.Scheme, u.Host, want.Scheme, want.Host)
	}
	prefix := tmpl[:strings.IndexByte(tmpl, '{')]
	if !strings.HasPrefix(got, prefix) {
		t.Fatalf("%s rendered %q: prefix %q changed", tmpl, got, prefix)
	}

	sp, err := splitURL(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	gotSp, err := splitURL(got)
	if err != nil {
		t.Fatal(err)
	}
	checkSegments(t, tmpl[sp.pathStart:sp.pathEnd], got[gotSp.pathStart:gotSp.pathEnd], values)
	if sp.fragStart >= 0 {
		if gotSp.fragStart < 0 {
			t.Fatalf("%s rendered %q: fragment lost", tmpl, got)
		}
		checkSegments(t, tmpl[sp.fragStart:], got[gotSp.fragStart:], values)
	}

	// The query: template pairs with placeholders decode to the values; q is appended last.
	gotQuery, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		t.Fatalf("%s rendered %q: query: %v", tmpl, got, err)
	}
	if gotQuery.Get("q") != q {
		t.Fatalf("%s rendered %q: q = %q, want %q", tmpl, got, gotQuery.Get("q"), q)
	}
	if sp.queryStart >= 0 {
		tq, _ := url.ParseQuery(tmpl[sp.queryStart:sp.queryEnd])
		for k, vs := range tq {
			wantV := vs[0]
			if name, _, ok := holderAt(wantV, 0); ok {
				wantV = values[name]
			}
			if gotQuery.Get(k) != wantV {
				t.Fatalf("%s rendered %q: %s = %q, want %q", tmpl, got, k, gotQuery.Get(k), wantV)
			}
		}
	}
}

// checkSegments compares a filled '/'-separated path (or fragment) with its template:
// same number of segments, and each one unescapes to the template with values in place.
func checkSegments(t *testing.T, tmpl, got string, values map[string]string) {
	t.Helper()
	ts, gs := strings.Split(tmpl, "/"), strings.Split(got, "/")
	if len(ts) != len(gs) {
		t.Fatalf("template %q filled as %q: %d segments, want %d", tmpl, got, len(gs), len(ts))
	}
	for i, seg := range ts {
		if !strings.Contains(seg, "{") {
			if gs[i] != seg {
				t.Fatalf("literal segment %q became %q", seg, gs[i])
			}
			continue
		}
		want := expand(seg, values)
		dec, err := url.PathUnescape(gs[i])
		if err != nil || dec != want {
			t.Fatalf("segment %q filled as %q unescapes to %q (%v), want %q", seg, gs[i], dec, err, want)
		}
		if gs[i] == "." || gs[i] == ".." {
			t.Fatalf("segment %q filled as a dot segment %q", seg, gs[i])
		}
	}
}

// expand fills placeholders without escaping, in one pass (a value holding "{2}" stays).
func expand(s string, values map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if name, end, ok := holderAt(s, i); ok {
			b.WriteString(values[name])
			i = end - 1
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
