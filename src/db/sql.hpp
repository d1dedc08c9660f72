#pragma once

// Every statement the service runs, prepared once per connection. Values travel only as bound
// parameters; no SQL text is ever built from request data.
namespace attempts::db::sql {

// Type OIDs of the parameters (fixed in PostgreSQL's catalog, pg_type.dat).
inline constexpr unsigned kInt8Oid = 20;
inline constexpr unsigned kTextOid = 25;
inline constexpr unsigned kJsonbOid = 3802;
inline constexpr unsigned kInt8ArrayOid = 1016;
inline constexpr unsigned kJsonbArrayOid = 3807;

// What a write must satisfy to apply, shared by the one-row and the batched UPDATE: the attempt
// is the student's (no student: authentication is off), not submitted, before its deadline,
// and, when the client sent a revision, newer than the stored one. All of it is checked in the
// statement itself, so no extra round trip is needed and a slow client cannot outrun a deadline.

inline constexpr const char* kSaveOneName = "save_answers_one";
// One write: the statement `sql/pgbench/update.sql` measures. $1 id, $2 student, $3 revision,
// $4 answers (types given when prepared). RETURNING tells a saved row from one that was not.
inline constexpr const char* kSaveOne = R"sql(
UPDATE attempts
   SET answers = $4, revision = COALESCE($3, revision), updated_at = now()
 WHERE id = $1
   AND submitted_at IS NULL
   AND (deadline IS NULL OR deadline > now())
   AND ($2 IS NULL OR student_id = $2)
   AND ($3 IS NULL OR $3 > revision)
RETURNING id)sql";
inline constexpr unsigned kSaveOneTypes[] = {kInt8Oid, kInt8Oid, kInt8Oid, kJsonbOid};

inline constexpr const char* kSaveBatchName = "save_answers_batch";
// Many writes in one statement, one row per attempt. The ids arrive sorted and unique, so two
// batches lock rows in the same order and a row is never updated twice by one statement.
inline constexpr const char* kSaveBatch = R"sql(
UPDATE attempts AS a
   SET answers = w.answers, revision = COALESCE(w.revision, a.revision), updated_at = now()
  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::jsonb[])
       AS w(id, student_id, revision, answers)
 WHERE a.id = w.id
   AND a.submitted_at IS NULL
   AND (a.deadline IS NULL OR a.deadline > now())
   AND (w.student_id IS NULL OR a.student_id = w.student_id)
   AND (w.revision IS NULL OR w.revision > a.revision)
RETURNING a.id)sql";
inline constexpr unsigned kSaveBatchTypes[] = {kInt8ArrayOid, kInt8ArrayOid, kInt8ArrayOid,
                                               kJsonbArrayOid};

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
#define ATTEMPTS_RECORD_COLUMNS                                                           \
  "id, exam_id, student_id, answers::text, revision, to_jsonb(started_at) #>> '{}', "   \
  "to_jsonb(deadline) #>> '{}', to_jsonb(updated_at) #>> '{}', "                        \
  "to_jsonb(submitted_at) #>> '{}'"

inline constexpr const char* kLoadAttemptName = "load_attempt";
// $1 id, $2 student (NULL: any). Someone else's attempt is not found, exactly like a missing one.
inline constexpr const char* kLoadAttempt =
    "SELECT " ATTEMPTS_RECORD_COLUMNS
    " FROM attempts WHERE id = $1 AND ($2::bigint IS NULL OR student_id = $2)";
inline constexpr unsigned kLoadAttemptTypes[] = {kInt8Oid, kInt8Oid};

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

inline constexpr const char* kPingName = "ping";
// Readiness, and whether the table still has the persistence the durability mode needs ('u'
// UNLOGGED, 'p' LOGGED): sql/durable.sql and sql/unlogged.sql can switch it while we run.
inline constexpr const char* kPing =
    "SELECT relpersistence FROM pg_class WHERE oid = 'attempts'::regclass";

// Sent once per connection, right after it opens: UTC timestamps, the statement timeout, the
// commit mode of --durability ($2; NULL keeps the server's), and the table's persistence.
inline constexpr const char* kSessionSetup =
    "SELECT set_config('TimeZone', 'UTC', false), set_config('statement_timeout', $1, false), "
    "set_config('synchronous_commit', COALESCE($2, current_setting('synchronous_commit')), "
    "false), (SELECT relpersistence FROM pg_class WHERE oid = 'attempts'::regclass)";

}  // namespace attempts::db::sql
