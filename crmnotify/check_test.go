package crmnotify

import (
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/catalog"
)

// goodCampaign is the documentation's Example 2, correctly configured.
func goodCampaign() *catalog.Campaign {
	return docsInput("https://my_crm.domain.com/{1}/{2}/{3}/{4}",
		catalog.Param{Family: catalog.FamilyCall, Source: "id_contacto", Name: "{1}"},
		catalog.Param{Family: catalog.FamilyCampaign, Source: "id", Name: "{2}"},
		catalog.Param{Family: catalog.FamilyFixed, Source: "es", Name: "{3}"},
		catalog.Param{Family: catalog.FamilyCall, Source: "rec_filename", Name: "{4}"},
		catalog.Param{Family: catalog.FamilyContact, Source: "nombre", Name: "name"},
		catalog.Param{Family: catalog.FamilyDialplan, Source: "Omlcrmticket", Name: "ticket"},
	).Campaign
}

func TestCheckCampaignClean(t *testing.T) {
	c := goodCampaign()
	if probs := CheckCampaign(c); len(probs) != 0 {
		t.Fatalf("problems in a good campaign: %v", probs)
	}
	for _, s := range []catalog.Site{
		{ID: 2, Name: "server-json", URL: "http://127.0.0.1:9000/hook/{1}/{2}/{3}/{4}", Trigger: catalog.TriggerServer, Method: catalog.MethodPOST, Format: catalog.FormatJSON,
			Auth: &catalog.SiteAuth{ID: 1, Name: "crm", URL: "https://crm.example.com/login", TokenField: "token", Duration: 3600}},
		{ID: 3, Name: "agent-tab", URL: "https://crm.example.com/{1}/{2}/{3}/{4}#/x", Trigger: catalog.TriggerAgent, Method: catalog.MethodPOST, Format: catalog.FormatMultipart, Target: catalog.TargetNewTab},
	} {
		c.Site = &s
		if probs := CheckCampaign(c); len(probs) != 0 {
			t.Errorf("site %s: problems %v", s.Name, probs)
		}
	}
}

func TestCheckCampaignFindsEachProblem(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *catalog.Campaign)
		param  string   // Problem.Param expected
		want   []string // substrings of Problem.String()
	}{
		{"unfilled holder", func(c *catalog.Campaign) { c.Params[2].Name = "lang" },
			"{3}", []string{"campaign 11 (Ventas)", "site 1 (my_crm)", "placeholder {3}", "no parameter is named {3}"}},
		{"holder not in URL", func(c *catalog.Campaign) {
			c.Params = append(c.Params, catalog.Param{Family: catalog.FamilyFixed, Source: "x", Name: "{5}"})
		},
			"{5}", []string{"has no {5}", "never sent"}},
		{"holder filled twice", func(c *catalog.Campaign) {
			c.Params = append(c.Params, catalog.Param{Family: catalog.FamilyFixed, Source: "x", Name: "{1}"})
		},
			"{1}", []string{"more than one parameter", "first one"}},
		{"duplicate name", func(c *catalog.Campaign) {
			c.Params = append(c.Params, catalog.Param{Family: catalog.FamilyFixed, Source: "x", Name: "ticket"})
		},
			"ticket", []string{"more than one parameter is named \"ticket\""}},
		{"bad placeholder name", func(c *catalog.Campaign) { c.Params[5].Name = "{a-b}" },
			"{a-b}", []string{"letters, digits and _"}},
		{"empty name", func(c *catalog.Campaign) { c.Params[5].Name = "" },
			"", []string{"no name"}},
		{"missing contact column", func(c *catalog.Campaign) { c.Params[4].Source = "apellido" },
			"name", []string{`no column "apellido"`, "telefono, nombre, lang", "contact database 5 (clientes)"}},
		{"contact without database", func(c *catalog.Campaign) { c.ContactDatabase = nil },
			"name", []string{"no contact database"}},
		{"unknown call source", func(c *catalog.Campaign) { c.Params[0].Source = "uniqueid" },
			"{1}", []string{`unknown call data "uniqueid"`, strings.Join(catalog.CallSources, ", ")}},
		{"unknown campaign source", func(c *catalog.Campaign) { c.Params[1].Source = "fecha" },
			"{2}", []string{`unknown campaign data "fecha"`, "id, nombre, tipo"}},
		{"unknown family", func(c *catalog.Campaign) { c.Params[5].Family = 8 },
			"ticket", []string{"unknown parameter type code 8"}},
		{"empty dialplan variable", func(c *catalog.Campaign) { c.Params[5].Source = " " },
			"ticket", []string{"dialplan data with no variable name"}},
		{"URL does not parse", func(c *catalog.Campaign) { c.Site.URL = "https://my crm/{1}/{2}/{3}/{4}" },
			"", []string{"does not parse"}},
		{"URL without scheme", func(c *catalog.Campaign) { c.Site.URL = "my_crm.domain.com/{1}/{2}/{3}/{4}" },
			"", []string{"no scheme or host", "https://"}},
		{"URL without host", func(c *catalog.Campaign) { c.Site.URL = "https:///{1}/{2}/{3}/{4}" },
			"", []string{"no scheme or host"}},
		{"holder in host", func(c *catalog.Campaign) { c.Site.URL = "https://{1}.crm.com/{2}/{3}/{4}" },
			"", []string{"{1} in its scheme or host"}},
		{"empty URL", func(c *catalog.Campaign) { c.Site.URL = "" },
			"", []string{"site URL is empty"}},
		{"server site not http", func(c *catalog.Campaign) {
			c.Site.Trigger, c.Site.Target, c.Site.URL = catalog.TriggerServer, catalog.TargetNone, "ftp://crm.example.com/{1}/{2}/{3}/{4}"
		}, "", []string{`scheme "ftp"`, "http or https"}},
		{"POST without format", func(c *catalog.Campaign) { c.Site.Method = catalog.MethodPOST },
			"", []string{"POST", "format (code 0)"}},
		{"unknown method", func(c *catalog.Campaign) { c.Site.Method = 3 },
			"", []string{"unknown method code 3"}},
		{"browser site without target", func(c *catalog.Campaign) { c.Site.Target = catalog.TargetNone },
			"", []string{"trigger automatic", "no valid target"}},
		{"unknown trigger", func(c *catalog.Campaign) { c.Site.Trigger = 9 },
			"", []string{"unknown trigger code 9"}},
		{"browser site javascript:", func(c *catalog.Campaign) { c.Site.URL = "javascript://crm/%0aalert(1)/{1}/{2}/{3}/{4}" },
			"", []string{`scheme "javascript"`, "http or https"}},
		{"agent site data:", func(c *catalog.Campaign) {
			c.Site.Trigger, c.Site.URL = catalog.TriggerAgent, "data://text/html,x/{1}/{2}/{3}/{4}"
		}, "", []string{`scheme "data"`}},
		{"disposition data at connect", func(c *catalog.Campaign) {
			c.Params = append(c.Params, catalog.Param{Family: catalog.FamilyDisposition, Source: "name", Name: "disp"})
		}, "disp", []string{`disposition data "name"`, "trigger automatic", "always sent empty"}},
		{"unknown campaign type", func(c *catalog.Campaign) { c.Type = 7 },
			"", []string{"unknown campaign type code 7"}},
		{"unknown interaction", func(c *catalog.Campaign) { c.Interaction = 5 },
			"", []string{"unknown interaction code 5", "tipo_interaccion"}},
		{"site no longer exists", func(c *catalog.Campaign) { c.Site, c.SiteID = nil, 42 },
			"", []string{"campaign 11 (Ventas): ", "external site 42 no longer exists"}},
		{"no site", func(c *catalog.Campaign) { c.Site = nil },
			"", []string{"campaign 11 (Ventas): ", "no external site"}},
		{"auth without token field", func(c *catalog.Campaign) {
			c.Site.Trigger, c.Site.Target = catalog.TriggerServer, catalog.TargetNone
			c.Site.Auth = &catalog.SiteAuth{ID: 4, Name: "login", URL: "https://crm.example.com/login", Duration: 60, Password: "s3cret-pw"}
		}, "", []string{"authentication 4 (login)", "no token field"}},
		{"auth URL not http", func(c *catalog.Campaign) {
			c.Site.Auth = &catalog.SiteAuth{ID: 4, Name: "login", URL: "crm/login", TokenField: "t", DurationField: "exp"}
		}, "", []string{"authentication 4 (login) login URL", "no scheme or host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := goodCampaign()
			tt.mutate(c)
			probs := CheckCampaign(c)
			if len(probs) == 0 {
				t.Fatal("no problem found")
			}
			var found bool
			var lines []string
			for _, p := range probs {
				s := p.String()
				lines = append(lines, s)
				if strings.Contains(s, "s3cret") {
					t.Errorf("problem reveals the password: %s", s)
				}
				if p.Param != tt.param {
					continue
				}
				ok := true
				for _, w := range tt.want {
					ok = ok && strings.Contains(s, w)
				}
				found = found || ok
			}
			if !found {
				t.Errorf("no problem for parameter %q mentions all of %q; got:\n%s", tt.param, tt.want, strings.Join(lines, "\n"))
			}
		})
	}
}

// TestCheckedCampaignsRender proves the promise of CheckCampaign: no problems, Render works.
func TestCheckedCampaignsRender(t *testing.T) {
	c := goodCampaign()
	in := docsInput("")
	in.Campaign = c
	for _, m := range []struct {
		method catalog.Method
		format catalog.Format
	}{{catalog.MethodGET, 0}, {catalog.MethodPOST, catalog.FormatMultipart}, {catalog.MethodPOST, catalog.FormatForm},
		{catalog.MethodPOST, catalog.FormatText}, {catalog.MethodPOST, catalog.FormatJSON}} {
		c.Site.Method, c.Site.Format = m.method, m.format
		if probs := CheckCampaign(c); len(probs) != 0 {
			t.Fatalf("%s %s: %v", m.method, m.format, probs)
		}
		req := mustRender(t, in)
		if req.URL != "https://my_crm.domain.com/321321321/11/es/prev-115-20190604-2-4149014-1559667982.424.wav" &&
			!strings.HasPrefix(req.URL, "https://my_crm.domain.com/321321321/11/es/prev-115-20190604-2-4149014-1559667982.424.wav?") {
			t.Errorf("%s %s: URL %s", m.method, m.format, req.URL)
		}
	}
}

func TestProblemString(t *testing.T) {
	p := Problem{CampaignID: 11, CampaignName: "Ventas", SiteID: 1, SiteName: "my_crm", Param: "{3}", Message: "boom"}
	if got, want := p.String(), `campaign 11 (Ventas), site 1 (my_crm), parameter "{3}": boom`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	p = Problem{CampaignID: 2, CampaignName: "X", Message: "no site"}
	if got, want := p.String(), "campaign 2 (X): no site"; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestDisplayURLHidesCredentials(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://my_crm.domain.com/{1}?x=1", "https://my_crm.domain.com/{1}?x=1"},
		{"https://bob:s3cret@crm.example.com/{1}", "https://bob:xxxxx@crm.example.com/{1}"},
		{"https://bob@crm.example.com/", "https://bob@crm.example.com/"},
		{"https://crm.example.com/a?apikey=s3cret&id={1}&Token=s3cret&pass&n=2#f", "https://crm.example.com/a?apikey=xxxxx&id={1}&Token=xxxxx&pass&n=2#f"},
		{"not a url", "not a url"},
	}
	for _, tt := range tests {
		if got := DisplayURL(tt.in); got != tt.want {
			t.Errorf("DisplayURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	c := goodCampaign()
	c.Site.URL = "https://bob:s3cret@crm.example.com/{1}/{2}?token=s3cret"
	c.Site.Trigger = catalog.TriggerServer
	c.Site.URL = "ftp" + c.Site.URL[5:]
	for _, p := range CheckCampaign(c) {
		if strings.Contains(p.String(), "s3cret") {
			t.Errorf("problem reveals a credential: %s", p)
		}
	}
	in := docsInput("https://bob:s3cret@crm.example.com/{9}?token=s3cret")
	if _, err := Render(in); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Render error %v (want one, without the credential)", err)
	}
}
