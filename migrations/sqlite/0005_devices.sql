-- Phone provisioning: the device catalog (vendor -> family -> model), operators' template
-- overrides, shared profiles, per-customer provisioning settings, devices and their fetches.

CREATE TABLE device_models (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vendor TEXT NOT NULL,
    family TEXT NOT NULL,
    model TEXT NOT NULL,
    type TEXT NOT NULL,                   -- phone | extension
    code TEXT NOT NULL DEFAULT '',        -- the vendor's model code in common file names
    lines INTEGER NOT NULL,
    keys INTEGER NOT NULL,
    expansion_modules INTEGER NOT NULL DEFAULT 0,
    expansion_keys INTEGER NOT NULL DEFAULT 0,
    files TEXT NOT NULL,                  -- JSON: [{file, template, per_device, content_type}]
    user_agent TEXT,                      -- regex identifying the model in a User-Agent
    ouis TEXT NOT NULL,                   -- JSON array of 6-hex-digit OUIs
    image TEXT,
    builtin INTEGER NOT NULL DEFAULT 0,   -- shipped with voxprov
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_device_models ON device_models(vendor, model);

-- Which shipped models were ever added: a model the operator deleted does not come back at
-- the next start; one new in a later release is added once.
CREATE TABLE device_models_seeded (
    vendor TEXT NOT NULL,
    model TEXT NOT NULL,
    PRIMARY KEY (vendor, model)
);

-- Operators' templates: a name such as yealink/device.cfg (vendor), yealink/t4x/device.cfg
-- (family) or yealink/t4x/t46u/device.cfg (model), for everyone, one reseller or one profile.
CREATE TABLE device_templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reseller_id INTEGER REFERENCES resellers(id),
    profile_id INTEGER,
    name TEXT NOT NULL,
    description TEXT,
    content TEXT NOT NULL,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_device_templates ON device_templates(name, COALESCE(reseller_id, 0), COALESCE(profile_id, 0));

CREATE TABLE device_profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    name TEXT NOT NULL,
    description TEXT,
    settings TEXT NOT NULL,               -- JSON; admin_password encrypted
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_device_profiles ON device_profiles(reseller_id, name);

-- One row per customer that has provisioning settings (id = the customer's id).
CREATE TABLE device_customer_settings (
    customer_id INTEGER PRIMARY KEY REFERENCES customers(id),
    settings TEXT NOT NULL,
    allowed_cidrs TEXT NOT NULL,          -- JSON array; empty = any address
    prov_username TEXT,
    prov_password_enc TEXT,
    modify_timestamp TEXT NOT NULL
);

CREATE TABLE devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identifier TEXT NOT NULL,             -- MAC, 12 lowercase hex digits
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    model_id INTEGER NOT NULL REFERENCES device_models(id),
    profile_id INTEGER REFERENCES device_profiles(id),
    station_name TEXT,
    lines TEXT NOT NULL,                  -- JSON: [{subscriber_id, line, type, label, target}]
    settings TEXT NOT NULL,               -- JSON; admin_password encrypted
    auth TEXT NOT NULL,                   -- token | basic | digest | customer
    secret_enc TEXT NOT NULL,             -- the device's own password (basic/digest)
    boot_token_hash TEXT,                 -- first-boot token (sha256), dead once traded
    boot_token_expires INTEGER,           -- unix seconds
    token_hash TEXT,                      -- long-lived token (sha256)
    token_enc TEXT,                       -- the same, encrypted: rendered into the config
    token_used INTEGER NOT NULL DEFAULT 0,
    last_fetch_ts TEXT,
    last_fetch_addr TEXT,
    last_fetch_ua TEXT,
    last_fetch_file TEXT,
    fetch_count INTEGER NOT NULL DEFAULT 0,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_devices_identifier ON devices(identifier);
CREATE INDEX ix_devices_customer ON devices(customer_id);
CREATE INDEX ix_devices_profile ON devices(profile_id);
CREATE INDEX ix_devices_boot_token ON devices(boot_token_hash);
CREATE INDEX ix_devices_token ON devices(token_hash);

-- Which device line points at which subscriber (kept with the device's lines).
CREATE TABLE device_lines (
    device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
    PRIMARY KEY (device_id, subscriber_id)
);
CREATE INDEX ix_device_lines_subscriber ON device_lines(subscriber_id);

-- Every configuration fetch, written in batches; pruned by age.
CREATE TABLE device_fetches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id INTEGER NOT NULL,
    ts TEXT NOT NULL,
    address TEXT NOT NULL,
    user_agent TEXT,
    file TEXT NOT NULL,
    status INTEGER NOT NULL
);
CREATE INDEX ix_device_fetches_device ON device_fetches(device_id, id);
