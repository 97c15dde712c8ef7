// Package catalog is the model of what a campaign's CRM is: the campaign, its external
// site (the CRM endpoint), the ordered CRM parameters, the contact database columns, the
// contacts and the agents. It carries OMniLeads' numeric codes so that the OMniLeads
// database reader (catalog/omldb) and the YAML reader (catalog/file) produce the same
// values, and everything downstream (crmnotify, agentws, the daemon) reads only this.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is wrapped by every lookup that finds no such campaign, contact or agent.
var ErrNotFound = errors.New("not found")

// Catalog reads campaigns, contacts and agents. Implementations are safe for concurrent
// use. Campaign lookups may be cached (a changed campaign takes effect within the
// implementation's TTL); Contact is read per call.
type Catalog interface {
	// Campaign returns the campaign with its site (nil when none), ordered parameters
	// and contact database (nil when none). Unknown ids wrap ErrNotFound.
	Campaign(ctx context.Context, id int) (*Campaign, error)
	// Campaigns returns every campaign, in id order (used by `oml-crm check`).
	Campaigns(ctx context.Context) ([]*Campaign, error)
	// Contact returns the contact with its fields rebuilt as column name → value.
	// Unknown ids wrap ErrNotFound.
	Contact(ctx context.Context, id int) (*Contact, error)
	// Agent returns the agent by its OMniLeads agent id (ominicontacto_app_agenteprofile.id).
	Agent(ctx context.Context, id int) (*Agent, error)
	// AgentByExtension returns the agent whose SIP extension is ext (e.g. "1002").
	AgentByExtension(ctx context.Context, ext string) (*Agent, error)
	// Close releases connections; the catalog is unusable afterwards.
	Close()
}

// CampaignType is OMniLeads' Campana.type.
type CampaignType int

// Campaign types (OMniLeads codes).
const (
	TypeManual  CampaignType = 1
	TypeDialer  CampaignType = 2
	TypeInbound CampaignType = 3 // "Entrante"
	TypePreview CampaignType = 4
)

// DisplayName is the name OMniLeads shows (in Spanish, its default language) and that the
// campaign parameter `tipo` renders.
func (t CampaignType) DisplayName() string {
	switch t {
	case TypeManual:
		return "Manual"
	case TypeDialer:
		return "Dialer"
	case TypeInbound:
		return "Entrante"
	case TypePreview:
		return "Preview"
	}
	return ""
}

// String is the lower-case name used in the file catalog and in logs.
func (t CampaignType) String() string {
	switch t {
	case TypeManual:
		return "manual"
	case TypeDialer:
		return "dialer"
	case TypeInbound:
		return "inbound"
	case TypePreview:
		return "preview"
	}
	return fmt.Sprintf("type(%d)", int(t))
}

// Interaction is OMniLeads' Campana.tipo_interaccion.
type Interaction int

// Interaction codes.
const (
	InteractionForm        Interaction = 1
	InteractionSite        Interaction = 2
	InteractionFormAndSite Interaction = 3
)

// UsesSite reports whether the interaction invokes the external site (2 and 3).
func (i Interaction) UsesSite() bool { return i == InteractionSite || i == InteractionFormAndSite }

// String is the file-catalog spelling.
func (i Interaction) String() string {
	switch i {
	case InteractionForm:
		return "form"
	case InteractionSite:
		return "site"
	case InteractionFormAndSite:
		return "form_and_site"
	}
	return fmt.Sprintf("interaction(%d)", int(i))
}

// StateActive is OMniLeads' Campana.estado for an active campaign.
const StateActive = 2

// Trigger is OMniLeads' SitioExterno.disparador.
type Trigger int

// Trigger codes.
const (
	TriggerAgent       Trigger = 1 // the agent clicks a button
	TriggerAutomatic   Trigger = 2 // the browser opens it on connect
	TriggerServer      Trigger = 3 // the server POSTs/GETs it on connect
	TriggerDisposition Trigger = 4 // fired by OMniLeads at disposition time: not ours
	TriggerDynamicList Trigger = 5 // a form field's option list: not call related
)

// String is the file-catalog and websocket spelling.
func (t Trigger) String() string {
	switch t {
	case TriggerAgent:
		return "agent"
	case TriggerAutomatic:
		return "automatic"
	case TriggerServer:
		return "server"
	case TriggerDisposition:
		return "disposition"
	case TriggerDynamicList:
		return "dynamic_list"
	}
	return fmt.Sprintf("trigger(%d)", int(t))
}

// Known reports whether t is one of OMniLeads' trigger codes (1-5).
func (t Trigger) Known() bool { return t >= TriggerAgent && t <= TriggerDynamicList }

// FiredOnConnect reports whether oml-crm acts on this trigger when a call connects.
func (t Trigger) FiredOnConnect() bool {
	return t == TriggerAgent || t == TriggerAutomatic || t == TriggerServer
}

// Method is OMniLeads' SitioExterno.metodo.
type Method int

// Method codes.
const (
	MethodGET  Method = 1
	MethodPOST Method = 2
)

// String is the HTTP method name.
func (m Method) String() string {
	switch m {
	case MethodGET:
		return "GET"
	case MethodPOST:
		return "POST"
	}
	return fmt.Sprintf("method(%d)", int(m))
}

// Format is OMniLeads' SitioExterno.formato: the POST body encoding.
type Format int

// Format codes.
const (
	FormatMultipart Format = 1 // multipart/form-data
	FormatForm      Format = 2 // application/x-www-form-urlencoded
	FormatText      Format = 3 // text/plain
	FormatJSON      Format = 4 // application/json
)

// String is the file-catalog spelling.
func (f Format) String() string {
	switch f {
	case FormatMultipart:
		return "multipart"
	case FormatForm:
		return "form"
	case FormatText:
		return "text"
	case FormatJSON:
		return "json"
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// MIME is the media type of the format (without parameters such as the multipart boundary).
func (f Format) MIME() string {
	switch f {
	case FormatMultipart:
		return "multipart/form-data"
	case FormatForm:
		return "application/x-www-form-urlencoded"
	case FormatText:
		return "text/plain"
	case FormatJSON:
		return "application/json"
	}
	return ""
}

// Target is OMniLeads' SitioExterno.objetivo.
type Target int

// Target codes. TargetNone is OMniLeads' NULL (server sites).
const (
	TargetNone     Target = 0
	TargetEmbedded Target = 1
	TargetNewTab   Target = 2
)

// String is the file-catalog and websocket spelling.
func (t Target) String() string {
	switch t {
	case TargetNone:
		return ""
	case TargetEmbedded:
		return "embedded"
	case TargetNewTab:
		return "new_tab"
	}
	return fmt.Sprintf("target(%d)", int(t))
}

// Family is OMniLeads' ParametrosCrm.tipo: where a parameter's value comes from.
type Family int

// Parameter families.
const (
	FamilyCampaign    Family = 1 // source: id, nombre, tipo
	FamilyContact     Family = 2 // source: a column of the campaign's contact database
	FamilyCall        Family = 3 // source: one of CallSources
	FamilyFixed       Family = 4 // source is the literal value
	FamilyDialplan    Family = 5 // source: a channel variable / SIP header, matched case-insensitively
	FamilyDisposition Family = 6 // source: one of DispositionSources (empty outside the disposition phase)
	FamilyCallEnd     Family = 7 // oml-crm's own: source one of CallEndSources (empty outside the call_end phase)
)

// String is the file-catalog spelling.
func (f Family) String() string {
	switch f {
	case FamilyCampaign:
		return "campaign"
	case FamilyContact:
		return "contact"
	case FamilyCall:
		return "call"
	case FamilyFixed:
		return "fixed"
	case FamilyDialplan:
		return "dialplan"
	case FamilyDisposition:
		return "disposition"
	case FamilyCallEnd:
		return "call_end"
	}
	return fmt.Sprintf("family(%d)", int(f))
}

// CampaignSources are the valid sources of a FamilyCampaign parameter.
var CampaignSources = []string{"id", "nombre", "tipo"}

// CallSources are the valid sources of a FamilyCall parameter.
var CallSources = []string{"call_id", "agent_id", "agent_username", "agent_name", "telefono",
	"id_contacto", "rec_filename", "call_wait_duration", "datetime"}

// DispositionSources are the valid sources of a FamilyDisposition parameter (OMniLeads'
// "Dato de Calificación").
var DispositionSources = []string{"id", "name", "subdisposition", "form"}

// CallEndSources are the valid sources of a FamilyCallEnd parameter (end-of-call
// notifications).
var CallEndSources = []string{"answered", "start", "answer", "end", "wait_seconds", "talk_seconds",
	"agents", "hangup_by", "hangup_cause", "hangup_cause_text", "transfers", "recording"}

// Campaign is an OMniLeads campaign as far as the CRM is concerned.
type Campaign struct {
	ID          int
	Name        string
	Type        CampaignType
	Interaction Interaction
	State       int // OMniLeads estado; StateActive (2) is active
	// Site is the campaign's external site, nil when it has none.
	Site *Site
	// SiteID is the id of the external site the campaign refers to (0 when none). It is
	// set even when that site no longer exists (then Site is nil), so that `oml-crm
	// check` can name it.
	SiteID int
	// Params are the CRM parameters in their configured order.
	Params []Param
	// ContactDatabase is nil when the campaign has none.
	ContactDatabase *ContactDatabase
	// Ringing opts the campaign in to ringing pops (agent and automatic sites): the
	// agent's console shows the caller while the phone rings. File catalog key ringing;
	// calls.ringing_campaigns for the OMniLeads catalog.
	Ringing bool
}

// Active reports whether OMniLeads considers the campaign active.
func (c *Campaign) Active() bool { return c.State == StateActive }

// Site is an OMniLeads external site: the CRM endpoint and how to invoke it.
type Site struct {
	ID      int
	Name    string
	URL     string // may hold {holder} placeholders
	Hidden  bool   // OMniLeads oculto; still honoured when a campaign points at it
	Trigger Trigger
	Method  Method
	Format  Format // meaningful for POST only
	Target  Target // TargetNone for server sites
	Auth    *SiteAuth
	// JSONIDsAsNumbers makes JSON bodies carry the campaign id, agent_id and id_contacto
	// as JSON numbers (when they are canonical decimal integers) instead of strings.
	// OMniLeads sends every value as a string, so this is off unless the site opts in
	// (file catalog: the site key json_ids_as_numbers; OMniLeads database: the config key
	// catalog.json_ids_as_numbers_sites).
	JSONIDsAsNumbers bool
	// WebhookSecrets are the site's Standard Webhooks signing secrets ("whsec_…"; several
	// during a key rotation): server deliveries carry one webhook-signature per secret.
	// Set by the file catalog; for the OMniLeads catalog they come from oml-crm's config
	// (delivery.sites.<id>.webhook_secrets).
	WebhookSecrets []Secret
	// CallEnd opts the site in to end-of-call notifications (journaling): a server
	// delivery when the call ends, with the call_end family of values. File catalog key
	// call_end; delivery.sites.<id>.call_end for the OMniLeads catalog.
	CallEnd CallEndMode
}

// CallEndMode says which ended calls a site is notified of.
type CallEndMode int

// Call-end modes.
const (
	CallEndOff      CallEndMode = iota // no end-of-call notification
	CallEndAnswered                    // calls an agent answered
	CallEndAll                         // every call, abandoned and unanswered ones too
)

// String is the configuration spelling.
func (m CallEndMode) String() string {
	switch m {
	case CallEndAnswered:
		return "answered"
	case CallEndAll:
		return "all"
	}
	return "off"
}

// ParseCallEndMode reads "off", "answered" or "all" ("" is off).
func ParseCallEndMode(s string) (CallEndMode, error) {
	switch s {
	case "", "off":
		return CallEndOff, nil
	case "answered":
		return CallEndAnswered, nil
	case "all":
		return CallEndAll, nil
	}
	return CallEndOff, fmt.Errorf("%q: want off, answered or all", s)
}

// SiteAuth is OMniLeads' AutenticacionSitioExterno: a bearer-token login used by
// server-trigger deliveries.
type SiteAuth struct {
	ID            int
	Name          string
	URL           string // the login endpoint (POST JSON {"username","password"})
	Username      string
	Password      Secret
	TokenField    string // response JSON field holding the token (campo_token)
	Duration      int    // token lifetime in seconds; 0 = read DurationField from the response
	DurationField string // campo_duracion
	StrictTLS     bool   // ssl_estricto: verify the CRM's certificate
}

// Secret is a string that never prints itself (logs, errors, JSON, %v).
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return `"[redacted]"` }

// MarshalText hides the value from encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the value; call it only where the secret is used.
func (s Secret) Reveal() string { return string(s) }

// Param is one CRM parameter: (family, source, name). A Name written with braces
// ("{1}", "{idClient}") is a clean-URL holder.
type Param struct {
	Family Family
	Source string
	Name   string
}

// Holder returns the placeholder name inside braces and true when the parameter is a
// clean-URL holder ({1} → "1").
func (p Param) Holder() (string, bool) {
	n := p.Name
	if len(n) < 3 || n[0] != '{' || n[len(n)-1] != '}' {
		return "", false
	}
	inner := n[1 : len(n)-1]
	for _, r := range inner {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "", false
		}
	}
	return inner, true
}

// ContactDatabase is an OMniLeads contact database: its ordered column names.
type ContactDatabase struct {
	ID      int
	Name    string
	Columns []string
	// Problem says why the contacts of this database cannot be rebuilt column by column
	// (e.g. its metadata lacks cols_telefono); empty when they can. Contacts of such a
	// database carry only the phone and external id, in their own columns when the
	// metadata names them, every other column empty.
	Problem string
}

// DatabaseLister is implemented by catalogs that can list every contact database (not
// only those of campaigns), with how many contacts have unusable data; `oml-crm check`
// uses it to report each broken database.
type DatabaseLister interface {
	ContactDatabases(ctx context.Context) ([]DatabaseReport, error)
}

// DatabaseReport is a contact database and the number of its contacts whose stored data
// cannot be read as a list of values (such contacts carry only phone and external id).
type DatabaseReport struct {
	Database           *ContactDatabase
	UnusableContacts   int
	UnusableContactIDs []int // a few examples, lowest ids first
}

// HasColumn reports whether the database has the column (exact name, as OMniLeads does).
func (d *ContactDatabase) HasColumn(name string) bool {
	for _, c := range d.Columns {
		if c == name {
			return true
		}
	}
	return false
}

// Contact is one row of a contact database, with every column rebuilt.
type Contact struct {
	ID         int
	DatabaseID int
	Phone      string
	ExternalID string
	// Fields maps every column name of the contact's database (phone and external id
	// included) to its value.
	Fields map[string]string
}

// Agent is an OMniLeads agent (ominicontacto_app_agenteprofile joined to its user).
type Agent struct {
	ID           int // agenteprofile.id: the agent id everywhere in telephony
	UserID       int // ominicontacto_app_user.id (the Django user)
	Username     string
	Name         string // "first last"
	SIPExtension string
}

// EqualFoldKey normalises a dialplan variable name for case-insensitive lookups.
func EqualFoldKey(name string) string { return strings.ToLower(name) }
