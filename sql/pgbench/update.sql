-- The service's single-row UPDATE (src/db/sql.hpp, kSaveOne) for one random attempt, for pgbench.
-- Like the service, it binds both values as parameters of a prepared statement (with -M prepared,
-- :id becomes $1 and :body $2), so PostgreSQL parses the jsonb text on every execution, as it
-- does for the service. The body is the one the load scripts send, given with -D:
--
--   pgbench -n -M prepared -c 16 -j 2 -T 15 \
--     -D body='{"1": [1], "2": [2], "3": [3], "4": [4]}' -f sql/pgbench/update.sql attempts
--
-- (-n: there are no pgbench tables to vacuum.) scripts/bench.sh runs it this way.
\set id random(1, 100000)
UPDATE attempts
   SET answers = :body::jsonb, updated_at = now()
 WHERE id = :id AND submitted_at IS NULL
RETURNING id;
