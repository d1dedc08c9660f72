-- The service's single-row UPDATE (src/db/sql.hpp, kSaveOne) for one random attempt,
-- with the same body the load scripts send. Run: pgbench -n -M prepared -f sql/pgbench/update.sql
\set id random(1, 100000)
UPDATE attempts
   SET answers = '{"1":[1],"2":[2],"3":[3],"4":[4]}'::jsonb, updated_at = now()
 WHERE id = :id AND submitted_at IS NULL
RETURNING id;
