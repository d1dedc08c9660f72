-- Citus: turns the schema of sql/schema.sql into a distributed one. Run on the coordinator, each
-- file with `psql -v ON_ERROR_STOP=1 -f`, in this order:
--   1. sql/schema.sql   the tables and functions, exactly as on a single PostgreSQL
--   2. sql/citus.sql    this file: distributes the (still empty) tables
--   3. sql/seed.sql     the data, written through the coordinator into the shards
--   (4. sql/durable.sql if the service runs with --durability async or sync; see below)
-- Before step 2, every node (coordinator and workers) has `CREATE EXTENSION citus` in this
-- database and the workers are registered on the coordinator (citus_set_coordinator_host,
-- citus_add_node). Re-runnable: a table already distributed is left as it is.
-- Keep it in step with sql/schema.sql: a table added there must be distributed, made a
-- reference table, or deliberately left local here.
--
-- exams: a reference table (one shard, a copy on every node). attempts.exam_id references it,
-- and Citus allows a foreign key from a distributed table only to a reference table or to a
-- table co-located with it; start_attempt() reads an exam on whichever node it runs.
--
-- attempts: hash-distributed by id, its primary key (Citus requires the distribution column in
-- every unique constraint). Every statement of the service names the attempts it writes by id,
-- so each one-row statement is routed to the one worker holding that id's shard, and a batched
-- UPDATE is too when all its ids are in one shard and it says so (`AND a.id = ANY($1)`, see
-- docs/scaling.md). 32 shards, Citus's default: 16 per worker on two workers, and room to spread
-- the table over up to 32 workers by moving whole shards (citus_move_shard_placement, online),
-- without splitting any. More shards would not help the service: a batch must stay within one
-- shard to be routed to one worker, so every extra shard divides the batches the pool can form.
--
-- answer_history (every save, sql/schema.sql): hash-distributed by attempt_id and co-located
-- with attempts, so a save's record goes to the same node as its UPDATE, written there by the
-- trigger at the end of this file, in one single-shard task. Its weekly partitions are
-- distributed with it, those made later by answer_history_maintain() too (Citus distributes a
-- new partition of a distributed table): the service calls it through the coordinator.
--
-- attempt_starts (idempotency keys): hash-distributed by student_id, its primary key's first
-- column, and co-located with attempts (same shard count and hash ranges; the co-location means
-- nothing for joins, none is made, but one co-location group keeps one shard map to move). Each
-- start_attempt() call reads and writes only its student's keys, so those statements are
-- routed to one shard. A reference table would copy every key to every node in a two-phase
-- commit; a table left on the coordinator would put every start's writes on one node.
--
-- exam_staff (which staff members read which exams): a reference table like exams, which it
-- references. It is small and changes rarely; the staff reader's statements join it with
-- attempts on whichever node runs them. An export is a cursor over the attempts of one exam on
-- the coordinator: Citus reads it from every shard (exam_id is not the distribution column).
-- start_attempt() then writes two shards (the key's and the new attempt's): when they are on two
-- workers, Citus commits that transaction with two-phase commit. Starts are rare next to saves.
--
-- UNLOGGED on Citus. Citus creates the shards of an UNLOGGED table UNLOGGED on the workers. A
-- crash of a worker (not a clean restart) truncates every UNLOGGED shard it holds: the attempts
-- in those shards, including every answer acknowledged with 204, are gone, while the other
-- workers keep theirs, and the service answers 404 for the lost ones. The durable choice is
-- sql/durable.sql, run on the coordinator: ALTER TABLE ... SET LOGGED propagates to every shard
-- on every worker (checked on Citus 13.2.2: relpersistence 'p' on all 32 shards of attempts and
-- of attempt_starts). What a commit waits for is then each worker's own synchronous_commit:
-- Citus does not pass the service's session setting (--durability async sets it off) on to its
-- connections to the workers (checked: a coordinator session with synchronous_commit = on reads
-- `off` on a worker configured with off). For --durability sync, set synchronous_commit = on in
-- every worker's configuration (the PostgreSQL default); for async, off there.
--
-- The functions of schema.sql are created on every node (create_distributed_function without a
-- distribution argument: a copy everywhere, called where it is called, not delegated), because
-- the service prepares its statements on every node it writes through (--citus-entry nodes, the
-- default) and a prepared statement must name functions that exist there. Each statement in them
-- names one attempt or one student, so Citus routes it to one shard from whichever node runs it.
-- (schema.sql warns on a Citus coordinator that submit_attempt "will be created only locally":
-- this file then creates it on the workers.)

BEGIN;

-- Without this, create_reference_table('exams') would first turn attempts (which references
-- exams) into a "Citus local table", and create_distributed_table('attempts') would then
-- re-create attempts, dropping with it submit_attempt(), whose result type is attempts' row type.
SET LOCAL citus.enable_local_reference_table_foreign_keys = off;

SELECT create_reference_table('exams')
 WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'exams'::regclass);

SELECT create_reference_table('exam_staff')
 WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'exam_staff'::regclass);

SELECT create_distributed_table('attempts', 'id', shard_count => 32)
 WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'attempts'::regclass);

SELECT create_distributed_table('attempt_starts', 'student_id', colocate_with => 'attempts')
 WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition
                    WHERE logicalrelid = 'attempt_starts'::regclass);

SELECT create_distributed_table('answer_history', 'attempt_id', colocate_with => 'attempts')
 WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition
                    WHERE logicalrelid = 'answer_history'::regclass);

COMMIT;

-- After the tables: submit_attempt() returns attempts' row type, which must be distributed first.
-- Re-runnable: distributing a function again changes nothing.
SELECT create_distributed_function('start_attempt(bigint, bigint, text)');
SELECT create_distributed_function('attempts_written_too_late(bigint, timestamptz)');
SELECT create_distributed_function('submit_attempt(bigint, bigint)');

-- The deadline at the moment a row is written, as on a single PostgreSQL. Citus refuses
-- volatile functions anywhere in a distributed UPDATE (WHERE: "must not be VOLATILE"; RETURNING:
-- "non-IMMUTABLE functions are not allowed"), so the save statements there judge the deadline
-- with now(), their start, and a write that waited for a row lock past the deadline would be
-- saved. This trigger runs on the shard as the row is written (clock_timestamp() there), only
-- for saves (UPDATE OF answers) of attempts past their deadline, and rolls the statement back
-- with a serialization failure, like attempts_written_too_late() in the single-node RETURNING:
-- the service sends the batch again and the late write is refused then (409). Citus creates
-- triggers on distributed tables only with citus.enable_unsafe_triggers (it cannot check what
-- a trigger does across shards; this one reads and writes nothing but its own row), and then
-- copies it to every shard, where it fires for every session.
CREATE OR REPLACE FUNCTION attempts_refuse_late_write()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM attempts_written_too_late(NEW.id, NEW.deadline);
    RETURN NEW;
END;
$$;
SELECT create_distributed_function('attempts_refuse_late_write()');

SET citus.enable_unsafe_triggers = on;
CREATE OR REPLACE TRIGGER attempts_deadline_when_written
    BEFORE UPDATE OF answers ON attempts
    FOR EACH ROW
    WHEN (NEW.deadline IS NOT NULL AND NEW.deadline <= clock_timestamp())
    EXECUTE FUNCTION attempts_refuse_late_write();
RESET citus.enable_unsafe_triggers;

-- The answer history of a save, on the shard (sql/schema.sql, answer_history; src/db/sql.hpp's
-- kept shard statements): those statements count the save (saves) and say how many writes it
-- stands for (save_writes); this trigger, which Citus copies to every shard and runs on the node
-- holding it, records the save into the co-located shard of answer_history on that same node, in
-- the statement's own transaction. (A data-modifying CTE feeding the INSERT, the single-node
-- statements' way, is run by Citus as two subplans with an intermediate result, not as one
-- task: slower, and refused while any node is down.) Only a statement that counts a save fires
-- it: with --history off, and for submits and starts, nothing adds to saves (and a reset that
-- sets it back to 0 records nothing).
CREATE OR REPLACE FUNCTION attempts_keep_save()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO answer_history (attempt_id, seq, written_at, kind, student_id, revision, writes,
                                answers)
    VALUES (NEW.id, NEW.saves, NEW.updated_at, 's', NEW.student_id,
            -- A revision the client sent is always newer than the stored one.
            CASE WHEN NEW.revision <> OLD.revision THEN NEW.revision END,
            coalesce(NEW.save_writes, 1), NEW.answers);
    RETURN NULL;
END;
$$;
SELECT create_distributed_function('attempts_keep_save()');

SET citus.enable_unsafe_triggers = on;
CREATE OR REPLACE TRIGGER attempts_keep_saves
    AFTER UPDATE OF saves ON attempts
    FOR EACH ROW
    WHEN (NEW.saves > OLD.saves)
    EXECUTE FUNCTION attempts_keep_save();
RESET citus.enable_unsafe_triggers;
