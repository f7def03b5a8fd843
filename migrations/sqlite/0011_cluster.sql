-- Several nodes on one database (PostgreSQL): what used to live in one node's memory is kept
-- in the database. SQLite has one node, but the same tables serve it.

-- Web UI sessions. The cookie's token is kept only as its SHA-256; the admin is joined on
-- every request, so a deactivated or demoted admin's session changes with them at once.
CREATE TABLE ui_sessions (
    token_hash TEXT PRIMARY KEY,
    admin_id INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL
);
CREATE INDEX ix_ui_sessions_admin ON ui_sessions(admin_id);

-- Failed attempts per client address and face ('login': admins' credentials on the API and
-- the UI; 'prov': phones), counted in a window; past the limit the address is banned.
CREATE TABLE strikes (
    face TEXT NOT NULL,
    addr TEXT NOT NULL,
    failures INTEGER NOT NULL,
    window_start_ms INTEGER NOT NULL,
    banned_until_ms INTEGER,
    PRIMARY KEY (face, addr)
);
CREATE INDEX ix_strikes_banned ON strikes(face, banned_until_ms);

-- One owner per background duty; the epoch grows with every new owner and an owner's writes
-- check it.
CREATE TABLE leases (
    duty TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    holder TEXT NOT NULL,
    taken_at TEXT NOT NULL
);
CREATE TABLE lease_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    duty TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    holder TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    taken_ms INTEGER NOT NULL,
    ended_ms INTEGER
);
CREATE INDEX ix_lease_history_duty ON lease_history(duty, epoch);

-- The claim a node holds on a hook delivery: its outcome is recorded only under that claim.
ALTER TABLE hook_deliveries ADD COLUMN claim TEXT;

-- Facts about the installation as a whole. `key_check`: a known text encrypted with the
-- secret key, so that a node started with another key is refused instead of writing secrets
-- the others cannot read.
CREATE TABLE installation (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- A SIP server's delivery progress beyond `applied_change_id` (everything up to it is
-- applied): the highest change applied and the ids below it still awaited (a JSON list,
-- usually empty). Other nodes answer "is change N on the server yet" from these.
ALTER TABLE sipserver_state ADD COLUMN applied_hi BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sipserver_state ADD COLUMN applied_gaps TEXT;
