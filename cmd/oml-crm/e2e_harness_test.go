package main

// The end-to-end harness: the real oml-crm binary (built once per test run), a fake
// Asterisk (amitest / aritest), the PostgreSQL catalog seeded from testdata/omldb, a local
// CRM (httptest) and websocket agents.

import (
	"bytes"
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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/omlcrm/oml-crm/agentws"
	"github.com/omlcrm/oml-crm/crmnotify/framing"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

var e2eBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// TestMain removes the binary the end-to-end tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if e2eBinary.dir != "" {
		os.RemoveAll(e2eBinary.dir)
	}
	os.Exit(code)
}

// buildBinary builds cmd/oml-crm once per test run (with the race detector when the
// tests run with it, so the daemon's own races fail the tests too).
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	e2eBinary.once.Do(func() {
		e2eBinary.dir, e2eBinary.err = os.MkdirTemp("", "oml-crm-e2e-")
		if e2eBinary.err != nil {
			return
		}
		e2eBinary.path = filepath.Join(e2eBinary.dir, "oml-crm")
		args := []string{"build", "-o", e2eBinary.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(filepath.Join(runtimeGOROOT(), "bin", "go"), append(args, ".")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			e2eBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if e2eBinary.err != nil {
		t.Fatal(e2eBinary.err)
	}
	return e2eBinary.path
}

func runtimeGOROOT() string {
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return "/usr/local/go"
}

// crmServer is the CRM the daemon delivers to: it records every request, answers the
// sites' login, and can be switched into an outage.
type crmServer struct {
	*httptest.Server
	outage atomic.Bool
	delay  atomic.Int64 // nanoseconds to wait before answering a delivery

	mu   sync.Mutex
	reqs []crmRequest
}

type crmRequest struct {
	Method, Path, RawQuery string
	Key, Auth, Signature   string
	ContentType            string
	Body                   []byte
	Status                 int
}

const crmToken = "e2e-bearer-token"

func newCRM(t *testing.T) *crmServer {
	c := &crmServer{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") == framing.UserAgent {
			return // the daemon learning whether its embedded sites refuse framing: not a delivery
		}
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/api/login" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token": %q, "expires_in": 3600}`, crmToken)
			return
		}
		if d := time.Duration(c.delay.Load()); d > 0 {
			time.Sleep(d)
		}
		status := http.StatusOK
		if c.outage.Load() {
			status = http.StatusServiceUnavailable
		}
		c.mu.Lock()
		c.reqs = append(c.reqs, crmRequest{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Key: r.Header.Get("Idempotency-Key"), Auth: r.Header.Get("Authorization"),
			Signature: r.Header.Get("X-OMLCRM-Signature"), ContentType: r.Header.Get("Content-Type"),
			Body: body, Status: status})
		c.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(c.Close)
	return c
}

// accepted returns the accepted requests per idempotency key.
func (c *crmServer) accepted() map[string][]crmRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]crmRequest{}
	for _, r := range c.reqs {
		if r.Status == http.StatusOK {
			out[r.Key] = append(out[r.Key], r)
		}
	}
	return out
}

func (c *crmServer) attempts(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.reqs {
		if r.Key == key {
			n++
		}
	}
	return n
}

// omlDatabase seeds a fresh database from testdata/omldb and points its sites at crm.
// Beyond the seed (campaigns 11 preview/agent GET, 12 preview/agent clean URL,
// 13 dialer/server POST JSON with login, 15 inbound form only) it adds:
//
//	16 inbound, automatic trigger, POST form, new tab, clean URL
//	17 manual, server trigger, GET
//	18 dialer, disposition trigger (not fired on connect)
func omlDatabase(t *testing.T, crm string) string {
	t.Helper()
	db := pgtest.NewDatabase(t)
	root := pgtest.ModuleRoot(t)
	pgtest.ExecFile(t, db, filepath.Join(root, "testdata", "omldb", "schema.sql"))
	pgtest.ExecFile(t, db, filepath.Join(root, "testdata", "omldb", "seed.sql"))
	pgtest.Exec(t, db, strings.ReplaceAll(`
UPDATE ominicontacto_app_sitioexterno SET url = replace(url, 'https://my_crm.domain.com', 'CRM/my_crm') WHERE id IN (1, 2);
UPDATE ominicontacto_app_sitioexterno SET url = 'CRM/api/calls' WHERE id = 3;
UPDATE ominicontacto_app_autenticacionsitioexterno SET url = 'CRM/api/login';
INSERT INTO ominicontacto_app_sitioexterno (id, nombre, url, oculto, disparador, metodo, formato, objetivo, autenticacion_id) VALUES
    (4, 'auto form tab', 'CRM/auto/{id}', false, 2, 2, 2, 2, NULL),
    (5, 'server get', 'CRM/server/get', false, 3, 1, 1, NULL, NULL),
    (6, 'disposition', 'CRM/disposition', false, 4, 2, 4, NULL, NULL);
INSERT INTO ominicontacto_app_campana (id, nombre, estado, type, tipo_interaccion, bd_contacto_id, sitio_externo_id) VALUES
    (16, 'Inbound auto', 2, 3, 3, 1, 4),
    (17, 'Manual server GET', 2, 1, 2, 1, 5),
    (18, 'Dialer disposition', 2, 2, 2, 1, 6);
INSERT INTO ominicontacto_app_parametroscrm (id, campana_id, nombre, valor, tipo) VALUES
    (14, 16, '{id}', 'id_contacto', 3),
    (15, 16, 'nombre', 'nombre', 2),
    (16, 16, 'agent', 'agent_username', 3),
    (17, 17, 'call', 'call_id', 3),
    (18, 17, 'ticket', 'Omlcrmticket', 5),
    (19, 18, 'call', 'call_id', 3);
`, "CRM", crm))
	return db
}

// e2eConfig is the daemon's configuration file for a test.
type e2eConfig struct {
	Listen      string
	Source      string // ami | ari
	AMIAddress  string
	AMIUser     string
	AMISecret   string
	ARIURL      string
	DatabaseURL string
	CatalogFile string // catalog.source=file when set
	QueuePath   string
	QueueURL    string // delivery.store=postgres at this URL instead of SQLite at QueuePath
	TokenSecret string
	Delivery    string // extra keys of the delivery mapping ("sites: {…}")
	Extra       string // appended YAML
}

func (c e2eConfig) write(t *testing.T, path string) {
	t.Helper()
	src := c.Source
	if src == "" {
		src = "ami"
	}
	catalogSrc := "catalog: {source: omldb, cache_ttl: 1s}"
	if c.CatalogFile != "" {
		catalogSrc = fmt.Sprintf("catalog: {source: file, file: %q}", c.CatalogFile)
	}
	queue := fmt.Sprintf("delivery: {store: sqlite, sqlite_path: %q, timeout: 3s%s}", c.QueuePath, deliveryExtra(c.Delivery))
	if c.QueueURL != "" {
		queue = fmt.Sprintf("delivery: {store: postgres, postgres_url: %q, timeout: 3s%s}", c.QueueURL, deliveryExtra(c.Delivery))
	}
	y := fmt.Sprintf(`log: {level: debug, format: json}
http: {listen: %q, shutdown_timeout: 10s}
asterisk:
  source: %s
  ami: {address: %q, username: %q, secret: %q, ping_interval: 2s}
  ari: {url: %q, username: e2e, password: e2e-ari-secret}
calls: {lazy_var_timeout: 300ms}
%s
database: {url: %q}
%s
agentws: {token_secret: %q}
%s`, c.Listen, src, c.AMIAddress, c.AMIUser, c.AMISecret, c.ARIURL, catalogSrc, c.DatabaseURL, queue, c.TokenSecret, c.Extra)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
}

func deliveryExtra(s string) string {
	if s == "" {
		return ""
	}
	return ", " + s
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemonProc is a running `oml-crm run`.
type daemonProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	logPath string
	base    string
	done    chan struct{}
	err     error
}

func startDaemonProc(t *testing.T, bin, cfgPath, listen string) *daemonProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "daemon.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{t: t, cmd: cmd, logPath: logPath, base: "http://" + listen, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("daemon log (%s):\n%s", logPath, tail(p.log(), 60))
		}
	})
	return p
}

func (p *daemonProc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits for /readyz to answer 200.
func (p *daemonProc) waitReady() {
	p.t.Helper()
	waitFor(p.t, 20*time.Second, "the daemon to be ready", func() bool {
		select {
		case <-p.done:
			p.t.Fatalf("the daemon exited before being ready: %v", p.err)
		default:
		}
		code, _ := httpGet(p.base + "/readyz")
		return code == http.StatusOK
	})
}

// stop sends SIGTERM and requires a clean exit 0.
func (p *daemonProc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatal("the daemon did not stop within 30s of SIGTERM")
	}
	if p.err != nil {
		p.t.Fatalf("daemon exit after SIGTERM: %v (want 0)", p.err)
	}
}

// kill9 kills the daemon without a chance to clean up.
func (p *daemonProc) kill9() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func httpGet(u string) (int, string) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of one sample (name with labels as exposed, e.g.
// `omlcrm_connects_total{outcome="server"}`) from /metrics.
func (p *daemonProc) metric(sample string) float64 {
	p.t.Helper()
	_, body := httpGet(p.base + "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return -1
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wsAgent is an agent page connected to /ws with a token.
type wsAgent struct {
	conn      *websocket.Conn
	pops      chan agentws.PopMessage
	errs      chan string
	withdrawn chan [2]string // pop.withdrawn {id, reason}
}

func dialAgent(t *testing.T, base, secret string, agentID int) *wsAgent {
	t.Helper()
	tok, err := agentws.MintToken([]byte(secret), agentID, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatalf("agent %d: websocket: %v", agentID, err)
	}
	conn.SetReadLimit(1 << 20)
	a := &wsAgent{conn: conn, pops: make(chan agentws.PopMessage, 100), errs: make(chan string, 100),
		withdrawn: make(chan [2]string, 100)}
	hello := make(chan struct{})
	go func() {
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var m struct {
				Type   string `json:"type"`
				ID     string `json:"id"`
				Error  string `json:"error"`
				Reason string `json:"reason"`
			}
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			switch m.Type {
			case agentws.TypeHello:
				close(hello)
			case agentws.TypePop:
				var pop agentws.PopMessage
				json.Unmarshal(data, &pop)
				a.pops <- pop
				ack, _ := json.Marshal(map[string]string{"type": agentws.TypeAck, "id": m.ID})
				conn.Write(context.Background(), websocket.MessageText, ack)
			case agentws.TypeError:
				a.errs <- m.Error
			case agentws.TypePopWithdrawn:
				a.withdrawn <- [2]string{m.ID, m.Reason}
			}
		}
	}()
	t.Cleanup(func() { conn.CloseNow() })
	select {
	case <-hello:
	case <-time.After(5 * time.Second):
		t.Fatalf("agent %d: no hello", agentID)
	}
	return a
}

// nextPop waits for the agent's next pop.
func (a *wsAgent) nextPop(t *testing.T) agentws.PopMessage {
	t.Helper()
	select {
	case p := <-a.pops:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no pop within 10s")
	}
	return agentws.PopMessage{}
}

// noPop checks that no pop is pending (after the deliveries that followed were seen).
func (a *wsAgent) noPop(t *testing.T) {
	t.Helper()
	select {
	case p := <-a.pops:
		t.Errorf("unexpected pop: campaign %d call %s", p.Campaign.ID, p.CallID)
	default:
	}
}

func jsonBody(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("CRM body %q: %v", b, err)
	}
	return m
}
