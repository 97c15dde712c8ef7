package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

func TestCheckDocsCatalogIsClean(t *testing.T) {
	code, stdout, stderr := coreRun(t, "check", "--catalog", coreDocsCatalog(t))
	if code != 0 || !strings.Contains(stdout, "checked 2 active campaign(s)") || !strings.Contains(stdout, "no problems") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// brokenCatalog has one campaign per kind of problem `check` must find, plus campaigns it
// must leave alone (inactive, form only, disposition trigger).
const brokenCatalog = `
sites:
  - {id: 1, name: my_crm, url: "https://my_crm.domain.com/{1}/{2}/{3}/{4}", trigger: automatic, method: GET, target: embedded}
  - {id: 2, name: relative, url: "my_crm.domain.com/crm", trigger: agent, method: GET, target: new_tab}
  - {id: 3, name: ftp-server, url: "ftp://crm.example.com/in", trigger: server, method: POST, format: json}
  - {id: 4, name: at-disposition, url: "https://crm.example.com/d", trigger: disposition, method: POST, format: json}
  - {id: 5, name: bad-url, url: "https://crm example.com/x", trigger: server, method: GET}
contact_databases:
  - id: 5
    name: clientes
    columns: [telefono, nombre, lang]
campaigns:
  - id: 11
    name: Ventas
    type: preview
    site: 1
    contact_database: 5
    params:
      - {family: call, source: id_contacto, name: "{1}"}
      - {family: campaign, source: id, name: "{2}"}
      - {family: contact, source: apellido, name: extra}
      - {family: call, source: rec_filename, name: "{4}"}
      - {family: call, source: uniqueid, name: u}
      - {family: campaign, source: fecha, name: f}
      - {family: fixed, source: x, name: "{7}"}
  - {id: 12, name: Soporte, type: inbound, site: 2, params: [{family: contact, source: nombre, name: n}]}
  - {id: 13, name: Cobranzas, type: dialer, site: 3, params: []}
  - {id: 14, name: Encuesta, type: inbound, site: 4, params: []}
  - {id: 15, name: Vieja, type: inbound, site: 1, state: finished, params: []}
  - {id: 16, name: Formulario, type: inbound, interaction: form, site: 1, params: []}
  - {id: 17, name: Roto, type: inbound, site: 5, params: []}
  - {id: 18, name: Sin sitio, type: inbound, interaction: form_and_site}
`

func TestCheckFindsEachKindOfProblem(t *testing.T) {
	code, stdout, stderr := coreRun(t, "check", "--catalog", coreWriteCatalog(t, brokenCatalog))
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{
		"campaign 11 (Ventas)\n  site 1 (my_crm): automatic GET https://my_crm.domain.com/{1}/{2}/{3}/{4}\n",
		`parameter "{3}": the site URL "https://my_crm.domain.com/{1}/{2}/{3}/{4}" has the placeholder {3} but no parameter is named {3}`,
		`parameter "extra": contact data "apellido": the campaign's contact database 5 (clientes) has no column "apellido"; its columns are: telefono, nombre, lang`,
		`parameter "u": unknown call data "uniqueid"; valid call data are: call_id, agent_id, agent_username, agent_name, telefono, id_contacto, rec_filename, call_wait_duration, datetime`,
		`parameter "f": unknown campaign data "fecha"; valid campaign data are: id, nombre, tipo`,
		`parameter "{7}": this parameter fills the placeholder {7} but the site URL`,
		"campaign 12 (Soporte)",
		`has no scheme or host`,
		`parameter "n": contact data "nombre" but the campaign has no contact database`,
		"campaign 13 (Cobranzas)",
		`uses the scheme "ftp"; oml-crm sends requests and opens pages only over http or https`,
		"campaign 17 (Roto)",
		`does not parse: invalid character " " in host name`,
		"campaign 18 (Sin sitio)",
		"no external site is assigned",
		"skipped: campaign 14 (Encuesta): site 4 (at-disposition) has trigger disposition",
		"checked 5 active campaign(s) with an external site (1 skipped, 1 inactive, 1 without site interaction): 10 problem(s) in 5 campaign(s)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check output lacks %q", want)
		}
	}
	for _, quiet := range []string{"Vieja", "Formulario"} {
		if strings.Contains(stdout, quiet) {
			t.Errorf("check reported campaign %s, which does not invoke a CRM", quiet)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s", stdout)
	}
}

func coreWriteFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckWithConfig(t *testing.T) {
	catalogFile := filepath.Join(pgtest.ModuleRoot(t), "testdata", "catalog", "docs-examples.yaml")
	good := coreWriteFile(t, "good.yaml", "asterisk:\n  ami: {username: omlcrm, secret: ami-s3cret}\nagentws: {token_secret: tok-s3cret-0123456789abcdef}\ncatalog: {source: file, file: "+catalogFile+"}\n")
	code, stdout, stderr := coreRun(t, "check", "--config", good)
	if code != 0 || !strings.Contains(stdout, "configuration "+good+": ok") || !strings.Contains(stdout, "no problems") {
		t.Errorf("good config: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	bad := coreWriteFile(t, "bad.yaml", "log: {level: loud}\nasterisk:\n  ami: {username: omlcrm, secret: ami-s3cret}\nagentws: {token_secret: tok-s3cret}\ncatalog: {source: file}\n")
	code, stdout, stderr = coreRun(t, "check", "--config", bad)
	if code != 2 || !strings.Contains(stderr, "log.level") || !strings.Contains(stderr, "catalog.file") {
		t.Errorf("bad config: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "ami-s3cret") || strings.Contains(stdout+stderr, "tok-s3cret") {
		t.Error("check printed the AMI secret")
	}

	typo := coreWriteFile(t, "typo.yaml", "catalgo: {source: file}\n")
	if code, _, stderr = coreRun(t, "check", "--config", typo); code != 2 || !strings.Contains(stderr, "catalgo") {
		t.Errorf("unknown key: exit %d, stderr %s", code, stderr)
	}
}

func TestCheckCouldNotRun(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"catalog unreachable", []string{"--catalog", "postgres://oml:hunter2@127.0.0.1:1/oml?connect_timeout=2"}, "catalog unreachable"},
		{"catalog file missing", []string{"--catalog", "file:/nonexistent/catalog.yaml"}, "open catalog"},
		{"catalog file invalid", []string{"--catalog", coreWriteCatalog(t, "campaigns: [{id: x}]\n")}, "campaigns[0].id"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := coreRun(t, append([]string{"check"}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d (want 2), stderr %q (want %q), stdout %q", code, stderr, tt.want, stdout)
			}
			if strings.Contains(stdout+stderr, "hunter2") {
				t.Error("password printed")
			}
		})
	}
}

func TestCheckOMniLeadsDatabase(t *testing.T) {
	db := coreSeedOMniLeads(t)
	code, stdout, stderr := coreRun(t, "check", "--catalog", db)
	if code != 0 || !strings.Contains(stdout, "no problems") {
		t.Fatalf("seeded database: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// An admin renames a contact parameter's column and empties a holder's name in OMniLeads.
	pgtest.Exec(t, db, `UPDATE ominicontacto_app_parametroscrm SET valor = 'apellido' WHERE id = 10;
		UPDATE ominicontacto_app_parametroscrm SET nombre = 'tres' WHERE id = 7;`)
	code, stdout, stderr = coreRun(t, "check", "--catalog", db)
	if code != 1 {
		t.Fatalf("broken database: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{
		"campaign 13 (Server delivery)",
		`parameter "customer": contact data "apellido"`,
		"idcliente, nombre, telefono, celular, email",
		"campaign 12 (Example 2)",
		`parameter "{3}"`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout+stderr, "crm-password-1") {
		t.Error("check printed the site authentication password")
	}
}

func TestCheckHelp(t *testing.T) {
	code, stdout, stderr := coreRun(t, "check", "--help")
	if code != 0 || stderr != "" || !strings.Contains(stdout, "--catalog") || !strings.Contains(stdout, "--config") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestCheckRealOMniLeadsSchema runs check on OMniLeads' real 2.6.3 schema and sample rows
// (../shared/reference): every campaign there with an external site is well formed.
func TestCheckRealOMniLeadsSchema(t *testing.T) {
	db := pgtest.NewOMniLeadsDatabase(t)
	code, stdout, stderr := coreRun(t, "check", "--catalog", db)
	if code != 0 || !strings.Contains(stdout, "checked 4 active campaign(s) with an external site") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}
