#pragma once

// Every statement the service runs, prepared once per connection. Values travel only as bound
// parameters; no SQL text is ever built from request data.
namespace attempts::db::sql {

// Type OIDs of the parameters (fixed in PostgreSQL's catalog, pg_type.dat).
inline constexpr unsigned kInt8Oid = 20;
inline constexpr unsigned kTextOid = 25;
inline constexpr unsigned kJsonbOid = 3802;
inline constexpr unsigned kInt8ArrayOid = 1016;
inline constexpr unsigned kInt4Oid = 23;
inline constexpr unsigned kInt4ArrayOid = 1007;
inline constexpr unsigned kTimestamptzOid = 1184;
inline constexpr unsigned kJsonbArrayOid = 3807;

// What a write must satisfy to apply, shared by the one-row and the batched UPDATE: the attempt
// is the student's (no student: authentication is off), not submitted, before its deadline,
// and, when the client sent a revision, newer than the stored one. All of it is checked in the
// statement itself, so no extra round trip is needed and a slow client cannot outrun a deadline.
// RETURNING names each row it changed, in binary (int8): the batched statements with its owner,
// so that SaveBatch can tell whose write applied when writers differ; the one-row statement has
// one writer, and no owner column to parse.
//
// The deadline is judged at the moment the row is written: clock_timestamp(), not now() (the
// transaction's start), and updated_at is that moment. A write that waits for a row lock is
// judged again after the wait when the lock holder changed the row (PostgreSQL re-checks the
// WHERE clause), but not when it only locked it (SELECT ... FOR UPDATE): RETURNING, which runs
// once the row is written, then checks the deadline again in place of its last column: a row
// written after it makes attempts_written_too_late() (sql/schema.sql) roll the statement back with
// a serialization failure; the connection sends the batch again, and the late write is refused
// then.
//
// On Citus, which refuses volatile functions anywhere in a distributed UPDATE, the shard
// statements use now() instead (the statement's start where it entered), and sql/citus.sql's
// trigger judges the deadline again on the shard as the row is written, rolling the statement
// back the same way (docs/scaling.md, 5.2).

inline constexpr const char* kSaveOneName = "save_answers_one";
// One write: the statement `sql/pgbench/update.sql` measures. $1 id, $2 student, $3 revision,
// $4 answers (types given when prepared).
inline constexpr const char* kSaveOne = R"sql(
UPDATE attempts
   SET answers = $4, revision = COALESCE($3, revision), updated_at = clock_timestamp(),
       answered = $5
 WHERE id = $1
   AND submitted_at IS NULL
   AND (deadline IS NULL OR deadline > clock_timestamp())
   AND ($2 IS NULL OR student_id = $2)
   AND ($3 IS NULL OR $3 > revision)
RETURNING CASE WHEN deadline <= clock_timestamp() THEN attempts_written_too_late(id, deadline)
               ELSE id END)sql";
inline constexpr unsigned kSaveOneTypes[] = {kInt8Oid, kInt8Oid, kInt8Oid, kJsonbOid, kInt4Oid};

inline constexpr const char* kSaveOneShardName = "save_answers_one_shard";
// kSaveOne on Citus.
inline constexpr const char* kSaveOneShard = R"sql(
UPDATE attempts
   SET answers = $4, revision = COALESCE($3, revision), updated_at = now(), answered = $5
 WHERE id = $1
   AND submitted_at IS NULL
   AND (deadline IS NULL OR deadline > now())
   AND ($2 IS NULL OR student_id = $2)
   AND ($3 IS NULL OR $3 > revision)
RETURNING id)sql";

inline constexpr const char* kSaveBatchName = "save_answers_batch";
// Many writes in one statement, one row per attempt and writer. The rows arrive sorted by id,
// so two batches lock rows in the same order; an attempt has several rows only for different
// writers, of whom at most one owns it, so a row is never updated twice by one statement.
#define ATTEMPTS_SAVE_BATCH(CLOCK)                                                     \
  "\nUPDATE attempts AS a\n"                                                           \
  "   SET answers = w.answers, revision = COALESCE(w.revision, a.revision),\n"         \
  "       updated_at = " CLOCK                                                         \
  ", answered = w.answered\n"                                                          \
  "  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::jsonb[], $5::int4[])\n" \
  "       AS w(id, student_id, revision, answers, answered)\n"                         \
  " WHERE a.id = w.id\n"                                                               \
  "   AND a.submitted_at IS NULL\n"                                                    \
  "   AND (a.deadline IS NULL OR a.deadline > " CLOCK                                  \
  ")\n"                                                                                \
  "   AND (w.student_id IS NULL OR a.student_id = w.student_id)\n"                     \
  "   AND (w.revision IS NULL OR w.revision > a.revision)\n"
inline constexpr const char* kSaveBatch =
    ATTEMPTS_SAVE_BATCH("clock_timestamp()") "RETURNING a.id,\n"
    "          CASE WHEN a.deadline <= clock_timestamp()\n"
    "               THEN attempts_written_too_late(a.id, a.deadline) ELSE a.student_id END";
inline constexpr unsigned kSaveBatchTypes[] = {kInt8ArrayOid, kInt8ArrayOid, kInt8ArrayOid,
                                               kJsonbArrayOid, kInt4ArrayOid};

inline constexpr const char* kSaveShardName = "save_answers_shard";
// The batch on Citus, where all its ids are in one shard (the pool groups them so): the same
// statement, with the ids also as a filter on the distribution column. Citus prunes shards only
// on such a filter, not through the join, so this one is routed to the one worker holding the
// shard, as a one-shard transaction; kSaveBatch would go to every shard with a two-phase commit
// (docs/scaling.md has the figures).
inline constexpr const char* kSaveShard =
    ATTEMPTS_SAVE_BATCH("now()") "   AND a.id = ANY($1::bigint[])\nRETURNING a.id, a.student_id";
#undef ATTEMPTS_SAVE_BATCH

// ---- the same saves, kept in answer_history (--history on, the default) ----------------------
//
// Each applied row of the UPDATE is counted (attempts.saves, no index: the update stays HOT) and
// handed by RETURNING to an INSERT into answer_history in the same statement, so the save and its
// record commit together or not at all: a row the UPDATE did not apply has no record, and a
// statement rolled back (a late write, a deadlock) leaves none. The record's time is the row's
// updated_at, its sequence number the new count. $5 (int4; int4[] in the batched statements):
// how many of the client's writes the row stands for (writes of one student to one attempt that
// queued together go out as one row: SaveBatch). What the client is told is read from the same
// RETURNING columns as without history.
inline constexpr const char* kSaveOneKeptName = "save_answers_one_kept";
inline constexpr const char* kSaveOneKept = R"sql(
WITH saved AS (
UPDATE attempts
   SET answers = $4, revision = COALESCE($3, revision), updated_at = clock_timestamp(),
       saves = saves + 1, answered = $6
 WHERE id = $1
   AND submitted_at IS NULL
   AND (deadline IS NULL OR deadline > clock_timestamp())
   AND ($2 IS NULL OR student_id = $2)
   AND ($3 IS NULL OR $3 > revision)
RETURNING id, student_id, saves, updated_at, answers,
          CASE WHEN deadline <= clock_timestamp() THEN attempts_written_too_late(id, deadline)
               ELSE id END AS applied),
kept AS (
INSERT INTO answer_history (attempt_id, seq, written_at, kind, student_id, revision, writes,
                            answers)
SELECT id, saves, updated_at, 's', student_id, $3, $5, answers FROM saved)
SELECT applied FROM saved)sql";
inline constexpr unsigned kSaveOneKeptTypes[] = {kInt8Oid,  kInt8Oid, kInt8Oid,
                                                 kJsonbOid, kInt4Oid, kInt4Oid};

inline constexpr const char* kSaveOneShardKeptName = "save_answers_one_shard_kept";
// kSaveOneKept on Citus, where a data-modifying CTE that feeds an INSERT is not one task: Citus
// runs the UPDATE and the INSERT as two subplans with an intermediate result, which needs every
// node up. So the shard statements only count the save and say how many writes it stands for
// (save_writes), and sql/citus.sql's trigger on the shard records it, in the same statement and
// transaction, into the co-located shard of answer_history on the same node: one single-shard
// task, as without history.
inline constexpr const char* kSaveOneShardKept = R"sql(
UPDATE attempts
   SET answers = $4, revision = COALESCE($3, revision), updated_at = now(), saves = saves + 1,
       save_writes = $5, answered = $6
 WHERE id = $1
   AND submitted_at IS NULL
   AND (deadline IS NULL OR deadline > now())
   AND ($2 IS NULL OR student_id = $2)
   AND ($3 IS NULL OR $3 > revision)
RETURNING id)sql";

#define ATTEMPTS_SAVE_BATCH_KEPT(CLOCK)                                                \
  "\nWITH saved AS (\n"                                                                \
  "UPDATE attempts AS a\n"                                                             \
  "   SET answers = w.answers, revision = COALESCE(w.revision, a.revision),\n"         \
  "       updated_at = " CLOCK                                                         \
  ", saves = a.saves + 1, answered = w.answered\n"                                     \
  "  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::jsonb[], $5::int4[],\n" \
  "              $6::int4[])\n"                                                        \
  "       AS w(id, student_id, revision, answers, writes, answered)\n"                 \
  " WHERE a.id = w.id\n"                                                               \
  "   AND a.submitted_at IS NULL\n"                                                    \
  "   AND (a.deadline IS NULL OR a.deadline > " CLOCK                                  \
  ")\n"                                                                                \
  "   AND (w.student_id IS NULL OR a.student_id = w.student_id)\n"                     \
  "   AND (w.revision IS NULL OR w.revision > a.revision)\n"
#define ATTEMPTS_KEEP_SAVED                                                                \
  "kept AS (\n"                                                                            \
  "INSERT INTO answer_history (attempt_id, seq, written_at, kind, student_id, revision,\n" \
  "                            writes, answers)\n"                                         \
  "SELECT id, saves, updated_at, 's', student_id, revision, writes, answers FROM saved)\n" \
  "SELECT id, owner FROM saved"

inline constexpr const char* kSaveBatchKeptName = "save_answers_batch_kept";
inline constexpr const char* kSaveBatchKept =
    ATTEMPTS_SAVE_BATCH_KEPT("clock_timestamp()")
    "RETURNING a.id, a.student_id, a.saves, a.updated_at, a.answers, w.revision, w.writes,\n"
    "          CASE WHEN a.deadline <= clock_timestamp()\n"
    "               THEN attempts_written_too_late(a.id, a.deadline) ELSE a.student_id END\n"
    "          AS owner),\n" ATTEMPTS_KEEP_SAVED;
inline constexpr unsigned kSaveBatchKeptTypes[] = {kInt8ArrayOid,  kInt8ArrayOid, kInt8ArrayOid,
                                                   kJsonbArrayOid, kInt4ArrayOid, kInt4ArrayOid};

inline constexpr const char* kSaveShardKeptName = "save_answers_shard_kept";
// kSaveShard with its record, on Citus: counted here, recorded by the shard's trigger (as in
// kSaveOneShardKept).
inline constexpr const char* kSaveShardKept =
    "\nUPDATE attempts AS a\n"
    "   SET answers = w.answers, revision = COALESCE(w.revision, a.revision),\n"
    "       updated_at = now(), saves = a.saves + 1, save_writes = w.writes,\n"
    "       answered = w.answered\n"
    "  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::jsonb[], $5::int4[],\n"
    "              $6::int4[])\n"
    "       AS w(id, student_id, revision, answers, writes, answered)\n"
    " WHERE a.id = w.id\n"
    "   AND a.submitted_at IS NULL\n"
    "   AND (a.deadline IS NULL OR a.deadline > now())\n"
    "   AND (w.student_id IS NULL OR a.student_id = w.student_id)\n"
    "   AND (w.revision IS NULL OR w.revision > a.revision)\n"
    "   AND a.id = ANY($1::bigint[])\n"
    "RETURNING a.id, a.student_id";
#undef ATTEMPTS_SAVE_BATCH_KEPT
#undef ATTEMPTS_KEEP_SAVED

inline constexpr const char* kWhyNotSavedName = "why_not_saved";
// For the writes an UPDATE did not apply: what stood in the way. Every condition only ever
// becomes true (attempts are not deleted, owners do not change, submit and deadlines are final,
// revisions only grow), so what this later statement sees also held for the UPDATE.
inline constexpr const char* kWhyNotSaved = R"sql(
SELECT id, student_id, revision,
       to_jsonb(submitted_at) #>> '{}',
       to_jsonb(deadline) #>> '{}',
       deadline IS NOT NULL AND deadline <= now()
  FROM attempts
 WHERE id = ANY($1::bigint[]))sql";
inline constexpr unsigned kWhyNotSavedTypes[] = {kInt8ArrayOid};

// The columns of an attempt as AttemptRecord holds them: timestamps as ISO 8601 in UTC (the
// session's time zone is set to UTC on connect).
#define ATTEMPTS_RECORD_COLUMNS                                                       \
  "id, exam_id, student_id, answers::text, revision, to_jsonb(started_at) #>> '{}', " \
  "to_jsonb(deadline) #>> '{}', to_jsonb(updated_at) #>> '{}', "                      \
  "to_jsonb(submitted_at) #>> '{}'"

inline constexpr const char* kLoadAttemptName = "load_attempt";
// $1 id, $2 student (NULL: any). Someone else's attempt is not found, exactly like a missing one.
inline constexpr const char* kLoadAttempt =
    "SELECT " ATTEMPTS_RECORD_COLUMNS
    " FROM attempts WHERE id = $1 AND ($2::bigint IS NULL OR student_id = $2)";
inline constexpr unsigned kLoadAttemptTypes[] = {kInt8Oid, kInt8Oid};

// ---- staff reads (StaffReader: text parameters, text results, on connections of their own) --

// A staff member's read of one attempt: $1 id, $2 staff id. Found only when exam_staff lists the
// staff member for the attempt's exam; otherwise not found, exactly like a missing attempt. The
// same columns as kLoadAttempt.
inline constexpr const char* kStaffLoadAttempt =
    "SELECT " ATTEMPTS_RECORD_COLUMNS
    " FROM attempts a WHERE a.id = $1::bigint AND EXISTS (SELECT 1 FROM exam_staff s"
    " WHERE s.exam_id = a.exam_id AND s.staff_id = $2::text)";

inline constexpr const char* kSubmitAttemptName = "submit_attempt";
// submit_attempt() (sql/schema.sql) sets submitted_at once and returns the attempt either way.
inline constexpr const char* kSubmitAttempt =
    "SELECT " ATTEMPTS_RECORD_COLUMNS " FROM submit_attempt($1, $2)";
inline constexpr unsigned kSubmitAttemptTypes[] = {kInt8Oid, kInt8Oid};

inline constexpr const char* kStartAttemptName = "start_attempt";
// start_attempt() (sql/schema.sql): $1 exam, $2 student, $3 Idempotency-Key (NULL: none).
// The first column says what happened: created, replayed, key_reused or no_exam.
inline constexpr const char* kStartAttempt =
    "SELECT outcome, " ATTEMPTS_RECORD_COLUMNS " FROM start_attempt($1, $2, $3)";
inline constexpr unsigned kStartAttemptTypes[] = {kInt8Oid, kInt8Oid, kTextOid};

#undef ATTEMPTS_RECORD_COLUMNS

inline constexpr const char* kLoadHistoryName = "load_history";
// A page of attempt $1's answer history, newest first: $2 student (NULL: any), $3 only entries
// older than this sequence number (NULL: from the newest), $4 only entries written at or before
// this instant (NULL: any), $5 at most this many. One row per entry, after the attempt's saves
// count; one row with a NULL entry if the page is empty; none if there is no such attempt for
// this student (missing and foreign look alike). The index (attempt_id, seq) of each week's
// partition gives the page in order; the weeks before the attempt started are left out.
#define ATTEMPTS_HISTORY_PAGE(who_may_read)                                                 \
  "SELECT a.saves, h.seq, h.kind, to_jsonb(h.written_at) #>> '{}', h.revision, h.writes,\n" \
  "       h.answers::text\n"                                                                \
  "  FROM attempts a\n"                                                                     \
  "  LEFT JOIN LATERAL (\n"                                                                 \
  "       SELECT seq, kind, written_at, revision, writes, answers\n"                        \
  "         FROM answer_history\n"                                                          \
  "        WHERE attempt_id = a.id AND written_at >= a.started_at\n"                        \
  "          AND ($3::bigint IS NULL OR seq < $3::bigint)\n"                                \
  "          AND ($4::timestamptz IS NULL OR written_at <= $4::timestamptz)\n"              \
  "        ORDER BY seq DESC\n"                                                             \
  "        LIMIT $5::integer) h ON true\n"                                                  \
  " WHERE a.id = $1::bigint AND " who_may_read                                              \
  "\n"                                                                                      \
  " ORDER BY h.seq DESC"
inline constexpr const char* kLoadHistory =
    ATTEMPTS_HISTORY_PAGE("($2::bigint IS NULL OR a.student_id = $2::bigint)");
// The same page for a staff member ($2 the staff id): the attempt's exam must list them.
inline constexpr const char* kStaffLoadHistory = ATTEMPTS_HISTORY_PAGE(
    "EXISTS (SELECT 1 FROM exam_staff s WHERE s.exam_id = a.exam_id AND s.staff_id = $2::text)");
#undef ATTEMPTS_HISTORY_PAGE
inline constexpr unsigned kLoadHistoryTypes[] = {kInt8Oid, kInt8Oid, kInt8Oid, kTimestamptzOid,
                                                 kInt4Oid};

// ---- exports (StaffReader) ---------------------------------------------------------------------

// A staff connection's session: UTC timestamps in the ISO style, the statement timeout ($1 ms),
// and read only, so that nothing on these connections can ever write.
inline constexpr const char* kStaffSessionSetup =
    "SELECT set_config('TimeZone', 'UTC', false), set_config('DateStyle', 'ISO', false), "
    "set_config('statement_timeout', $1, false), "
    "set_config('default_transaction_read_only', 'on', false), "
    "set_config('application_name', 'attempts-server staff reader', false)";

// One snapshot for the whole export: every row as of one instant, whatever saves commit while
// it is read.
inline constexpr const char* kExportBegin = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
// In the export's snapshot: $1 exam, $2 staff id (NULL: anyone, authentication off). One row:
// whether the exam exists, and whether the staff member may read it.
inline constexpr const char* kExportAuthorize =
    "SELECT EXISTS (SELECT 1 FROM exams WHERE id = $1::bigint), "
    "$2::text IS NULL OR EXISTS (SELECT 1 FROM exam_staff WHERE exam_id = $1::bigint AND "
    "staff_id = $2::text)";
// The exam's attempts ($1), only submitted ones or only the others ($2, NULL: both), only those
// saved since $3 (NULL: all), in no particular order: read by FETCH, a chunk at a time, so that
// neither the server nor this service holds more than a chunk. The columns, in order: id,
// student_id, answers, revision, started_at, updated_at, submitted_at, deadline, saves
// (timestamps in the session's ISO DateStyle and UTC, NULL when unset: export_rows.cpp makes
// them RFC 3339, which to_jsonb() here would do at a third more of PostgreSQL's CPU per row).
inline constexpr const char* kExportDeclare =
    "DECLARE attempts_export NO SCROLL CURSOR FOR "
    "SELECT id, student_id, answers::text, revision, started_at, updated_at, submitted_at, "
    "deadline, saves FROM attempts WHERE exam_id = $1::bigint "
    "AND ($2::boolean IS NULL OR (submitted_at IS NOT NULL) = $2::boolean) "
    "AND ($3::timestamptz IS NULL OR updated_at >= $3::timestamptz)";
// FETCH takes its count as a literal, not a parameter: "FETCH FORWARD <n> FROM attempts_export".
inline constexpr const char* kExportFetchPrefix = "FETCH FORWARD ";
inline constexpr const char* kExportFetchSuffix = " FROM attempts_export";
inline constexpr const char* kExportEnd = "COMMIT";
inline constexpr const char* kExportAbandon = "ROLLBACK";

// ---- the progress stream (StaffReader, one read per interval per watched exam) ------------------

// A stream's right to the exam, outside any transaction: the columns of kExportAuthorize.
inline constexpr const char* kProgressAuthorize = kExportAuthorize;
// The exam's ($1) attempts started, saved or submitted after $2 (microseconds since the Unix
// epoch; NULL: all), small columns only (never answers), with the database's now() in the first
// column; one row of NULLs after it when nothing changed. An index scan of attempts_exam_id_idx
// (docs/operations.md has its cost at 20,000 attempts): no index on the updated columns, so
// saves stay HOT.
inline constexpr const char* kProgressChanged =
    "SELECT n.at, a.id, a.student_id, a.answered, a.started_at, a.updated_at, a.submitted_at, "
    "a.deadline FROM (SELECT now() AS at) n LEFT JOIN attempts a ON a.exam_id = $1::bigint "
    "AND ($2::bigint IS NULL OR greatest(a.started_at, a.updated_at, a.submitted_at) > "
    "'epoch'::timestamptz + $2::bigint * interval '1 microsecond')";

inline constexpr const char* kPingName = "ping";
// Readiness, and whether the table still has the persistence the durability mode needs ('u'
// UNLOGGED, 'p' LOGGED): sql/durable.sql and sql/unlogged.sql can switch it while we run.
inline constexpr const char* kPing =
    "SELECT relpersistence FROM pg_class WHERE oid = 'attempts'::regclass";

// Sent once per connection, right after it opens: UTC timestamps, the statement timeout, the
// commit mode of --durability ($2; NULL keeps the server's), whether starts and submits go on
// the record (attempts.history, $7: 'on' or 'off', read by start_attempt() and submit_attempt();
// saves choose their statement), whether attempts is a Citus
// distributed table (only when $3 is not NULL: --citus auto or on; the query between head and
// tail is kDetectCitusQuery of shard_map.hpp), this backend's identity (pid, and start time in
// microseconds), whether the backend of a session lost with writes that may still apply is gone
// ($4 pid and $5 start time, NULL when there is none: LostStatements), and the table's
// persistence (the last column).
//
// That backend, if it still runs (the network failed, not the server), is terminated, and the
// setup waits up to $6 ms for it to exit: pg_terminate_backend(pid, timeout) returns true only
// once it has. The CASE makes sure the pid is matched with the start time before anything is
// signalled, so a reused pid is never terminated. Same role: no extra privilege is needed.
inline constexpr const char* kSessionSetupHead =
    "SELECT set_config('TimeZone', 'UTC', false), set_config('statement_timeout', $1, false), "
    "set_config('synchronous_commit', COALESCE($2, current_setting('synchronous_commit')), "
    "false), set_config('attempts.history', $7, false), "
    "CASE WHEN $3::text IS NULL THEN NULL ELSE (";
inline constexpr const char* kSessionSetupTail =
    ") END, pg_backend_pid(), "
    "(SELECT (extract(epoch FROM backend_start) * 1000000)::bigint FROM pg_stat_activity "
    "WHERE pid = pg_backend_pid()), "
    "CASE WHEN $4::int IS NULL THEN NULL ELSE NOT EXISTS ("
    "SELECT 1 FROM pg_stat_activity a WHERE CASE "
    "WHEN a.pid = $4::int AND (extract(epoch FROM a.backend_start) * 1000000)::bigint = "
    "$5::bigint THEN NOT pg_terminate_backend(a.pid, $6::bigint) ELSE false END) END, "
    "(SELECT relpersistence FROM pg_class WHERE oid = 'attempts'::regclass)";
inline constexpr int kSessionSetupCitusColumn = 4;
inline constexpr int kSessionSetupBackendPidColumn = 5;
inline constexpr int kSessionSetupBackendStartColumn = 6;
inline constexpr int kSessionSetupPreviousGoneColumn = 7;

}  // namespace attempts::db::sql
