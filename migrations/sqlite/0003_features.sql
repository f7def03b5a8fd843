-- Subscriber features: call forwards (Sipwise's model: destination sets, time sets and the
-- mappings that tie a forward type to them) and preferences (subscriber and domain level).
-- Lists are JSON text: they are always read and written whole with their set.

CREATE TABLE cf_destination_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
    name TEXT NOT NULL,
    destinations TEXT NOT NULL,          -- JSON [{destination, timeout, priority}], normalized
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_cf_destination_sets_name ON cf_destination_sets(subscriber_id, name);

CREATE TABLE cf_time_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
    name TEXT NOT NULL,
    times TEXT NOT NULL,                 -- JSON [{year, month, mday, wday, hour, minute}]
    create_timestamp TEXT NOT NULL, modify_timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_cf_time_sets_name ON cf_time_sets(subscriber_id, name);

CREATE TABLE cf_mappings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
    type TEXT NOT NULL,                  -- cfu cfb cft cfna cfs cfr cfo
    position INTEGER NOT NULL,
    destination_set_id INTEGER NOT NULL REFERENCES cf_destination_sets(id),
    time_set_id INTEGER REFERENCES cf_time_sets(id),
    sources TEXT NOT NULL DEFAULT '[]',  -- JSON [pattern]
    sources_mode TEXT NOT NULL DEFAULT 'whitelist',
    bnumbers TEXT NOT NULL DEFAULT '[]',
    bnumbers_mode TEXT NOT NULL DEFAULT 'whitelist',
    enabled INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX ix_cf_mappings_subscriber ON cf_mappings(subscriber_id, type, position);
CREATE INDEX ix_cf_mappings_dset ON cf_mappings(destination_set_id);
CREATE INDEX ix_cf_mappings_tset ON cf_mappings(time_set_id);

CREATE TABLE subscriber_preferences (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,                 -- JSON: the validated value (a list for lists)
    PRIMARY KEY (subscriber_id, name)
);

CREATE TABLE domain_preferences (
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (domain_id, name)
);

-- Listing at scale: ?alias= and ?primary_number= look numbers up by their digits.
CREATE INDEX ix_numbers_digits ON numbers((cc || ac || sn));
