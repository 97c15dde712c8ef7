package crmnotify

import (
	"testing"

	"github.com/omlcrm/oml-crm/catalog"
)

// benchInput is a realistic campaign: the documentation's four parameters plus contact,
// agent and dialplan data (8 parameters).
func benchInput(method catalog.Method, format catalog.Format) Input {
	in := docsInput("https://my_crm.domain.com/crm/{1}",
		catalog.Param{Family: catalog.FamilyCall, Source: "id_contacto", Name: "{1}"},
		catalog.Param{Family: catalog.FamilyCall, Source: "id_contacto", Name: "idClient"},
		catalog.Param{Family: catalog.FamilyCampaign, Source: "id", Name: "idCamp"},
		catalog.Param{Family: catalog.FamilyFixed, Source: "es", Name: "lang"},
		catalog.Param{Family: catalog.FamilyCall, Source: "rec_filename", Name: "recordingFile"},
		catalog.Param{Family: catalog.FamilyContact, Source: "nombre", Name: "nombre"},
		catalog.Param{Family: catalog.FamilyCall, Source: "agent_name", Name: "agente"},
		catalog.Param{Family: catalog.FamilyDialplan, Source: "Omlcrmticket", Name: "ticket"},
	)
	in.Call.Dialplan = map[string]string{"OMLCRMTICKET": "T-123", "OMLCRMORIGIN": "web"}
	in.Campaign.Site.Method, in.Campaign.Site.Format = method, format
	return in
}

func BenchmarkRender(b *testing.B) {
	for _, bc := range []struct {
		name   string
		method catalog.Method
		format catalog.Format
	}{
		{"GET", catalog.MethodGET, 0},
		{"POST_JSON", catalog.MethodPOST, catalog.FormatJSON},
		{"POST_multipart", catalog.MethodPOST, catalog.FormatMultipart},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := benchInput(bc.method, bc.format)
			if _, err := Render(in); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Render(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
