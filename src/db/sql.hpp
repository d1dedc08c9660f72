#pragma once

// Every statement the service runs, prepared once per connection. Values travel only as bound
// parameters; no SQL text is ever built from request data.
namespace attempts::db::sql {

inline constexpr const char* kSaveOneName = "save_answers_one";
// One write: the statement `sql/pgbench/update.sql` measures. The submitted_at guard makes a
// submitted attempt read-only; RETURNING tells a saved row from a missing or submitted one.
inline constexpr const char* kSaveOne = R"sql(
UPDATE attempts
   SET answers = $2::jsonb, updated_at = now()
 WHERE id = $1 AND submitted_at IS NULL
RETURNING id)sql";

inline constexpr const char* kSaveBatchName = "save_answers_batch";
// Many writes in one statement. The ids arrive sorted and unique, so two batches lock rows in
// the same order and a row is never updated twice by one statement.
inline constexpr const char* kSaveBatch = R"sql(
UPDATE attempts AS a
   SET answers = batch.answers, updated_at = now()
  FROM unnest($1::bigint[], $2::jsonb[]) AS batch(id, answers)
 WHERE a.id = batch.id AND a.submitted_at IS NULL
RETURNING a.id)sql";

inline constexpr const char* kExistingIdsName = "existing_attempt_ids";
// Tells "submitted" (exists) from "not found" for the ids an update did not touch.
inline constexpr const char* kExistingIds = R"sql(
SELECT id FROM attempts WHERE id = ANY($1::bigint[]))sql";

inline constexpr const char* kLoadAttemptName = "load_attempt";
// Timestamps as ISO 8601 in UTC (the session's time zone is set to UTC on connect).
inline constexpr const char* kLoadAttempt = R"sql(
SELECT id, exam_id, answers::text,
       to_jsonb(updated_at) #>> '{}', to_jsonb(submitted_at) #>> '{}'
  FROM attempts
 WHERE id = $1)sql";

inline constexpr const char* kPingName = "ping";
inline constexpr const char* kPing = "SELECT 1";

}  // namespace attempts::db::sql
