package delivery

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// TestPostgresReleaseAllReadsTheBacklog: the take-back statement, which Run repeats for
// a few seconds after each start, reads the pending and failed deliveries through an
// index, not every delivery kept (a month of them by default), and releases exactly
// the earlier run's expired claims.
func TestPostgresReleaseAllReadsTheBacklog(t *testing.T) {
	ctx := context.Background()
	st, err := openStore(ctx, Options{Store: pgtest.NewDatabase(t), Schema: "omlcrm", Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*sqlStore)
	defer s.close()
	base := time.Now()
	const kept = 20000
	// A month of delivered rows, and a backlog of 50 of which 10 claimed by a dead run.
	if _, err := s.w.ExecContext(ctx, s.d.sql(`INSERT INTO {D} (`+deliveryColumns+`, lease_owner, lease_until)
		SELECT 'd'||g, 1, 'c', 7, 'call'||g, 2, CASE WHEN g <= 50 THEN 'pending' ELSE 'delivered' END, 'POST', 'http://127.0.0.1/', '{}',
			'text/plain', ''::bytea, false, false, $1, $1, $2, $1, 0, 0, '', NULL, NULL, '',
			CASE WHEN g <= 10 THEN 'node-a' END, CASE WHEN g <= 10 THEN $3::timestamptz END
		FROM generate_series(1, `+strconv.Itoa(kept)+`) g`), base.UTC(), base.Add(time.Hour).UTC(), base.Add(-time.Second).UTC()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, s.d.sql(`ANALYZE {D}`)); err != nil {
		t.Fatal(err)
	}
	rows, err := s.w.QueryContext(ctx, "EXPLAIN "+s.d.sql(releaseAllQuery(true)), "node-a", base.UTC())
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	rows.Close()
	if p := strings.Join(plan, "\n"); strings.Contains(p, "Seq Scan") || !strings.Contains(p, "Index") {
		t.Errorf("the take-back reads all %d deliveries:\n%s", kept, p)
	}
	n, err := s.releaseAll(ctx, "node-a", base)
	if err != nil || n != 10 {
		t.Errorf("releaseAll = %d, %v; want the 10 claims of the dead run", n, err)
	}
}
