-- Restores (voxprov restore, /api/snapshots/) write every table in one transaction, and a few
-- references go in a circle (resellers → contracts → contacts → resellers): every foreign
-- key becomes deferrable, still checked at once unless a transaction defers them.
DO $$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
        WHERE contype = 'f' AND NOT condeferrable
          AND connamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
    LOOP
        EXECUTE format('ALTER TABLE %s ALTER CONSTRAINT %I DEFERRABLE INITIALLY IMMEDIATE', r.tbl, r.conname);
    END LOOP;
END $$;
