package omldb

import (
	"context"
	"reflect"
	"testing"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// TestOMniLeads263 reads the real OMniLeads 2.6.3 schema with the rows OMniLeads' own
// code wrote (../shared/reference).
func TestOMniLeads263(t *testing.T) {
	c := open(t, pgtest.NewOMniLeadsDatabase(t), Options{})
	ctx := context.Background()

	cp, err := c.Campaign(ctx, 1)
	if err != nil {
		t.Fatalf("Campaign(1): %v", err)
	}
	if cp.Type != catalog.TypeManual || cp.Interaction != catalog.InteractionSite || !cp.Active() || cp.Site == nil || cp.Site.ID != 1 {
		t.Fatalf("campaign 1 = %+v", cp)
	}
	if s := cp.Site; s.URL != "https://my-crm.domain.com" || s.Trigger != catalog.TriggerAgent || s.Method != catalog.MethodGET ||
		s.Target != catalog.TargetEmbedded || s.Auth != nil {
		t.Errorf("site 1 = %+v", s)
	}
	wantParams := []catalog.Param{
		{Family: catalog.FamilyCall, Source: "id_contacto", Name: "idClient"},
		{Family: catalog.FamilyCampaign, Source: "id", Name: "idCamp"},
		{Family: catalog.FamilyFixed, Source: "es", Name: "lang"},
		{Family: catalog.FamilyCall, Source: "rec_filename", Name: "recordingFile"},
		{Family: catalog.FamilyContact, Source: "email", Name: "mail"},
		{Family: catalog.FamilyDialplan, Source: "Omlcrmcustomerid", Name: "customer"},
	}
	if !reflect.DeepEqual(cp.Params, wantParams) {
		t.Errorf("campaign 1 params = %+v", cp.Params)
	}
	if db := cp.ContactDatabase; db == nil || !reflect.DeepEqual(db.Columns, []string{"nombre", "telefono", "idcliente", "email", "ciudad"}) {
		t.Errorf("campaign 1 contact database = %+v", db)
	}

	ct, err := c.Contact(ctx, 2)
	if err != nil {
		t.Fatalf("Contact(2): %v", err)
	}
	want := map[string]string{"nombre": "José Ñandú 😀", "telefono": "3515550002", "idcliente": "CLI-002", "email": "", "ciudad": "São Paulo"}
	if !reflect.DeepEqual(ct.Fields, want) || ct.Phone != "3515550002" || ct.ExternalID != "CLI-002" || ct.DatabaseID != 1 {
		t.Errorf("contact 2 = %+v, fields want %v", ct, want)
	}
	if ct, err := c.Contact(ctx, 3); err != nil || ct.Fields["nombre"] != `Zoë "Zo" O'Brien` || ct.Fields["ciudad"] != "Malmö" {
		t.Errorf("contact 3 = %+v, %v", ct, err)
	}

	a, err := c.AgentByExtension(ctx, "1002")
	want1 := &catalog.Agent{ID: 1, UserID: 2, Username: "agente1", Name: "José Muñoz", SIPExtension: "1002"}
	if err != nil || !reflect.DeepEqual(a, want1) {
		t.Errorf("AgentByExtension(1002) = %+v, %v; want %+v", a, err, want1)
	}
	if a, err := c.Agent(ctx, 1); err != nil || a.SIPExtension != "1002" {
		t.Errorf("Agent(1) = %+v, %v", a, err)
	}

	cp, err = c.Campaign(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Type != catalog.TypePreview || cp.Site.URL != "https://my-crm.domain.com/{1}/{2}/es" || cp.Site.Trigger != catalog.TriggerAutomatic {
		t.Errorf("campaign 4 = %+v site %+v", cp, cp.Site)
	}
	var holders []string
	for _, p := range cp.Params {
		if h, ok := p.Holder(); ok {
			holders = append(holders, h+"="+p.Family.String()+":"+p.Source)
		}
	}
	if !reflect.DeepEqual(holders, []string{"1=contact:idcliente", "2=campaign:id"}) {
		t.Errorf("campaign 4 holders = %v", holders)
	}

	cp, err = c.Campaign(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	s := cp.Site
	if s.ID != 3 || s.Trigger != catalog.TriggerServer || s.Method != catalog.MethodPOST || s.Format != catalog.FormatJSON || s.Target != catalog.TargetNone {
		t.Errorf("site 3 = %+v", s)
	}
	wantAuth := &catalog.SiteAuth{ID: 1, Name: "Auth CRM demo", URL: "https://crm.example.test/api/token", Username: "oml",
		Password: "S3cr3t-demo", TokenField: "access_token", Duration: 0, DurationField: "expires_in", StrictTLS: true}
	if !reflect.DeepEqual(s.Auth, wantAuth) {
		t.Errorf("site 3 auth = %#v", s.Auth)
	}
	if s.Auth.Password.Reveal() != "S3cr3t-demo" {
		t.Error("auth password not read")
	}
	all, err := c.Campaigns(ctx)
	if err != nil || len(all) != 4 {
		t.Fatalf("Campaigns = %d, %v; want the 4 sample campaigns", len(all), err)
	}
	for _, cp := range all {
		if len(cp.Params) == 0 || cp.Site == nil {
			t.Errorf("campaign %d has no params or site", cp.ID)
		}
	}
	// Site 2 (campaign 3) is POST x-www-form-urlencoded in a new tab.
	if s := all[2].Site; s.Format != catalog.FormatForm || s.Target != catalog.TargetNewTab || s.Trigger != catalog.TriggerAutomatic {
		t.Errorf("campaign 3 site = %+v", s)
	}
}
