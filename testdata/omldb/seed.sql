-- Seed rows for testdata/omldb/schema.sql, including the OMniLeads documentation's two
-- examples (campaign 11: query string; campaign 12: clean URL), written for oml-crm's tests.
-- datos is written the way OMniLeads writes it (Python json.dumps: non-ASCII as \uXXXX,
-- characters beyond the BMP as surrogate pairs).

INSERT INTO ominicontacto_app_user (id, username, first_name, last_name, is_agente, borrado) VALUES
    (2, 'agent1', 'Luis', 'Gómez', true, false),
    (3, 'agent2', 'Ana', 'Pérez', true, false),
    (4, 'gone', 'Old', 'Agent', true, true);

INSERT INTO ominicontacto_app_agenteprofile (id, user_id, sip_extension, estado, borrado) VALUES
    (1, 2, 1002, 1, false),
    (2, 3, 1003, 1, false),
    (3, 4, 1004, 1, true);

INSERT INTO ominicontacto_app_autenticacionsitioexterno
    (id, nombre, url, username, password, campo_token, duracion, campo_duracion, ssl_estricto) VALUES
    (1, 'CRM login', 'https://crm.example.com/api/login', 'omlcrm', 'crm-password-1', 'access_token', 0, 'expires_in', true);

INSERT INTO ominicontacto_app_sitioexterno (id, nombre, url, oculto, disparador, metodo, formato, objetivo, autenticacion_id) VALUES
    -- Example 1: agent button, GET, embedded (GET sites store formato = 1).
    (1, 'my_crm', 'https://my_crm.domain.com', false, 1, 1, 1, 1, NULL),
    -- Example 2: the same as a clean URL.
    (2, 'my_crm clean URL', 'https://my_crm.domain.com/{1}/{2}/{3}/{4}', false, 1, 1, 1, 1, NULL),
    -- Server trigger, POST JSON, bearer-token login; hidden but still used by campaign 13.
    (3, 'crm server', 'https://crm.example.com/api/calls', true, 3, 2, 4, NULL, 1);

INSERT INTO ominicontacto_app_basedatoscontacto (id, nombre, metadata, estado) VALUES
    -- External id before the phone: rebuilding inserts index 0 first, then index 2.
    (1, 'Clientes docs', '{"cant_col": 5, "cols_telefono": [2, 3], "col_id_externo": 0, "nombres_de_columnas": ["idcliente", "nombre", "telefono", "celular", "email"], "prim_fila_enc": true}', 1),
    -- No external id column; a single data column.
    (2, 'Solo nombre', '{"cant_col": 2, "cols_telefono": [0], "nombres_de_columnas": ["telefono", "nombre"], "prim_fila_enc": true}', 1),
    -- External id after the phone, col_id_externo written as null by another writer.
    (3, 'Externo al final', '{"cols_telefono": [1], "col_id_externo": null, "nombres_de_columnas": ["nombre", "telefono", "ciudad"]}', 1);

INSERT INTO ominicontacto_app_contacto (id, telefono, datos, bd_contacto_id, id_externo) VALUES
    (321321321, '4149014', '["Juan P\u00e9rez", "1155550000", "juan@example.com"]', 1, 'A-321'),
    (7, '3515550007', '["Jos\u00e9 \u00d1and\u00fa \ud83d\ude00", "", ""]', 1, ''),
    (8, '3515550008', '[""]', 2, NULL),
    (9, '3515550009', '["Zo\u00eb \"Zo\" O''Brien", "Malm\u00f6"]', 3, NULL);

INSERT INTO ominicontacto_app_campana (id, nombre, estado, type, tipo_interaccion, bd_contacto_id, sitio_externo_id) VALUES
    (11, 'Example 1', 2, 4, 2, 1, 1),
    (12, 'Example 2', 2, 4, 2, 1, 2),
    (13, 'Server delivery', 2, 2, 3, 1, 3),
    (14, 'Paused', 5, 1, 2, 2, 1),
    (15, 'Form only', 2, 3, 1, 2, NULL);

-- Inserted out of id order on purpose: parameters are ordered by id, not by insertion.
INSERT INTO ominicontacto_app_parametroscrm (id, campana_id, nombre, valor, tipo) VALUES
    (4, 11, 'recordingFile', 'rec_filename', 3),
    (1, 11, 'idClient', 'id_contacto', 3),
    (3, 11, 'lang', 'es', 4),
    (2, 11, 'idCamp', 'id', 1),
    (5, 12, '{1}', 'id_contacto', 3),
    -- The documentation shows campaign 11's id in Example 2; a fixed value reproduces it.
    (6, 12, '{2}', '11', 4),
    (7, 12, '{3}', 'es', 4),
    (8, 12, '{4}', 'rec_filename', 3),
    (9, 13, 'phone', 'telefono', 3),
    (10, 13, 'customer', 'idcliente', 2),
    (11, 13, 'ticket', 'Omlcrmticket', 5),
    (12, 13, 'campaign', 'tipo', 1),
    (13, 14, 'name', 'nombre', 2);

SELECT setval('ominicontacto_app_user_id_seq', 10);
SELECT setval('ominicontacto_app_agenteprofile_id_seq', 10);
SELECT setval('ominicontacto_app_autenticacionsitioexterno_id_seq', 10);
SELECT setval('ominicontacto_app_sitioexterno_id_seq', 10);
SELECT setval('ominicontacto_app_basedatoscontacto_id_seq', 10);
SELECT setval('ominicontacto_app_contacto_id_seq', 400000000);
SELECT setval('ominicontacto_app_campana_id_seq', 20);
SELECT setval('ominicontacto_app_parametroscrm_id_seq', 20);
