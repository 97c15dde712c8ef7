package agentws

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify"
)

// Browser tests drive Debian's Chromium (OMLCRM_CHROMIUM, default /usr/bin/chromium)
// through the demo agent page against a hub and a CRM test server on 127.0.0.1, and
// assert both what the CRM received and what the page shows.

// crmRequest is what the CRM test server received.
type crmRequest struct {
	Method      string
	Path        string
	Query       url.Values
	ContentType string
	Form        url.Values // urlencoded or multipart body fields
	Body        string     // raw body of other POSTs
}

// crmServer records every request (CORS preflights aside) and answers with a small page
// listing what it got, as a CRM would show the customer.
type crmServer struct {
	srv  *httptest.Server
	reqs chan crmRequest
}

var crmPage = template.Must(template.New("crm").Parse(`<!doctype html><html><head><meta charset="utf-8"><title>Demo CRM</title>
<style>body{font:15px system-ui,sans-serif;margin:24px;color:#1d2430}h2{margin:0 0 12px}table{border-collapse:collapse}
td,th{border:1px solid #e4e7ec;padding:6px 12px;text-align:left}th{background:#f2f4f7}</style></head><body>
<h2>Demo CRM · {{.Method}} {{.Path}}</h2><table><tr><th>field</th><th>value</th></tr>
{{range $k, $v := .Fields}}<tr><td>{{$k}}</td><td>{{index $v 0}}</td></tr>{{end}}</table></body></html>`))

func newCRMServer(t *testing.T) *crmServer {
	c := &crmServer{reqs: make(chan crmRequest, 64)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "POST")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.URL.Path == "/favicon.ico" {
			http.NotFound(w, r)
			return
		}
		got := crmRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), ContentType: r.Header.Get("Content-Type")}
		mt, _, _ := mime.ParseMediaType(got.ContentType)
		switch mt {
		case "application/x-www-form-urlencoded":
			_ = r.ParseForm()
			got.Form = r.PostForm
		case "multipart/form-data":
			_ = r.ParseMultipartForm(1 << 20)
			got.Form = url.Values(r.MultipartForm.Value)
		default:
			b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			got.Body = string(b)
		}
		c.reqs <- got
		fields := got.Query
		if got.Form != nil {
			fields = got.Form
		}
		if mt == "application/json" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"ticket":"T-1001"}`)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = crmPage.Execute(w, map[string]any{"Method": r.Method, "Path": r.URL.Path, "Fields": fields})
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// next returns the next request the CRM received.
func (c *crmServer) next(t *testing.T) crmRequest {
	t.Helper()
	select {
	case r := <-c.reqs:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the CRM received nothing within 20s")
	}
	return crmRequest{}
}

// none asserts the CRM has received nothing so far.
func (c *crmServer) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-c.reqs:
		t.Fatalf("the CRM received %s %s before it should", r.Method, r.Path)
	default:
	}
}

// newBrowser starts a headless Chromium; popups=false keeps its pop-up blocker on.
func newBrowser(t *testing.T, popups bool) context.Context {
	t.Helper()
	return newBrowserWindow(t, popups, 1100, 760)
}

// newBrowserWindow is newBrowser with a window of width×height CSS pixels.
func newBrowserWindow(t *testing.T, popups bool, width, height int) context.Context {
	t.Helper()
	path := os.Getenv("OMLCRM_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("required in CI: Chromium at %s (set OMLCRM_CHROMIUM): %v", path, err)
		}
		t.Skipf("skipping: Chromium at %s (set OMLCRM_CHROMIUM): %v", path, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
	}
	if popups {
		opts = append(opts, chromedp.Flag("disable-popup-blocking", true))
	} else {
		// Headless Chromium has no pop-up blocker UI and lets window.open through; this
		// switch makes every page-initiated new window fail, as a blocked pop-up does.
		opts = append(opts, chromedp.Flag("block-new-web-contents", true))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // start the browser now
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// page opens the demo agent page for agent in a new tab of browser.
func page(t *testing.T, browser context.Context, th *testHub, agent int) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	// The first run on a tab's context creates the tab and must not carry a timeout:
	// its end would close the tab.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	u := fmt.Sprintf("%s/agent?agent=%d&token=%s", th.srv.URL, agent, mustToken(t, agent))
	run(t, ctx, chromedp.Navigate(u))
	waitJS(t, ctx, `document.querySelector("#state.open") !== null`)
	return ctx
}

func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// waitJS waits until the JavaScript expression is truthy in the page.
func waitJS(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(tctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s: %v", expr, err)
	}
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func popSel(id, rest string) string {
	return fmt.Sprintf(`document.querySelector('.omlcrm-pop[data-pop-id="%s"] %s')`, id, rest)
}

// browserPop builds a pop to the CRM server.
func browserPop(crm *crmServer, call string, agent int, trigger catalog.Trigger, target catalog.Target, method, contentType string) crmnotify.Notification {
	n := notification(call, agent, trigger, target)
	n.Campaign = &catalog.Campaign{ID: 11, Name: `Ventas <img src=x onerror="document.title='pwned'">`, Type: catalog.TypeInbound}
	fields := []crmnotify.Field{{Name: "idClient", Value: "321321321"}, {Name: "name", Value: `Zoë "Zo" <b>O'Brien</b> & co`}, {Name: "idCamp", Value: "11"}}
	n.Request = crmnotify.Request{Method: method, URL: crm.srv.URL + "/crm/" + call, ContentType: contentType, Fields: fields}
	if method == "GET" {
		q := url.Values{}
		for _, f := range fields {
			q.Add(f.Name, f.Value)
		}
		n.Request.URL += "?" + q.Encode()
	}
	if contentType == "application/json" {
		n.Request.Body = []byte(`{"idClient":"321321321","name":"Zoë \"Zo\" <b>O'Brien</b> & co","idCamp":11}`)
	}
	return n
}

func wantFields(t *testing.T, got url.Values) {
	t.Helper()
	want := url.Values{"idClient": {"321321321"}, "name": {`Zoë "Zo" <b>O'Brien</b> & co`}, "idCamp": {"11"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CRM fields %v, want %v", got, want)
	}
}

// noInjection asserts the page rendered the hostile campaign name as text.
func noInjection(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	if n := evalJS[int](t, ctx, `document.querySelectorAll(".omlcrm-pop img, .omlcrm-pop b").length`); n != 0 {
		t.Errorf("%d elements injected from pop data", n)
	}
	if title := evalJS[string](t, ctx, `document.title`); title == "pwned" {
		t.Error("script from pop data ran")
	}
	if got := evalJS[string](t, ctx, popSel(id, ".omlcrm-campaign")+`.textContent`); !strings.HasPrefix(got, "Ventas <img") {
		t.Errorf("campaign shown as %q", got)
	}
}

func waitOpened(t *testing.T, th *testHub, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(th.metrics.popsOpened) < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := testutil.ToFloat64(th.metrics.popsOpened); got != want {
		t.Errorf("hub counted %v opened pops, want %v", got, want)
	}
}

func TestBrowser(t *testing.T) {
	crm := newCRMServer(t)
	th := newTestHub(t, Options{})
	browser := newBrowser(t, true)
	opened := 0.0

	t.Run("embedded GET", func(t *testing.T) {
		ctx := page(t, browser, th, 31)
		n := browserPop(crm, "call-eg", 31, catalog.TriggerAutomatic, catalog.TargetEmbedded, "GET", "")
		mustPop(t, th.Hub, n)
		r := crm.next(t)
		if r.Method != "GET" || r.Path != "/crm/call-eg" {
			t.Fatalf("CRM got %s %s", r.Method, r.Path)
		}
		wantFields(t, r.Query)
		waitJS(t, ctx, popSel(n.ID, "iframe.omlcrm-iframe")+` !== null`)
		if src := evalJS[string](t, ctx, popSel(n.ID, "iframe")+`.src`); src != n.Request.URL {
			t.Errorf("iframe src %q, want %q", src, n.Request.URL)
		}
		waitJS(t, ctx, popSel(n.ID, ".omlcrm-status")+`.textContent === "CRM opened below"`)
		noInjection(t, ctx, n.ID)
		opened++
		waitOpened(t, th, opened)
	})

	t.Run("embedded POST form", func(t *testing.T) {
		ctx := page(t, browser, th, 32)
		n := browserPop(crm, "call-ep", 32, catalog.TriggerAutomatic, catalog.TargetEmbedded, "POST", "application/x-www-form-urlencoded")
		mustPop(t, th.Hub, n)
		r := crm.next(t)
		if r.Method != "POST" || r.Path != "/crm/call-ep" || r.ContentType != "application/x-www-form-urlencoded" {
			t.Fatalf("CRM got %s %s %s", r.Method, r.Path, r.ContentType)
		}
		wantFields(t, r.Form)
		waitJS(t, ctx, popSel(n.ID, "iframe")+` !== null`)
		if name := evalJS[string](t, ctx, popSel(n.ID, "iframe")+`.name`); name != "omlcrm-"+n.ID {
			t.Errorf("iframe name %q", name)
		}
		// The CRM's answer loaded into the iframe (same browser, so its frame is inspectable
		// through the page's frame tree only by URL): the form is gone from the page.
		if n := evalJS[int](t, ctx, `document.querySelectorAll("form").length`); n != 0 {
			t.Errorf("%d generated forms left in the page", n)
		}
		noInjection(t, ctx, n.ID)
		opened++
		waitOpened(t, th, opened)
	})

	t.Run("new tab", func(t *testing.T) {
		ctx := page(t, browser, th, 33)
		n := browserPop(crm, "call-nt", 33, catalog.TriggerAutomatic, catalog.TargetNewTab, "GET", "")
		mustPop(t, th.Hub, n)
		r := crm.next(t)
		if r.Method != "GET" || r.Path != "/crm/call-nt" {
			t.Fatalf("CRM got %s %s", r.Method, r.Path)
		}
		wantFields(t, r.Query)
		waitJS(t, ctx, popSel(n.ID, ".omlcrm-status")+`.textContent === "Opened in a new tab"`)
		if has := evalJS[bool](t, ctx, popSel(n.ID, "iframe")+` !== null || `+popSel(n.ID, ".omlcrm-open")+` !== null`); has {
			t.Error("a new-tab pop left an iframe or a button in the page")
		}
		// The new tab reports its URL once its navigation commits.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			targets, err := chromedp.Targets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, tg := range targets {
				found = found || (tg.Type == "page" && tg.URL == n.Request.URL)
			}
			if found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no browser tab at %s", n.Request.URL)
			}
		}
		opened++
		waitOpened(t, th, opened)
	})

	t.Run("new tab POST form", func(t *testing.T) {
		ctx := page(t, browser, th, 34)
		n := browserPop(crm, "call-np", 34, catalog.TriggerAutomatic, catalog.TargetNewTab, "POST", "multipart/form-data")
		mustPop(t, th.Hub, n)
		r := crm.next(t)
		if r.Method != "POST" || !strings.HasPrefix(r.ContentType, "multipart/form-data; boundary=") {
			t.Fatalf("CRM got %s %s", r.Method, r.ContentType)
		}
		wantFields(t, r.Form)
		waitJS(t, ctx, popSel(n.ID, ".omlcrm-status")+`.textContent === "Opened in a new tab"`)
		opened++
		waitOpened(t, th, opened)
	})

	t.Run("agent button", func(t *testing.T) {
		ctx := page(t, browser, th, 35)
		n := browserPop(crm, "call-ab", 35, catalog.TriggerAgent, catalog.TargetEmbedded, "POST", "multipart/form-data")
		mustPop(t, th.Hub, n)
		waitJS(t, ctx, popSel(n.ID, "button.omlcrm-open")+` !== null`)
		if txt := evalJS[string](t, ctx, popSel(n.ID, "button.omlcrm-open")+`.textContent`); txt != "Open CRM" {
			t.Errorf("button says %q", txt)
		}
		crm.none(t) // nothing is sent before the agent clicks
		run(t, ctx, chromedp.Click(chromedp.CSS(`.omlcrm-pop[data-pop-id="`+n.ID+`"] button.omlcrm-open`)))
		r := crm.next(t)
		if r.Method != "POST" || r.Path != "/crm/call-ab" || !strings.HasPrefix(r.ContentType, "multipart/form-data") {
			t.Fatalf("CRM got %s %s %s", r.Method, r.Path, r.ContentType)
		}
		wantFields(t, r.Form)
		waitJS(t, ctx, popSel(n.ID, "iframe")+` !== null && `+popSel(n.ID, "button.omlcrm-open")+` === null`)
		opened++
		waitOpened(t, th, opened)
	})

	t.Run("JSON POST with fetch", func(t *testing.T) {
		ctx := page(t, browser, th, 36)
		n := browserPop(crm, "call-js", 36, catalog.TriggerAutomatic, catalog.TargetEmbedded, "POST", "application/json")
		mustPop(t, th.Hub, n)
		r := crm.next(t)
		if r.Method != "POST" || r.ContentType != "application/json" || r.Body != string(n.Request.Body) {
			t.Fatalf("CRM got %s %s %q", r.Method, r.ContentType, r.Body)
		}
		waitJS(t, ctx, popSel(n.ID, ".omlcrm-status")+`.textContent === "CRM answered 200 (ok)"`)
		if got := evalJS[string](t, ctx, popSel(n.ID, ".omlcrm-response")+`.textContent`); got != `{"ticket":"T-1001"}` {
			t.Errorf("page shows response %q", got)
		}
		opened++
		waitOpened(t, th, opened)
	})

	t.Run("reload replays the pop, call.ended hides it", func(t *testing.T) {
		ctx := page(t, browser, th, 37)
		n := browserPop(crm, "call-rl", 37, catalog.TriggerAgent, catalog.TargetEmbedded, "GET", "")
		mustPop(t, th.Hub, n)
		waitJS(t, ctx, popSel(n.ID, "button.omlcrm-open")+` !== null`)
		run(t, ctx, chromedp.Reload())
		waitJS(t, ctx, `document.querySelector("#state.open") !== null`)
		// The token left the address bar but survived the reload (sessionStorage).
		if href := evalJS[string](t, ctx, `location.href`); strings.Contains(href, "token=") {
			t.Errorf("token still in the address bar: %s", href)
		}
		waitJS(t, ctx, popSel(n.ID, "button.omlcrm-open")+` !== null`)
		crm.none(t)
		run(t, ctx, chromedp.Click(chromedp.CSS(`.omlcrm-pop[data-pop-id="`+n.ID+`"] button.omlcrm-open`)))
		r := crm.next(t)
		if r.Method != "GET" || r.Path != "/crm/call-rl" {
			t.Fatalf("CRM got %s %s", r.Method, r.Path)
		}
		wantFields(t, r.Query)
		waitJS(t, ctx, popSel(n.ID, "iframe")+` !== null`)

		// A second pop of another call, never clicked: call.ended removes its button.
		n2 := browserPop(crm, "call-rl2", 37, catalog.TriggerAgent, catalog.TargetNewTab, "GET", "")
		mustPop(t, th.Hub, n2)
		waitJS(t, ctx, popSel(n2.ID, ".omlcrm-open")+` !== null`)
		if err := th.CallEnded(context.Background(), "call-rl2"); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, popSel(n2.ID, ".omlcrm-open")+` === null && `+popSel(n2.ID, ".omlcrm-status")+
			`.textContent === "Call ended before the CRM was opened"`)
		crm.none(t)
		opened++
		waitOpened(t, th, opened)
	})

	t.Run("dismissed pop is acked and not replayed on reload", func(t *testing.T) {
		ctx := page(t, browser, th, 38)
		keep := browserPop(crm, "call-keep", 38, catalog.TriggerAgent, catalog.TargetEmbedded, "GET", "")
		gone := browserPop(crm, "call-gone", 38, catalog.TriggerAgent, catalog.TargetEmbedded, "GET", "")
		mustPop(t, th.Hub, keep)
		mustPop(t, th.Hub, gone)
		waitJS(t, ctx, popSel(keep.ID, "button.omlcrm-open")+` !== null && `+popSel(gone.ID, "button.omlcrm-open")+` !== null`)
		acked := testutil.ToFloat64(th.metrics.popsAcked)
		run(t, ctx, chromedp.Click(chromedp.CSS(`.omlcrm-pop[data-pop-id="`+gone.ID+`"] button.omlcrm-dismiss`)))
		waitJS(t, ctx, popSel(gone.ID, "header")+` === null`)
		for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(th.metrics.popsAcked) < acked+1; {
			if time.Now().After(deadline) {
				t.Fatal("the hub never got the dismissed pop's ack")
			}
			time.Sleep(10 * time.Millisecond)
		}
		run(t, ctx, chromedp.Reload())
		waitJS(t, ctx, `document.querySelector("#state.open") !== null`)
		waitJS(t, ctx, popSel(keep.ID, "button.omlcrm-open")+` !== null`)
		if evalJS[bool](t, ctx, popSel(gone.ID, "header")+` !== null`) {
			t.Error("the dismissed (acked) pop came back after the reload")
		}
		crm.none(t)
	})

	// OMLCRM_AGENT_SCREENSHOT=docs/agent-page.png saves the demo page showing a pop (README).
	t.Run("screenshot", func(t *testing.T) {
		shot := os.Getenv("OMLCRM_AGENT_SCREENSHOT")
		if shot == "" {
			t.Skip("set OMLCRM_AGENT_SCREENSHOT=path to save a screenshot of the demo agent page")
		}
		ctx := page(t, browser, th, 2)
		older := browserPop(crm, "1732428477.42", 2, catalog.TriggerAgent, catalog.TargetNewTab, "GET", "")
		older.Campaign = &catalog.Campaign{ID: 3, Name: "Soporte", Type: catalog.TypeInbound}
		mustPop(t, th.Hub, older)
		waitJS(t, ctx, popSel(older.ID, ".omlcrm-open")+` !== null`)
		n := browserPop(crm, "1732428519.57", 2, catalog.TriggerAutomatic, catalog.TargetEmbedded, "GET", "")
		n.Campaign = &catalog.Campaign{ID: 1, Name: "Ventas", Type: catalog.TypeManual}
		mustPop(t, th.Hub, n)
		crm.next(t)
		waitJS(t, ctx, popSel(n.ID, "iframe")+` !== null`)
		opened++
		waitOpened(t, th, opened)
		time.Sleep(500 * time.Millisecond) // let the iframe paint
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Clean(shot), png, 0o644); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("two pages: opened in one closes the button in the other", func(t *testing.T) {
		one := page(t, browser, th, 38)
		two := page(t, browser, th, 38)
		n := browserPop(crm, "call-2p", 38, catalog.TriggerAgent, catalog.TargetEmbedded, "GET", "")
		mustPop(t, th.Hub, n)
		waitJS(t, one, popSel(n.ID, "button.omlcrm-open")+` !== null`)
		waitJS(t, two, popSel(n.ID, "button.omlcrm-open")+` !== null`)
		run(t, one, chromedp.Click(chromedp.CSS(`.omlcrm-pop[data-pop-id="`+n.ID+`"] button.omlcrm-open`)))
		crm.next(t)
		waitJS(t, two, popSel(n.ID, "button.omlcrm-open")+` === null && `+popSel(n.ID, ".omlcrm-status")+
			`.textContent === "Opened in another page"`)
		crm.none(t)
	})

	// An automatic pop left to a leading tab that never opened it (it froze or closed, or
	// the lead moved between the tabs' renders, as happened under CI load) is opened by the
	// tab that leads next, once.
	t.Run("automatic pop its leader never opened: the next leader opens it", func(t *testing.T) {
		ctx := page(t, browser, th, 39)
		setLead := func(until string) {
			evalJS[bool](t, ctx, `localStorage.setItem("omlcrm.lead.39", JSON.stringify({tab: "gone", until: `+until+`})) === undefined`)
		}
		setLead("Date.now() + 600000")
		opened := testutil.ToFloat64(th.metrics.popsOpened)
		n := browserPop(crm, "call-lead", 39, catalog.TriggerAutomatic, catalog.TargetEmbedded, "GET", "")
		mustPop(t, th.Hub, n)
		waitJS(t, ctx, popSel(n.ID, ".omlcrm-status")+` !== null && `+popSel(n.ID, ".omlcrm-status")+`.textContent === "Opening in another tab…"`)
		crm.none(t)
		setLead("0") // the other tab's lead lapses
		if r := crm.next(t); r.Path != "/crm/call-lead" {
			t.Fatalf("CRM got %s %s", r.Method, r.Path)
		}
		waitJS(t, ctx, popSel(n.ID, "iframe")+` !== null && `+popSel(n.ID, ".omlcrm-status")+`.textContent === "CRM opened below"`)
		opened++
		waitOpened(t, th, opened)
		time.Sleep(1500 * time.Millisecond) // a second look would open it again
		crm.none(t)
	})
}

// TestBrowserPopupBlocked: when the browser refuses the pop-up (here: the agent page runs
// in an iframe sandboxed without allow-popups, where window.open returns null exactly as
// under a pop-up blocker), an automatic new-tab pop shows an "Open CRM" link instead.
// Headless Chromium has no pop-up blocker of its own, hence the sandbox.
func TestBrowserPopupBlocked(t *testing.T) {
	crm := newCRMServer(t)
	th := newTestHub(t, Options{})
	// The console page and the hub share an origin, so the test can look into the frame.
	mux := http.NewServeMux()
	mux.Handle("/", th.Hub)
	mux.HandleFunc("/console", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>console</title><iframe sandbox="allow-scripts allow-same-origin allow-forms" width="900" height="500" src="/agent?agent=41&amp;token=%s"></iframe>`,
			mustToken(t, 41))
	})
	console := httptest.NewServer(mux)
	defer console.Close()

	browser := newBrowser(t, true)
	ctx := page(t, browser, th, 40) // any tab: then load the console in it
	run(t, ctx, chromedp.Navigate(console.URL+"/console"))
	frame := func(rest string) string {
		return `document.querySelector("iframe").contentDocument.querySelector('` + rest + `')`
	}
	waitJS(t, ctx, frame("#state.open")+` !== null`)

	n := browserPop(crm, "call-bl", 41, catalog.TriggerAutomatic, catalog.TargetNewTab, "GET", "")
	mustPop(t, th.Hub, n)
	link := frame(`.omlcrm-pop[data-pop-id="` + n.ID + `"] a.omlcrm-open`)
	status := frame(`.omlcrm-pop[data-pop-id="` + n.ID + `"] .omlcrm-status`)
	waitJS(t, ctx, link+` !== null`)
	if txt := evalJS[string](t, ctx, link+`.textContent`); txt != "Open CRM" {
		t.Errorf("link says %q", txt)
	}
	if href := evalJS[string](t, ctx, link+`.href`); href != n.Request.URL {
		t.Errorf("link href %q, want %q", href, n.Request.URL)
	}
	if txt := evalJS[string](t, ctx, status+`.textContent`); txt != "Pop-up blocked: click Open CRM" {
		t.Errorf("status %q", txt)
	}
	crm.none(t)
	if v := testutil.ToFloat64(th.metrics.popsOpened); v != 0 {
		t.Errorf("a blocked pop counted as opened")
	}

	// The agent clicks the link: the page reports the pop opened...
	evalJS[bool](t, ctx, link+`.click() === undefined`)
	waitJS(t, ctx, status+`.textContent === "Opened in a new tab"`)
	waitOpened(t, th, 1)
	// ...and the link is the CRM request: open it as the browser would in a new tab (the
	// sandbox that blocked the pop-up also stops the click from opening one).
	tab := page(t, browser, th, 42)
	run(t, tab, chromedp.Navigate(n.Request.URL))
	r := crm.next(t)
	if r.Method != "GET" || r.Path != "/crm/call-bl" {
		t.Fatalf("CRM got %s %s", r.Method, r.Path)
	}
	wantFields(t, r.Query)
}

// scriptedHub is a websocket server that sends the browser client exactly the messages a
// test gives it, for protocol cases the hub itself does not produce (revisions, ringing
// pops replaced, withdrawals), and records what the client sends back.
type scriptedHub struct {
	srv  *httptest.Server
	out  chan any
	got  chan map[string]any
	page string
}

func newScriptedHub(t *testing.T, connectOpts string) *scriptedHub {
	t.Helper()
	h := &scriptedHub{out: make(chan any, 64), got: make(chan map[string]any, 64)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oml-crm.js", serveAsset("oml-crm.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>scripted</title><div id="crm"></div><script src="/oml-crm.js"></script>`+
			`<script>window.client = OmlCrm.connect(%s);</script>`, connectOpts)
	})
	mux.HandleFunc("GET /auto", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>console</title><p>console</p><script src="/oml-crm.js" data-oml-crm="auto" defer></script>`)
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		go func() {
			for {
				_, b, err := ws.Read(ctx)
				if err != nil {
					return
				}
				var m map[string]any
				if json.Unmarshal(b, &m) == nil && m["type"] != TypePing {
					h.got <- m
				}
			}
		}()
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"hello","agent_id":77,"server_version":"scripted"}`))
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-h.out:
				b, _ := json.Marshal(m)
				if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
					return
				}
			}
		}
	})
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	h.page = h.srv.URL + "/page"
	return h
}

// pop is a crm.pop message for the scripted hub.
func scriptedPop(id, trigger, target, url string, extra map[string]any) map[string]any {
	m := map[string]any{
		"type": TypePop, "id": id, "call_id": "call-" + id, "trigger": trigger, "target": target,
		"campaign": map[string]any{"id": 3, "name": "Soporte", "type": "inbound"},
		"request":  map[string]any{"method": "GET", "url": url, "fields": [][2]string{}},
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// TestBrowserProtocolUpdates drives the client through revisions, a ringing pop replaced
// at connect, a withdrawal and the bound on cards.
func TestBrowserProtocolUpdates(t *testing.T) {
	crm := newCRMServer(t)
	sh := newScriptedHub(t, `{url: location.origin.replace("http", "ws") + "/ws", container: "#crm", maxCards: 3, clearAfter: 0}`)
	browser := newBrowser(t, true)
	ctx, cancel := chromedp.NewContext(browser)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // the tab; no timeout on its first run
		t.Fatal(err)
	}
	run(t, ctx, chromedp.Navigate(sh.page))
	waitJS(t, ctx, `window.client !== undefined`)
	cards := func() string {
		return evalJS[string](t, ctx, `Array.from(document.querySelectorAll(".omlcrm-pop")).map(function(c){return c.dataset.popId}).join(",")`)
	}

	// An incomplete pop, then its revision once the contact is read: the card is replaced.
	sh.out <- scriptedPop("a", "agent", "embedded", crm.srv.URL+"/crm/a?rev=0", map[string]any{"incomplete": true, "missing": []string{"contact.nombre"}})
	waitJS(t, ctx, popSel("a", ".omlcrm-incomplete")+` !== null`)
	if title := evalJS[string](t, ctx, popSel("a", ".omlcrm-incomplete")+`.title`); !strings.Contains(title, "contact.nombre") {
		t.Errorf("incomplete badge says %q", title)
	}
	sh.out <- scriptedPop("a", "agent", "embedded", crm.srv.URL+"/crm/a?rev=1", map[string]any{"rev": 1})
	waitJS(t, ctx, `document.querySelector('.omlcrm-pop[data-pop-id="a"]').dataset.rev === "1"`)
	if got := cards(); got != "a" {
		t.Fatalf("cards %q after the revision, want one", got)
	}
	if evalJS[bool](t, ctx, popSel("a", ".omlcrm-incomplete")+` !== null`) {
		t.Error("the revised card still says incomplete")
	}
	run(t, ctx, chromedp.Click(chromedp.CSS(`.omlcrm-pop[data-pop-id="a"] button.omlcrm-open`)))
	if r := crm.next(t); r.Query.Get("rev") != "1" {
		t.Errorf("the CRM got revision %q, want 1", r.Query.Get("rev"))
	}
	// Once opened, a later revision does not pull the CRM from under the agent.
	sh.out <- scriptedPop("a", "agent", "embedded", crm.srv.URL+"/crm/a?rev=2", map[string]any{"rev": 2})
	sh.out <- scriptedPop("r", "agent", "embedded", crm.srv.URL+"/crm/r", map[string]any{"phase": "ringing"})
	waitJS(t, ctx, popSel("r", ".omlcrm-phase")+` !== null`)
	if src := evalJS[string](t, ctx, popSel("a", "iframe")+`.src`); !strings.HasSuffix(src, "rev=1") {
		t.Errorf("opened card's iframe now at %s", src)
	}

	// The connect pop replaces the ringing one in place.
	sh.out <- scriptedPop("c", "agent", "embedded", crm.srv.URL+"/crm/c", map[string]any{"replaces": "r"})
	waitJS(t, ctx, popSel("c", "header")+` !== null`)
	if got := cards(); got != "c,a" {
		t.Errorf("cards %q after the replacement, want c,a", got)
	}

	// Withdrawn: the card goes, and the client acks it (as it acked the replaced ringing pop).
	sh.out <- map[string]any{"type": "pop.withdrawn", "id": "c", "reason": "answered_elsewhere"}
	waitJS(t, ctx, popSel("c", "header")+` === null`)
	acked := map[any]bool{}
	for deadline := time.After(10 * time.Second); !acked["c"]; {
		select {
		case m := <-sh.got:
			if m["type"] == TypeAck {
				acked[m["id"]] = true
			}
		case <-deadline:
			t.Fatalf("acks %v, want the withdrawn pop's", acked)
		}
	}
	if !acked["r"] {
		t.Errorf("acks %v: the replaced ringing pop was not acked", acked)
	}

	// At most maxCards (3): the oldest go first.
	for _, id := range []string{"d", "e", "f"} {
		sh.out <- scriptedPop(id, "agent", "new_tab", crm.srv.URL+"/crm/"+id, nil)
	}
	waitJS(t, ctx, popSel("f", "header")+` !== null`)
	if got := cards(); got != "f,e,d" {
		t.Errorf("cards %q, want f,e,d (3 at most)", got)
	}
	crm.none(t)
}

// TestBrowserNamedCRMWindow: new-tab pops reuse one named window: the first opens it, the
// next navigates it instead of opening another tab.
func TestBrowserNamedCRMWindow(t *testing.T) {
	crm := newCRMServer(t)
	th := newTestHub(t, Options{})
	browser := newBrowser(t, true)
	ctx := page(t, browser, th, 51)
	one := browserPop(crm, "call-w1", 51, catalog.TriggerAutomatic, catalog.TargetNewTab, "GET", "")
	mustPop(t, th.Hub, one)
	crm.next(t)
	waitJS(t, ctx, popSel(one.ID, ".omlcrm-status")+`.textContent === "Opened in a new tab"`)
	two := browserPop(crm, "call-w2", 51, catalog.TriggerAutomatic, catalog.TargetNewTab, "GET", "")
	mustPop(t, th.Hub, two)
	if r := crm.next(t); r.Path != "/crm/call-w2" {
		t.Fatalf("CRM got %s", r.Path)
	}
	waitJS(t, ctx, popSel(two.ID, ".omlcrm-status")+`.textContent === "Opened in a new tab"`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		targets, err := chromedp.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var crmTabs []string
		for _, tg := range targets {
			if tg.Type == "page" && strings.HasPrefix(tg.URL, crm.srv.URL) {
				crmTabs = append(crmTabs, tg.URL)
			}
		}
		if len(crmTabs) == 1 && crmTabs[0] == two.Request.URL {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRM tabs %v, want exactly one, at %s", crmTabs, two.Request.URL)
		}
	}
}

// TestBrowserAllowCRMTabs: in the injected panel, the agent's click on "Allow CRM tabs"
// opens the CRM window; an automatic pop of a CRM that refuses framing then opens in that
// window by itself, and the next one navigates the same window.
func TestBrowserAllowCRMTabs(t *testing.T) {
	crm := newCRMServer(t)
	sh := newScriptedHub(t, `{}`)
	browser := newBrowser(t, true)
	ctx, cancel := chromedp.NewContext(browser)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, chromedp.Navigate(sh.srv.URL+"/auto"))
	root := `document.getElementById("oml-crm-root").shadowRoot`
	waitJS(t, ctx, `document.getElementById("oml-crm-root") !== null && `+root+`.querySelector(".state.open") !== null`)
	allow := root + `.querySelector("button.allow")`
	if evalJS[bool](t, ctx, allow+`.hidden`) {
		t.Fatal("no Allow CRM tabs prompt at load")
	}
	// A real mouse click (a user gesture) in the middle of the button.
	var at struct{ X, Y float64 }
	if err := json.Unmarshal([]byte(evalJS[string](t, ctx, `JSON.stringify((function(){var r=`+allow+
		`.getBoundingClientRect();return {X:r.left+r.width/2,Y:r.top+r.height/2};})())`)), &at); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, chromedp.MouseClickXY(at.X, at.Y))
	waitJS(t, ctx, allow+`.hidden`)

	card := func(id, rest string) string {
		return root + `.querySelector('.omlcrm-pop[data-pop-id="` + id + `"] ` + rest + `')`
	}
	for _, id := range []string{"x1", "x2"} {
		sh.out <- scriptedPop(id, "automatic", "embedded", crm.srv.URL+"/crm/"+id, map[string]any{"frame_refused": true})
		if r := crm.next(t); r.Path != "/crm/"+id {
			t.Fatalf("CRM got %s", r.Path)
		}
		waitJS(t, ctx, card(id, ".omlcrm-status")+` !== null && `+card(id, ".omlcrm-status")+`.textContent === "Opened in a new tab"`)
		if evalJS[bool](t, ctx, card(id, "iframe")+` !== null`) {
			t.Errorf("%s: an iframe for a CRM that refuses framing", id)
		}
	}
	// The agent widens the panel by dragging its left edge, collapses it, and brings it back.
	center := func(sel string) (float64, float64) {
		var r struct{ X, Y float64 }
		if err := json.Unmarshal([]byte(evalJS[string](t, ctx, `JSON.stringify((function(){var r=`+sel+
			`.getBoundingClientRect();return {X:r.left+r.width/2,Y:r.top+r.height/2};})())`)), &r); err != nil {
			t.Fatal(err)
		}
		return r.X, r.Y
	}
	panelWidth := func() float64 {
		return evalJS[float64](t, ctx, root+`.querySelector(".panel").getBoundingClientRect().width`)
	}
	before := panelWidth()
	gx, gy := center(root + `.querySelector(".grip")`)
	held := func(p *input.DispatchMouseEventParams) {
		p.Button, p.Buttons, p.ClickCount = input.MouseButtonLeft, 1, 1
	}
	run(t, ctx, chromedp.MouseEvent(chromedp.MousePressed, gx, gy, held),
		chromedp.MouseEvent(chromedp.MouseMoved, gx-80, gy, held),
		chromedp.MouseEvent(chromedp.MouseMoved, gx-150, gy, held),
		chromedp.MouseEvent(chromedp.MouseReleased, gx-150, gy, held))
	if after := panelWidth(); after < before+100 {
		t.Errorf("panel %.0f px wide after dragging its edge 150 px left, was %.0f", after, before)
	}
	run(t, ctx, chromedp.MouseClickXY(center(root+`.querySelector(".collapse")`)))
	waitJS(t, ctx, root+`.querySelector(".panel").classList.contains("collapsed") && !`+root+`.querySelector(".tab").hidden`)
	run(t, ctx, chromedp.MouseClickXY(center(root+`.querySelector(".tab")`)))
	waitJS(t, ctx, `!`+root+`.querySelector(".panel").classList.contains("collapsed")`)

	// A form POST embedded from the panel: the generated form lives in the shadow root and
	// still submits into the card's iframe.
	post := scriptedPop("x3", "automatic", "embedded", crm.srv.URL+"/crm/x3", nil)
	post["request"] = map[string]any{"method": "POST", "url": crm.srv.URL + "/crm/x3",
		"content_type": "application/x-www-form-urlencoded", "fields": [][2]string{{"idClient", "321321321"}, {"name", "Zoë & co"}}}
	sh.out <- post
	if r := crm.next(t); r.Method != "POST" || r.Path != "/crm/x3" || r.Form.Get("name") != "Zoë & co" || r.Form.Get("idClient") != "321321321" {
		t.Errorf("CRM got %s %s %v", r.Method, r.Path, r.Form)
	}
	waitJS(t, ctx, card("x3", "iframe")+` !== null`)
	if n := evalJS[int](t, ctx, `document.querySelectorAll("form").length + `+root+`.querySelectorAll("form").length`); n != 0 {
		t.Errorf("%d generated forms left", n)
	}

	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		targets, err := chromedp.Targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var crmTabs []string
		for _, tg := range targets {
			if tg.Type == "page" && strings.HasPrefix(tg.URL, crm.srv.URL) {
				crmTabs = append(crmTabs, tg.URL)
			}
		}
		if len(crmTabs) == 1 && crmTabs[0] == crm.srv.URL+"/crm/x2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRM windows %v, want one, at /crm/x2", crmTabs)
		}
	}
}
