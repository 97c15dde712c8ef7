package agentws

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/crmnotify/framing"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// The console proof: Debian's nginx with deploy/nginx/oml-crm.conf included in a server
// block shaped like OMniLeads' (its `location ~* (ws)` to Kamailio, `location /` to the
// app), an agent console fixture of this test's own at /consola/, the hub in django-session
// mode on OMniLeads' real schema, and headless Chromium in a 1440×900 window.

// consolePage is a stand-in for OMniLeads' agent console (ConsolaAgenteView): a navbar, an
// agent pane and the #dataView work-area iframe (name "crm") where OMniLeads loads its
// forms, with page CSS that would wreck an unprotected widget. OmlCrmConfig shortens the
// grace period so the test sees a card cleared.
const consolePage = `<!DOCTYPE html>
<html lang="es"><head><meta charset="utf-8"><title>Consola de agente</title>
<style>
  * { box-sizing: content-box; font-size: 13px !important; font-family: serif; color: #333; }
  body { margin: 0; background: #eef1f5; }
  nav { background: #233044; padding: 10px 16px; } nav span { color: #fff; margin-right: 24px; }
  iframe { width: 300px; height: 150px; border: 5px solid #c00; }
  button, a { display: none; }
  section, header, div { padding: 12px; }
  #phone { float: left; width: 180px; height: 560px; background: #fff; margin-right: 12px; padding: 12px; }
  .agent-console-iframe { width: calc(100% - 240px); height: 600px; border: 0; background: #fff; }
</style>
<script>window.OmlCrmConfig = {clearAfter: 1500};</script>
</head>
<body class="consola">
<nav class="navbar"><span class="brand">OMniLeads</span> <span id="agent-status">Ready</span></nav>
<div id="wrapper"><aside id="phone">Webphone</aside>
<iframe src="/blank/" id="dataView" class="agent-console-iframe" name="crm"></iframe></div>
</body></html>
`

// consoleApp is the application behind nginx: the console page, a login that sets the
// Django session cookie, and the disposition route, recording the raw URI it receives.
type consoleApp struct {
	srv     *httptest.Server
	mu      sync.Mutex
	uris    []string
	session string
}

func newConsoleApp(t *testing.T, session string) *consoleApp {
	a := &consoleApp{session: session}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.uris = append(a.uris, r.RequestURI)
		a.mu.Unlock()
		switch {
		case r.URL.Path == "/login/":
			http.SetCookie(w, &http.Cookie{Name: "sessionid", Value: a.session, Path: "/", HttpOnly: true})
			http.Redirect(w, r, "/consola/", http.StatusFound)
		case r.URL.Path == "/consola/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("X-Frame-Options", "SAMEORIGIN")
			fmt.Fprint(w, consolePage)
		case strings.HasPrefix(r.URL.Path, "/agente/calificar_llamada"), strings.HasPrefix(r.URL.Path, "/formulario/"):
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!DOCTYPE html><html><body><div class="container">`+
				`<input class="hidden" value='{"dispara_agente": true}' id="configuracionSitioExterno">`+
				`<form id="form_sitio_externo"></form></div></body></html>`)
		default:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<!DOCTYPE html><title>blank</title><body style=\"font:14px sans-serif;color:#667085;padding:16px\">Agent dashboard</body>")
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *consoleApp) lastURI(prefix string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.uris) - 1; i >= 0; i-- {
		if strings.HasPrefix(a.uris[i], prefix) {
			return a.uris[i]
		}
	}
	return ""
}

// nginxBinary finds Debian's nginx; without it the test skips, or fails in CI.
func nginxBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("OMLCRM_NGINX"), "/usr/sbin/nginx"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("required in CI: nginx (Debian package nginx, or OMLCRM_NGINX)")
	}
	t.Skip("skipping: no nginx (apt-get install nginx, or set OMLCRM_NGINX)")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNginx runs nginx with include (deploy/nginx/oml-crm.conf, the daemon's address
// pointed at hubAddr) inside an OMniLeads-like server block; it returns the base URL.
func startNginx(t *testing.T, include, hubAddr, appAddr string) string {
	t.Helper()
	return startNginxApp(t, include, hubAddr, appAddr, fmt.Sprintf("proxy_pass http://%s;\n      proxy_set_header Host $http_host;", appAddr))
}

// startNginxApp is startNginx with OMniLeads' own `location /` body given.
func startNginxApp(t *testing.T, include, hubAddr, appAddr, appLocation string) string {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(pgtest.ModuleRoot(t), "deploy", "nginx", include))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(string(src), "127.0.0.1:8090", hubAddr)
	if err := os.WriteFile(filepath.Join(dir, "oml-crm.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// `include uwsgi_params` is relative to the configuration's directory, /etc/nginx in
	// production: bring Debian's copy beside this one.
	if params, err := os.ReadFile("/etc/nginx/uwsgi_params"); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "uwsgi_params"), params, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	main := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 128; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log off;
  client_body_temp_path %[1]s/cb; proxy_temp_path %[1]s/px; fastcgi_temp_path %[1]s/fc;
  uwsgi_temp_path %[1]s/uw; scgi_temp_path %[1]s/sc;
  upstream omnileads_app
    { server %[3]s; }
  server {
    listen 127.0.0.1:%[2]d;
    # OMniLeads' WebRTC route: every URI containing "ws" goes to Kamailio.
    location ~* (ws) { return 418; }
    location / {
      %[4]s
    }
    include %[1]s/oml-crm.conf;
  }
}
`, dir, port, appAddr, appLocation)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
	out, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		out.Close()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/oml-crm/oml-crm.js")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 100 {
			log, _ := os.ReadFile(filepath.Join(dir, "nginx.out"))
			elog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %v\n%s\n%s", err, log, elog)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return base
}

// framingCRM is a CRM that refuses to be framed.
func framingCRM(t *testing.T, reqs chan<- string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.Header.Get("User-Agent") != framing.UserAgent && r.URL.Path != "/favicon.ico" {
			reqs <- r.URL.RequestURI()
		}
		fmt.Fprint(w, "<!DOCTYPE html><title>Locked CRM</title><h1>Locked CRM</h1>")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestConsoleThroughNginx(t *testing.T) {
	dbURL := pgtest.NewOMniLeadsDatabase(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	crm := newCRMServer(t)
	locked := make(chan string, 16)
	lockedCRM := framingCRM(t, locked)

	// The daemon's framing knowledge: probed in the background, as the daemon does.
	probes := framing.NewCache(framing.NewClient(nil), time.Hour, zerolog.Nop())
	probeCtx, stopProbes := context.WithCancel(context.Background())
	probesDone := make(chan struct{})
	go func() { defer close(probesDone); probes.Run(probeCtx) }()
	t.Cleanup(func() { stopProbes(); <-probesDone })
	// The sample session of OMniLeads' user 2 (agent 1), signed with OMniLeads' SECRET_KEY.
	th := newTestHub(t, Options{Auth: AuthDjangoSession, Sessions: NewPGSessionStore(pool), DjangoSecretKey: omlSecretKey, Framing: probes})
	app := newConsoleApp(t, sampleSessionKey)
	base := startNginx(t, "oml-crm.conf", strings.TrimPrefix(th.srv.URL, "http://"), strings.TrimPrefix(app.srv.URL, "http://"))

	t.Run("private endpoints refused through nginx", func(t *testing.T) {
		for _, p := range []string{"readyz", "healthz", "metrics", "agent", "agent.js", "ws/x", ""} {
			resp, err := http.Get(base + "/oml-crm/" + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET /oml-crm/%s through nginx: %d, want 404", p, resp.StatusCode)
			}
		}
		resp, err := http.Get(base + "/oml-crm/oml-crm.js")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("GET /oml-crm/oml-crm.js: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})

	t.Run("disposition form: OMniLeads' own CRM firing stopped", func(t *testing.T) {
		callData := `{"id_campana":"4","telefono":"3515555555","id_contacto":"-1","call_id":"1732428519.57","agent_id":"1"}`
		for _, tc := range []struct {
			route   string
			stopped bool
		}{
			{"/agente/calificar_llamada/", true},
			{"/agente/calificar_llamada_con_contacto/1/", true},
			{"/formulario/4/calificacion/1/update_calificacion/", true},
			// The re-disposition page fires "disposition" sites: left to OMniLeads.
			{"/formulario/4/calificacion/1/update_recalificacion/", false},
		} {
			resp, err := http.Get(base + tc.route + url.PathEscape(callData))
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			raw := app.lastURI(tc.route)
			got, err := url.PathUnescape(strings.TrimPrefix(raw, tc.route))
			if err != nil {
				t.Fatalf("%s: app got %q: %v", tc.route, raw, err)
			}
			var decoded map[string]any
			if err := json.Unmarshal([]byte(got), &decoded); err != nil {
				t.Fatalf("%s: call data the app got is not JSON: %q: %v", tc.route, got, err)
			}
			v, ok := decoded["en_recepcion_de_llamada"]
			if stopped := ok && v == false; stopped != tc.stopped || decoded["call_id"] != "1732428519.57" {
				t.Errorf("%s: call data the app got: %v (want en_recepcion_de_llamada=false: %v)", tc.route, decoded, tc.stopped)
			}
			if renamed := strings.Contains(body, `id="configuracionSitioExterno-oml-crm"`); renamed != tc.stopped ||
				(tc.stopped && strings.Contains(body, `id="configuracionSitioExterno"`)) {
				t.Errorf("%s: OMniLeads' set-up input renamed: %v, want %v:\n%s", tc.route, renamed, tc.stopped, body)
			}
		}
	})

	browser := newBrowserWindow(t, false, 1440, 900)
	closers := map[context.Context]context.CancelFunc{}
	open := func() context.Context {
		ctx, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		closers[ctx] = cancel
		if err := chromedp.Do(ctx); err != nil {
			t.Fatalf("open a tab: %v", err)
		}
		run(t, ctx, chromedp.Navigate(base+"/login/"))
		waitJS(t, ctx, `location.pathname === "/consola/"`)
		return ctx
	}
	shadow := func(sel string) string {
		return `document.getElementById("oml-crm-root").shadowRoot.querySelector('` + sel + `')`
	}
	card := func(id, rest string) string { return shadow(`.omlcrm-pop[data-pop-id="` + id + `"] ` + rest) }
	tab := open()

	t.Run("client injected and connected with the session cookie", func(t *testing.T) {
		waitJS(t, tab, `document.getElementById("oml-crm-root") !== null && `+shadow(".state.open")+` !== null`)
		if n := evalJS[int](t, tab, `document.querySelectorAll('script[src="/oml-crm/oml-crm.js"]').length`); n != 1 {
			t.Errorf("%d client scripts in the console page", n)
		}
		if th.Connections() != 1 {
			t.Errorf("hub has %d connections, want 1", th.Connections())
		}
	})

	shot := func(name string) {
		dir := os.Getenv("OMLCRM_CONSOLE_SCREENSHOTS")
		if dir == "" {
			return
		}
		time.Sleep(500 * time.Millisecond) // let the frames paint
		tctx, cancel := context.WithTimeout(tab, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var first string
	t.Run("embedded pop at a usable size", func(t *testing.T) {
		n := browserPop(crm, "1732428519.57", 1, catalog.TriggerAutomatic, catalog.TargetEmbedded, "GET", "")
		n.Campaign = &catalog.Campaign{ID: 4, Name: "Demo preview (clean URL)", Type: catalog.TypePreview}
		first = n.ID
		mustPop(t, th.Hub, n)
		if r := crm.next(t); r.Path != "/crm/1732428519.57" {
			t.Fatalf("CRM got %s %s", r.Method, r.Path)
		}
		waitJS(t, tab, card(n.ID, "iframe.omlcrm-iframe")+` !== null`)
		var box struct{ Left, Top, Right, Bottom, VW, VH float64 }
		b := evalJS[string](t, tab, `JSON.stringify((function(){var r=`+card(n.ID, "iframe")+`.getBoundingClientRect();`+
			`return {Left:r.left,Top:r.top,Right:r.right,Bottom:r.bottom,VW:innerWidth,VH:innerHeight};})())`)
		if err := json.Unmarshal([]byte(b), &box); err != nil {
			t.Fatal(err)
		}
		if w, h := box.Right-box.Left, box.Bottom-box.Top; w < 600 || h < 400 {
			t.Errorf("embedded CRM is %.0f×%.0f CSS px, want at least 600×400", w, h)
		}
		if box.Left < 0 || box.Top < 0 || box.Right > box.VW || box.Bottom > box.VH {
			t.Errorf("embedded CRM %+v is not inside the %.0f×%.0f viewport", box, box.VW, box.VH)
		}
		// The console's CSS did not reach the panel, and the panel's did not reach the console.
		if fs := evalJS[string](t, tab, `getComputedStyle(`+card(n.ID, ".omlcrm-campaign")+`).fontSize`); fs == "13px" {
			t.Error("the console's CSS styles the panel")
		}
		if w := evalJS[float64](t, tab, `document.getElementById("dataView").getBoundingClientRect().width`); w < 900 {
			t.Errorf("the console's own #dataView is %.0f px wide: the client changed its layout", w)
		}
		shot("console-pop.png")
	})

	t.Run("framing-refusing CRM turned into a button", func(t *testing.T) {
		n := browserPop(crm, "1732428530.61", 1, catalog.TriggerAutomatic, catalog.TargetEmbedded, "GET", "")
		n.Campaign = &catalog.Campaign{ID: 3, Name: "Demo entrante", Type: catalog.TypeInbound}
		n.Site.URL = lockedCRM.URL + "/ficha/{1}"
		n.Request.URL = lockedCRM.URL + "/ficha/321321321?idCamp=3"
		// The daemon learns the refusal by itself: the first lookup queues the probe.
		probes.Lookup(n.Site)
		for deadline := time.Now().Add(10 * time.Second); ; {
			if _, ok := probes.Result(n.Site); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the framing probe did not finish")
			}
			time.Sleep(20 * time.Millisecond)
		}
		mustPop(t, th.Hub, n)
		open := card(n.ID, ".omlcrm-open")
		waitJS(t, tab, open+` !== null`)
		if txt := evalJS[string](t, tab, open+`.textContent`); txt != "Open CRM in a tab" {
			t.Errorf("button says %q", txt)
		}
		if evalJS[bool](t, tab, card(n.ID, "iframe")+` !== null`) {
			t.Error("an iframe was made for a CRM that refuses framing")
		}
		select {
		case r := <-locked:
			t.Errorf("the refusing CRM was requested (%s) before the agent clicked", r)
		default:
		}
		shot("console-frame-refused.png")
	})

	t.Run("card cleared after call.ended unless pinned, its storage with it", func(t *testing.T) {
		pinned := shadow(`.omlcrm-pop:not([data-pop-id="` + first + `"]) .omlcrm-pin`)
		run(t, tab, chromedp.Click(chromedp.JSPath(pinned)))
		waitJS(t, tab, pinned+`.getAttribute("aria-pressed") === "true"`)
		for _, call := range []string{"1732428519.57", "1732428530.61"} {
			if err := th.CallEnded(context.Background(), call); err != nil {
				t.Fatal(err)
			}
		}
		waitJS(t, tab, card(first, "header")+` === null`)
		if n := evalJS[int](t, tab, `document.getElementById("oml-crm-root").shadowRoot.querySelectorAll(".omlcrm-pop").length`); n != 1 {
			t.Fatalf("%d cards after the grace period, want the pinned one", n)
		}
		run(t, tab, chromedp.Click(chromedp.JSPath(pinned)))
		waitJS(t, tab, `document.getElementById("oml-crm-root").shadowRoot.querySelectorAll(".omlcrm-pop").length === 0`)
		if keys := evalJS[string](t, tab, `Object.keys(localStorage).filter(function(k){return k.indexOf("omlcrm.claim.")===0}).join(",")`); keys != "" {
			t.Errorf("claims left in localStorage: %s", keys)
		}
	})

	t.Run("one automatic pop across two tabs", func(t *testing.T) {
		second := open()
		waitJS(t, second, shadow(".state.open")+` !== null`)
		n := browserPop(crm, "1732428600.70", 1, catalog.TriggerAutomatic, catalog.TargetEmbedded, "GET", "")
		mustPop(t, th.Hub, n)
		if r := crm.next(t); r.Path != "/crm/1732428600.70" {
			t.Fatalf("CRM got %s %s", r.Method, r.Path)
		}
		frames := func(ctx context.Context) int {
			return evalJS[int](t, ctx, `(`+card(n.ID, "iframe")+` !== null) ? 1 : 0`)
		}
		// Whichever tab leads opens it; the other says it was handled.
		for _, ctx := range []context.Context{tab, second} {
			waitJS(t, ctx, card(n.ID, "iframe")+` !== null || (`+card(n.ID, ".omlcrm-status")+` !== null && `+
				card(n.ID, ".omlcrm-status")+`.textContent === "Opened in another page")`)
		}
		if got := frames(tab) + frames(second); got != 1 {
			t.Fatalf("%d tabs opened the automatic pop, want 1", got)
		}
		crm.none(t)

		// The agent closes the tab that acted: the other one acts for the next pop.
		leader, other := tab, second
		if frames(second) == 1 {
			leader, other = second, tab
		}
		closers[leader]()
		for deadline := time.Now().Add(10 * time.Second); th.Connections() != 1; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections after closing a tab", th.Connections())
			}
		}
		next := browserPop(crm, "1732428700.80", 1, catalog.TriggerAutomatic, catalog.TargetEmbedded, "GET", "")
		mustPop(t, th.Hub, next)
		if r := crm.next(t); r.Path != "/crm/1732428700.80" {
			t.Fatalf("CRM got %s %s", r.Method, r.Path)
		}
		waitJS(t, other, card(next.ID, "iframe")+` !== null`)
	})
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b := new(strings.Builder)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// uwsgiApp is OMniLeads' production shape: the application behind uwsgi_pass. It answers
// every request with page and records the uwsgi variables of each.
type uwsgiApp struct {
	ln   net.Listener
	mu   sync.Mutex
	vars []map[string]string
}

func newUwsgiApp(t *testing.T, page string) *uwsgiApp {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &uwsgiApp{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.serve(c, page)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return a
}

// serve reads one uwsgi packet (modifier1, little-endian size, modifier2, then
// length-prefixed key/value pairs) and writes an HTTP response.
func (a *uwsgiApp) serve(c net.Conn, page string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, 4)
	if _, err := io.ReadFull(c, head); err != nil {
		return
	}
	body := make([]byte, int(head[1])|int(head[2])<<8)
	if _, err := io.ReadFull(c, body); err != nil {
		return
	}
	vars := map[string]string{}
	for len(body) >= 2 {
		kl := int(body[0]) | int(body[1])<<8
		if len(body) < 2+kl+2 {
			break
		}
		k := string(body[2 : 2+kl])
		body = body[2+kl:]
		vl := int(body[0]) | int(body[1])<<8
		if len(body) < 2+vl {
			break
		}
		vars[k] = string(body[2 : 2+vl])
		body = body[2+vl:]
	}
	a.mu.Lock()
	a.vars = append(a.vars, vars)
	a.mu.Unlock()
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s", len(page), page)
}

func (a *uwsgiApp) last(path string) map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.vars) - 1; i >= 0; i-- {
		if strings.HasPrefix(a.vars[i]["PATH_INFO"], path) {
			return a.vars[i]
		}
	}
	return nil
}

// TestConsoleThroughNginxUwsgi: the uwsgi variant of the include injects the client and
// stops OMniLeads' own firing the same way.
func TestConsoleThroughNginxUwsgi(t *testing.T) {
	th := newTestHub(t, Options{})
	app := newUwsgiApp(t, `<!DOCTYPE html><html><body><iframe id="dataView" name="crm"></iframe>`+
		`<input class="hidden" value='{}' id="configuracionSitioExterno"></body></html>`)
	addr := app.ln.Addr().String()
	base := startNginxApp(t, "oml-crm-uwsgi.conf", strings.TrimPrefix(th.srv.URL, "http://"), addr,
		"include uwsgi_params;\n      uwsgi_pass "+addr+";")

	get := func(path string) string {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Content-Encoding") != "" {
			t.Fatalf("GET %s: answered %s", path, resp.Header.Get("Content-Encoding"))
		}
		return readAll(t, resp)
	}
	if page := get("/consola/"); !strings.Contains(page, `<script src="/oml-crm/oml-crm.js" data-oml-crm="auto" defer></script></body>`) {
		t.Errorf("console page through uwsgi: no client injected:\n%s", page)
	}
	if v := app.last("/consola/"); v == nil || v["HTTP_ACCEPT_ENCODING"] != "" {
		t.Errorf("the app was asked for Accept-Encoding %q", v["HTTP_ACCEPT_ENCODING"])
	}
	callData := `{"id_campana":"4","telefono":"3515555555","id_contacto":"-1","call_id":"1732428519.57"}`
	page := get("/agente/calificar_llamada/" + url.PathEscape(callData))
	if strings.Contains(page, `id="configuracionSitioExterno"`) {
		t.Error("OMniLeads' site configuration input still findable by its script")
	}
	v := app.last("/agente/calificar_llamada/")
	var decoded map[string]any
	if v == nil || json.Unmarshal([]byte(strings.TrimPrefix(v["PATH_INFO"], "/agente/calificar_llamada/")), &decoded) != nil ||
		decoded["en_recepcion_de_llamada"] != false || decoded["call_id"] != "1732428519.57" {
		t.Errorf("PATH_INFO the app got: %q", v["PATH_INFO"])
	}
	if page := get("/oml-crm/metrics"); strings.Contains(page, "omlcrm_") {
		t.Error("/oml-crm/metrics reachable through the uwsgi include")
	}
}
