-- Event hooks (JeraSoft handlers, OpenSIPS Provisioner "provisions"): before-hooks run inside
-- a request; after-hooks are delivered from an outbox written in the same transaction as the
-- change that caused them, so nothing acknowledged is lost.
CREATE TABLE hooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reseller_id INTEGER REFERENCES resellers(id),   -- NULL: the operator's (sees everything)
    name TEXT NOT NULL,
    events TEXT NOT NULL,                 -- JSON array of patterns (subscriber.*, *)
    phase TEXT NOT NULL,                  -- before | after
    kind TEXT NOT NULL,                   -- http | script
    url TEXT,
    method TEXT NOT NULL DEFAULT 'POST',
    path TEXT,                            -- script: a file name in hooks.script_dir
    auth_type TEXT NOT NULL DEFAULT 'none',   -- none | basic | bearer | header
    auth_name TEXT,                       -- basic: user name; header: header name
    auth_value_enc TEXT,                  -- encrypted: password, token or header value
    priority INTEGER NOT NULL DEFAULT 100,
    status TEXT NOT NULL DEFAULT 'enabled',   -- enabled | disabled | archived
    disabled_reason TEXT,
    timeout INTEGER NOT NULL DEFAULT 5,
    failure_policy TEXT NOT NULL DEFAULT 'fail',   -- before-hooks: fail | ignore
    filter_domain TEXT,
    filter_sipserver_id INTEGER,
    filter_customer_id INTEGER,
    secret_enc TEXT NOT NULL,
    previous_secret_enc TEXT,
    previous_secret_until INTEGER,        -- unix seconds: the old secret still signs until then
    body_template TEXT,
    response_map TEXT,                    -- JSON object: metadata key -> JSON pointer
    failing_since INTEGER,                -- unix ms of the first failure since the last success
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE INDEX ix_hooks_phase ON hooks(phase, status);

-- The outbox: one row per (after-hook, event). webhook_id is stable across retries and
-- redeliveries. Delivered in id order per (hook, object).
CREATE TABLE hook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hook_id INTEGER NOT NULL REFERENCES hooks(id) ON DELETE CASCADE,
    webhook_id TEXT NOT NULL,
    event TEXT NOT NULL,
    resource TEXT NOT NULL,
    object_id INTEGER NOT NULL,
    change_id INTEGER,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',   -- pending | delivered | failed | cancelled
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,     -- unix ms
    lease_until INTEGER,                  -- unix ms: claimed by a worker until then
    created_at INTEGER NOT NULL,          -- unix ms
    create_timestamp TEXT NOT NULL,
    delivered_at INTEGER,
    last_error TEXT
);
-- What is due, per hook (a hook whose slots are all taken is not even looked at), and the
-- next retry time of all.
CREATE INDEX ix_hook_deliveries_due ON hook_deliveries(hook_id, next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX ix_hook_deliveries_next ON hook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX ix_hook_deliveries_object ON hook_deliveries(hook_id, resource, object_id, id) WHERE status = 'pending';
CREATE INDEX ix_hook_deliveries_hook ON hook_deliveries(hook_id, id);

-- Every attempt of every hook, before or after: what was sent and what came back.
CREATE TABLE hook_executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hook_id INTEGER NOT NULL REFERENCES hooks(id) ON DELETE CASCADE,
    reseller_id INTEGER,
    delivery_id INTEGER,
    webhook_id TEXT,
    phase TEXT NOT NULL,
    event TEXT NOT NULL,
    resource TEXT,
    object_id INTEGER,
    attempt INTEGER NOT NULL,
    ts TEXT NOT NULL,
    created_at INTEGER NOT NULL,          -- unix ms
    duration_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,                -- success | failure | timeout | error | vetoed
    error TEXT,
    request TEXT NOT NULL,                -- JSON: method, url, headers, body (truncated)
    response TEXT                         -- JSON: status, headers, body (truncated)
);
CREATE INDEX ix_hook_executions_hook ON hook_executions(hook_id, id);
CREATE INDEX ix_hook_executions_ts ON hook_executions(created_at);

-- Values hooks' answers put on objects (response_map), read at /api/<name>/<id>/metadata.
CREATE TABLE object_metadata (
    resource TEXT NOT NULL,
    object_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,                  -- JSON
    hook_id INTEGER,
    modify_timestamp TEXT NOT NULL,
    PRIMARY KEY (resource, object_id, key)
);

-- A customer's balance as a billing system drives it (Sipwise customerbalances).
CREATE TABLE customer_balances (
    customer_id INTEGER PRIMARY KEY REFERENCES customers(id),
    cash_balance REAL NOT NULL DEFAULT 0,
    free_time_balance INTEGER NOT NULL DEFAULT 0,
    modify_timestamp TEXT NOT NULL
);
