-- Nothing to change on SQLite: a restore defers foreign keys with PRAGMA defer_foreign_keys.
-- (Kept so both databases count the same schema versions.)
SELECT 1;
