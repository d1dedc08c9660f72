-- Schema of the attempts service (PostgreSQL 15).
-- Run on an empty database: psql -v ON_ERROR_STOP=1 -f sql/schema.sql
-- Idempotent (IF NOT EXISTS), so re-running it on a loaded database is harmless;
-- note that a re-run does NOT change the storage options of an existing table.

CREATE TABLE IF NOT EXISTS exams (
    id         bigserial   PRIMARY KEY,
    title      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Hot path: every answer a student saves is an UPDATE of one row here, thousands
-- of times a second. The table is designed so that those updates are HOT
-- (heap-only tuple) updates: no index covers answers, updated_at or submitted_at,
-- so an update never touches an index, and the fillfactor leaves room on each
-- page for the new row version. Keep it that way: an index on any updated
-- column turns every update into a non-HOT update with index maintenance.
--
-- UNLOGGED: the table is not WAL-logged (no WAL write or fsync per update); the
-- price is that it is truncated after a crash of the server (not after a clean
-- restart). A foreign key from an unlogged table to a permanent one is allowed.
CREATE UNLOGGED TABLE IF NOT EXISTS attempts (
    id           bigserial   PRIMARY KEY,
    exam_id      bigint      NOT NULL REFERENCES exams,
    student_id   bigint,
    answers      jsonb       NOT NULL DEFAULT '{}',
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz,
    submitted_at timestamptz
) WITH (
    -- fill pages only half full on insert, so the updated row version of a row fits on its own page (a HOT update) even as answers grow
    fillfactor = 50,
    -- vacuum after ~1000 + 1% of rows are dead (default 20%), so dead versions are reclaimed within seconds and pages keep free space
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_scale_factor = 0.01,
    -- do not throttle vacuum of this table: it is small and in shared_buffers, and a throttled vacuum falls behind the update rate
    autovacuum_vacuum_cost_delay = 0,
    -- cost limit only matters if a delay is set (e.g. by ALTER TABLE later); keep it high so such a vacuum still finishes quickly
    autovacuum_vacuum_cost_limit = 10000,
    -- re-analyze after ~5% of rows change: the planner statistics barely move (only non-indexed columns change), analyze is cheap anyway
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05
);

-- Lookups and the foreign-key check on DELETE FROM exams go by exam_id. exam_id is
-- never updated, so this index does not prevent HOT updates.
CREATE INDEX IF NOT EXISTS attempts_exam_id_idx ON attempts (exam_id);
