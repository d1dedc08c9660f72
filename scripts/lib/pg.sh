# shellcheck shell=bash
# Helpers for the local PostgreSQL 15 clusters that scripts/run.sh and
# scripts/test.sh create. Source this file; it defines functions only.
#
#   pg_init_cluster DATADIR PORT [CONF_LINE...]  initdb + our postgresql.conf
#   pg_start DATADIR LOGFILE                     start (waits until ready)
#   pg_stop DATADIR [MODE]                       stop if running (default: fast)
#   pg_is_running DATADIR                        status 0 if a server runs on it
#   pg_wait_ready PORT [TIMEOUT_S]               wait until 127.0.0.1:PORT accepts
#   pg_free_port                                 print a free TCP port on 127.0.0.1
#   pg_cluster_port DATADIR                      print the port a cluster is set to
#   pg_url PORT DBNAME                           print postgresql://postgres@127.0.0.1:PORT/DBNAME
#   pg_create_database PORT DBNAME               CREATE DATABASE
#   pg_load_schema_and_seed URL                  run sql/schema.sql, then sql/seed.sql
#   pg_as_owner CMD...                           run CMD as the postgres OS user if root
#
# PostgreSQL refuses to run as root, so when we are root every server-side
# command (initdb, pg_ctl) runs as the OS user "postgres" (PG_OS_USER) via
# runuser, and the data directory and log file are chowned to it. Clusters
# listen on 127.0.0.1 only and trust local connections as user "postgres".

PG_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_OS_USER=${PG_OS_USER:-postgres}
PG_CONFIG_FILE=${PG_CONFIG_FILE:-$PG_REPO_ROOT/config/postgresql.conf}

pg_log() { printf '[pg] %s\n' "$*" >&2; }
pg_err() { printf '[pg] error: %s\n' "$*" >&2; return 1; }

pg_is_root() { [[ $(id -u) -eq 0 ]]; }

# Prints the directory with pg_ctl, initdb, postgres, psql. PG_BIN wins if set;
# then Debian's PostgreSQL 15 directory; then pg_config; then PATH.
pg_bindir() {
  local d
  for d in "${PG_BIN:-}" /usr/lib/postgresql/15/bin; do
    if [[ -n $d && -x $d/pg_ctl && -x $d/initdb ]]; then
      printf '%s\n' "$d"
      return 0
    fi
  done
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null) || d=
    if [[ -n $d && -x $d/pg_ctl && -x $d/initdb ]]; then
      printf '%s\n' "$d"
      return 0
    fi
  fi
  if d=$(command -v pg_ctl 2>/dev/null); then
    d=$(dirname "$d")
    if [[ -x $d/initdb ]]; then
      printf '%s\n' "$d"
      return 0
    fi
  fi
  pg_err "PostgreSQL server binaries (pg_ctl, initdb) not found; run scripts/install-deps.sh or set PG_BIN"
}

# Sets PG_BIN once; every function below calls it first.
pg_require_bin() {
  if [[ -z ${PG_BIN:-} || ! -x ${PG_BIN}/pg_ctl ]]; then
    PG_BIN=$(pg_bindir) || return 1
  fi
}

# Runs a command as the postgres OS user when we are root, else as ourselves.
# Runs from / so that a current directory the postgres user cannot enter does
# not bother it; pass absolute paths.
pg_as_owner() {
  if pg_is_root; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    "$@"
  fi
}

# Gives a file or directory to the postgres OS user when we are root.
pg_give_to_owner() {
  if pg_is_root; then
    chown "$PG_OS_USER:" "$@"
  fi
}

pg_abspath() {
  local p=$1
  if [[ $p != /* ]]; then p=$PWD/$p; fi
  printf '%s\n' "$p"
}

# Quotes a value for postgresql.conf: '...' with ' doubled.
pg_conf_quote() {
  local v=$1
  printf "'%s'\n" "${v//\'/\'\'}"
}

pg_url() {
  printf 'postgresql://postgres@127.0.0.1:%s/%s\n' "$1" "$2"
}

# Prints a TCP port on 127.0.0.1 that nothing listens on. Picks at random in
# 15000-29999, below Linux's ephemeral range, so outgoing connections do not
# take it in the meantime.
pg_free_port() {
  local i port
  for ((i = 0; i < 200; i++)); do
    port=$((15000 + RANDOM % 15000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  pg_err "no free TCP port found on 127.0.0.1"
}

# Is something listening on 127.0.0.1:PORT?
pg_port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pg_init_cluster DATADIR PORT [CONF_LINE...]
# Creates a cluster in DATADIR (which must not hold one yet) and appends to
# its postgresql.conf, after initdb's generated settings:
#   include '<repo>/config/postgresql.conf'
#   port / listen_addresses / unix_socket_directories of this cluster
#   each CONF_LINE (e.g. 'shared_buffers = 256MB'), which override the include
# so that plain `pg_ctl -D DATADIR start|restart|stop` works without -o.
pg_init_cluster() {
  local datadir port conf include_path sockdir out line
  if (($# < 2)); then
    pg_err "usage: pg_init_cluster DATADIR PORT [CONF_LINE...]"
    return 1
  fi
  datadir=$(pg_abspath "$1")
  port=$2
  shift 2
  pg_require_bin || return 1
  if [[ -e $datadir/PG_VERSION ]]; then
    pg_err "$datadir already holds a cluster"
    return 1
  fi
  if [[ ! -r $PG_CONFIG_FILE ]]; then
    pg_err "config file $PG_CONFIG_FILE not found"
    return 1
  fi

  mkdir -p "$datadir" || return 1
  chmod 700 "$datadir" || return 1
  pg_give_to_owner "$datadir" || return 1
  if ! pg_as_owner test -w "$datadir"; then
    pg_err "OS user $PG_OS_USER cannot write $datadir: every parent directory must be traversable by it (chmod o+x)"
    return 1
  fi

  pg_log "initdb $datadir"
  if ! out=$(pg_as_owner "$PG_BIN/initdb" -D "$datadir" -U postgres --auth=trust \
    -E UTF8 --locale=C.UTF-8 --no-instructions 2>&1); then
    printf '%s\n' "$out" >&2
    pg_err "initdb failed for $datadir"
    return 1
  fi

  # The postgres user must be able to read the included file; if the repo sits
  # below a directory it cannot enter (e.g. /root), include a copy instead.
  include_path=$PG_CONFIG_FILE
  if ! pg_as_owner test -r "$include_path"; then
    include_path=$datadir/attempts.conf
    cp "$PG_CONFIG_FILE" "$include_path" || return 1
    pg_give_to_owner "$include_path" || return 1
    pg_log "OS user $PG_OS_USER cannot read $PG_CONFIG_FILE; included a copy, $include_path"
  fi

  # Unix socket in the data dir, unless the socket path would pass the
  # 107-byte limit of sun_path; then TCP only (every script uses 127.0.0.1).
  sockdir=$datadir
  if ((${#datadir} > 90)); then sockdir=''; fi

  conf=$datadir/postgresql.conf
  {
    printf '\n# ---- added by scripts/lib/pg.sh: repo settings, then this cluster'"'"'s own ----\n'
    printf 'include %s\n' "$(pg_conf_quote "$include_path")"
    printf 'port = %s\n' "$port"
    printf "listen_addresses = '127.0.0.1'\n"
    printf 'unix_socket_directories = %s\n' "$(pg_conf_quote "$sockdir")"
    for line in "$@"; do
      printf '%s\n' "$line"
    done
  } >>"$conf" || return 1
}

# Prints the port a cluster made by pg_init_cluster is set to (its last port line).
pg_cluster_port() {
  local conf
  conf=$(pg_abspath "$1")/postgresql.conf
  sed -n 's/^port = \([0-9][0-9]*\).*/\1/p' "$conf" | tail -n 1
}

pg_is_running() {
  local datadir
  datadir=$(pg_abspath "$1")
  pg_require_bin || return 1
  [[ -e $datadir/PG_VERSION ]] || return 1
  pg_as_owner "$PG_BIN/pg_ctl" -D "$datadir" status >/dev/null 2>&1
}

# pg_start DATADIR LOGFILE: starts the cluster, waits until it accepts
# connections; on failure prints the end of LOGFILE.
pg_start() {
  local datadir logfile
  datadir=$(pg_abspath "$1")
  logfile=$(pg_abspath "$2")
  pg_require_bin || return 1
  mkdir -p "$(dirname "$logfile")" || return 1
  touch "$logfile" || return 1
  pg_give_to_owner "$logfile" || return 1
  pg_log "starting PostgreSQL ($datadir, log $logfile)"
  if ! pg_as_owner "$PG_BIN/pg_ctl" -D "$datadir" -l "$logfile" -w -t 120 start >/dev/null; then
    pg_log "PostgreSQL did not start; end of $logfile:"
    tail -n 30 "$logfile" >&2 || true
    return 1
  fi
}

# pg_stop DATADIR [MODE]: stops the cluster if it runs (MODE: smart, fast,
# immediate; default fast); falls back to immediate if a fast stop hangs.
pg_stop() {
  local datadir mode
  datadir=$(pg_abspath "$1")
  mode=${2:-fast}
  pg_require_bin || return 1
  pg_is_running "$datadir" || return 0
  pg_log "stopping PostgreSQL ($datadir)"
  if ! pg_as_owner "$PG_BIN/pg_ctl" -D "$datadir" -w -t 60 stop -m "$mode" >/dev/null; then
    pg_log "stop -m $mode failed; stopping with -m immediate"
    pg_as_owner "$PG_BIN/pg_ctl" -D "$datadir" -w -t 60 stop -m immediate >/dev/null
  fi
}

# pg_wait_ready PORT [TIMEOUT_S]: waits until 127.0.0.1:PORT accepts connections.
pg_wait_ready() {
  local port=$1 timeout=${2:-60} deadline
  pg_require_bin || return 1
  deadline=$((SECONDS + timeout))
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2; do
    if ((SECONDS >= deadline)); then
      pg_err "PostgreSQL on 127.0.0.1:$port not ready after ${timeout}s"
      return 1
    fi
    sleep 0.2
  done
}

pg_create_database() {
  local port=$1 db=$2
  pg_require_bin || return 1
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
}

# pg_load_schema_and_seed URL: sql/schema.sql then sql/seed.sql, stopping at
# the first error.
pg_load_schema_and_seed() {
  local url=$1 sqldir=$PG_REPO_ROOT/sql
  pg_require_bin || return 1
  pg_log "loading $sqldir/schema.sql and seed.sql"
  local PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
  export PGOPTIONS
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$url" -f "$sqldir/schema.sql" >/dev/null || return 1
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$url" -f "$sqldir/seed.sql" >/dev/null || return 1
}
