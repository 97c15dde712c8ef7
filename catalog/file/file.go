// Package file reads the catalog (sites, contact databases, campaigns, agents, contacts)
// from a YAML file: the demo's catalog, tests, and Asterisk deployments without OMniLeads.
// The format is the one of DESIGN.md "The file catalog":
//
//	sites:
//	  - id: 1
//	    name: my_crm
//	    url: https://crm.example.com/{1}     # {holder} placeholders optional
//	    trigger: agent | automatic | server | disposition | dynamic_list   (or 1..5; default server)
//	    method: GET | POST                   (or 1 | 2; default GET)
//	    format: multipart | form | text | json   (or 1..4; POST only, default multipart)
//	    target: embedded | new_tab           (or 1 | 2; agent/automatic only, default embedded)
//	    hidden: false
//	    auth: {url, username, password, token_field (token), duration (0), duration_field, strict_tls (true)}
//	    webhook_secrets: ["whsec_…"]         (optional: Standard Webhooks signatures of server deliveries)
//	    call_end: off | answered | all       (optional, default off: end-of-call notifications)
//	contact_databases:
//	  - id: 5
//	    name: clientes                       (optional)
//	    columns: [telefono, nombre, idcliente]
//	    phone_column: telefono               (optional, see below)
//	    external_id_column: idcliente        (optional)
//	campaigns:
//	  - id: 11
//	    name: Ventas
//	    type: manual | dialer | inbound | preview       (or 1..4)
//	    interaction: form | site | form_and_site        (or 1..3; default site)
//	    state: active | finished | deleted | paused | inactive   (or OMniLeads' code; default active)
//	    site: 1                              (optional)
//	    contact_database: 5                  (optional)
//	    ringing: false                       (optional: agent/automatic sites also pop while the phone rings)
//	    params:                              (order is kept)
//	      - {family: call, source: id_contacto, name: idClient}   (family: campaign|contact|call|fixed|dialplan|disposition|call_end or 1..7)
//	agents:
//	  - {id: 2, username: agent2, name: "Ana Pérez", sip_extension: 1002, user_id: 7}
//	contacts:
//	  - {id: 321321321, database: 5, phone: "4149014", external_id: "", fields: {nombre: Juan}}
//
// Contacts, like OMniLeads rows, carry the main phone separately (phone) from the other
// columns (fields). Contact.Fields holds every column of the contact's database: the
// phone under the database's phone column, the external id under its external-id
// column, the fields by name, and "" for columns the contact leaves out. The phone column
// is phone_column when given, else "telefono" when the database has that column, else
// the first column (OMniLeads puts phone columns first in databases made through its API).
//
// Parse checks the structure (types, enum values, unknown keys, duplicate ids, references
// between campaigns, sites, contact databases and contacts, contact field names). Whether
// a campaign's parameters make sense (known call fields, columns, URL holders) is what
// `oml-crm check` reports, the same way for this catalog and the OMniLeads one.
//
// Errors name the file, line and field:
//
//	demo.yaml:12: campaigns[0].params[2].family: unknown family "fixd"
//
// The catalog is immutable once parsed; the values it returns are shared and must not be
// modified by callers.
package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/omlcrm/oml-crm/catalog"
)

// Catalog is a parsed YAML catalog. It is safe for concurrent use.
type Catalog struct {
	campaigns   map[int]*catalog.Campaign
	campaignIDs []int // sorted
	contacts    map[int]*catalog.Contact
	agents      map[int]*catalog.Agent
	byExtension map[string]*catalog.Agent
}

var _ catalog.Catalog = (*Catalog)(nil)

// Open reads and parses the YAML catalog at path. Errors name the file by its base name.
func Open(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog file: %w", err)
	}
	return Parse(filepath.Base(path), data)
}

// Campaign returns the campaign with its site, parameters and contact database.
func (c *Catalog) Campaign(_ context.Context, id int) (*catalog.Campaign, error) {
	if cp, ok := c.campaigns[id]; ok {
		return cp, nil
	}
	return nil, fmt.Errorf("campaign %d: %w", id, catalog.ErrNotFound)
}

// Campaigns returns every campaign in id order.
func (c *Catalog) Campaigns(_ context.Context) ([]*catalog.Campaign, error) {
	out := make([]*catalog.Campaign, len(c.campaignIDs))
	for i, id := range c.campaignIDs {
		out[i] = c.campaigns[id]
	}
	return out, nil
}

// Contact returns the contact with every column of its database in Fields.
func (c *Catalog) Contact(_ context.Context, id int) (*catalog.Contact, error) {
	if ct, ok := c.contacts[id]; ok {
		return ct, nil
	}
	return nil, fmt.Errorf("contact %d: %w", id, catalog.ErrNotFound)
}

// Agent returns the agent by its agent id.
func (c *Catalog) Agent(_ context.Context, id int) (*catalog.Agent, error) {
	if a, ok := c.agents[id]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("agent %d: %w", id, catalog.ErrNotFound)
}

// AgentByExtension returns the agent with that SIP extension.
func (c *Catalog) AgentByExtension(_ context.Context, ext string) (*catalog.Agent, error) {
	if a, ok := c.byExtension[ext]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("agent with SIP extension %q: %w", ext, catalog.ErrNotFound)
}

// Ping always succeeds: the file was read at Open.
func (c *Catalog) Ping(context.Context) error { return nil }

// Close does nothing; it exists to satisfy catalog.Catalog.
func (c *Catalog) Close() {}

func sortedIDs[V any](m map[int]V) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}
