package delivery

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// stmtCache holds the hot write statements prepared once per store: parsing the SQL on
// every Enqueue and every finished attempt was a quarter of the daemon's CPU in the load
// test (modernc.org/sqlite prepares an unprepared Exec each time). database/sql keeps each
// statement prepared on every connection it has used it on, transactions included. The
// keys are the query templates written in this package, so the map is bounded by them.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// prepared returns the write statement for the query template q ({D}/{A} placeholders),
// preparing it on first use.
func (s *sqlStore) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	if st, ok := s.stmts.m[q]; ok {
		return st, nil
	}
	st, err := s.w.PrepareContext(ctx, s.d.sql(q))
	if err != nil {
		return nil, fmt.Errorf("preparing a delivery store statement: %w", err)
	}
	if s.stmts.m == nil {
		s.stmts.m = map[string]*sql.Stmt{}
	}
	s.stmts.m[q] = st
	return st, nil
}

// closeStmts closes the prepared statements (before the databases close).
func (s *sqlStore) closeStmts() {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	for q, st := range s.stmts.m {
		st.Close()
		delete(s.stmts.m, q)
	}
}
