-- The fastest mode (--durability unlogged, the default of sql/schema.sql): make attempts, and the
-- idempotency keys that point at its rows, UNLOGGED again. No WAL is written for them; a crash of
-- PostgreSQL empties both (a clean restart keeps them).
--   psql -v ON_ERROR_STOP=1 -f sql/unlogged.sql
-- Safe while the service runs, with the same lock as sql/durable.sql: SET UNLOGGED rewrites each
-- table under an ACCESS EXCLUSIVE lock until the transaction commits; requests wait for it (up to
-- the service's statement_timeout, 5 s, then 503, nothing saved).
BEGIN;
ALTER TABLE attempts SET UNLOGGED;
ALTER TABLE attempt_starts SET UNLOGGED;
-- The answer history's partitions follow (a partitioned table has no persistence of its own;
-- answer_history_maintain() makes new ones like attempts).
DO $$
DECLARE
    v_part regclass;
BEGIN
    FOR v_part IN SELECT inhrelid::regclass FROM pg_inherits
                   WHERE inhparent = 'answer_history'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s SET UNLOGGED', v_part);
    END LOOP;
END;
$$;
COMMIT;
