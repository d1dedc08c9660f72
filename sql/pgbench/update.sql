-- The service's single-row UPDATE (src/db/sql.hpp, kSaveOne) for one random attempt, written by
-- its owner, for pgbench. Like the service, it binds the values as parameters of a prepared
-- statement (with -M prepared, :id becomes $1, :student $2 and :body $4), so PostgreSQL parses
-- the jsonb text on every execution, as it does for the service. The revision ($3) is NULL, as
-- for a client that sends none: pgbench cannot bind a NULL parameter, so it is written as a
-- literal here. The body is the one the load scripts send, given with -D:
--
--   pgbench -n -M prepared -c 16 -j 2 -T 15 \
--     -D body='{"1": [1], "2": [2], "3": [3], "4": [4]}' -f sql/pgbench/update.sql attempts
--
-- (-n: there are no pgbench tables to vacuum.) scripts/bench.sh runs it this way.
\set id random(1, 100000)
\set student 1 + (:id - 1) % 20000
-- The body's question count, as the service binds it ($5, attempts.answered).
\set answered 4
UPDATE attempts
   SET answers = :body, revision = COALESCE(NULL::bigint, revision), updated_at = clock_timestamp(),
       answered = :answered
 WHERE id = :id
   AND submitted_at IS NULL
   AND (deadline IS NULL OR deadline > clock_timestamp())
   AND (:student::bigint IS NULL OR student_id = :student)
   AND (NULL::bigint IS NULL OR NULL::bigint > revision)
RETURNING CASE WHEN deadline <= clock_timestamp() THEN attempts_written_too_late(id, deadline)
               ELSE id END;
