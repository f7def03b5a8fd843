-- From this version an after-hook delivery made for a change record is written with an empty
-- payload: its body is built from that change record (changes.before/after, the actor, the
-- operation) when it is sent. No table changes; the version moves so that an older voxprov,
-- which would send such a delivery's body as null, refuses to start on this database or to
-- restore a backup taken from it.
SELECT 1;
