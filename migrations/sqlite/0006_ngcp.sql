-- What NGCP's clients need beyond the core: contracts (a reseller's or a peering's, with a
-- system contact), billing profiles terminated by status and unique per reseller, subscriber
-- profile sets (which preferences a subscriber may change), customer preferences, and
-- sound sets with their files.

CREATE TABLE contracts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    billing_profile_id INTEGER REFERENCES billing_profiles(id),
    type TEXT NOT NULL,                  -- reseller | sippeering
    status TEXT NOT NULL,
    external_id TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL,
    terminate_timestamp TEXT
);
CREATE INDEX ix_contracts_contact ON contracts(contact_id);
CREATE INDEX ix_contracts_external ON contracts(external_id);

-- A contact still named by a terminated customer or contract is terminated too (gone from the
-- API, kept for the records), not deleted.
ALTER TABLE contacts ADD COLUMN status TEXT NOT NULL DEFAULT 'active';

ALTER TABLE resellers ADD COLUMN contract_id INTEGER REFERENCES contracts(id);
CREATE UNIQUE INDEX uq_resellers_contract ON resellers(contract_id);

ALTER TABLE billing_profiles ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
DROP INDEX uq_billing_profiles_handle;
CREATE UNIQUE INDEX uq_billing_profiles_handle ON billing_profiles(reseller_id, handle);

CREATE TABLE subscriber_profile_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    name TEXT NOT NULL,
    description TEXT,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_subscriber_profile_sets_name ON subscriber_profile_sets(reseller_id, name);

CREATE TABLE subscriber_profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    profile_set_id INTEGER NOT NULL REFERENCES subscriber_profile_sets(id),
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    name TEXT NOT NULL,
    description TEXT,
    set_default INTEGER NOT NULL DEFAULT 0,
    attributes TEXT NOT NULL DEFAULT '[]',  -- JSON [preference name]
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_subscriber_profiles_name ON subscriber_profiles(profile_set_id, name);

ALTER TABLE subscribers ADD COLUMN contact_id INTEGER REFERENCES contacts(id);
ALTER TABLE subscribers ADD COLUMN profile_set_id INTEGER REFERENCES subscriber_profile_sets(id);
ALTER TABLE subscribers ADD COLUMN profile_id INTEGER REFERENCES subscriber_profiles(id);

CREATE TABLE customer_preferences (
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (customer_id, name)
);

CREATE TABLE sound_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reseller_id INTEGER NOT NULL REFERENCES resellers(id),
    customer_id INTEGER REFERENCES customers(id),
    name TEXT NOT NULL,
    description TEXT,
    contract_default INTEGER NOT NULL DEFAULT 0,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_sound_sets_name ON sound_sets(reseller_id, name);

CREATE TABLE sound_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    set_id INTEGER NOT NULL REFERENCES sound_sets(id),
    handle TEXT NOT NULL,
    filename TEXT NOT NULL,
    loopplay INTEGER NOT NULL DEFAULT 0,
    codec TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_sound_files_handle ON sound_files(set_id, handle);

-- An alias number may be a device id (NGCP's is_devid): a number that rings one device.
ALTER TABLE numbers ADD COLUMN is_devid INTEGER NOT NULL DEFAULT 0;
