#!/usr/bin/env bash
# What keeping every save costs PostgreSQL, layout by layout (issue 29): pgbench runs the
# service's batched save (13 rows, ids sorted, as a saturated pool sends them) on a private
# cluster, alone and feeding an INSERT of each applied row into a history table in the same
# statement, for each candidate layout, taking turns (the order flips every round: the machine is
# shared and noisy). Prints a Markdown table: rows/s (median of the rounds) and its ratio to the
# UPDATE alone, and the bytes each history row takes (heap and indexes, after the runs).
#
#   scripts/bench-ledger-layouts.sh [--rounds N] [--duration 10s] [--clients 4]
#
# Layouts:
#   update        the UPDATE alone (history off)
#   heap          history rows, whole answer sets, no index
#   btree         + a B-tree on (attempt_id, seq): what reading one attempt's history needs
#   hash          a hash index on attempt_id instead
#   btree-changes B-tree, and only the questions that changed (a jsonb diff computed in SQL)
#   partitioned   B-tree, whole sets, in a table range-partitioned by week (the chosen layout)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh

rounds=3
duration=10
clients=4
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=${2%s}; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench-ledger-layouts: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ && $duration =~ ^[1-9][0-9]*$ && $clients =~ ^[1-9][0-9]*$ ]] || {
  echo "bench-ledger-layouts: --rounds, --duration and --clients take positive integers" >&2
  exit 2
}

say() { printf '==> bench-ledger-layouts: %s\n' "$*" >&2; }
pg_require_bin
tmp=$(mktemp -d "${TMPDIR:-/tmp}/attempts-ledger-bench.XXXXXX")
chmod 755 "$tmp"
datadir=$tmp/pgdata
cleanup() {
  pg_stop "$datadir" fast || true
  rm -rf "$tmp"
}
trap cleanup EXIT
port=$(pg_free_port)
pg_init_cluster "$datadir" "$port" >&2
pg_start "$datadir" "$tmp/postgres.log" >&2
pg_wait_ready "$port"
pg_create_database "$port" attempts >&2
url=$(pg_url "$port" attempts)
pg_load_schema_and_seed "$url" >&2
sql() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$url" -c "$1"; }

layouts=(update heap btree hash btree-changes partitioned)
say "creating the history tables"
sql "ALTER TABLE attempts ADD COLUMN IF NOT EXISTS saves bigint NOT NULL DEFAULT 0"
for layout in heap btree hash btree-changes; do
  table=history_${layout//-/_}
  sql "CREATE UNLOGGED TABLE $table (attempt_id bigint NOT NULL, seq bigint NOT NULL,
         written_at timestamptz NOT NULL, student_id bigint, revision bigint,
         writes integer NOT NULL, answers jsonb NOT NULL)"
done
sql "CREATE INDEX ON history_btree (attempt_id, seq)"
sql "CREATE INDEX ON history_hash USING hash (attempt_id)"
sql "CREATE INDEX ON history_btree_changes (attempt_id, seq)"
sql "CREATE TABLE history_partitioned (attempt_id bigint NOT NULL, seq bigint NOT NULL,
       written_at timestamptz NOT NULL, student_id bigint, revision bigint,
       writes integer NOT NULL, answers jsonb NOT NULL) PARTITION BY RANGE (written_at)"
sql "CREATE UNLOGGED TABLE history_partitioned_now PARTITION OF history_partitioned
       FOR VALUES FROM (date_trunc('week', now())) TO (date_trunc('week', now()) + interval '1 week')"
sql "CREATE UNLOGGED TABLE history_partitioned_next PARTITION OF history_partitioned
       FOR VALUES FROM (date_trunc('week', now()) + interval '1 week')
                    TO (date_trunc('week', now()) + interval '2 weeks')"
sql "CREATE INDEX ON history_partitioned (attempt_id, seq)"

# One pgbench script per layout: 13 random attempts, sorted (as the service sends them), each
# written by its owner with the load scripts' 4-question body.
ids=""
sets=""
for i in $(seq 1 13); do
  sets+="\\set id$i random(1, 100000)"$'\n'
  ids+="${ids:+, }:id$i"
done
update_head="UPDATE attempts AS a
   SET answers = w.answers, revision = COALESCE(w.revision, a.revision),
       updated_at = clock_timestamp()"
update_from="  FROM (SELECT id, 1 + (id - 1) % 20000 AS student_id, NULL::bigint AS revision,
               :body::jsonb AS answers, 1 AS writes
          FROM unnest(ARRAY(SELECT DISTINCT unnest(ARRAY[$ids]::bigint[]) ORDER BY 1)) AS id) AS w
 WHERE a.id = w.id AND a.submitted_at IS NULL
   AND (a.deadline IS NULL OR a.deadline > clock_timestamp())
   AND (w.student_id IS NULL OR a.student_id = w.student_id)
   AND (w.revision IS NULL OR w.revision > a.revision)"
for layout in "${layouts[@]}"; do
  file=$tmp/$layout.sql
  {
    printf '%s' "$sets"
    case $layout in
      update)
        printf '%s\n%s\nRETURNING a.id, a.student_id;\n' "$update_head" "$update_from" ;;
      btree-changes)
        # The old answers come from a second reference to the row, which sees the version the
        # statement started from.
        printf 'WITH saved AS (%s, saves = a.saves + 1\n%s\n   AND old.id = a.id\n' \
          "$update_head" "${update_from/  FROM (/  FROM attempts AS old, (}"
        printf 'RETURNING a.id, a.student_id, a.saves, a.updated_at, w.revision, w.writes,\n'
        printf '          a.answers, old.answers AS before),\n'
        printf ' kept AS (INSERT INTO history_btree_changes\n'
        printf '   SELECT id, saves, updated_at, student_id, revision, writes,\n'
        printf '          (SELECT coalesce(jsonb_object_agg(k, v), %s) FROM jsonb_each(answers) AS e(k, v)\n' "'{}'"
        printf '            WHERE before -> k IS DISTINCT FROM v) FROM saved)\n'
        printf 'SELECT id, student_id FROM saved;\n' ;;
      *)
        printf 'WITH saved AS (%s, saves = a.saves + 1\n%s\n' "$update_head" "$update_from"
        printf 'RETURNING a.id, a.student_id, a.saves, a.updated_at, w.revision, w.writes,\n'
        printf '          a.answers),\n'
        printf ' kept AS (INSERT INTO history_%s\n' "${layout//-/_}"
        printf '   SELECT id, saves, updated_at, student_id, revision, writes, answers FROM saved)\n'
        printf 'SELECT id, student_id FROM saved;\n' ;;
    esac
  } > "$file"
done

declare -A results
for ((round = 1; round <= rounds; round++)); do
  order=("${layouts[@]}")
  if ((round % 2 == 0)); then
    mapfile -t order < <(printf '%s\n' "${layouts[@]}" | tac)
  fi
  for layout in "${order[@]}"; do
    tps=$("$PG_BIN/pgbench" -n -M prepared -c "$clients" -j 2 -T "$duration" \
      -D body='{"1": [1], "2": [2], "3": [3], "4": [4]}' -f "$tmp/$layout.sql" -h 127.0.0.1 \
      -p "$port" -U postgres attempts 2>/dev/null | awk '/^tps = / { print $3 }')
    # Statements/s × 13 rows, less the duplicates the sorted set drops (about 0.08%).
    rows=$(awk -v t="$tps" 'BEGIN { printf "%.0f", t * 13 }')
    results[$layout]+="$rows "
    say "round $round, $layout: $rows rows/s"
  done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
base=$(median <<<"${results[update]}")
printf '| layout | rows/s (median of %d) | × UPDATE alone | bytes per history row |\n' "$rounds"
printf '|---|---:|---:|---:|\n'
for layout in "${layouts[@]}"; do
  rows=$(median <<<"${results[$layout]}")
  bytes=—
  if [[ $layout != update ]]; then
    table=history_${layout//-/_}
    bytes=$(sql "SELECT round(pg_total_relation_size('$table') / greatest(count(*), 1)::numeric)
                   FROM $table")
    [[ $layout == partitioned ]] && bytes=$(sql "SELECT round(sum(pg_total_relation_size(c))
        / greatest((SELECT count(*) FROM history_partitioned), 1)::numeric)
        FROM unnest(ARRAY['history_partitioned_now'::regclass, 'history_partitioned_next'::regclass]) c")
  fi
  printf '| %s | %s | %s | %s |\n' "$layout" "$rows" \
    "$(awk -v r="$rows" -v b="$base" 'BEGIN { printf "%.2f", r / b }')" "$bytes"
done
