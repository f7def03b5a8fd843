-- voxprov core schema (SQLite). Flags are 0/1 integers and timestamps fixed-width UTC text so
-- the same statements run on SQLite and PostgreSQL. AUTOINCREMENT: ids are never reused.

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reseller_id INTEGER,            -- NULL: a system contact
    firstname TEXT, lastname TEXT, email TEXT, company TEXT,
    street TEXT, postcode TEXT, city TEXT, country TEXT,
    phonenumber TEXT, mobilenumber TEXT, external_id TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE INDEX ix_contacts_reseller ON contacts(reseller_id);

CREATE TABLE resellers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    contact_id INTEGER REFERENCES contacts(id),
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_resellers_name ON resellers(name);

CREATE TABLE admins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    login TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,             -- admin | reseller
    reseller_id INTEGER REFERENCES resellers(id),
    read_only INTEGER NOT NULL DEFAULT 0,
    is_active INTEGER NOT NULL DEFAULT 1,
    email TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_admins_login ON admins(login);

CREATE TABLE apikeys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    admin_id INTEGER NOT NULL REFERENCES admins(id),
    role TEXT NOT NULL,
    reseller_id INTEGER REFERENCES resellers(id),
    read_only INTEGER NOT NULL DEFAULT 0,
    expires_at TEXT,
    last_used_at TEXT, last_used_from TEXT,
    create_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_apikeys_prefix ON apikeys(prefix);

CREATE TABLE domains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL,
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_domains_domain ON domains(domain);

CREATE TABLE billing_profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    handle TEXT NOT NULL,
    name TEXT NOT NULL,
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    prepaid INTEGER NOT NULL DEFAULT 0,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_billing_profiles_handle ON billing_profiles(handle);

CREATE TABLE customers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    billing_profile_id INTEGER NOT NULL REFERENCES billing_profiles(id),
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    external_id TEXT,
    max_subscribers INTEGER,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL,
    terminate_timestamp TEXT
);
CREATE INDEX ix_customers_reseller ON customers(reseller_id);
CREATE INDEX ix_customers_contact ON customers(contact_id);
CREATE INDEX ix_customers_external ON customers(external_id);

CREATE TABLE subscribers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    username TEXT NOT NULL,
    password_enc TEXT,
    webusername TEXT,
    webpassword_hash TEXT,
    status TEXT NOT NULL,
    lock_level INTEGER NOT NULL DEFAULT 0,
    administrative INTEGER NOT NULL DEFAULT 0,
    external_id TEXT,
    display_name TEXT,
    email TEXT,
    released_numbers TEXT,          -- terminated: the numbers it had, for billing
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL,
    terminate_timestamp TEXT
);
CREATE UNIQUE INDEX uq_subscribers_uuid ON subscribers(uuid);
CREATE UNIQUE INDEX uq_subscribers_username ON subscribers(username, domain_id) WHERE status <> 'terminated';
CREATE UNIQUE INDEX uq_subscribers_webusername ON subscribers(webusername, domain_id) WHERE status <> 'terminated' AND webusername IS NOT NULL;
CREATE INDEX ix_subscribers_customer ON subscribers(customer_id, status);
CREATE INDEX ix_subscribers_reseller ON subscribers(reseller_id);
CREATE INDEX ix_subscribers_external ON subscribers(external_id);
CREATE INDEX ix_subscribers_username ON subscribers(username);

CREATE TABLE numbers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cc TEXT NOT NULL, ac TEXT NOT NULL, sn TEXT NOT NULL,
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    subscriber_id INTEGER REFERENCES subscribers(id),
    is_primary INTEGER NOT NULL DEFAULT 0,
    create_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_numbers_e164 ON numbers(cc, ac, sn);
CREATE INDEX ix_numbers_subscriber ON numbers(subscriber_id);
CREATE INDEX ix_numbers_sn ON numbers(sn);

-- The change log: one row per change, written in the same transaction as the change. It is
-- the journal (who, from where, before/after) and the feed every consumer follows by id.
CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    actor_type TEXT NOT NULL,       -- admin | apikey | system
    actor_id INTEGER,
    actor_name TEXT NOT NULL,
    client_addr TEXT,
    reseller_id INTEGER,            -- whose object it is, for scoped reading
    resource TEXT NOT NULL,
    object_id INTEGER NOT NULL,
    op TEXT NOT NULL,               -- create | update | delete
    before TEXT,
    after TEXT
);
CREATE INDEX ix_changes_object ON changes(resource, object_id, id);
CREATE INDEX ix_changes_actor ON changes(actor_name, id);
