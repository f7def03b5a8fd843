-- SIP servers whose database voxprov writes (Kamailio, OpenSIPS), and where each one's
-- delivery from the change log stands.
CREATE TABLE sipservers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    driver TEXT NOT NULL,                 -- kamailio | opensips
    role TEXT NOT NULL,                   -- standalone | proxy | home
    db_url_enc TEXT NOT NULL,             -- encrypted: it carries a password
    rpc_url TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    schema_version INTEGER,               -- operator's override of the detected one
    detected_schema_version INTEGER,
    store_password INTEGER NOT NULL DEFAULT 0,
    sip_address TEXT,                     -- where a front proxy sends a home server's users
    routing_attribute TEXT NOT NULL DEFAULT 'home_server',
    routing_type INTEGER NOT NULL DEFAULT 0,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_sipservers_name ON sipservers(name);

-- The domains a server serves; none listed = all.
CREATE TABLE sipserver_domains (
    sipserver_id INTEGER NOT NULL REFERENCES sipservers(id) ON DELETE CASCADE,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    PRIMARY KEY (sipserver_id, domain_id)
);
CREATE INDEX ix_sipserver_domains_domain ON sipserver_domains(domain_id);

-- Delivery state, apart from the configuration so a worker's progress never conflicts with
-- an operator's edit. applied_change_id: every change up to it is on the target.
CREATE TABLE sipserver_state (
    sipserver_id INTEGER PRIMARY KEY REFERENCES sipservers(id) ON DELETE CASCADE,
    applied_change_id INTEGER NOT NULL DEFAULT 0,
    full_load INTEGER NOT NULL DEFAULT 1,
    last_error TEXT,
    last_error_at TEXT,
    last_success_at TEXT
);

ALTER TABLE subscribers ADD COLUMN home_server_id INTEGER REFERENCES sipservers(id);
CREATE INDEX ix_subscribers_home ON subscribers(home_server_id, status);
