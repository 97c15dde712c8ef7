-- The OMniLeads (release 2.x) tables oml-crm reads, reduced to the columns it uses, with
-- the types OMniLeads' Django migrations give them: integer ids with sequences, varchar
-- lengths of the models, nullable foreign keys where the model allows NULL, CHECK (>= 0)
-- on positive-integer fields, deferrable foreign keys without ON DELETE actions (Django
-- emulates those). Written for oml-crm's tests from the documented model; load seed.sql
-- after it.

CREATE TABLE ominicontacto_app_user (
    id          serial PRIMARY KEY,
    username    varchar(150) NOT NULL UNIQUE,
    first_name  varchar(150) NOT NULL,
    last_name   varchar(150) NOT NULL,
    is_agente   boolean NOT NULL,
    borrado     boolean NOT NULL
);

CREATE TABLE ominicontacto_app_agenteprofile (
    id             serial PRIMARY KEY,          -- the agent id of telephony (OMLAGENTID)
    user_id        integer NOT NULL UNIQUE
                   REFERENCES ominicontacto_app_user (id) DEFERRABLE INITIALLY DEFERRED,
    sip_extension  integer NOT NULL UNIQUE,     -- 1000 + user id
    estado         integer NOT NULL CHECK (estado >= 0),
    borrado        boolean NOT NULL
);

CREATE TABLE ominicontacto_app_autenticacionsitioexterno (
    id              serial PRIMARY KEY,
    nombre          varchar(128) NOT NULL UNIQUE,
    url             varchar(250) NOT NULL,
    username        varchar(128) NOT NULL,
    password        varchar(128) NOT NULL,      -- clear text in OMniLeads
    campo_token     varchar(128) NOT NULL,
    duracion        integer NOT NULL CHECK (duracion >= 0),
    campo_duracion  varchar(128) NOT NULL,
    ssl_estricto    boolean NOT NULL
);

CREATE TABLE ominicontacto_app_sitioexterno (
    id                serial PRIMARY KEY,
    nombre            varchar(128) NOT NULL UNIQUE,
    url               varchar(250) NOT NULL,
    oculto            boolean NOT NULL,
    disparador        integer NOT NULL CHECK (disparador >= 0), -- 1 agent 2 automatic 3 server 4 disposition 5 dynamic list
    metodo            integer NOT NULL CHECK (metodo >= 0),     -- 1 GET 2 POST
    formato           integer CHECK (formato >= 0),             -- 1 multipart 2 urlencoded 3 text 4 json
    objetivo          integer CHECK (objetivo >= 0),            -- 1 embedded 2 new tab, NULL none
    autenticacion_id  integer REFERENCES ominicontacto_app_autenticacionsitioexterno (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE ominicontacto_app_basedatoscontacto (
    id        serial PRIMARY KEY,
    nombre    varchar(128) NOT NULL UNIQUE,
    metadata  text,                             -- JSON: nombres_de_columnas, cols_telefono, col_id_externo
    estado    integer NOT NULL CHECK (estado >= 0)
);

CREATE TABLE ominicontacto_app_contacto (
    id              serial PRIMARY KEY,
    telefono        varchar(128) NOT NULL,      -- the main phone column's value
    datos           text NOT NULL,              -- JSON list of the other columns' values
    bd_contacto_id  integer REFERENCES ominicontacto_app_basedatoscontacto (id) DEFERRABLE INITIALLY DEFERRED,
    id_externo      varchar(128)                -- the external id column's value; NULL without one
);

CREATE TABLE ominicontacto_app_campana (
    id                serial PRIMARY KEY,
    nombre            varchar(128) NOT NULL UNIQUE,
    estado            integer NOT NULL CHECK (estado >= 0),          -- 2 active
    type              integer NOT NULL CHECK (type >= 0),            -- 1 manual 2 dialer 3 inbound 4 preview
    tipo_interaccion  integer NOT NULL CHECK (tipo_interaccion >= 0), -- 1 form 2 site 3 both
    bd_contacto_id    integer REFERENCES ominicontacto_app_basedatoscontacto (id) DEFERRABLE INITIALLY DEFERRED,
    sitio_externo_id  integer REFERENCES ominicontacto_app_sitioexterno (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE ominicontacto_app_parametroscrm (
    id          serial PRIMARY KEY,             -- parameters are ordered by id
    campana_id  integer NOT NULL REFERENCES ominicontacto_app_campana (id) DEFERRABLE INITIALLY DEFERRED,
    nombre      varchar(128) NOT NULL,          -- name sent to the CRM, or a holder such as {1}
    valor       varchar(256) NOT NULL,          -- the source
    tipo        integer NOT NULL CHECK (tipo >= 0) -- 1 campaign 2 contact 3 call 4 fixed 5 dialplan 6 disposition
);
