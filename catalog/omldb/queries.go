package omldb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
)

// campaignSQL reads campaigns with their site, the site's authentication and the contact
// database. OMniLeads' ids are integer; formato and objetivo are nullable.
const campaignSQL = `
SELECT c.id, c.nombre, c.type, c.tipo_interaccion, c.estado, c.sitio_externo_id,
       s.id, s.nombre, s.url, s.oculto, s.disparador, s.metodo, s.formato, s.objetivo,
       a.id, a.nombre, a.url, a.username, a.password, a.campo_token, a.duracion, a.campo_duracion, a.ssl_estricto,
       b.id, b.nombre, b.metadata
FROM ominicontacto_app_campana c
LEFT JOIN ominicontacto_app_sitioexterno s ON s.id = c.sitio_externo_id
LEFT JOIN ominicontacto_app_autenticacionsitioexterno a ON a.id = s.autenticacion_id
LEFT JOIN ominicontacto_app_basedatoscontacto b ON b.id = c.bd_contacto_id
WHERE $1::integer IS NULL OR c.id = $1
ORDER BY c.id`

// paramSQL reads CRM parameters in their configured order (OMniLeads orders them by id).
const paramSQL = `
SELECT campana_id, tipo, valor, nombre
FROM ominicontacto_app_parametroscrm
WHERE $1::integer IS NULL OR campana_id = $1
ORDER BY campana_id, id`

// loadCampaigns reads one campaign (id != nil) or all of them, in one round trip.
func (c *Catalog) loadCampaigns(ctx context.Context, id *int) ([]*catalog.Campaign, error) {
	batch := &pgx.Batch{}
	batch.Queue(campaignSQL, id)
	batch.Queue(paramSQL, id)
	br := c.pool.SendBatch(ctx, batch)
	defer br.Close()

	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	var out []*catalog.Campaign
	byID := map[int]*catalog.Campaign{}
	for rows.Next() {
		var (
			cp                                      catalog.Campaign
			siteID, trigger, method, format, target *int
			siteName, siteURL                       *string
			hidden                                  *bool
			authID, authDuration                    *int
			authName, authURL, authUser, authPass   *string
			authTokenField, authDurationField       *string
			authStrict                              *bool
			dbID                                    *int
			dbName, dbMeta                          *string
			ctype, interaction                      int
			siteRef                                 *int
		)
		if err := rows.Scan(&cp.ID, &cp.Name, &ctype, &interaction, &cp.State, &siteRef,
			&siteID, &siteName, &siteURL, &hidden, &trigger, &method, &format, &target,
			&authID, &authName, &authURL, &authUser, &authPass, &authTokenField, &authDuration, &authDurationField, &authStrict,
			&dbID, &dbName, &dbMeta); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan campaign: %w", err)
		}
		cp.Type = catalog.CampaignType(ctype)
		cp.Interaction = catalog.Interaction(interaction)
		cp.SiteID = derefInt(siteRef)
		if siteID != nil {
			cp.Site = &catalog.Site{
				ID: *siteID, Name: deref(siteName), URL: deref(siteURL), Hidden: derefBool(hidden),
				Trigger: catalog.Trigger(derefInt(trigger)), Method: catalog.Method(derefInt(method)),
				Target:           catalog.Target(derefInt(target)),
				JSONIDsAsNumbers: slices.Contains(c.opts.JSONIDsAsNumbersSites, *siteID),
			}
			// OMniLeads stores formato=1 on GET sites; the format means something for POST only.
			if cp.Site.Method == catalog.MethodPOST {
				cp.Site.Format = catalog.Format(derefInt(format))
			}
			if authID != nil {
				cp.Site.Auth = &catalog.SiteAuth{
					ID: *authID, Name: deref(authName), URL: deref(authURL), Username: deref(authUser),
					Password: catalog.Secret(deref(authPass)), TokenField: deref(authTokenField),
					Duration: derefInt(authDuration), DurationField: deref(authDurationField),
					StrictTLS: derefBool(authStrict),
				}
			}
		}
		if dbID != nil {
			layout := c.parseLayout(*dbID, deref(dbName), dbMeta)
			cp.ContactDatabase = layout.db
			c.databases.put(strconv.Itoa(*dbID), layout)
		}
		p := &cp
		out = append(out, p)
		byID[cp.ID] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read campaigns: %w", err)
	}

	prows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer prows.Close()
	for prows.Next() {
		var campaignID, family int
		var prm catalog.Param
		if err := prows.Scan(&campaignID, &family, &prm.Source, &prm.Name); err != nil {
			return nil, fmt.Errorf("scan CRM parameter: %w", err)
		}
		prm.Family = catalog.Family(family)
		if cp := byID[campaignID]; cp != nil {
			cp.Params = append(cp.Params, prm)
		}
	}
	if err := prows.Err(); err != nil {
		return nil, fmt.Errorf("read CRM parameters: %w", err)
	}
	return out, nil
}

// contactLayout is a contact database's columns and where the phone and external id sit.
type contactLayout struct {
	db       *catalog.ContactDatabase
	phoneIdx int // index of the main phone column (first of cols_telefono); -1 when none
	extIdx   int // index of the external id column (col_id_externo); -1 when none
	// rebuild is true when the metadata says how to rebuild a row from datos: it names
	// the columns and the main phone column, and the indexes are consistent. Otherwise
	// db.Problem says why not.
	rebuild bool
}

// layoutMetadata is the part of BaseDatosContacto.metadata oml-crm reads.
type layoutMetadata struct {
	Columns      []string `json:"nombres_de_columnas"`
	PhoneColumns []int    `json:"cols_telefono"`
	LegacyPhone  *int     `json:"col_telefono"` // rows from releases before cols_telefono
	ExternalID   *int     `json:"col_id_externo"`
}

// parseLayout decodes the metadata JSON. Bad metadata yields a layout that does not
// rebuild rows (db.Problem says why, logged once per change of the problem) rather than
// an error: the campaign still works for the other parameters, and contacts still carry
// their phone and external id.
func (c *Catalog) parseLayout(id int, name string, metadata *string) *contactLayout {
	l := &contactLayout{db: &catalog.ContactDatabase{ID: id, Name: name}, phoneIdx: -1, extIdx: -1}
	l.db.Problem = l.decode(metadata)
	l.rebuild = l.db.Problem == ""
	c.layoutWarnings.report(c.log, l.db)
	return l
}

// decode fills the layout from the metadata and returns why rows cannot be rebuilt ("" when they can).
func (l *contactLayout) decode(metadata *string) string {
	if metadata == nil || *metadata == "" {
		return "it has no metadata: its columns are unknown"
	}
	var m layoutMetadata
	if err := json.Unmarshal([]byte(*metadata), &m); err != nil {
		return "its metadata is not valid JSON (" + err.Error() + "): its columns are unknown"
	}
	l.db.Columns = m.Columns
	n := len(m.Columns)
	if m.ExternalID != nil && *m.ExternalID >= 0 && *m.ExternalID < n {
		l.extIdx = *m.ExternalID
	}
	switch {
	case len(m.PhoneColumns) > 0:
		// The first listed phone column is the main one (OMniLeads lists them in file order).
		l.phoneIdx = m.PhoneColumns[0]
	case m.LegacyPhone != nil:
		l.phoneIdx = *m.LegacyPhone
	}
	switch {
	case n == 0:
		return "its metadata has no nombres_de_columnas: its columns are unknown"
	case l.phoneIdx < 0 && len(m.PhoneColumns) == 0 && m.LegacyPhone == nil:
		return "its metadata lacks cols_telefono: which column holds the phone is unknown, so the other values cannot be placed in their columns"
	case l.phoneIdx < 0 || l.phoneIdx >= n:
		p := l.phoneIdx
		l.phoneIdx = -1
		return fmt.Sprintf("its metadata puts the phone in column %d but it has %d columns", p, n)
	case m.ExternalID != nil && (*m.ExternalID < 0 || *m.ExternalID >= n):
		return fmt.Sprintf("its metadata puts the external id in column %d but it has %d columns", *m.ExternalID, n)
	case l.extIdx == l.phoneIdx:
		l.extIdx = -1
		return fmt.Sprintf("its metadata puts the phone and the external id in the same column %d", l.phoneIdx)
	}
	return ""
}

// layoutWarnings logs a contact database's layout problem once per change, not once per
// campaign and cache refresh: one broken database under 20,000 campaigns is one line.
type layoutWarnings struct {
	mu     sync.Mutex
	warned map[int]string // database id → problem last logged; only broken databases
}

// maxWarnedDatabases bounds layoutWarnings.warned; past it the memory is cleared (and
// problems are logged once more).
const maxWarnedDatabases = 10000

func (w *layoutWarnings) report(log zerolog.Logger, db *catalog.ContactDatabase) {
	w.mu.Lock()
	prev, seen := w.warned[db.ID]
	switch {
	case db.Problem == "" && seen:
		delete(w.warned, db.ID)
	case db.Problem != "" && db.Problem != prev:
		if w.warned == nil || len(w.warned) >= maxWarnedDatabases {
			w.warned = map[int]string{}
		}
		w.warned[db.ID] = db.Problem
	}
	w.mu.Unlock()
	switch {
	case db.Problem == "" && seen:
		log.Info().Int("contact_database_id", db.ID).Str("contact_database_name", db.Name).
			Msg("contact database metadata fixed: contacts are rebuilt column by column again")
	case db.Problem != "" && db.Problem != prev:
		log.Warn().Int("contact_database_id", db.ID).Str("contact_database_name", db.Name).Str("problem", db.Problem).
			Msg("contact database cannot be rebuilt column by column: its contacts carry only the phone and external id (oml-crm check lists such databases)")
	}
}

func (c *Catalog) layout(ctx context.Context, id int) (*contactLayout, error) {
	return c.databases.get(ctx, strconv.Itoa(id), func(ctx context.Context) (*contactLayout, error) {
		var name string
		var meta *string
		err := c.pool.QueryRow(ctx,
			`SELECT nombre, metadata FROM ominicontacto_app_basedatoscontacto WHERE id = $1`, id).Scan(&name, &meta)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("contact database %d: %w", id, catalog.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("read contact database %d: %w", id, err)
		}
		return c.parseLayout(id, name, meta), nil
	}, c.staleLogger("contact_database", id))
}

// Contact reads the contact (one query; plus one for its database layout when that is
// not cached) and rebuilds every column: OMniLeads stores the main phone and the
// external id apart from the other values (datos, a JSON list).
func (c *Catalog) Contact(ctx context.Context, id int) (*catalog.Contact, error) {
	qctx, cancel := context.WithTimeout(ctx, c.opts.QueryTimeout)
	defer cancel()
	var (
		ct     = &catalog.Contact{ID: id}
		datos  string
		dbID   *int
		extern *string
	)
	err := c.pool.QueryRow(qctx,
		`SELECT telefono, datos, bd_contacto_id, id_externo FROM ominicontacto_app_contacto WHERE id = $1`, id).
		Scan(&ct.Phone, &datos, &dbID, &extern)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("contact %d: %w", id, catalog.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read contact %d: %w", id, err)
	}
	ct.ExternalID = deref(extern)
	ct.Fields = map[string]string{}
	if dbID == nil {
		return ct, nil
	}
	ct.DatabaseID = *dbID
	l, err := c.layout(ctx, *dbID)
	if err != nil {
		return nil, fmt.Errorf("contact %d: %w", id, err)
	}
	for _, col := range l.db.Columns {
		ct.Fields[col] = ""
	}
	// Whatever else is wrong, the phone and the external id go in their own columns
	// when the metadata names them.
	known := func() {
		if l.phoneIdx >= 0 && l.phoneIdx < len(l.db.Columns) {
			ct.Fields[l.db.Columns[l.phoneIdx]] = ct.Phone
		}
		if l.extIdx >= 0 && l.extIdx < len(l.db.Columns) && l.extIdx != l.phoneIdx {
			ct.Fields[l.db.Columns[l.extIdx]] = ct.ExternalID
		}
	}
	if !l.rebuild {
		known() // the database's problem is logged once by parseLayout
		return ct, nil
	}
	values, err := decodeDatos(datos)
	if err != nil {
		// A broken contact database warns for each of its contacts: once a minute is enough.
		c.warnings.Event(c.log.Warn(), "datos "+strconv.Itoa(*dbID)).Err(err).Int("contact_id", id).Int("contact_database_id", *dbID).
			Msg("contact datos is not a JSON list: only its phone and external id are sent, the other columns empty")
		known()
		return ct, nil
	}
	row := rebuildRow(values, ct.Phone, extern, l.phoneIdx, l.extIdx)
	if len(row) != len(l.db.Columns) {
		c.warnings.Event(c.log.Warn(), "values "+strconv.Itoa(*dbID)).Int("contact_id", id).Int("contact_database_id", *dbID).
			Int("values", len(row)).Int("columns", len(l.db.Columns)).
			Msg("contact has a different number of values than its database has columns")
	}
	for i, col := range l.db.Columns {
		if i < len(row) {
			ct.Fields[col] = row[i]
		}
	}
	return ct, nil
}

// decodeDatos decodes Contacto.datos: a JSON list of strings (OMniLeads writes strings;
// numbers or nulls from other writers are kept as their text, null as "").
func decodeDatos(datos string) ([]string, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(datos), &raw); err != nil {
		return nil, err
	}
	out := make([]string, len(raw))
	for i, r := range raw {
		var s string
		if err := json.Unmarshal(r, &s); err == nil {
			out[i] = s
			continue
		}
		if t := strings.TrimSpace(string(r)); t != "null" {
			out[i] = t
		}
	}
	return out, nil
}

// rebuildRow inserts the phone and the external id at their column indexes, the lower
// index first (as OMniLeads' Contacto.lista_de_datos_completa does), so the result lines
// up with nombres_de_columnas. An index past the end appends.
func rebuildRow(values []string, phone string, extern *string, phoneIdx, extIdx int) []string {
	type ins struct {
		idx int
		val string
	}
	var todo []ins
	if phoneIdx >= 0 {
		todo = append(todo, ins{phoneIdx, phone})
	}
	if extIdx >= 0 && extIdx != phoneIdx {
		todo = append(todo, ins{extIdx, deref(extern)})
	}
	if len(todo) == 2 && todo[1].idx < todo[0].idx {
		todo[0], todo[1] = todo[1], todo[0]
	}
	row := make([]string, 0, len(values)+len(todo))
	row = append(row, values...)
	for _, in := range todo {
		i := min(in.idx, len(row))
		row = append(row, "")
		copy(row[i+1:], row[i:])
		row[i] = in.val
	}
	return row
}

// agentDirectory is every agent by id and by SIP extension.
type agentDirectory struct {
	byID        map[int]*catalog.Agent
	byExtension map[string]*catalog.Agent
}

// agentDirectory returns the cached agent list, reading all agents (a few hundred rows at
// most) when it expired: a lookup of an unknown id or extension then costs no query.
func (c *Catalog) agentDirectory(ctx context.Context) (*agentDirectory, error) {
	return c.agents.get(ctx, "agents", func(ctx context.Context) (*agentDirectory, error) {
		rows, err := c.pool.Query(ctx, `
SELECT a.id, u.id, u.username, u.first_name, u.last_name, a.sip_extension
FROM ominicontacto_app_agenteprofile a
JOIN ominicontacto_app_user u ON u.id = a.user_id
WHERE NOT a.borrado AND NOT u.borrado
ORDER BY a.id`)
		if err != nil {
			return nil, fmt.Errorf("read agents: %w", err)
		}
		defer rows.Close()
		dir := &agentDirectory{byID: map[int]*catalog.Agent{}, byExtension: map[string]*catalog.Agent{}}
		for rows.Next() {
			var a catalog.Agent
			var first, last string
			var ext int
			if err := rows.Scan(&a.ID, &a.UserID, &a.Username, &first, &last, &ext); err != nil {
				return nil, fmt.Errorf("scan agent: %w", err)
			}
			a.Name = strings.TrimSpace(first + " " + last)
			a.SIPExtension = strconv.Itoa(ext)
			dir.byID[a.ID] = &a
			dir.byExtension[a.SIPExtension] = &a
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read agents: %w", err)
		}
		return dir, nil
	}, c.staleLogger("agents", 0))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(i *int) int {
	if i == nil {
		return 0
	}
	return *i
}

func derefBool(b *bool) bool { return b != nil && *b }

// databasesSQL lists every contact database with the contacts whose datos does not even
// look like a JSON list (a cheap test PostgreSQL 15 can run without a JSON cast that
// would fail the whole query); Contact detects the rest when it reads them.
const databasesSQL = `
SELECT b.id, b.nombre, b.metadata, coalesce(x.n, 0), coalesce(x.ids, '{}')
FROM ominicontacto_app_basedatoscontacto b
LEFT JOIN (
  SELECT bd_contacto_id, count(*) AS n, (array_agg(id ORDER BY id))[1:5] AS ids
  FROM ominicontacto_app_contacto
  WHERE datos !~ '^\s*\[.*\]\s*$'
  GROUP BY bd_contacto_id
) x ON x.bd_contacto_id = b.id
ORDER BY b.id`

// ContactDatabases reads every contact database with its layout problem and the number
// of its contacts whose datos is not a JSON list (`oml-crm check`).
func (c *Catalog) ContactDatabases(ctx context.Context) ([]catalog.DatabaseReport, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.QueryTimeout)
	defer cancel()
	rows, err := c.pool.Query(ctx, databasesSQL)
	if err != nil {
		return nil, fmt.Errorf("read contact databases: %w", err)
	}
	defer rows.Close()
	var out []catalog.DatabaseReport
	for rows.Next() {
		var (
			id, n int
			name  string
			meta  *string
			ids   []int32
		)
		if err := rows.Scan(&id, &name, &meta, &n, &ids); err != nil {
			return nil, fmt.Errorf("scan contact database: %w", err)
		}
		l := &contactLayout{db: &catalog.ContactDatabase{ID: id, Name: name}, phoneIdx: -1, extIdx: -1}
		l.db.Problem = l.decode(meta)
		r := catalog.DatabaseReport{Database: l.db, UnusableContacts: n}
		for _, x := range ids {
			r.UnusableContactIDs = append(r.UnusableContactIDs, int(x))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read contact databases: %w", err)
	}
	return out, nil
}
