package file

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/omlcrm/oml-crm/catalog"
)

// Parse parses a YAML catalog; name is used in error messages (normally the file name).
// Every problem found is reported, one per line, as "name:line: field: message".
func Parse(name string, data []byte) (*Catalog, error) {
	p := &parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &Catalog{
		campaigns:   map[int]*catalog.Campaign{},
		contacts:    map[int]*catalog.Contact{},
		agents:      map[int]*catalog.Agent{},
		byExtension: map[string]*catalog.Agent{},
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty catalog", name)
	}
	p.build(doc.Content[0], c)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	c.campaignIDs = sortedIDs(c.campaigns)
	return c, nil
}

// parser collects every error with its position.
type parser struct {
	file string
	errs []error
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s:%d: %s: %s", p.file, n.Line, path, fmt.Sprintf(format, args...)))
}

// fields walks a mapping node, calling handle for each known key and reporting unknown
// and repeated keys. It returns false when n is not a mapping.
func (p *parser) fields(n *yaml.Node, path string, known []string, handle func(key string, v *yaml.Node, path string)) bool {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be a mapping with keys %s", strings.Join(known, ", "))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		sub := join(path, k.Value)
		if !slices.Contains(known, k.Value) {
			p.errorf(k, sub, "unknown key (known: %s)", strings.Join(known, ", "))
			continue
		}
		if seen[k.Value] {
			p.errorf(k, sub, "repeated key")
			continue
		}
		seen[k.Value] = true
		handle(k.Value, v, sub)
	}
	return true
}

// list walks a sequence node (null = empty).
func (p *parser) list(n *yaml.Node, path string, each func(i int, v *yaml.Node, path string)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, path, "must be a list")
		return
	}
	for i, v := range n.Content {
		each(i, v, fmt.Sprintf("%s[%d]", path, i))
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// str reads a scalar as text, exactly as written (007 stays "007"); null is "".
func (p *parser) str(n *yaml.Node, path string) string {
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, path, "must be a single value, not a list or mapping")
		return ""
	}
	return n.Value
}

func (p *parser) integer(n *yaml.Node, path string) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.errorf(n, path, "must be an integer, got %q", n.Value)
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		p.errorf(n, path, "must be an integer, got %q", n.Value)
		return 0, false
	}
	return v, true
}

// id reads a positive integer id.
func (p *parser) id(n *yaml.Node, path string) (int, bool) {
	v, ok := p.integer(n, path)
	if ok && v <= 0 {
		p.errorf(n, path, "must be a positive integer, got %d", v)
		return 0, false
	}
	return v, ok
}

func (p *parser) boolean(n *yaml.Node, path string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(n, path, "must be true or false, got %q", n.Value)
		return false
	}
	b, _ := strconv.ParseBool(strings.ToLower(n.Value))
	return b
}

// enum reads an OMniLeads code (an integer, checked against codes) or one of names
// (case-insensitive), where names[i] is the name of code i+1.
func (p *parser) enum(n *yaml.Node, path, what string, names []string) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.Atoi(n.Value)
		if err == nil && v >= 1 && v <= len(names) {
			return v, true
		}
		p.errorf(n, path, "unknown %s code %s (want %s or 1..%d)", what, n.Value, strings.Join(names, "|"), len(names))
		return 0, false
	}
	if n.Kind == yaml.ScalarNode {
		for i, name := range names {
			if strings.EqualFold(n.Value, name) {
				return i + 1, true
			}
		}
	}
	p.errorf(n, path, "unknown %s %q (want %s or 1..%d)", what, n.Value, strings.Join(names, "|"), len(names))
	return 0, false
}

var (
	triggerNames     = []string{"agent", "automatic", "server", "disposition", "dynamic_list"}
	methodNames      = []string{"GET", "POST"}
	formatNames      = []string{"multipart", "form", "text", "json"}
	targetNames      = []string{"embedded", "new_tab"}
	typeNames        = []string{"manual", "dialer", "inbound", "preview"}
	interactionNames = []string{"form", "site", "form_and_site"}
	familyNames      = []string{"campaign", "contact", "call", "fixed", "dialplan", "disposition", "call_end"}
)

// stateNames are OMniLeads' Campana.estado codes.
var stateNames = map[string]int{"active": 2, "finished": 3, "deleted": 4, "paused": 5, "inactive": 6}

func (p *parser) build(root *yaml.Node, c *Catalog) {
	sites := map[int]*catalog.Site{}
	dbs := map[int]*contactDB{}
	var campaignNodes, contactNodes []*yaml.Node
	var campaignPaths, contactPaths []string
	p.fields(root, "", []string{"sites", "contact_databases", "campaigns", "agents", "contacts"}, func(key string, v *yaml.Node, path string) {
		switch key {
		case "sites":
			p.list(v, path, func(_ int, n *yaml.Node, path string) { p.site(n, path, sites) })
		case "contact_databases":
			p.list(v, path, func(_ int, n *yaml.Node, path string) { p.contactDatabase(n, path, dbs) })
		case "agents":
			p.list(v, path, func(_ int, n *yaml.Node, path string) { p.agent(n, path, c) })
		case "campaigns":
			p.list(v, path, func(_ int, n *yaml.Node, path string) {
				campaignNodes, campaignPaths = append(campaignNodes, n), append(campaignPaths, path)
			})
		case "contacts":
			p.list(v, path, func(_ int, n *yaml.Node, path string) {
				contactNodes, contactPaths = append(contactNodes, n), append(contactPaths, path)
			})
		}
	})
	// Campaigns and contacts refer to sites and databases, wherever those are in the file.
	for i, n := range campaignNodes {
		p.campaign(n, campaignPaths[i], sites, dbs, c)
	}
	for i, n := range contactNodes {
		p.contact(n, contactPaths[i], dbs, c)
	}
}

func (p *parser) site(n *yaml.Node, path string, sites map[int]*catalog.Site) {
	s := &catalog.Site{Trigger: catalog.TriggerServer, Method: catalog.MethodGET}
	var idNode, formatNode, targetNode, urlNode *yaml.Node
	hasID := false
	ok := p.fields(n, path, []string{"id", "name", "url", "trigger", "method", "format", "target", "hidden", "auth", "json_ids_as_numbers", "webhook_secrets", "call_end"}, func(key string, v *yaml.Node, path string) {
		switch key {
		case "id":
			s.ID, hasID = p.id(v, path)
			idNode = v
		case "name":
			s.Name = p.str(v, path)
		case "url":
			s.URL, urlNode = p.str(v, path), v
		case "trigger":
			t, _ := p.enum(v, path, "trigger", triggerNames)
			s.Trigger = catalog.Trigger(t)
		case "method":
			m, _ := p.enum(v, path, "method", methodNames)
			s.Method = catalog.Method(m)
		case "format":
			f, _ := p.enum(v, path, "format", formatNames)
			s.Format, formatNode = catalog.Format(f), v
		case "target":
			t, _ := p.enum(v, path, "target", targetNames)
			s.Target, targetNode = catalog.Target(t), v
		case "hidden":
			s.Hidden = p.boolean(v, path)
		case "auth":
			s.Auth = p.siteAuth(v, path)
		case "json_ids_as_numbers":
			s.JSONIDsAsNumbers = p.boolean(v, path)
		case "webhook_secrets":
			p.list(v, path, func(_ int, n *yaml.Node, path string) {
				sec := catalog.Secret(p.str(n, path))
				if _, err := catalog.WebhookKey(sec); err != nil {
					p.errorf(n, path, "%v", err)
					return
				}
				s.WebhookSecrets = append(s.WebhookSecrets, sec)
			})
		case "call_end":
			m, err := catalog.ParseCallEndMode(p.str(v, path))
			if err != nil {
				p.errorf(v, path, "%v", err)
			}
			s.CallEnd = m
		}
	})
	if !ok {
		return
	}
	if idNode == nil {
		p.errorf(n, join(path, "id"), "required")
	}
	if urlNode == nil || s.URL == "" {
		p.errorf(n, join(path, "url"), "required")
	}
	switch {
	case formatNode != nil && s.Method == catalog.MethodGET:
		p.errorf(formatNode, join(path, "format"), "applies to POST sites only (this site is GET)")
	case formatNode == nil && s.Method == catalog.MethodPOST:
		s.Format = catalog.FormatMultipart // OMniLeads' default
	}
	browser := s.Trigger == catalog.TriggerAgent || s.Trigger == catalog.TriggerAutomatic
	switch {
	case targetNode != nil && s.Trigger == catalog.TriggerServer:
		p.errorf(targetNode, join(path, "target"), "server sites have no browser target")
	case targetNode == nil && browser:
		s.Target = catalog.TargetEmbedded // OMniLeads' default
	}
	if s.Auth != nil {
		s.Auth.ID = s.ID
		if s.Auth.Name == "" {
			s.Auth.Name = s.Name
		}
	}
	if hasID {
		if _, dup := sites[s.ID]; dup {
			p.errorf(idNode, join(path, "id"), "duplicate site id %d", s.ID)
			return
		}
		sites[s.ID] = s
	}
}

func (p *parser) siteAuth(n *yaml.Node, path string) *catalog.SiteAuth {
	a := &catalog.SiteAuth{TokenField: "token", StrictTLS: true}
	var durNode *yaml.Node
	hasURL := false
	p.fields(n, path, []string{"url", "username", "password", "token_field", "duration", "duration_field", "strict_tls"}, func(key string, v *yaml.Node, path string) {
		switch key {
		case "url":
			a.URL, hasURL = p.str(v, path), true
		case "username":
			a.Username = p.str(v, path)
		case "password":
			a.Password = catalog.Secret(p.str(v, path))
		case "token_field":
			a.TokenField = p.str(v, path)
		case "duration":
			if d, ok := p.integer(v, path); ok {
				if d < 0 {
					p.errorf(v, path, "must be 0 (read from duration_field) or a number of seconds, got %d", d)
				}
				a.Duration, durNode = d, v
			}
		case "duration_field":
			a.DurationField = p.str(v, path)
		case "strict_tls":
			a.StrictTLS = p.boolean(v, path)
		}
	})
	if !hasURL || a.URL == "" {
		p.errorf(n, join(path, "url"), "required (the login endpoint)")
	}
	if a.TokenField == "" {
		p.errorf(n, join(path, "token_field"), "must not be empty")
	}
	if a.Duration == 0 && a.DurationField == "" {
		at := n
		if durNode != nil {
			at = durNode
		}
		p.errorf(at, join(path, "duration"), "give duration (seconds) or duration_field (the response field with the lifetime)")
	}
	return a
}

// contactDB is a contact database with the columns that hold the phone and external id.
type contactDB struct {
	db         *catalog.ContactDatabase
	phoneCol   string
	externalID string
}

func (p *parser) contactDatabase(n *yaml.Node, path string, dbs map[int]*contactDB) {
	d := &contactDB{db: &catalog.ContactDatabase{}}
	var idNode, colsNode, phoneNode, extNode *yaml.Node
	hasID := false
	ok := p.fields(n, path, []string{"id", "name", "columns", "phone_column", "external_id_column"}, func(key string, v *yaml.Node, path string) {
		switch key {
		case "id":
			d.db.ID, hasID = p.id(v, path)
			idNode = v
		case "name":
			d.db.Name = p.str(v, path)
		case "columns":
			colsNode = v
			seen := map[string]bool{}
			p.list(v, path, func(_ int, c *yaml.Node, path string) {
				name := p.str(c, path)
				switch {
				case name == "":
					p.errorf(c, path, "empty column name")
				case seen[name]:
					p.errorf(c, path, "duplicate column %q", name)
				default:
					seen[name] = true
					d.db.Columns = append(d.db.Columns, name)
				}
			})
		case "phone_column":
			d.phoneCol, phoneNode = p.str(v, path), v
		case "external_id_column":
			d.externalID, extNode = p.str(v, path), v
		}
	})
	if !ok {
		return
	}
	if idNode == nil {
		p.errorf(n, join(path, "id"), "required")
	}
	if colsNode == nil || len(d.db.Columns) == 0 {
		p.errorf(n, join(path, "columns"), "required: at least the phone column")
		return
	}
	switch {
	case phoneNode != nil && !d.db.HasColumn(d.phoneCol):
		p.errorf(phoneNode, join(path, "phone_column"), "%q is not one of the columns", d.phoneCol)
	case phoneNode == nil && d.db.HasColumn("telefono"):
		d.phoneCol = "telefono"
	case phoneNode == nil:
		d.phoneCol = d.db.Columns[0]
	}
	if extNode != nil {
		switch {
		case !d.db.HasColumn(d.externalID):
			p.errorf(extNode, join(path, "external_id_column"), "%q is not one of the columns", d.externalID)
		case d.externalID == d.phoneCol:
			p.errorf(extNode, join(path, "external_id_column"), "%q is already the phone column", d.externalID)
		}
	}
	if hasID {
		if _, dup := dbs[d.db.ID]; dup {
			p.errorf(idNode, join(path, "id"), "duplicate contact database id %d", d.db.ID)
			return
		}
		dbs[d.db.ID] = d
	}
}

func (p *parser) campaign(n *yaml.Node, path string, sites map[int]*catalog.Site, dbs map[int]*contactDB, c *Catalog) {
	cp := &catalog.Campaign{Interaction: catalog.InteractionSite, State: catalog.StateActive}
	var idNode, typeNode *yaml.Node
	hasID := false
	ok := p.fields(n, path, []string{"id", "name", "type", "interaction", "state", "site", "contact_database", "params", "ringing"}, func(key string, v *yaml.Node, path string) {
		switch key {
		case "id":
			cp.ID, hasID = p.id(v, path)
			idNode = v
		case "name":
			cp.Name = p.str(v, path)
		case "type":
			t, _ := p.enum(v, path, "campaign type", typeNames)
			cp.Type, typeNode = catalog.CampaignType(t), v
		case "interaction":
			i, _ := p.enum(v, path, "interaction", interactionNames)
			cp.Interaction = catalog.Interaction(i)
		case "state":
			cp.State = p.state(v, path)
		case "site":
			if id, ok := p.id(v, path); ok {
				cp.SiteID = id
				if s, found := sites[id]; found {
					cp.Site = s
				} else {
					p.errorf(v, path, "no site with id %d", id)
				}
			}
		case "contact_database":
			if id, ok := p.id(v, path); ok {
				if d, found := dbs[id]; found {
					cp.ContactDatabase = d.db
				} else {
					p.errorf(v, path, "no contact database with id %d", id)
				}
			}
		case "params":
			p.list(v, path, func(_ int, n *yaml.Node, path string) {
				if prm, ok := p.param(n, path); ok {
					cp.Params = append(cp.Params, prm)
				}
			})
		case "ringing":
			cp.Ringing = p.boolean(v, path)
		}
	})
	if !ok {
		return
	}
	if idNode == nil {
		p.errorf(n, join(path, "id"), "required")
	}
	if typeNode == nil {
		p.errorf(n, join(path, "type"), "required (manual|dialer|inbound|preview)")
	}
	if hasID {
		if _, dup := c.campaigns[cp.ID]; dup {
			p.errorf(idNode, join(path, "id"), "duplicate campaign id %d", cp.ID)
			return
		}
		c.campaigns[cp.ID] = cp
	}
}

func (p *parser) state(n *yaml.Node, path string) int {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		v, err := strconv.Atoi(n.Value)
		if err == nil && v >= 0 {
			return v
		}
	} else if v, ok := stateNames[strings.ToLower(n.Value)]; ok && n.Kind == yaml.ScalarNode {
		return v
	}
	p.errorf(n, path, "unknown state %q (want active|finished|deleted|paused|inactive or an OMniLeads code)", n.Value)
	return 0
}

func (p *parser) param(n *yaml.Node, path string) (catalog.Param, bool) {
	var prm catalog.Param
	var famNode, srcNode, nameNode *yaml.Node
	valid := true
	ok := p.fields(n, path, []string{"family", "source", "name"}, func(key string, v *yaml.Node, path string) {
		switch key {
		case "family":
			f, ok := p.enum(v, path, "family", familyNames)
			prm.Family, famNode, valid = catalog.Family(f), v, valid && ok
		case "source":
			prm.Source, srcNode = p.str(v, path), v
		case "name":
			prm.Name, nameNode = p.str(v, path), v
		}
	})
	if !ok {
		return prm, false
	}
	if famNode == nil {
		p.errorf(n, join(path, "family"), "required (campaign|contact|call|fixed|dialplan|disposition|call_end)")
		valid = false
	}
	// A fixed parameter may legitimately send an empty value; every other family names a source.
	if (srcNode == nil || prm.Source == "") && prm.Family != catalog.FamilyFixed {
		p.errorf(n, join(path, "source"), "required")
		valid = false
	}
	if nameNode == nil || prm.Name == "" {
		p.errorf(n, join(path, "name"), "required")
		valid = false
	}
	return prm, valid
}

func (p *parser) agent(n *yaml.Node, path string, c *Catalog) {
	a := &catalog.Agent{}
	var idNode, extNode *yaml.Node
	hasID := false
	ok := p.fields(n, path, []string{"id", "user_id", "username", "name", "sip_extension"}, func(key string, v *yaml.Node, path string) {
		switch key {
		case "id":
			a.ID, hasID = p.id(v, path)
			idNode = v
		case "user_id":
			a.UserID, _ = p.id(v, path)
		case "username":
			a.Username = p.str(v, path)
		case "name":
			a.Name = p.str(v, path)
		case "sip_extension":
			a.SIPExtension, extNode = p.str(v, path), v
		}
	})
	if !ok {
		return
	}
	if idNode == nil {
		p.errorf(n, join(path, "id"), "required")
	}
	if hasID {
		if _, dup := c.agents[a.ID]; dup {
			p.errorf(idNode, join(path, "id"), "duplicate agent id %d", a.ID)
			return
		}
		c.agents[a.ID] = a
	}
	if a.SIPExtension != "" {
		if other, dup := c.byExtension[a.SIPExtension]; dup {
			p.errorf(extNode, join(path, "sip_extension"), "extension %s is already agent %d's", a.SIPExtension, other.ID)
			return
		}
		c.byExtension[a.SIPExtension] = a
	}
}

func (p *parser) contact(n *yaml.Node, path string, dbs map[int]*contactDB, c *Catalog) {
	ct := &catalog.Contact{}
	var idNode, dbNode, extNode *yaml.Node
	hasID := false
	fields := map[string]string{}
	fieldNodes := map[string]*yaml.Node{}
	ok := p.fields(n, path, []string{"id", "database", "phone", "external_id", "fields"}, func(key string, v *yaml.Node, path string) {
		switch key {
		case "id":
			ct.ID, hasID = p.id(v, path)
			idNode = v
		case "database":
			ct.DatabaseID, _ = p.id(v, path)
			dbNode = v
		case "phone":
			ct.Phone = p.str(v, path)
		case "external_id":
			ct.ExternalID, extNode = p.str(v, path), v
		case "fields":
			if isNull(v) {
				return
			}
			if v.Kind != yaml.MappingNode {
				p.errorf(v, path, "must be a mapping of column name to value")
				return
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, val := v.Content[i], v.Content[i+1]
				if _, dup := fields[k.Value]; dup {
					p.errorf(k, join(path, k.Value), "repeated column")
					continue
				}
				fields[k.Value] = p.str(val, join(path, k.Value))
				fieldNodes[k.Value] = k
			}
		}
	})
	if !ok {
		return
	}
	if idNode == nil {
		p.errorf(n, join(path, "id"), "required")
	}
	if dbNode == nil {
		p.errorf(n, join(path, "database"), "required (the contact database id)")
		return
	}
	d, found := dbs[ct.DatabaseID]
	if !found {
		if ct.DatabaseID > 0 {
			p.errorf(dbNode, join(path, "database"), "no contact database with id %d", ct.DatabaseID)
		}
		return
	}
	// Every column of the database, "" where the contact leaves it out, as OMniLeads rows have.
	ct.Fields = make(map[string]string, len(d.db.Columns))
	for _, col := range d.db.Columns {
		ct.Fields[col] = ""
	}
	for _, name := range sortedKeys(fields) {
		fpath := join(join(path, "fields"), name)
		switch {
		case !d.db.HasColumn(name):
			p.errorf(fieldNodes[name], fpath, "contact database %d has no column %q (columns: %s)", d.db.ID, name, strings.Join(d.db.Columns, ", "))
		case name == d.phoneCol:
			p.errorf(fieldNodes[name], fpath, "%q is the phone column: give the value as phone", name)
		case name == d.externalID:
			p.errorf(fieldNodes[name], fpath, "%q is the external id column: give the value as external_id", name)
		default:
			ct.Fields[name] = fields[name]
		}
	}
	ct.Fields[d.phoneCol] = ct.Phone
	if d.externalID != "" {
		ct.Fields[d.externalID] = ct.ExternalID
	} else if extNode != nil && ct.ExternalID != "" {
		p.errorf(extNode, join(path, "external_id"), "contact database %d has no external_id_column", d.db.ID)
	}
	if hasID {
		if _, dup := c.contacts[ct.ID]; dup {
			p.errorf(idNode, join(path, "id"), "duplicate contact id %d", ct.ID)
			return
		}
		c.contacts[ct.ID] = ct
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
