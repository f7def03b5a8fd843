-- Cloud PBX: tenants (a pbxaccount customer with its PBX settings), extensions (each owns a
-- subscriber, and a phone when provisioned by MAC), ring groups, day and holiday timers,
-- inbound routes (a DID or caller id to an open and a closed destination) and the PBX's
-- global settings. The SIP servers hold them as rows of the htable 'pbx' (table pbx_htable).
-- Fields SARK has that voxprov stores without acting on them are plain columns too, so they
-- round-trip.

CREATE TABLE pbx_tenants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    localdplan TEXT NOT NULL,            -- extension pattern, e.g. _XXX (3 digits)
    operator TEXT,                       -- the operator's extension
    masteroclo TEXT NOT NULL,            -- AUTO (by timers) | CLOSED
    abstimeout INTEGER,
    chanmax INTEGER,
    clusterclid TEXT,
    callgroup INTEGER,
    pickupgroup INTEGER,
    include TEXT,
    localarea TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_pbx_tenants_customer ON pbx_tenants(customer_id);
CREATE UNIQUE INDEX uq_pbx_tenants_name ON pbx_tenants(reseller_id, name);

CREATE TABLE pbx_extensions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES pbx_tenants(id),
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    extension TEXT NOT NULL,
    type TEXT NOT NULL,                  -- provisioned | unprovisioned | mailbox
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
    device_id INTEGER,
    macaddr TEXT,
    active TEXT NOT NULL,
    callerid TEXT,
    cellphone TEXT,
    celltwin TEXT NOT NULL,
    transport TEXT NOT NULL,
    location TEXT NOT NULL,
    sndcreds TEXT NOT NULL,
    callbackto TEXT,
    devicerec TEXT,
    dvrvmail TEXT,
    protocol TEXT,
    provision TEXT,
    provisionwith TEXT,
    vmailfwd TEXT,
    description TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_pbx_extensions_number ON pbx_extensions(tenant_id, extension);
CREATE UNIQUE INDEX uq_pbx_extensions_subscriber ON pbx_extensions(subscriber_id);

CREATE TABLE pbx_ringgroups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES pbx_tenants(id),
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    number TEXT NOT NULL,
    grouptype TEXT NOT NULL,             -- Ring | Hunt | Alias | Page
    members TEXT NOT NULL,               -- SARK 'out': numbers separated by spaces
    ringdelay INTEGER,
    outcome TEXT NOT NULL,
    obeydnd TEXT,
    longdesc TEXT,
    devicerec TEXT,
    dialparamshunt TEXT,
    dialparamsring TEXT,
    divert INTEGER,
    greeting TEXT,
    pagegroup INTEGER,
    speedalert TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_pbx_ringgroups_number ON pbx_ringgroups(tenant_id, number);

CREATE TABLE pbx_daytimers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES pbx_tenants(id),
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    description TEXT,
    dayofweek TEXT NOT NULL,
    month TEXT NOT NULL,
    datemonth TEXT NOT NULL,
    timespan TEXT NOT NULL,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE INDEX ix_pbx_daytimers_tenant ON pbx_daytimers(tenant_id);

CREATE TABLE pbx_holidaytimers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES pbx_tenants(id),
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    description TEXT,
    route TEXT,
    stime INTEGER NOT NULL,
    etime INTEGER NOT NULL,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE INDEX ix_pbx_holidaytimers_tenant ON pbx_holidaytimers(tenant_id);

CREATE TABLE pbx_inboundroutes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES pbx_tenants(id),
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    number TEXT NOT NULL,                -- the DID, or the caller's number (carrier CLID)
    carrier TEXT NOT NULL,               -- DiD | CLID
    trunk_id INTEGER REFERENCES peering_groups(id),
    openroute TEXT NOT NULL,
    closeroute TEXT NOT NULL,
    active TEXT NOT NULL,
    alertinfo TEXT,
    swoclip TEXT NOT NULL,
    tag TEXT,
    inprefix TEXT,
    description TEXT,
    disa TEXT,
    disapass TEXT,
    moh TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
-- A DiD is one customer's number (one route platform-wide, checked on write); a CLID route is
-- per tenant (it applies to calls to the tenant's DiDs).
CREATE UNIQUE INDEX uq_pbx_inboundroutes_number ON pbx_inboundroutes(tenant_id, carrier, number);

CREATE TABLE pbx_globals (
    name TEXT PRIMARY KEY,
    value TEXT,
    modify_timestamp TEXT NOT NULL
);

-- Call records collected from the SIP servers' accounting tables (acc, missed_calls): one per
-- call and server, keyed by the SIP Call-ID; the cursors say how far each server's tables
-- were read, in the same transaction as the records they produced (collection is idempotent
-- and survives restarts of either side).
CREATE TABLE cdrs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sipserver_id INTEGER NOT NULL,
    call_id TEXT NOT NULL,
    from_tag TEXT NOT NULL,              -- the INVITE's From tag: with call_id, the dialog
    to_tag TEXT NOT NULL,
    reseller_id INTEGER,
    customer_id INTEGER,
    tenant_id INTEGER,
    caller TEXT NOT NULL,
    caller_subscriber_id INTEGER,
    callee TEXT NOT NULL,
    destination TEXT NOT NULL,
    callee_subscriber_id INTEGER,
    direction TEXT NOT NULL,             -- local | out | in | foreign
    trunk TEXT,
    status TEXT NOT NULL,                -- ok | busy | noanswer | cancel | offline | other
    sip_code INTEGER NOT NULL,
    sip_reason TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    answer_ms INTEGER,
    end_ms INTEGER,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_cdrs_call ON cdrs(sipserver_id, call_id, from_tag);
CREATE INDEX ix_cdrs_start ON cdrs(start_ms);
CREATE INDEX ix_cdrs_reseller ON cdrs(reseller_id, start_ms);

CREATE TABLE cdr_cursors (
    sipserver_id INTEGER PRIMARY KEY,
    acc_id INTEGER NOT NULL,
    missed_id INTEGER NOT NULL
);
