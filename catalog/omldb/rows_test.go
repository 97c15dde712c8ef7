package omldb

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/internal/logtest"
	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// brokenRows adds to the real OMniLeads 2.6.3 sample rows that nobody's import would
// write but that real databases hold: a base without cols_telefono (an older or hand-made
// metadata), a base whose metadata is not JSON, and contacts of the sample base whose
// datos is a JSON object or not JSON at all. Campaigns 5-7 use the JSON-less base.
func brokenRows(t *testing.T) string {
	t.Helper()
	db := pgtest.NewOMniLeadsDatabase(t)
	pgtest.Exec(t, db, `
INSERT INTO ominicontacto_app_basedatoscontacto (id, nombre, fecha_alta, archivo_importacion, nombre_archivo_importacion, metadata, sin_definir, cantidad_contactos, estado, oculto)
SELECT 2, 'Sin telefono', fecha_alta, archivo_importacion, nombre_archivo_importacion,
       '{"cant_col": 4, "col_id_externo": 2, "nombres_de_columnas": ["nombre", "telefono", "idcliente", "ciudad"], "prim_fila_enc": true}',
       sin_definir, 1, estado, oculto FROM ominicontacto_app_basedatoscontacto WHERE id = 1;
INSERT INTO ominicontacto_app_basedatoscontacto (id, nombre, fecha_alta, archivo_importacion, nombre_archivo_importacion, metadata, sin_definir, cantidad_contactos, estado, oculto)
SELECT 3, 'Metadata rota', fecha_alta, archivo_importacion, nombre_archivo_importacion, '{"cant_col": 4, nombres',
       sin_definir, 0, estado, oculto FROM ominicontacto_app_basedatoscontacto WHERE id = 1;
INSERT INTO ominicontacto_app_contacto (id, telefono, datos, bd_contacto_id, es_originario, id_externo) VALUES
  (10, '3515550010', '["Ana", "C\u00f3rdoba"]', 2, true, 'CLI-010'),
  (11, '3515550011', '{"nombre": "Luis", "email": "luis@example.com", "ciudad": "Rosario"}', 1, true, 'CLI-011'),
  (12, '3515550012', 'Luis;luis@example.com;Rosario', 1, true, 'CLI-012');
`)
	for id := 5; id <= 7; id++ {
		pgtest.Exec(t, db, fmt.Sprintf(`
CREATE TEMP TABLE c AS SELECT * FROM ominicontacto_app_campana WHERE id = 1;
UPDATE c SET id = %d, nombre = 'Rota %d', bd_contacto_id = 3;
INSERT INTO ominicontacto_app_campana SELECT * FROM c;`, id, id))
	}
	return db
}

// TestUnusableContactRows: values land in their own columns or nowhere.
func TestUnusableContactRows(t *testing.T) {
	c := open(t, brokenRows(t), Options{})
	ctx := context.Background()
	tests := []struct {
		id   int
		want map[string]string
	}{
		// No cols_telefono: which column the phone was in is unknown, so datos cannot be
		// placed; the external id still goes to col_id_externo. (Before: telefono = a city.)
		{10, map[string]string{"nombre": "", "telefono": "", "idcliente": "CLI-010", "ciudad": ""}},
		// datos is a JSON object / not JSON: phone and external id in their own columns.
		// (Before: the phone landed in the first column, nombre.)
		{11, map[string]string{"nombre": "", "telefono": "3515550011", "idcliente": "CLI-011", "email": "", "ciudad": ""}},
		{12, map[string]string{"nombre": "", "telefono": "3515550012", "idcliente": "CLI-012", "email": "", "ciudad": ""}},
		// The rows OMniLeads wrote still rebuild fully.
		{2, map[string]string{"nombre": "José Ñandú 😀", "telefono": "3515550002", "idcliente": "CLI-002", "email": "", "ciudad": "São Paulo"}},
	}
	for _, tt := range tests {
		ct, err := c.Contact(ctx, tt.id)
		if err != nil {
			t.Fatalf("Contact(%d): %v", tt.id, err)
		}
		if !reflect.DeepEqual(ct.Fields, tt.want) {
			t.Errorf("Contact(%d).Fields = %q\nwant %q", tt.id, ct.Fields, tt.want)
		}
	}
	cp, err := c.Campaign(ctx, 1)
	if err != nil || cp.ContactDatabase.Problem != "" {
		t.Errorf("campaign 1's base reported broken: %+v, %v", cp.ContactDatabase, err)
	}
}

// TestBrokenDatabaseWarnedOncePerChange: three campaigns on one broken base, read twice,
// give one warning, not one per campaign per refresh; a new problem is warned again.
func TestBrokenDatabaseWarnedOncePerChange(t *testing.T) {
	db := brokenRows(t)
	var logs logtest.Buffer
	c := open(t, db, Options{Logger: zerolog.New(&logs)})
	ctx := context.Background()
	for range 2 {
		if _, err := c.Campaigns(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Campaign(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), `"contact_database_id":3,"contact_database_name"`); n != 1 {
		t.Errorf("%d log lines about base 3, want 1:\n%s", n, logs.String())
	}
	pgtest.Exec(t, db, `UPDATE ominicontacto_app_basedatoscontacto SET metadata = '{"nombres_de_columnas": []}' WHERE id = 3`)
	for range 2 {
		if _, err := c.Campaigns(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), `"contact_database_id":3,"contact_database_name"`); n != 2 {
		t.Errorf("%d log lines about base 3 after its problem changed, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "no nombres_de_columnas") {
		t.Errorf("the new problem is not logged:\n%s", logs.String())
	}
}

// TestContactDatabasesReport: `oml-crm check` gets every broken base by id and name.
func TestContactDatabasesReport(t *testing.T) {
	c := open(t, brokenRows(t), Options{})
	reps, err := c.ContactDatabases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]catalog.DatabaseReport{}
	for _, r := range reps {
		got[r.Database.ID] = r
	}
	if r := got[1]; r.Database == nil || r.Database.Problem != "" || r.UnusableContacts != 2 || !reflect.DeepEqual(r.UnusableContactIDs, []int{11, 12}) {
		t.Errorf("base 1 = %+v", r)
	}
	if r := got[2]; r.Database == nil || r.Database.Name != "Sin telefono" || !strings.Contains(r.Database.Problem, "lacks cols_telefono") {
		t.Errorf("base 2 = %+v", r.Database)
	}
	if r := got[3]; r.Database == nil || r.Database.Name != "Metadata rota" || !strings.Contains(r.Database.Problem, "not valid JSON") {
		t.Errorf("base 3 = %+v", r.Database)
	}
}

// TestJSONIDsAsNumbersSites: the opt-in names OMniLeads sites by id.
func TestJSONIDsAsNumbersSites(t *testing.T) {
	c := open(t, pgtest.NewOMniLeadsDatabase(t), Options{JSONIDsAsNumbersSites: []int{3}})
	ctx := context.Background()
	for id, want := range map[int]bool{1: false, 2: true, 3: false} {
		cp, err := c.Campaign(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Site.JSONIDsAsNumbers != want {
			t.Errorf("campaign %d site %d JSONIDsAsNumbers = %v, want %v", id, cp.Site.ID, cp.Site.JSONIDsAsNumbers, want)
		}
	}
}
