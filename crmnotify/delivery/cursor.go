package delivery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Cursor returns the durable position named name (e.g. the last OMniLeads disposition
// history row handled); ok is false when none was saved yet. Cursors live in the outbox
// database, so instances sharing a PostgreSQL outbox share them.
func (q *Queue) Cursor(ctx context.Context, name string) (value int64, ok bool, err error) {
	v, ok, err := q.store.cursor(ctx, name)
	if err != nil {
		return 0, false, fmt.Errorf("read cursor %s: %w", name, err)
	}
	return v, ok, nil
}

// AdvanceCursor moves the cursor name to value unless it is already further (several
// instances advancing it concurrently never move it back).
func (q *Queue) AdvanceCursor(ctx context.Context, name string, value int64) error {
	if err := q.store.advanceCursor(ctx, name, value); err != nil {
		return fmt.Errorf("advance cursor %s to %d: %w", name, value, err)
	}
	return nil
}

func (s *sqlStore) cursorsTable() string {
	return strings.TrimSuffix(s.d.deliveries, "deliveries") + "cursors"
}

func (s *sqlStore) cursor(ctx context.Context, name string) (int64, bool, error) {
	var v int64
	err := s.w.QueryRowContext(ctx, s.d.sql(`SELECT value FROM `+s.cursorsTable()+` WHERE name = ?`), name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return v, true, nil
}

func (s *sqlStore) advanceCursor(ctx context.Context, name string, value int64) error {
	t := s.cursorsTable()
	larger := "MAX(" + t + ".value, excluded.value)"
	if s.d.pg {
		larger = "GREATEST(" + t + ".value, excluded.value)"
	}
	_, err := s.w.ExecContext(ctx, s.d.sql(`INSERT INTO `+t+` (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = `+larger), name, value)
	if err == nil {
		s.wrote()
	}
	return err
}
