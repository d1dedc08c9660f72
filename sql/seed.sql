-- Seed data: 100 exams and exactly 100,000 attempts with ids 1..100000, owned by 20,000 students.
-- Run after schema.sql: psql -v ON_ERROR_STOP=1 -f sql/seed.sql
-- Re-runnable: it empties the tables first (the answer history and exam_staff too), so it also
-- resets a test database.
-- Not to be run with --single-transaction: VACUUM cannot run inside a transaction block.

BEGIN;

TRUNCATE answer_history, attempt_starts, attempts, exam_staff, exams RESTART IDENTITY;

-- No time limit on the seeded exams (duration_seconds NULL), so the load scripts can write to
-- any attempt at any time; the tests add timed exams of their own.
INSERT INTO exams (id, title)
SELECT i, format('Exam %s', i)
FROM generate_series(1, 100) AS i;

-- Attempt i belongs to exam 1 + (i-1) % 100 and to student 1 + (i-1) % 20000, so every student
-- owns five attempts (student s: attempts s, s + 20000, ..., s + 80000). The load scripts and
-- scripts/run.sh use this rule to send each write with a token of the attempt's owner.
-- Nothing answered or submitted yet, no revision, no deadline.
INSERT INTO attempts (id, exam_id, student_id, answers, updated_at, submitted_at)
SELECT i, 1 + (i - 1) % 100, 1 + (i - 1) % 20000, '{}'::jsonb, NULL, NULL
FROM generate_series(1, 100000) AS i;

-- The ids above were given explicitly, so move both sequences past them:
-- the next insert without an id gets exams.id 101 and attempts.id 100001.
SELECT setval(pg_get_serial_sequence('exams', 'id'), (SELECT max(id) FROM exams));
SELECT setval(pg_get_serial_sequence('attempts', 'id'), (SELECT max(id) FROM attempts));

COMMIT;

-- Set hint bits, build the visibility map and collect planner statistics now,
-- instead of leaving that to the first requests.
VACUUM (ANALYZE) exams, attempts;
