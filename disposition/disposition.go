// Package disposition reads the dispositions agents save, for OMniLeads' trigger 4
// ("Calificación") sites: from the OMniLeads database (Source, a durable cursor on the
// disposition history table) or, with the file catalog, from an HTTP post
// (HTTPHandler). Each disposition is handed to a Handler (the dispatcher's
// HandleDisposition), which renders and delivers or pops it.
package disposition

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/crmnotify"
)

// Handler takes one disposition and returns the notification it became (the
// dispatcher's HandleDisposition). An error wrapping crmnotify.ErrDispositionIgnored
// means nothing was to be done; any other error stops the cursor at that disposition (it
// is tried again at the next poll).
type Handler func(ctx context.Context, ev crmnotify.DispositionEvent) (crmnotify.Notification, error)

// CursorStore keeps the cursor durably (the delivery queue's database: shared by the
// instances sharing a PostgreSQL outbox). AdvanceCursor never moves it back.
type CursorStore interface {
	Cursor(ctx context.Context, name string) (int64, bool, error)
	AdvanceCursor(ctx context.Context, name string, value int64) error
}

// CursorName names the disposition history cursor in the CursorStore.
const CursorName = "omnileads.historicalcalificacioncliente.history_id"

// Options configure a Source.
type Options struct {
	Pool    *pgxpool.Pool // the OMniLeads database (read only)
	Cursors CursorStore
	Handle  Handler
	// PollInterval is the pause between polls (1 s).
	PollInterval time.Duration
	// Settle is how old a history row must be before the cursor passes it (2 s): a
	// save whose transaction commits after a later one's is still seen as long as it
	// commits within Settle of its save.
	Settle time.Duration
	// Batch bounds the rows read per poll from each history table (500).
	Batch  int
	Logger zerolog.Logger
}

// Source polls ominicontacto_app_historicalcalificacioncliente past a durable cursor on
// history_id (an index scan on its primary key). Every save of a disposition is a
// history row (a creation "+", an edit "~"), so an edit is seen like a creation.
//
// What fires, as OMniLeads 2.6.3 itself does (views_calificacion_cliente.py
// disparar_interaccion_sitio_externo): a save made from a call (the row has a callid:
// the agent console saved it with the call's data) of an option with interaccion_crm,
// whose campaign's site has trigger 4; a creation and each later edit made from the call
// fire again (OMniLeads fires on each save of the disposition form), an edit made
// elsewhere (the agent's report or a supervisor's audit: change reason "reporte" or
// "audita_supervisor", or no callid at all) does not, a deletion never.
// Management-form options (tipo 1, "gestión") do not fire at the disposition's save: as
// in OMniLeads, they fire when the agent saves the management form's answers from the
// call, with the answers (RespuestaFormularioGestion.metadata) as the `form` parameter.
// A second cursor (FormCursorName) on ominicontacto_app_historicalrespuestaformulariogestion
// reads those saves: a creation of the answers, and an edit made right after a
// re-disposition from the call, fire; an edit of the answers alone (the agent's
// report), one following a disposition saved from the report or an audit, a
// disposition without callid, and a deletion do not.
//
// Exactly once: a row's notification id derives from its history_id ("form-" and the
// history_id for the answers' rows, whose ids are another sequence), so a row read
// again (a crash between hand-off and cursor save, another instance polling too) is
// queued or popped once. Each cursor only passes rows that were handed off (or
// ignored).
type Source struct {
	o   Options
	log zerolog.Logger
}

// NewSource checks the options.
func NewSource(o Options) (*Source, error) {
	if o.Pool == nil || o.Cursors == nil || o.Handle == nil {
		return nil, errors.New("disposition: Source needs a database pool, a cursor store and a handler")
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	return &Source{o: o, log: o.Logger.With().Str("component", "dispositions").Logger()}, nil
}

// Run polls until ctx ends. A failing poll is logged and retried at the next interval.
func (s *Source) Run(ctx context.Context) error {
	t := time.NewTicker(s.o.PollInterval)
	defer t.Stop()
	for {
		for {
			n, err := s.Poll(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn().Err(err).Msg("poll dispositions (retried)")
			}
			if n < s.o.Batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

const historyQuery = `
SELECT h.history_id, h.id, h.history_type, COALESCE(h.callid, ''), COALESCE(h.agente_id, 0),
       COALESCE(h.contacto_id, 0), COALESCE(h.subcalificacion, ''), h.history_date,
       o.nombre, o.interaccion_crm, o.tipo, o.campana_id,
       COALESCE(h.history_change_reason, '') NOT IN ('reporte', 'audita_supervisor')
FROM ominicontacto_app_historicalcalificacioncliente h
JOIN ominicontacto_app_opcioncalificacion o ON o.id = h.opcion_calificacion_id
WHERE h.history_id > $1 AND h.history_date < now() - make_interval(secs => $2)
ORDER BY h.history_id
LIMIT $3`

// optionGestion is OpcionCalificacion.tipo GESTION (opens a management form).
const optionGestion = 1

// Poll reads and hands off the rows past each cursor (at most Batch per cursor: the
// disposition history, then the management-form answers' history) and advances the
// cursors; it returns the most rows one cursor read. A first poll ever starts each cursor
// at its table's newest row (saves made before oml-crm ran are not sent).
func (s *Source) Poll(ctx context.Context) (int, error) {
	n, err := s.pollDispositions(ctx)
	if err != nil {
		return n, err
	}
	m, err := s.pollForms(ctx)
	return max(n, m), err
}

// startCursor reads the cursor name; when it is not set yet, it sets it at the newest
// history_id of table and reports ok false (nothing to read this time).
func (s *Source) startCursor(ctx context.Context, name, table, what string) (int64, bool, error) {
	cur, ok, err := s.o.Cursors.Cursor(ctx, name)
	if err != nil || ok {
		return cur, ok, err
	}
	var maxID int64
	if err := s.o.Pool.QueryRow(ctx, `SELECT COALESCE(MAX(history_id), 0) FROM `+table).Scan(&maxID); err != nil {
		return 0, false, fmt.Errorf("read the newest %s history row: %w", what, err)
	}
	if err := s.o.Cursors.AdvanceCursor(ctx, name, maxID); err != nil {
		return 0, false, err
	}
	s.log.Info().Int64("history_id", maxID).Str("cursor", name).Msg(what + "s: cursor starts at the newest history row")
	return 0, false, nil
}

func (s *Source) pollDispositions(ctx context.Context) (int, error) {
	cur, ok, err := s.startCursor(ctx, CursorName, "ominicontacto_app_historicalcalificacioncliente", "disposition")
	if err != nil || !ok {
		return 0, err
	}
	rows, err := s.o.Pool.Query(ctx, historyQuery, cur, s.o.Settle.Seconds(), s.o.Batch)
	if err != nil {
		return 0, fmt.Errorf("read disposition history past %d: %w", cur, err)
	}
	type row struct {
		hid                      int64
		id, agent, contact, tipo int
		campaign                 int
		typ, callID, sub, name   string
		at                       time.Time
		fires                    bool
		fromCall                 bool // not saved from the agent's report or a supervisor's audit
	}
	var list []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.hid, &r.id, &r.typ, &r.callID, &r.agent, &r.contact, &r.sub, &r.at,
			&r.name, &r.fires, &r.tipo, &r.campaign, &r.fromCall); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read disposition history: %w", err)
		}
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read disposition history: %w", err)
	}
	for _, r := range list {
		var ev *crmnotify.DispositionEvent
		// OMniLeads keeps the stored callid when the agent edits from the report, but fires
		// only with the call's data: the change reason ("reporte") tells them apart.
		if r.typ != "-" && r.callID != "" && r.fromCall && r.fires && r.tipo != optionGestion {
			ev = &crmnotify.DispositionEvent{
				Seq: strconv.FormatInt(r.hid, 10), CallID: r.callID, AgentID: r.agent, CampaignID: r.campaign,
				ContactID: r.contact, At: r.at, FiresCRM: r.fires,
				Disposition: crmnotify.Disposition{ID: r.id, Name: r.name, Subdisposition: r.sub},
			}
		}
		if err := s.fire(ctx, CursorName, r.hid, ev, fmt.Sprintf("disposition %d", r.id)); err != nil {
			return 0, err
		}
	}
	return len(list), nil
}

// fire hands ev (nil: the history row fires nothing) to Handle, then moves cursor past
// the row's history id hid; what names the row in an error.
func (s *Source) fire(ctx context.Context, cursor string, hid int64, ev *crmnotify.DispositionEvent, what string) error {
	if ev != nil {
		if _, err := s.o.Handle(ctx, *ev); err != nil && !errors.Is(err, crmnotify.ErrDispositionIgnored) {
			return fmt.Errorf("%s (history %d, call %s): %w", what, hid, ev.CallID, err)
		}
	}
	return s.o.Cursors.AdvanceCursor(ctx, cursor, hid)
}

// FormCursorName names the management-form answers' history cursor in the CursorStore.
const FormCursorName = "omnileads.historicalrespuestaformulariogestion.history_id"

// formHistoryQuery reads the management-form answers' history past the cursor with the
// disposition they answer (its current row) and its option. fromCall tells whether the
// save is the one OMniLeads makes right after a disposition saved from the call: the
// disposition's latest save before it (its history) carries a callid and was not made
// from the agent's report or a supervisor's audit, and no other save of the answers
// came between them (a later edit of the answers alone, from the agent's report, has no
// call data in OMniLeads and does not fire).
const formHistoryQuery = `
SELECT h.history_id, h.history_type, h.metadata, h.history_date, COALESCE(c.id, 0),
       COALESCE(c.callid, ''), COALESCE(c.agente_id, 0), COALESCE(c.contacto_id, 0),
       COALESCE(c.subcalificacion, ''), COALESCE(o.nombre, ''), COALESCE(o.interaccion_crm, false),
       COALESCE(o.tipo, -1), COALESCE(o.campana_id, 0), COALESCE(s.from_call, false)
FROM ominicontacto_app_historicalrespuestaformulariogestion h
LEFT JOIN ominicontacto_app_calificacioncliente c ON c.id = h.calificacion_id
LEFT JOIN ominicontacto_app_opcioncalificacion o ON o.id = c.opcion_calificacion_id
LEFT JOIN LATERAL (
    SELECT COALESCE(hc.callid, '') <> '' AND hc.history_type <> '-'
           AND COALESCE(hc.history_change_reason, '') NOT IN ('reporte', 'audita_supervisor')
           AND NOT EXISTS (
               SELECT 1 FROM ominicontacto_app_historicalrespuestaformulariogestion p
               WHERE p.calificacion_id = h.calificacion_id AND p.history_id < h.history_id
                 AND p.history_date >= hc.history_date) AS from_call
    FROM ominicontacto_app_historicalcalificacioncliente hc
    WHERE hc.id = h.calificacion_id AND hc.history_date <= h.history_date
    ORDER BY hc.history_date DESC, hc.history_id DESC
    LIMIT 1) s ON true
WHERE h.history_id > $1 AND h.history_date < now() - make_interval(secs => $2)
ORDER BY h.history_id
LIMIT $3`

// pollForms fires the management-form options (tipo 1): OMniLeads 2.6.3 fires them when
// the agent saves the form's answers from the call (views_calificacion_cliente.py,
// RespuestaFormularioCreateUpdateAgenteFormView.disparar_interaccion_sitio_externo), on
// their creation and on each later save from the call, with the answers as `form`.
func (s *Source) pollForms(ctx context.Context) (int, error) {
	cur, ok, err := s.startCursor(ctx, FormCursorName, "ominicontacto_app_historicalrespuestaformulariogestion", "management form")
	if err != nil || !ok {
		return 0, err
	}
	rows, err := s.o.Pool.Query(ctx, formHistoryQuery, cur, s.o.Settle.Seconds(), s.o.Batch)
	if err != nil {
		return 0, fmt.Errorf("read management-form history past %d: %w", cur, err)
	}
	type row struct {
		hid                      int64
		typ, form, callID, sub   string
		name                     string
		at                       time.Time
		id, agent, contact, tipo int
		campaign                 int
		fires, fromCall          bool
	}
	var list []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.hid, &r.typ, &r.form, &r.at, &r.id, &r.callID, &r.agent, &r.contact, &r.sub,
			&r.name, &r.fires, &r.tipo, &r.campaign, &r.fromCall); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read management-form history: %w", err)
		}
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read management-form history: %w", err)
	}
	for _, r := range list {
		var ev *crmnotify.DispositionEvent
		if r.typ != "-" && r.id != 0 && r.callID != "" && r.fromCall && r.fires && r.tipo == optionGestion {
			// "form-": the answers' history_id is another sequence than the
			// disposition's, so its notification ids must not meet those.
			ev = &crmnotify.DispositionEvent{
				Seq: "form-" + strconv.FormatInt(r.hid, 10), CallID: r.callID, AgentID: r.agent, CampaignID: r.campaign,
				ContactID: r.contact, At: r.at, FiresCRM: r.fires,
				Disposition: crmnotify.Disposition{ID: r.id, Name: r.name, Subdisposition: r.sub, FormJSON: r.form},
			}
		}
		if err := s.fire(ctx, FormCursorName, r.hid, ev, fmt.Sprintf("disposition %d management form", r.id)); err != nil {
			return 0, err
		}
	}
	return len(list), nil
}
