-- Durable mode: make attempts a LOGGED table, so that it survives a crash of PostgreSQL.
--   psql -v ON_ERROR_STOP=1 -f sql/durable.sql          (after schema.sql and seed.sql)
-- Every update then writes WAL, and with synchronous_commit = on each commit waits for its WAL
-- flush: slower, but nothing acknowledged is lost. SET LOGGED rewrites the table (and writes
-- all of it to WAL) once; `ALTER TABLE attempts SET UNLOGGED` goes back.
ALTER TABLE attempts SET LOGGED;
