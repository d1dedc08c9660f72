-- Schema of the attempts service (PostgreSQL 15).
-- Run on an empty database: psql -v ON_ERROR_STOP=1 -f sql/schema.sql
-- Idempotent (IF NOT EXISTS, CREATE OR REPLACE), so re-running it on a loaded database is
-- harmless; note that a re-run does NOT change the columns or storage options of existing tables.

CREATE TABLE IF NOT EXISTS exams (
    id               bigserial   PRIMARY KEY,
    title            text        NOT NULL,
    -- How long a student has from starting an attempt; NULL: no time limit.
    duration_seconds integer     CHECK (duration_seconds > 0),
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Hot path: every answer a student saves is an UPDATE of one row here, thousands
-- of times a second. The table is designed so that those updates are HOT
-- (heap-only tuple) updates: no index covers answers, revision, updated_at or
-- submitted_at, so an update never touches an index, and the fillfactor leaves
-- room on each page for the new row version. Keep it that way: an index on any
-- updated column turns every update into a non-HOT update with index maintenance.
--
-- UNLOGGED: the table is not WAL-logged (no WAL write or fsync per update); the
-- price is that it is truncated after a crash of the server (not after a clean
-- restart). A foreign key from an unlogged table to a permanent one is allowed.
CREATE UNLOGGED TABLE IF NOT EXISTS attempts (
    id           bigserial   PRIMARY KEY,
    exam_id      bigint      NOT NULL REFERENCES exams,
    -- The student who owns the attempt: the `sub` of their token. Only they can read or write it.
    student_id   bigint      NOT NULL,
    answers      jsonb       NOT NULL DEFAULT '{}',
    -- The client's revision of the stored answers (0: none sent yet). A write that carries a
    -- revision applies only if it is newer, so a late retry cannot overwrite newer answers.
    revision     bigint      NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    -- started_at + the exam's duration, fixed when the attempt starts; NULL: no time limit.
    deadline     timestamptz,
    updated_at   timestamptz,
    submitted_at timestamptz,
    -- How many saves answer_history holds for the attempt: each save adds one and takes the
    -- number as its sequence number (its start is 0, its submit the last save's + 1).
    saves        bigint      NOT NULL DEFAULT 0,
    -- On Citus only: how many writes the last save stood for, for the trigger that records the
    -- save on the shard (sql/citus.sql). NULL on a single PostgreSQL.
    save_writes  integer,
    -- How many questions the stored answers answer: set by every save from the document it
    -- writes, so that the proctors' progress stream (GET /exams/{id}/progress) reads a small
    -- column instead of counting jsonb keys (7-10 us a row). No index: saves stay HOT.
    answered     integer     NOT NULL DEFAULT 0
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

-- A database made before answer_history existed gets the counter its saves number from.
ALTER TABLE attempts ADD COLUMN IF NOT EXISTS saves bigint NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN IF NOT EXISTS save_writes integer;
-- A database made before the progress stream: the column, filled once from the stored answers.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                    WHERE table_name = 'attempts' AND column_name = 'answered') THEN
        ALTER TABLE attempts ADD COLUMN answered integer NOT NULL DEFAULT 0;
        UPDATE attempts SET answered = (SELECT count(*) FROM jsonb_object_keys(answers))
         WHERE answers <> '{}';
    END IF;
END $$;

-- Lookups and the foreign-key check on DELETE FROM exams go by exam_id. exam_id is
-- never updated, so this index does not prevent HOT updates.
CREATE INDEX IF NOT EXISTS attempts_exam_id_idx ON attempts (exam_id);

-- Which staff members (teachers, graders, the platform's own exporter) may read an exam's
-- attempts: stream them all (GET /exams/{id}/attempts) and read one, with its history
-- (GET /attempts/{id}, GET /attempts/{id}/history). staff_id is what the claim named by
-- --staff-id-claim holds (the token's sub by default: a Keycloak UUID, "auth0|..."), exactly
-- as the identity provider issues it. The platform keeps it, the service only reads it:
--   INSERT INTO exam_staff (exam_id, staff_id) VALUES (7, 'f3c1...') ON CONFLICT DO NOTHING;
--   DELETE FROM exam_staff WHERE exam_id = 7 AND staff_id = 'f3c1...';
-- Each staff request reads it afresh (an export in its own snapshot), so a change applies to
-- the next request. LOGGED, unlike attempts: it is the platform's record, not a hot path.
CREATE TABLE IF NOT EXISTS exam_staff (
    exam_id  bigint NOT NULL REFERENCES exams ON DELETE CASCADE,
    staff_id text   NOT NULL CHECK (staff_id <> ''),
    PRIMARY KEY (exam_id, staff_id)
);

-- Idempotency keys of POST /exams/{id}/attempts: a retried start with the same key, from the
-- same student within 24 hours, returns the attempt the first one created. UNLOGGED like
-- attempts (and switched with it by sql/durable.sql), since its rows point at attempts.
CREATE UNLOGGED TABLE IF NOT EXISTS attempt_starts (
    student_id      bigint      NOT NULL,
    idempotency_key text        NOT NULL,
    exam_id         bigint      NOT NULL,
    attempt_id      bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (student_id, idempotency_key)
);

-- Starts an attempt of exam p_exam_id for student p_student_id; p_key is the request's
-- Idempotency-Key or NULL. Returns one row: what happened, then the attempt:
--   created     a new attempt
--   replayed    the key's attempt from an earlier start (same student, same exam, < 24 h ago)
--   key_reused  the key was used for another exam; no attempt columns
--   no_exam     there is no such exam; no attempt columns
-- Two concurrent starts with one key: the second waits on the key's primary key until the
-- first commits, then replays its attempt; no duplicate is ever created.
CREATE OR REPLACE FUNCTION start_attempt(p_exam_id bigint, p_student_id bigint, p_key text)
RETURNS TABLE (outcome text, id bigint, exam_id bigint, student_id bigint, answers jsonb,
               revision bigint, started_at timestamptz, deadline timestamptz,
               updated_at timestamptz, submitted_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_duration integer;
    v_exam_id bigint;
    v_attempt_id bigint;
BEGIN
    SELECT e.duration_seconds INTO v_duration FROM exams e WHERE e.id = p_exam_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_exam'::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::jsonb,
                            NULL::bigint, NULL::timestamptz, NULL::timestamptz,
                            NULL::timestamptz, NULL::timestamptz;
        RETURN;
    END IF;
    IF p_key IS NOT NULL THEN
        -- Keys are kept for 24 hours; a student's expired ones go when they next start one.
        DELETE FROM attempt_starts s
         WHERE s.student_id = p_student_id AND s.created_at < now() - interval '24 hours';
        INSERT INTO attempt_starts AS s (student_id, idempotency_key, exam_id)
        VALUES (p_student_id, p_key, p_exam_id)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT s.exam_id, s.attempt_id INTO v_exam_id, v_attempt_id
              FROM attempt_starts s
             WHERE s.student_id = p_student_id AND s.idempotency_key = p_key;
            IF v_exam_id <> p_exam_id THEN
                RETURN QUERY SELECT 'key_reused'::text, NULL::bigint, NULL::bigint, NULL::bigint,
                                    NULL::jsonb, NULL::bigint, NULL::timestamptz,
                                    NULL::timestamptz, NULL::timestamptz, NULL::timestamptz;
                RETURN;
            END IF;
            RETURN QUERY SELECT 'replayed'::text, a.id, a.exam_id, a.student_id, a.answers,
                                a.revision, a.started_at, a.deadline, a.updated_at,
                                a.submitted_at
                           FROM attempts a WHERE a.id = v_attempt_id;
            RETURN;
        END IF;
    END IF;
    INSERT INTO attempts AS a (exam_id, student_id, deadline)
    VALUES (p_exam_id, p_student_id, now() + make_interval(secs => v_duration))
    RETURNING a.id INTO v_attempt_id;
    -- On the record (answer_history, below), unless the service keeps no history.
    IF coalesce(current_setting('attempts.history', true), '') <> 'off' THEN
        INSERT INTO answer_history (attempt_id, seq, written_at, kind, student_id, writes, answers)
        SELECT a.id, 0, a.started_at, 'b', a.student_id, 1, a.answers
          FROM attempts a WHERE a.id = v_attempt_id;
    END IF;
    IF p_key IS NOT NULL THEN
        UPDATE attempt_starts s SET attempt_id = v_attempt_id
         WHERE s.student_id = p_student_id AND s.idempotency_key = p_key;
    END IF;
    RETURN QUERY SELECT 'created'::text, a.id, a.exam_id, a.student_id, a.answers, a.revision,
                        a.started_at, a.deadline, a.updated_at, a.submitted_at
                   FROM attempts a WHERE a.id = v_attempt_id;
END;
$$;

-- Called by the service's save statements (src/db/sql.hpp) for a row they wrote after its
-- deadline: the deadline is judged when the row is written, but a write that waited for a row
-- lock held without a change (SELECT ... FOR UPDATE) was judged before the wait. Raising a
-- serialization failure rolls the whole statement back; the service sends it again, and then
-- refuses the late write. Never called otherwise, and never returns (its type is that of the
-- column it stands in for).
CREATE OR REPLACE FUNCTION attempts_written_too_late(p_id bigint, p_deadline timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'attempt % was written after its deadline % (the write waited for a lock)',
                    p_id, p_deadline
        USING ERRCODE = 'serialization_failure';
END;
$$;

-- Makes attempt p_id's answers final (p_student_id NULL: any owner) and returns it; submitting
-- again changes nothing and returns the original submitted_at. No row: no such attempt for this
-- student. A separate statement reads the row after the UPDATE, so a concurrent submit that
-- won the race is seen with its time. The submit goes on the record (answer_history) with the
-- final answers, unless the service keeps no history (its sessions set attempts.history).
CREATE OR REPLACE FUNCTION submit_attempt(p_id bigint, p_student_id bigint)
RETURNS SETOF attempts
LANGUAGE plpgsql AS $$
DECLARE
    v_submitted attempts;
BEGIN
    UPDATE attempts a SET submitted_at = now()
     WHERE a.id = p_id AND (p_student_id IS NULL OR a.student_id = p_student_id)
       AND a.submitted_at IS NULL
    RETURNING a.* INTO v_submitted;
    IF FOUND THEN
        IF coalesce(current_setting('attempts.history', true), '') <> 'off' THEN
            INSERT INTO answer_history (attempt_id, seq, written_at, kind, student_id, revision,
                                        writes, answers)
            -- Written when the row is, after the wait for a save's row lock (submitted_at is
            -- the transaction's start): later than every save of the attempt.
            VALUES (v_submitted.id, v_submitted.saves + 1, clock_timestamp(), 'f',
                    v_submitted.student_id, v_submitted.revision, 1, v_submitted.answers);
        END IF;
        RETURN NEXT v_submitted;
    ELSE
        RETURN QUERY
            SELECT a.* FROM attempts a
             WHERE a.id = p_id AND (p_student_id IS NULL OR a.student_id = p_student_id);
    END IF;
END;
$$;

-- ---- the answer history ------------------------------------------------------------------
--
-- Every save of every attempt, as it was applied, and its start and submit: the record that
-- settles disputes (issue 29). Append-only: written in the same statement as the UPDATE that
-- applies a save (src/db/sql.hpp), so a save acknowledged 204 has its row and a save refused
-- has none; never updated. `writes` says how many of the client's writes the row stands for:
-- writes of one student to one attempt that queued together go out as one row (group commit),
-- the last one's answers. The answers at any past instant are those of the newest row written
-- at or before it.
--
-- Its size is designed in: range-partitioned by week on written_at (the same clock as
-- attempts.updated_at), so old history leaves by dropping a week's partition, never by DELETE;
-- answer_history_maintain() creates the weeks ahead and drops those past the retention, called
-- by the service every hour (--history-retention-days). One index, (attempt_id, seq), on each
-- partition: what reading one attempt's history needs, and the only cost an INSERT pays beyond
-- the heap (scripts/bench-ledger-layouts.sh measures the alternatives). attempts itself gets no
-- new index, so its updates stay HOT. The partitions follow attempts' persistence: UNLOGGED by
-- default, LOGGED with sql/durable.sql.
CREATE TABLE IF NOT EXISTS answer_history (
    attempt_id bigint      NOT NULL,
    -- 0 for the start, 1, 2, ... for the saves (attempts.saves), the last save's + 1 for the
    -- submit: strictly increasing per attempt.
    seq        bigint      NOT NULL,
    written_at timestamptz NOT NULL,
    -- 'b': started (begun), 's': a save, 'f': submitted (final).
    kind       "char"      NOT NULL,
    student_id bigint      NOT NULL,
    -- The client's revision of the saved answers; NULL if it sent none.
    revision   bigint,
    writes     integer     NOT NULL DEFAULT 1,
    answers    jsonb       NOT NULL
) PARTITION BY RANGE (written_at);

CREATE INDEX IF NOT EXISTS answer_history_attempt_seq_idx ON answer_history (attempt_id, seq);

-- Creates the weekly partitions of answer_history from last week to p_weeks_ahead weeks ahead
-- (UNLOGGED or LOGGED as attempts is), and drops those whose week ended more than
-- p_retention_days ago (0: keeps every week). Returns how many whole weeks after the current
-- one have their partition. Weeks start on Monday, 00:00 UTC; a partition is named after its
-- ISO week (answer_history_2026w49). Several service instances may call it at once (an
-- advisory lock makes them take turns), and it never waits long for a lock on answer_history
-- (saves insert into it all the time): a partition it cannot create or drop within lock_timeout
-- is left for the next call.
CREATE OR REPLACE FUNCTION answer_history_maintain(p_retention_days integer,
                                                   p_weeks_ahead integer DEFAULT 4)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_this_week timestamptz := date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    v_from timestamptz;
    v_name text;
    v_persistence text;
    v_ahead integer := -1;
    v_part record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('answer_history_maintain'));
    PERFORM set_config('lock_timeout', '500ms', true);
    SELECT CASE relpersistence WHEN 'u' THEN 'UNLOGGED' ELSE '' END INTO v_persistence
      FROM pg_class WHERE oid = 'attempts'::regclass;
    FOR i IN -1 .. p_weeks_ahead LOOP
        v_from := v_this_week + make_interval(weeks => i);
        v_name := 'answer_history_' || to_char(v_from AT TIME ZONE 'UTC', 'IYYY"w"IW');
        IF to_regclass(v_name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE %s TABLE %I PARTITION OF answer_history '
                               'FOR VALUES FROM (%L) TO (%L)',
                               v_persistence, v_name, v_from, v_from + interval '1 week');
            EXCEPTION WHEN lock_not_available THEN
                EXIT;  -- the weeks after this one wait for the next call
            END;
        END IF;
        IF i > 0 THEN
            v_ahead := i;
        END IF;
    END LOOP;
    IF p_retention_days > 0 THEN
        FOR v_part IN
            SELECT c.oid::regclass AS part,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                 'TO \(''([^'']+)''\)'))[1]::timestamptz AS ends
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'answer_history'::regclass
        LOOP
            IF v_part.ends < now() - make_interval(days => p_retention_days) THEN
                BEGIN
                    EXECUTE format('DROP TABLE %s', v_part.part);
                EXCEPTION WHEN lock_not_available THEN
                    NULL;  -- in use: the next call drops it
                END;
            END IF;
        END LOOP;
    END IF;
    RETURN greatest(v_ahead, 0);
END;
$$;

-- The weeks around the installation; the service keeps them coming.
SELECT answer_history_maintain(0);
