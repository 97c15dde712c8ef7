package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/omlcrm/oml-crm/catalog"
)

// The load-test catalog: every campaign type × every site shape (trigger, method, format,
// target, clean URL), plus campaigns that connect without invoking anything (no site,
// form-only interaction, disposition and dynamic-list sites), many agents and a contact
// database, all pointing at the load test's own CRM receiver.

// loadSite is one generated external site.
type loadSite struct {
	ID      int
	Name    string
	Path    string // under the CRM base URL; may hold {holders}
	Trigger catalog.Trigger
	Method  string
	Format  string // POST only
	Target  string // agent/automatic only
}

// loadSites are the site shapes exercised; a campaign uses one of them (or none).
var loadSites = []loadSite{
	{1, "agent-get-embedded", "/crm/agent/get", catalog.TriggerAgent, "GET", "", "embedded"},
	{2, "auto-get-clean-url", "/crm/auto/contacts/{contact}/campaign/{campaign}", catalog.TriggerAutomatic, "GET", "", "embedded"},
	{3, "auto-post-form-tab", "/crm/auto/form", catalog.TriggerAutomatic, "POST", "form", "new_tab"},
	{4, "agent-post-multipart", "/crm/agent/multipart", catalog.TriggerAgent, "POST", "multipart", "embedded"},
	{5, "auto-post-json", "/crm/auto/json", catalog.TriggerAutomatic, "POST", "json", "embedded"},
	{6, "auto-post-text-tab", "/crm/auto/text", catalog.TriggerAutomatic, "POST", "text", "new_tab"},
	{7, "server-post-json", "/crm/server/json", catalog.TriggerServer, "POST", "json", ""},
	{8, "server-post-form", "/crm/server/form", catalog.TriggerServer, "POST", "form", ""},
	{9, "server-post-text", "/crm/server/text", catalog.TriggerServer, "POST", "text", ""},
	{10, "server-get", "/crm/server/get", catalog.TriggerServer, "GET", "", ""},
	{11, "server-post-multipart-clean", "/crm/server/{phone}/multipart", catalog.TriggerServer, "POST", "multipart", ""},
	{12, "disposition", "/crm/disposition", catalog.TriggerDisposition, "POST", "json", ""},
	{13, "dynamic-list", "/crm/list", catalog.TriggerDynamicList, "GET", "", ""},
}

// Campaign variants: a site id from loadSites, or one of these.
const (
	variantNoSite   = -1 // campaign without an external site
	variantFormOnly = -2 // interaction "form": the site is never invoked
)

// variantCycle is the order in which a campaign type's campaigns are used by successive
// calls: every site shape once, the common ones (GET pop, automatic clean URL, server
// JSON and form) twice, and the four kinds of connect that invoke nothing once each.
var variantCycle = []int{1, 2, 7, 3, 4, 8, 5, 6, 9, 10, 11, 1, 2, 7, 8, 12, 13, variantNoSite, variantFormOnly}

// Campaign types generated (OMniLeads codes).
var loadCampaignTypes = []catalog.CampaignType{catalog.TypeManual, catalog.TypeDialer, catalog.TypeInbound, catalog.TypePreview}

// Contacts in the generated contact database.
const loadContacts = 500

// loadContactDB is the id of the generated contact database.
const loadContactDB = 1

// campaignID is the id of campaign type t with variant v: 100*t + the variant's index.
func campaignID(t catalog.CampaignType, variant int) int {
	for i, v := range variantCycle {
		if v == variant {
			return 100*int(t) + i
		}
	}
	panic(fmt.Sprintf("loadtest: variant %d not in the cycle", variant))
}

// campaignOutcome says what a connect on a generated campaign produces.
type campaignOutcome struct {
	SiteID int
	Pop    bool // agent or automatic trigger: a crm.pop to the agent
	Server bool // server trigger: a request to the CRM
}

// Plan is the generated catalog, as the traffic generator needs it.
type Plan struct {
	Agents    int
	outcomes  map[int]campaignOutcome // by campaign id
	campaigns map[catalog.CampaignType][]int
}

// NewPlan describes the catalog for agents agents (ids 1…agents).
func NewPlan(agents int) *Plan {
	p := &Plan{Agents: agents, outcomes: map[int]campaignOutcome{}, campaigns: map[catalog.CampaignType][]int{}}
	for _, t := range loadCampaignTypes {
		for i, v := range variantCycle {
			id := 100*int(t) + i
			p.campaigns[t] = append(p.campaigns[t], id)
			var o campaignOutcome
			if v > 0 {
				s := loadSites[v-1]
				o.SiteID = s.ID
				o.Pop = s.Trigger == catalog.TriggerAgent || s.Trigger == catalog.TriggerAutomatic
				o.Server = s.Trigger == catalog.TriggerServer
			}
			p.outcomes[id] = o
		}
	}
	return p
}

// Campaign returns the campaign of type t used by the n-th call of that type.
func (p *Plan) Campaign(t catalog.CampaignType, n int) int {
	ids := p.campaigns[t]
	return ids[n%len(ids)]
}

// Outcome returns what a connect on campaign id produces (zero: nothing).
func (p *Plan) Outcome(campaignID int) campaignOutcome { return p.outcomes[campaignID] }

// ContactPhone is the phone of generated contact id (1…loadContacts).
func ContactPhone(id int) string { return strconv.Itoa(3415550000 + id) }

// WriteCatalog writes the plan as a file catalog (the catalog/file format) whose sites
// point at crmBase (scheme://host:port, no trailing slash).
func (p *Plan) WriteCatalog(w io.Writer, crmBase string) error {
	bw := bufio.NewWriter(w)
	q := strconv.Quote
	fmt.Fprintln(bw, "# Generated by oml-crm loadtest: every campaign type × every site shape, plus")
	fmt.Fprintln(bw, "# campaigns whose connects invoke nothing. Regenerated on each run.")
	fmt.Fprintln(bw, "sites:")
	for _, s := range loadSites {
		fmt.Fprintf(bw, "  - {id: %d, name: %s, url: %s, trigger: %s, method: %s", s.ID, q(s.Name), q(crmBase+s.Path), s.Trigger, s.Method)
		if s.Format != "" {
			fmt.Fprintf(bw, ", format: %s", s.Format)
		}
		if s.Target != "" {
			fmt.Fprintf(bw, ", target: %s", s.Target)
		}
		fmt.Fprintln(bw, "}")
	}
	fmt.Fprintln(bw, "contact_databases:")
	fmt.Fprintf(bw, "  - {id: %d, name: \"load contacts\", columns: [telefono, nombre, idcliente, email]}\n", loadContactDB)
	fmt.Fprintln(bw, "campaigns:")
	for _, t := range loadCampaignTypes {
		for i, v := range variantCycle {
			id := 100*int(t) + i
			fmt.Fprintf(bw, "  - id: %d\n    name: %s\n    type: %s\n", id, q(fmt.Sprintf("%s %d", t, id)), t)
			interaction := "site"
			if v == variantFormOnly {
				interaction = "form"
			}
			fmt.Fprintf(bw, "    interaction: %s\n    contact_database: %d\n", interaction, loadContactDB)
			site := 0
			switch {
			case v > 0:
				site = v
			case v == variantFormOnly:
				site = 7 // a form-only campaign may still name a site: it is not invoked
			}
			if site > 0 {
				fmt.Fprintf(bw, "    site: %d\n", site)
			}
			fmt.Fprintln(bw, "    params:")
			if site > 0 {
				for _, h := range holders(loadSites[site-1].Path) {
					fmt.Fprintf(bw, "      - {family: %s, source: %s, name: %s}\n", h[0], h[1], q("{"+h[2]+"}"))
				}
			}
			for _, prm := range loadParams {
				fmt.Fprintf(bw, "      - {family: %s, source: %s, name: %s}\n", prm[0], q(prm[1]), q(prm[2]))
			}
		}
	}
	fmt.Fprintln(bw, "agents:")
	for id := 1; id <= p.Agents; id++ {
		fmt.Fprintf(bw, "  - {id: %d, username: agent%d, name: \"Agente %d\", sip_extension: %d}\n", id, id, id, 1000+id)
	}
	fmt.Fprintln(bw, "contacts:")
	for id := 1; id <= loadContacts; id++ {
		fmt.Fprintf(bw, "  - {id: %d, database: %d, phone: %s, fields: {nombre: \"Cliente %d\", idcliente: \"C-%d\", email: \"c%d@example.com\"}}\n",
			id, loadContactDB, q(ContactPhone(id)), id, id, id)
	}
	return bw.Flush()
}

// loadParams are every campaign's parameters: each family, several sources.
var loadParams = [][3]string{
	{"call", "call_id", "callId"},
	{"call", "agent_id", "agentId"},
	{"call", "agent_username", "agentUser"},
	{"call", "id_contacto", "idClient"},
	{"call", "telefono", "phone"},
	{"call", "rec_filename", "recordingFile"},
	{"campaign", "id", "idCamp"},
	{"campaign", "nombre", "campaign"},
	{"campaign", "tipo", "campaignType"},
	{"contact", "nombre", "name"},
	{"contact", "idcliente", "customerId"},
	{"fixed", "es", "lang"},
	{"dialplan", "OMLCRM_ticket", "ticket"},
}

// holders returns the (family, source, holder) parameters filling the placeholders of a
// site path.
func holders(path string) [][3]string {
	var out [][3]string
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(path[i:], '}')
		if j < 0 {
			return out
		}
		name := path[i+1 : i+j]
		switch name {
		case "contact":
			out = append(out, [3]string{"call", "id_contacto", name})
		case "campaign":
			out = append(out, [3]string{"campaign", "id", name})
		case "phone":
			out = append(out, [3]string{"call", "telefono", name})
		default:
			panic("loadtest: site placeholder {" + name + "} has no parameter")
		}
		path = path[i+j+1:]
	}
}
