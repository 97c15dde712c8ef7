package file

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

func TestDocsExamples(t *testing.T) {
	c, err := Open(filepath.Join(pgtest.ModuleRoot(t), "testdata", "catalog", "docs-examples.yaml"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx := context.Background()
	cp, err := c.Campaign(ctx, 11)
	if err != nil {
		t.Fatal(err)
	}
	wantSite := &catalog.Site{ID: 1, Name: "my_crm", URL: "https://my_crm.domain.com",
		Trigger: catalog.TriggerAgent, Method: catalog.MethodGET, Target: catalog.TargetEmbedded}
	if !reflect.DeepEqual(cp.Site, wantSite) {
		t.Errorf("site = %+v", cp.Site)
	}
	wantParams := []catalog.Param{
		{Family: catalog.FamilyCall, Source: "id_contacto", Name: "idClient"},
		{Family: catalog.FamilyCampaign, Source: "id", Name: "idCamp"},
		{Family: catalog.FamilyFixed, Source: "es", Name: "lang"},
		{Family: catalog.FamilyCall, Source: "rec_filename", Name: "recordingFile"},
	}
	if !reflect.DeepEqual(cp.Params, wantParams) || cp.Type != catalog.TypePreview || !cp.Active() ||
		cp.Interaction != catalog.InteractionSite || cp.ContactDatabase.ID != 1 {
		t.Errorf("campaign 11 = %+v", cp)
	}
	cp, err = c.Campaign(ctx, 12)
	if err != nil || cp.Site.URL != "https://my_crm.domain.com/{1}/{2}/{3}/{4}" || len(cp.Params) != 4 {
		t.Errorf("campaign 12 = %+v, %v", cp, err)
	}
	ct, err := c.Contact(ctx, 321321321)
	want := map[string]string{"telefono": "4149014", "nombre": "Juan", "apellido": "Pérez", "email": "juan@example.com"}
	if err != nil || !reflect.DeepEqual(ct.Fields, want) || ct.Phone != "4149014" || ct.DatabaseID != 1 {
		t.Errorf("contact = %+v, %v", ct, err)
	}
	a, err := c.AgentByExtension(ctx, "1002")
	if err != nil || a.ID != 2 || a.Name != "Ana Pérez" || a.UserID != 3 || a.Username != "agent2" {
		t.Errorf("agent = %+v, %v", a, err)
	}
	if a2, _ := c.Agent(ctx, 2); a2 != a {
		t.Error("Agent(2) and AgentByExtension(1002) differ")
	}
	all, _ := c.Campaigns(ctx)
	if len(all) != 2 || all[0].ID != 11 || all[1].ID != 12 {
		t.Errorf("Campaigns = %v", all)
	}
	for _, lookup := range []func() error{
		func() error { _, err := c.Campaign(ctx, 1); return err },
		func() error { _, err := c.Contact(ctx, 1); return err },
		func() error { _, err := c.Agent(ctx, 1); return err },
		func() error { _, err := c.AgentByExtension(ctx, "9999"); return err },
	} {
		if err := lookup(); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("unknown id: error = %v, want ErrNotFound", err)
		}
	}
}

const full = `
sites:
  - id: 1
    name: crm
    url: https://crm.example.com/{1}
    trigger: 3
    method: post
    format: JSON
    hidden: true
    auth: {url: https://crm.example.com/login, username: u, password: p4ss, duration: 3600}
  - {id: 2, url: "https://b.example.com", trigger: automatic, target: new_tab}
  - {id: 3, url: "https://c.example.com", trigger: agent, method: POST}
contact_databases:
  - {id: 5, columns: [idcliente, telefono, nombre], external_id_column: idcliente}
  - {id: 6, columns: [celular, nombre], phone_column: celular}
  - {id: 7, columns: [movil, nombre]}
campaigns:
  - id: 1
    name: Ventas
    type: 2
    interaction: 3
    state: 6
    site: 1
    contact_database: 5
    params:
      - {family: 5, source: Omlcrmticket, name: ticket}
      - {family: fixed, source: "", name: empty}
      - {family: contact, source: nombre, name: "{1}"}
  - {id: 2, type: inbound, site: 2, state: paused}
  - {id: 3, type: manual, interaction: form, site: 3}
agents:
  - {id: 7, username: a7, sip_extension: "1007"}
contacts:
  - {id: 1, database: 5, phone: 0351, external_id: "X-1", fields: {nombre: ~}}
  - {id: 2, database: 6, phone: "555", fields: {nombre: 007}}
  - {id: 3, database: 7, phone: "777"}
`

func TestParseAllForms(t *testing.T) {
	c, err := Parse("full.yaml", []byte(full))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	ctx := context.Background()
	cp, _ := c.Campaign(ctx, 1)
	s := cp.Site
	if s.Trigger != catalog.TriggerServer || s.Method != catalog.MethodPOST || s.Format != catalog.FormatJSON ||
		s.Target != catalog.TargetNone || !s.Hidden {
		t.Errorf("site 1 = %+v", s)
	}
	wantAuth := &catalog.SiteAuth{ID: 1, Name: "crm", URL: "https://crm.example.com/login", Username: "u", Password: "p4ss",
		TokenField: "token", Duration: 3600, StrictTLS: true}
	if !reflect.DeepEqual(s.Auth, wantAuth) {
		t.Errorf("auth = %#v", s.Auth)
	}
	if cp.Type != catalog.TypeDialer || cp.Interaction != catalog.InteractionFormAndSite || cp.State != 6 || cp.Active() {
		t.Errorf("campaign 1 = %+v", cp)
	}
	wantParams := []catalog.Param{
		{Family: catalog.FamilyDialplan, Source: "Omlcrmticket", Name: "ticket"},
		{Family: catalog.FamilyFixed, Source: "", Name: "empty"},
		{Family: catalog.FamilyContact, Source: "nombre", Name: "{1}"},
	}
	if !reflect.DeepEqual(cp.Params, wantParams) {
		t.Errorf("params = %+v", cp.Params)
	}
	cp, _ = c.Campaign(ctx, 2)
	if cp.Site.Target != catalog.TargetNewTab || cp.Site.Trigger != catalog.TriggerAutomatic || cp.State != 5 || cp.Interaction != catalog.InteractionSite {
		t.Errorf("campaign 2 = %+v site %+v", cp, cp.Site)
	}
	cp, _ = c.Campaign(ctx, 3)
	if cp.Site.Target != catalog.TargetEmbedded || cp.Site.Format != catalog.FormatMultipart || cp.Interaction != catalog.InteractionForm {
		t.Errorf("campaign 3 defaults: site %+v", cp.Site)
	}
	tests := map[int]map[string]string{
		1: {"idcliente": "X-1", "telefono": "0351", "nombre": ""},
		2: {"celular": "555", "nombre": "007"},
		3: {"movil": "777", "nombre": ""}, // no telefono column: the first column holds the phone
	}
	for id, want := range tests {
		ct, err := c.Contact(ctx, id)
		if err != nil || !reflect.DeepEqual(ct.Fields, want) {
			t.Errorf("contact %d fields = %v, %v; want %v", id, ct.Fields, err, want)
		}
	}
	if a, err := c.AgentByExtension(ctx, "1007"); err != nil || a.ID != 7 {
		t.Errorf("agent 1007 = %+v, %v", a, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown family", `
campaigns:
  - id: 1
    type: manual
    params:
      - {family: call, source: call_id, name: a}
      - {family: call, source: call_id, name: b}
      - {family: fixd, source: x, name: c}
`, []string{`demo.yaml:8: campaigns[0].params[2].family: unknown family "fixd"`}},
		{"unknown keys everywhere", `
sites:
  - {id: 1, url: "https://x", methd: GET}
campaigns:
  - {id: 1, type: manual, sitee: 1}
extra: 1
`, []string{
			"demo.yaml:3: sites[0].methd: unknown key",
			"demo.yaml:5: campaigns[0].sitee: unknown key",
			"demo.yaml:6: extra: unknown key",
		}},
		{"references", `
campaigns:
  - {id: 1, type: manual, site: 9, contact_database: 8}
contacts:
  - {id: 1, database: 8}
`, []string{
			"demo.yaml:3: campaigns[0].site: no site with id 9",
			"demo.yaml:3: campaigns[0].contact_database: no contact database with id 8",
			"demo.yaml:5: contacts[0].database: no contact database with id 8",
		}},
		{"duplicates", `
sites:
  - {id: 1, url: "https://a"}
  - {id: 1, url: "https://b"}
contact_databases:
  - {id: 2, columns: [telefono, telefono]}
campaigns:
  - {id: 3, type: manual}
  - {id: 3, type: manual}
agents:
  - {id: 4, sip_extension: 1001}
  - {id: 5, sip_extension: 1001}
  - {id: 4}
`, []string{
			"demo.yaml:4: sites[1].id: duplicate site id 1",
			`demo.yaml:6: contact_databases[0].columns[1]: duplicate column "telefono"`,
			"demo.yaml:9: campaigns[1].id: duplicate campaign id 3",
			"demo.yaml:12: agents[1].sip_extension: extension 1001 is already agent 4's",
			"demo.yaml:13: agents[2].id: duplicate agent id 4",
		}},
		{"bad values", `
sites:
  - {id: 0, url: "https://a", method: PUT, trigger: 9, format: json}
  - {id: 2, url: "https://a", trigger: server, target: embedded, auth: {username: u}}
campaigns:
  - {id: x, type: robot, interaction: 4, state: lost}
  - {name: no id}
`, []string{
			"demo.yaml:3: sites[0].id: must be a positive integer, got 0",
			`demo.yaml:3: sites[0].method: unknown method "PUT"`,
			"demo.yaml:3: sites[0].trigger: unknown trigger code 9",
			"demo.yaml:4: sites[1].target: server sites have no browser target",
			"demo.yaml:4: sites[1].auth.url: required",
			"demo.yaml:4: sites[1].auth.duration: give duration (seconds) or duration_field",
			`demo.yaml:6: campaigns[0].id: must be an integer, got "x"`,
			`demo.yaml:6: campaigns[0].type: unknown campaign type "robot"`,
			"demo.yaml:6: campaigns[0].interaction: unknown interaction code 4",
			`demo.yaml:6: campaigns[0].state: unknown state "lost"`,
			"demo.yaml:7: campaigns[1].id: required",
			"demo.yaml:7: campaigns[1].type: required",
		}},
		{"GET with format", `
sites:
  - {id: 1, url: "https://a", method: GET, format: json}
`, []string{"demo.yaml:3: sites[0].format: applies to POST sites only"}},
		{"contacts", `
contact_databases:
  - {id: 1, columns: [telefono, nombre]}
contacts:
  - {id: 1, database: 1, fields: {apellido: x, telefono: "1"}, external_id: e}
  - {id: 1, database: 1}
  - {id: 2}
`, []string{
			`demo.yaml:5: contacts[0].fields.apellido: contact database 1 has no column "apellido" (columns: telefono, nombre)`,
			`demo.yaml:5: contacts[0].fields.telefono: "telefono" is the phone column: give the value as phone`,
			"demo.yaml:5: contacts[0].external_id: contact database 1 has no external_id_column",
			"demo.yaml:6: contacts[1].id: duplicate contact id 1",
			"demo.yaml:7: contacts[2].database: required",
		}},
		{"params", `
campaigns:
  - id: 1
    type: manual
    params:
      - {family: call, name: x}
      - {source: id, name: y}
      - {family: campaign, source: id}
      - [a, b]
`, []string{
			"demo.yaml:6: campaigns[0].params[0].source: required",
			"demo.yaml:7: campaigns[0].params[1].family: required",
			"demo.yaml:8: campaigns[0].params[2].name: required",
			"demo.yaml:9: campaigns[0].params[3]: must be a mapping",
		}},
		{"not yaml", "sites: [", []string{"demo.yaml: yaml:"}},
		{"empty", "", []string{"demo.yaml: empty catalog"}},
		{"wrong shapes", "sites: 3\ncampaigns: {id: 1}\n", []string{
			"demo.yaml:1: sites: must be a list",
			"demo.yaml:2: campaigns: must be a list",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("demo.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q; got:\n%s", w, msg)
				}
			}
			if n := len(strings.Split(msg, "\n")); n != len(tt.want) {
				t.Errorf("got %d error lines, want %d:\n%s", n, len(tt.want), msg)
			}
		})
	}
}

func TestSecretsHidden(t *testing.T) {
	c, err := Parse("s.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := c.Campaign(context.Background(), 1)
	a := cp.Site.Auth
	for _, s := range []string{fmt.Sprintf("%v", a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", *a)} {
		if strings.Contains(s, "p4ss") {
			t.Errorf("auth password printed: %s", s)
		}
	}
	if cp.Site.Auth.Password.Reveal() != "p4ss" {
		t.Error("password not kept")
	}
}

// The phase keys: site webhook_secrets (validated) and call_end, campaign ringing, the
// call_end parameter family.
func TestCallEndAndRingingKeys(t *testing.T) {
	const good = `
sites:
  - {id: 1, url: "https://crm.example.com/", trigger: server, call_end: all, webhook_secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}
campaigns:
  - {id: 2, name: C, type: inbound, site: 1, ringing: true, params: [{family: call_end, source: talk_seconds, name: talk}]}
`
	c, err := Parse("c.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	camp, err := c.Campaign(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if !camp.Ringing || camp.Site.CallEnd != catalog.CallEndAll || len(camp.Site.WebhookSecrets) != 1 || camp.Params[0].Family != catalog.FamilyCallEnd {
		t.Errorf("campaign %+v site %+v", camp, camp.Site)
	}
	for bad, want := range map[string]string{
		`call_end: all`:                             "",
		`call_end: sometimes`:                       `c.yaml:3: sites[0].call_end: "sometimes": want off, answered or all`,
		`webhook_secrets: ["not-a-whsec-secret-0"]`: "sites[0].webhook_secrets[0]: a Standard Webhooks secret starts with whsec_",
	} {
		_, err := Parse("c.yaml", []byte(strings.Replace(good, "call_end: all", bad, 1)))
		if want == "" {
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "not-a-whsec-secret-0") {
			t.Errorf("%s: error %v, want %q without the secret", bad, err, want)
		}
	}
}
