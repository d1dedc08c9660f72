-- Durable modes (--durability async or sync): make attempts, and the idempotency keys that point
-- at its rows, LOGGED tables, so that they survive a crash of PostgreSQL.
--   psql -v ON_ERROR_STOP=1 -f sql/durable.sql          (after schema.sql and seed.sql)
-- Every update then writes WAL. With synchronous_commit = on (--durability sync) each commit waits
-- for its WAL flush and nothing acknowledged is lost; with it off (--durability async, set on the
-- service's own connections) a crash loses the last commits not yet flushed, about three times
-- wal_writer_delay at most. `sql/unlogged.sql` goes back.
--
-- Safe while the service runs: SET LOGGED rewrites each table and writes all of it to WAL, under
-- an ACCESS EXCLUSIVE lock held until the transaction commits. Requests meanwhile wait for the
-- lock (up to the service's statement_timeout, 5 s, then 503, nothing saved); on 100,000 seeded
-- attempts the switch takes well under a second (README, Durability, has the measurement). A
-- service started with another --durability sees the change within seconds and refuses writes
-- until restarted with the matching mode, instead of silently running in another one.
BEGIN;
ALTER TABLE attempts SET LOGGED;
ALTER TABLE attempt_starts SET LOGGED;
-- The answer history's partitions follow (a partitioned table has no persistence of its own;
-- answer_history_maintain() makes new ones like attempts).
DO $$
DECLARE
    v_part regclass;
BEGIN
    FOR v_part IN SELECT inhrelid::regclass FROM pg_inherits
                   WHERE inhparent = 'answer_history'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s SET LOGGED', v_part);
    END LOOP;
END;
$$;
COMMIT;
