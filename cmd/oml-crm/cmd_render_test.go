package main

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

const (
	docsExample1 = "https://my_crm.domain.com?idClient=321321321&idCamp=11&lang=es&recordingFile=prev-115-20190604-2-4149014-1559667982.424.wav"
	docsExample2 = "https://my_crm.domain.com/321321321/11/es/prev-115-20190604-2-4149014-1559667982.424.wav"
)

// docsCallArgs are the documentation example's call: contact 321321321, agent 2.
var docsCallArgs = []string{"--contact", "321321321", "--agent", "2", "--call-id", "1559667982.424",
	"--phone", "4149014", "--rec-filename", "prev-115-20190604-2-4149014-1559667982.424.wav"}

// coreRun calls the CLI in-process as the binary would, returning exit code, stdout, stderr.
func coreRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func coreRenderJSON(t *testing.T, args ...string) renderOutput {
	t.Helper()
	code, stdout, stderr := coreRun(t, append([]string{"render"}, args...)...)
	if code != 0 {
		t.Fatalf("render %q: exit %d, stderr: %s", args, code, stderr)
	}
	var out renderOutput
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("render output is not the documented JSON: %v\n%s", err, stdout)
	}
	// The documented keys are all there, whatever their values.
	var raw map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"trigger", "target", "method", "url", "headers", "content_type", "body"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("render output lacks %q: %s", k, stdout)
		}
	}
	return out
}

func coreWriteCatalog(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + path
}

func coreDocsCatalog(t *testing.T) string {
	return "file:" + filepath.Join(pgtest.ModuleRoot(t), "testdata", "catalog", "docs-examples.yaml")
}

func TestRenderDocsExamplesFromFileCatalog(t *testing.T) {
	cat := coreDocsCatalog(t)
	for _, tc := range []struct {
		campaign, want string
	}{{"11", docsExample1}, {"12", docsExample2}} {
		out := coreRenderJSON(t, append([]string{"--catalog", cat, "--campaign", tc.campaign}, docsCallArgs...)...)
		if out.URL != tc.want {
			t.Errorf("campaign %s:\n got %s\nwant %s", tc.campaign, out.URL, tc.want)
		}
		if out.Method != "GET" || out.Body != "" || out.ContentType != "" || len(out.Headers) != 0 {
			t.Errorf("campaign %s: %+v", tc.campaign, out)
		}
		if out.Trigger != "agent" || out.Target != "embedded" {
			t.Errorf("campaign %s: trigger %q target %q", tc.campaign, out.Trigger, out.Target)
		}
	}
}

// coreSeedOMniLeads loads testdata/omldb (schema and seed, with the documentation examples as
// campaigns 11 and 12) into a fresh PostgreSQL database.
func coreSeedOMniLeads(t *testing.T) string {
	t.Helper()
	db := pgtest.NewDatabase(t)
	dir := filepath.Join(pgtest.ModuleRoot(t), "testdata", "omldb")
	pgtest.ExecFile(t, db, filepath.Join(dir, "schema.sql"))
	pgtest.ExecFile(t, db, filepath.Join(dir, "seed.sql"))
	return db
}

func TestRenderDocsExamplesFromOMniLeadsDatabase(t *testing.T) {
	db := coreSeedOMniLeads(t)
	for _, tc := range []struct {
		campaign, want string
	}{{"11", docsExample1}, {"12", docsExample2}} {
		out := coreRenderJSON(t, append([]string{"--catalog", db, "--campaign", tc.campaign}, docsCallArgs...)...)
		if out.URL != tc.want {
			t.Errorf("campaign %s:\n got %s\nwant %s", tc.campaign, out.URL, tc.want)
		}
	}

	// Campaign 13: server trigger, POST JSON, contact column, dialplan data, campaign type.
	out := coreRenderJSON(t, "--catalog", db, "--campaign", "13", "--contact", "321321321", "--agent", "1",
		"--phone", "4149014", "--var", "OMLCRMTICKET=T-123")
	want := `{"phone":"4149014","customer":"A-321","ticket":"T-123","campaign":"Dialer"}`
	if out.Trigger != "server" || out.Method != "POST" || out.ContentType != "application/json" || out.Body != want {
		t.Errorf("campaign 13: %+v\nwant body %s", out, want)
	}
	if out.Target != "" {
		t.Errorf("server site has target %q", out.Target)
	}

	code, _, stderr := coreRun(t, "render", "--catalog", db, "--campaign", "15")
	if code != 1 || !strings.Contains(stderr, "campaign 15 (Form only) has no external site") {
		t.Errorf("campaign without site: exit %d, %s", code, stderr)
	}
}

const formatsCatalog = `
sites:
  - {id: 1, name: crm, url: "https://crm.example.com/calls/{cliente}", trigger: server, method: POST, format: multipart}
  - {id: 2, name: form, url: "https://crm.example.com/f", trigger: automatic, method: POST, format: form, target: new_tab}
  - {id: 3, name: text, url: "https://crm.example.com/t", trigger: agent, method: POST, format: text, target: embedded}
contact_databases:
  - {id: 5, columns: [telefono, nombre]}
agents:
  - {id: 2, username: agent2, name: "Ana Pérez", sip_extension: 1002}
contacts:
  - {id: 7, database: 5, phone: "4149014", fields: {nombre: "José Ñandú"}}
campaigns:
  - id: 1
    name: multipart
    type: inbound
    site: 1
    contact_database: 5
    params:
      - {family: contact, source: nombre, name: "{cliente}"}
      - {family: call, source: agent_name, name: agente}
      - {family: dialplan, source: Omlcrmorigen, name: origen}
      - {family: call, source: datetime, name: cuando}
  - {id: 2, name: form, type: dialer, site: 2, contact_database: 5, params: [{family: contact, source: nombre, name: n}, {family: campaign, source: tipo, name: t}]}
  - {id: 3, name: text, type: manual, site: 3, contact_database: 5, params: [{family: contact, source: nombre, name: n}, {family: call, source: id_contacto, name: c}]}
  - {id: 4, name: nosite, type: manual, interaction: form}
`

func TestRenderPOSTFormats(t *testing.T) {
	cat := coreWriteCatalog(t, formatsCatalog)

	out := coreRenderJSON(t, "--catalog", cat, "--campaign", "1", "--contact", "7", "--agent", "2",
		"--var", "OmlcrmOrigen=web ñ & más", "--at", "2019-06-04T14:06:22-03:00")
	if out.URL != "https://crm.example.com/calls/Jos%C3%A9%20%C3%91and%C3%BA" {
		t.Errorf("multipart URL %s", out.URL)
	}
	mt, params, err := mime.ParseMediaType(out.ContentType)
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("content type %q: %v", out.ContentType, err)
	}
	form, err := multipart.NewReader(strings.NewReader(out.Body), params["boundary"]).ReadForm(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"agente": "Ana Pérez", "origen": "web ñ & más", "cuando": "2019-06-04 17:06:22"} {
		if got := form.Value[k]; len(got) != 1 || got[0] != want {
			t.Errorf("multipart %s = %q, want %q", k, got, want)
		}
	}

	out = coreRenderJSON(t, "--catalog", cat, "--campaign", "2", "--contact", "7")
	if out.Body != "n=Jos%C3%A9+%C3%91and%C3%BA&t=Dialer" || out.ContentType != "application/x-www-form-urlencoded" || out.Target != "new_tab" {
		t.Errorf("form: %+v", out)
	}
	if len(out.Fields) != 2 || out.Fields[0] != (renderField{"n", "José Ñandú"}) {
		t.Errorf("form fields: %+v", out.Fields)
	}

	// Without --contact: no contact, and id_contacto is OMniLeads' -1.
	out = coreRenderJSON(t, "--catalog", cat, "--campaign", "3")
	if out.Body != "n=\r\nc=-1\r\n" || out.ContentType != "text/plain; charset=utf-8" {
		t.Errorf("text: %q %q", out.Body, out.ContentType)
	}
}

func TestRenderErrors(t *testing.T) {
	cat := coreWriteCatalog(t, formatsCatalog)
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"unknown campaign", []string{"--catalog", cat, "--campaign", "99"}, 1, "campaign 99: not found"},
		{"unknown contact", []string{"--catalog", cat, "--campaign", "1", "--contact", "8"}, 1, "contact 8: not found"},
		{"unknown agent", []string{"--catalog", cat, "--campaign", "1", "--agent", "9"}, 1, "agent 9: not found"},
		{"no site", []string{"--catalog", cat, "--campaign", "4"}, 1, "campaign 4 (nosite) has no external site"},
		{"no campaign flag", []string{"--catalog", cat}, 2, "--campaign is required"},
		{"bad var", []string{"--catalog", cat, "--campaign", "1", "--var", "novalue"}, 2, `--var "novalue": want NAME=VALUE`},
		{"bad at", []string{"--catalog", cat, "--campaign", "1", "--at", "yesterday"}, 2, "RFC 3339"},
		{"unknown flag", []string{"--campagin", "1"}, 2, "unknown flag: --campagin"},
		{"bad catalog spec", []string{"--catalog", "mysql://x", "--campaign", "1"}, 2, "file:PATH"},
		{"missing catalog file", []string{"--catalog", "file:/nonexistent/c.yaml", "--campaign", "1"}, 2, "c.yaml"},
		{"catalog unreachable", []string{"--catalog", "postgres://oml:hunter2@127.0.0.1:1/oml?connect_timeout=2", "--campaign", "1"}, 2, "read campaign 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := coreRun(t, append([]string{"render"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tt.code, stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout on error: %q", stdout)
			}
			if strings.Count(stderr, tt.want) != 1 {
				t.Errorf("stderr names %q more than once (wrapped twice?): %s", tt.want, stderr)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Errorf("password printed: %s", stderr)
			}
		})
	}
	// A misconfigured campaign: the Render error names campaign, site and parameter.
	broken := coreWriteCatalog(t, strings.Replace(formatsCatalog, "source: agent_name", "source: agente_nombre", 1))
	code, _, stderr := coreRun(t, "render", "--catalog", broken, "--campaign", "1")
	if code != 1 || !strings.Contains(stderr, `campaign 1 (multipart), site 1 (crm), parameter "agente": unknown call data "agente_nombre"`) {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
}

func TestRenderHelp(t *testing.T) {
	code, stdout, stderr := coreRun(t, "render", "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, flag := range []string{"--campaign", "--contact", "--agent", "--call-id", "--phone", "--rec-filename", "--var", "--catalog", "--config"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("help lacks %s:\n%s", flag, stdout)
		}
	}
}

// Example 2 as the documentation configures it: campaign 11 itself, its id in holder {2}.
func TestRenderDocsExample2AsDocumented(t *testing.T) {
	cat := "file:" + filepath.Join(pgtest.ModuleRoot(t), "testdata", "catalog", "docs-example-2.yaml")
	out := coreRenderJSON(t, append([]string{"--catalog", cat, "--campaign", "11"}, docsCallArgs...)...)
	if out.URL != docsExample2 {
		t.Errorf("got  %s\nwant %s", out.URL, docsExample2)
	}
}
