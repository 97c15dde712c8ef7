package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// TestCheckFindsWhatTheOMniLeadsCatalogGetsWrong: on OMniLeads' real 2.6.3 schema and
// sample rows, each kind of catalog defect `check` used to miss is reported, by id.
func TestCheckFindsWhatTheOMniLeadsCatalogGetsWrong(t *testing.T) {
	db := pgtest.NewOMniLeadsDatabase(t)
	pgtest.Exec(t, db, `
UPDATE ominicontacto_app_campana SET type = 7 WHERE id = 1;
UPDATE ominicontacto_app_campana SET tipo_interaccion = 5 WHERE id = 3;
UPDATE ominicontacto_app_sitioexterno SET url = 'javascript://crm/%0aalert(document.cookie)/{1}/{2}/es' WHERE id = 4;
INSERT INTO ominicontacto_app_parametroscrm (id, nombre, valor, tipo, campana_id) VALUES (100, 'resultado', 'nombre', 6, 2);
INSERT INTO ominicontacto_app_basedatoscontacto (id, nombre, fecha_alta, archivo_importacion, nombre_archivo_importacion, metadata, sin_definir, cantidad_contactos, estado, oculto)
SELECT 2, 'Sin telefono', fecha_alta, archivo_importacion, nombre_archivo_importacion,
       '{"cant_col": 3, "nombres_de_columnas": ["nombre", "telefono", "ciudad"]}', sin_definir, 0, estado, oculto
FROM ominicontacto_app_basedatoscontacto WHERE id = 1;
INSERT INTO ominicontacto_app_contacto (id, telefono, datos, bd_contacto_id, es_originario, id_externo) VALUES
  (11, '3515550011', '{"nombre": "Luis"}', 1, true, 'CLI-011');
CREATE TEMP TABLE c AS SELECT * FROM ominicontacto_app_campana WHERE id = 1;
UPDATE c SET id = 5, nombre = 'Sitio borrado', type = 1, sitio_externo_id = 6;
INSERT INTO ominicontacto_app_campana SELECT * FROM c;
UPDATE c SET id = 6, nombre = 'Disparador raro', sitio_externo_id = 5, bd_contacto_id = 2;
INSERT INTO ominicontacto_app_campana SELECT * FROM c;
UPDATE ominicontacto_app_sitioexterno SET disparador = 9 WHERE id = 5;
`)
	// A restore without constraint checks leaves campaign 5 pointing at a deleted site.
	pgtest.Exec(t, db, `SET session_replication_role = replica; DELETE FROM ominicontacto_app_sitioexterno WHERE id = 6;`)
	code, stdout, stderr := coreRun(t, "check", "--catalog", db)
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, want := range []string{
		"unknown campaign type code 7",
		"campaign 3 (",
		"unknown interaction code 5 (tipo_interaccion",
		"campaign 4 (",
		`uses the scheme "javascript"`,
		`parameter "resultado": disposition data "nombre" is only known once the agent dispositions the call, but this site (trigger server)`,
		"campaign 5 (Sitio borrado)",
		"the campaign's external site 6 no longer exists",
		"campaign 6 (Disparador raro)",
		"unknown trigger code 9",
		"contact database 2 (Sin telefono): its metadata lacks cols_telefono",
		"used by campaign(s) 6",
		"contact database 1 (Clientes demo): 1 contact(s) whose data (datos) is not a JSON list, e.g. contact 11",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("check output lacks %q", want)
		}
	}
	if strings.Contains(stdout, "Disparador raro): site 5") && strings.Contains(stdout, "fired by OMniLeads itself") {
		t.Error("an unknown trigger is reported as fired by OMniLeads itself")
	}
	if t.Failed() {
		t.Logf("stdout:\n%s", stdout)
	}

	code, _, stderr = coreRun(t, "render", "--catalog", db, "--campaign", "6")
	if code != 0 || !strings.Contains(stderr, "unknown trigger code 9") || strings.Contains(stderr, "fires it itself") {
		t.Errorf("render of an unknown trigger: exit %d, stderr %s", code, stderr)
	}
}

// TestCheckDjangoSessionGrants: in django-session mode `check` logs in as the configured
// (restricted) PostgreSQL role and finds each grant agent logins need, before agents get
// 503 on every connection.
func TestCheckDjangoSessionGrants(t *testing.T) {
	admin := pgtest.AdminURL(t)
	role := fmt.Sprintf("omlcrm_check_%d", time.Now().UnixNano()%1e9)
	// Registered first, so it runs after the test database is dropped.
	t.Cleanup(func() { pgtest.Exec(t, admin, "DROP ROLE IF EXISTS "+role) })
	db := pgtest.NewOMniLeadsDatabase(t)
	// The catalog grants of docs/omnileads.md section 4, without the django-session ones.
	pgtest.Exec(t, db, `CREATE ROLE `+role+` LOGIN;
GRANT USAGE ON SCHEMA public TO `+role+`;
GRANT SELECT ON public.ominicontacto_app_campana, public.ominicontacto_app_sitioexterno,
  public.ominicontacto_app_autenticacionsitioexterno, public.ominicontacto_app_parametroscrm,
  public.ominicontacto_app_basedatoscontacto, public.ominicontacto_app_contacto,
  public.ominicontacto_app_agenteprofile TO `+role+`;
GRANT SELECT (id, username, first_name, last_name, is_active, borrado) ON public.ominicontacto_app_user TO `+role+`;`)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	cfg := coreWriteFile(t, "oml-crm.yaml", fmt.Sprintf(`asterisk:
  ami: {username: omlcrm, secret: ami-s3cret}
agentws: {auth: django-session, django_secret_key: "s1+*bfrvb@=k@c&9=pm!0sijjewneu5p5rojil#q+!a2y&as-4"}
database: {url: %q}
`, u.String()))

	code, stdout, stderr := coreRun(t, "check", "--config", cfg)
	if code != 1 || !strings.Contains(stdout, "agentws.auth=django-session: the role of database.url cannot read") ||
		!strings.Contains(stdout, "django_session") || !strings.Contains(stdout, "ominicontacto_app_user") {
		t.Fatalf("no session grants: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	pgtest.Exec(t, db, `GRANT SELECT ON public.django_session TO `+role)
	code, stdout, _ = coreRun(t, "check", "--config", cfg)
	if code != 1 || strings.Contains(stdout, "table django_session") || !strings.Contains(stdout, "ominicontacto_app_user") {
		t.Fatalf("no user password grant: exit %d\nstdout: %s", code, stdout)
	}

	pgtest.Exec(t, db, `GRANT SELECT (password, is_agente) ON public.ominicontacto_app_user TO `+role)
	code, stdout, stderr = coreRun(t, "check", "--config", cfg)
	if code != 0 || !strings.Contains(stdout, "agentws.auth=django-session: the database role can read sessions and agents: ok") {
		t.Fatalf("all grants: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}
