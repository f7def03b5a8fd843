-- Carriers and routing: peering groups (a carrier, with its priority among carriers), their
-- servers (gateways, optionally registering to the carrier), outbound rules (which numbers go
-- to the group) and inbound rules (what a call from the group must look like); rewrite rule
-- sets (number normalisation in and out) and NCOS levels (class of service: which numbers a
-- subscriber may call). The SIP servers hold them as lcr, dispatcher, uacreg, address,
-- dialplan, htable and userblocklist rows.

CREATE TABLE peering_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    contract_id INTEGER NOT NULL REFERENCES contracts(id),
    name TEXT NOT NULL,
    priority INTEGER NOT NULL,
    description TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_peering_groups_name ON peering_groups(name);

CREATE TABLE rewrite_rule_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    name TEXT NOT NULL,
    description TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_rewrite_rule_sets_name ON rewrite_rule_sets(reseller_id, name);

CREATE TABLE rewrite_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    set_id INTEGER NOT NULL REFERENCES rewrite_rule_sets(id),
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    direction TEXT NOT NULL,             -- in | out
    field TEXT NOT NULL,                 -- caller | callee
    match_pattern TEXT NOT NULL,
    replace_pattern TEXT NOT NULL,
    description TEXT,
    priority INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE INDEX ix_rewrite_rules_set ON rewrite_rules(set_id);

CREATE TABLE peering_servers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id INTEGER NOT NULL REFERENCES peering_groups(id),
    name TEXT NOT NULL,
    ip TEXT NOT NULL,
    host TEXT,
    port INTEGER NOT NULL,
    transport INTEGER NOT NULL,          -- 1 UDP, 2 TCP, 3 TLS
    weight INTEGER NOT NULL,
    via_route TEXT,
    enabled INTEGER NOT NULL,
    probe INTEGER NOT NULL,
    rewrite_rule_set_id INTEGER REFERENCES rewrite_rule_sets(id),
    peer_auth_register INTEGER NOT NULL DEFAULT 0,
    peer_auth_user TEXT,
    peer_auth_pass_enc TEXT,
    peer_auth_realm TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE INDEX ix_peering_servers_group ON peering_servers(group_id);
CREATE UNIQUE INDEX uq_peering_servers_name ON peering_servers(group_id, name);

CREATE TABLE peering_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id INTEGER NOT NULL REFERENCES peering_groups(id),
    callee_prefix TEXT NOT NULL,
    callee_pattern TEXT,
    caller_pattern TEXT,
    description TEXT,
    stopper INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE INDEX ix_peering_rules_group ON peering_rules(group_id);

CREATE TABLE peering_inbound_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id INTEGER NOT NULL REFERENCES peering_groups(id),
    field TEXT NOT NULL,
    pattern TEXT NOT NULL,
    reject_code INTEGER,
    reject_reason TEXT,
    priority INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_peering_inbound_rules_priority ON peering_inbound_rules(group_id, priority);

CREATE TABLE ncos_levels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    level TEXT NOT NULL,
    mode TEXT NOT NULL,                  -- blacklist | whitelist
    local_ac INTEGER NOT NULL,
    intra_pbx INTEGER NOT NULL,
    description TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_ncos_levels_level ON ncos_levels(reseller_id, level);

CREATE TABLE ncos_patterns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ncos_level_id INTEGER NOT NULL REFERENCES ncos_levels(id),
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    pattern TEXT NOT NULL,
    description TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_ncos_patterns ON ncos_patterns(ncos_level_id, pattern);

-- A registering peering server's state on each SIP server, as last read from it.
CREATE TABLE peering_registrations (
    peering_server_id INTEGER NOT NULL,
    sipserver_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    checked_at TEXT NOT NULL,
    PRIMARY KEY (peering_server_id, sipserver_id)
);

-- Per table of a SIP server: when voxprov last changed it, and how its reload went (JSON).
ALTER TABLE sipserver_state ADD COLUMN tables TEXT;

-- Whether a SIP server gets the carrier and routing tables. Servers from before carriers
-- existed may hold rows of their own in lcr instance 1, dispatcher set 1, address group 1 or
-- dialplan ids of 10 and up: they keep them until an admin turns this on.
ALTER TABLE sipservers ADD COLUMN carriers INTEGER NOT NULL DEFAULT 0;
