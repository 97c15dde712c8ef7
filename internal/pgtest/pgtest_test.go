package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestNewOMniLeadsDatabaseHasSampleRows(t *testing.T) {
	db := NewOMniLeadsDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM ominicontacto_app_parametroscrm").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 29 {
		t.Fatalf("parametroscrm rows = %d, want 29 (the reference sample)", n)
	}
	var live bool
	if err := conn.QueryRow(ctx, "SELECT expire_date > now() FROM django_session WHERE session_key = 'itra0tqlxylyiij4c8822dn0w3mgobne'").Scan(&live); err != nil {
		t.Fatal(err)
	}
	if !live {
		t.Fatal("sample session should be live after NewOMniLeadsDatabase")
	}
}
