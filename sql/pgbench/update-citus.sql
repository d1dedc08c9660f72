-- sql/pgbench/update.sql as the service sends it on Citus (src/db/sql.hpp, kSaveOneShard): now()
-- in place of clock_timestamp(), which Citus refuses in a distributed UPDATE (a volatile
-- function), and RETURNING id. scripts/bench-citus.sh runs it through the coordinator:
--
--   pgbench -n -M prepared -c 16 -j 2 -T 10 \
--     -D body='{"1": [1], "2": [2], "3": [3], "4": [4]}' -f sql/pgbench/update-citus.sql attempts
\set id random(1, 100000)
\set student 1 + (:id - 1) % 20000
-- The body's question count, as the service binds it ($5, attempts.answered).
\set answered 4
UPDATE attempts
   SET answers = :body, revision = COALESCE(NULL::bigint, revision), updated_at = now(), answered = :answered
 WHERE id = :id
   AND submitted_at IS NULL
   AND (deadline IS NULL OR deadline > now())
   AND (:student::bigint IS NULL OR student_id = :student)
   AND (NULL::bigint IS NULL OR NULL::bigint > revision)
RETURNING id;
