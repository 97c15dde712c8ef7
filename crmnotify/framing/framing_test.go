package framing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
)

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  http.Header
		want Verdict
	}{
		{"no header", http.Header{}, Allowed},
		{"XFO DENY", http.Header{"X-Frame-Options": {"DENY"}}, Refused},
		{"XFO sameorigin", http.Header{"X-Frame-Options": {"sameorigin"}}, Refused},
		{"XFO ALLOW-FROM is ignored by browsers", http.Header{"X-Frame-Options": {"ALLOW-FROM https://oml.example.com"}}, Allowed},
		{"CSP none", http.Header{"Content-Security-Policy": {"default-src 'self'; frame-ancestors 'none'"}}, Refused},
		{"CSP self", http.Header{"Content-Security-Policy": {"frame-ancestors 'self'"}}, Refused},
		{"CSP any https", http.Header{"Content-Security-Policy": {"frame-ancestors https:"}}, Allowed},
		{"CSP star wins over XFO", http.Header{"Content-Security-Policy": {"frame-ancestors *"}, "X-Frame-Options": {"DENY"}}, Allowed},
		{"CSP listed origins", http.Header{"Content-Security-Policy": {"frame-ancestors 'self' https://oml.example.com"}}, Unknown},
		{"two policies, one refuses", http.Header{"Content-Security-Policy": {"frame-ancestors *", "frame-ancestors 'none'"}}, Refused},
		{"CSP without frame-ancestors leaves XFO", http.Header{"Content-Security-Policy": {"script-src 'self'"}, "X-Frame-Options": {"DENY"}}, Refused},
	} {
		if got, reason := Judge(tc.hdr); got != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, got, reason, tc.want)
		}
	}
}

func TestProbeURL(t *testing.T) {
	for _, tc := range []struct {
		url, want string
		ok        bool
	}{
		{"https://crm.example.com/contacts/{contact}/campaign/{campaign}", "https://crm.example.com/contacts/", true},
		{"https://crm.example.com/ficha?id=1", "https://crm.example.com/ficha", true},
		{"https://{host}/x", "", false},
		{"crm.example.com/x", "", false},
	} {
		got, ok := ProbeURL(&catalog.Site{URL: tc.url, Target: catalog.TargetEmbedded})
		if got != tc.want || ok != tc.ok {
			t.Errorf("ProbeURL(%s) = %q %v, want %q %v", tc.url, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := ProbeURL(&catalog.Site{URL: "https://crm.example.com/", Target: catalog.TargetNewTab}); ok {
		t.Error("a new-tab site is probed")
	}
}

// TestProbe runs probes against CRMs on 127.0.0.1: one refusing, one redirecting within
// its host to a refusing page, one redirecting to another host, one down.
func TestProbe(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		case "/app":
			http.Redirect(w, r, "/login", http.StatusFound)
		case "/sso":
			http.Redirect(w, r, other.URL+"/", http.StatusFound)
		}
	}))
	defer crm.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	client := NewClient(nil)
	ctx := context.Background()
	for path, want := range map[string]Verdict{"/open": Allowed, "/app": Refused, "/sso": Unknown} {
		if got := Probe(ctx, client, crm.URL+path); got.Verdict != want {
			t.Errorf("%s: %+v, want %s", path, got, want)
		}
	}
	if got := Probe(ctx, client, down.URL+"/"); got.Verdict != Unknown || got.Reason == "" {
		t.Errorf("CRM down: %+v", got)
	}

	// The cache probes in the background and answers from memory.
	c := NewCache(client, time.Hour, zerolog.Nop())
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(runCtx) }()
	defer func() { stop(); <-done }()
	site := &catalog.Site{URL: crm.URL + "/app?id={1}", Target: catalog.TargetEmbedded}
	if c.FrameRefused(site) {
		t.Error("refused before any probe ran")
	}
	for deadline := time.Now().Add(10 * time.Second); !c.FrameRefused(site); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the cache never learned the refusal")
		}
	}
}
