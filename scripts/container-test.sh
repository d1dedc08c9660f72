#!/usr/bin/env bash
# The container test (ctest label `container`): builds the image from the project's own
# Dockerfile with podman and runs it against the PostgreSQL that scripts/test.sh provides.
#
#   scripts/test.sh -L container
# By hand, against a database loaded with sql/schema.sql and sql/seed.sql (the variables
# ATTEMPTS_TEST_* of scripts/test.sh; ATTEMPTS_TEST_PG_BIN for psql):
#   ATTEMPTS_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:PORT/attempts_test \
#   ATTEMPTS_TEST_PG_BIN=/usr/lib/postgresql/15/bin scripts/container-test.sh
#
# Steps, each timed (lines `[  FIGURE  ] container.<step>_s = seconds` at the end):
#   install    Debian's podman, runc, debootstrap, uidmap, slirp4netns, fuse-overlayfs,
#              docker-compose (to resolve docker-compose.yml) and socat, when missing.
#   base       No registry is reachable here, so the Dockerfile's bases debian:12 and
#              debian:12-slim are made once with `debootstrap --variant=minbase bookworm` from
#              the Debian mirror apt already uses, and `podman import`ed (label attempts.stand-in
#              says so); reused when present (CONTAINER_TEST_REMAKE_BASE=1 makes them again).
#   build      podman build --network host --pull=never --format docker (the docker format keeps
#              HEALTHCHECK) -t attempts-server:latest, the image docker-compose.yml names, with
#              a compiler cache kept on this machine lent to the build stage; then its size,
#              OCI labels, HEALTHCHECK and user are checked.
#   keys       The keys service of docker-compose.yml (and of docker-compose.citus.yml), its
#              command as written, into a fresh volume: a JWKS and 20000 tokens.
#   run        The image on the host's network (LISTEN=127.0.0.1:<free port>) against the test
#              database: /healthz and /readyz 200, the image's HEALTHCHECK healthy, the process
#              not root, a save with a token of the keys volume is 204 and stored, another
#              student's token gets 404.
#   sigterm    Writers saving while the container is stopped (SIGTERM, then SIGKILL only after
#              --shutdown-timeout + 5 s): it exits 0 by itself, and every acknowledged save is
#              stored.
#   compose    The compose file's server service as written (environment, keys volume read-only,
#              healthcheck, image), in a network namespace of its own with only a loopback:
#              LISTEN=0.0.0.0:8000 and DATABASE_URL=postgresql://postgres@postgres:5432/attempts
#              as written, "postgres" being 127.0.0.1 there, where socat relays port 5432 to the
#              test PostgreSQL (postgres:15 is on no registry here); its database `attempts` is
#              made from sql/schema.sql and sql/seed.sql, as that image's initdb.d would.
#              docker-compose resolves the file; the service's settings become `podman run`
#              arguments (compose_args below), and what cannot apply here (ports, networks,
#              depends_on, build) is printed. podman-compose 1.0.3 is not used: it puts every
#              container on a bridge network of the project (private addresses), even with
#              network_mode, and ignores depends_on conditions and profiles.
#
# Exits 77 (ctest: skipped) with the reason where podman cannot run a container at all, or
# without root. Every address is a loopback one; every wait is bounded; only the containers,
# volumes and processes this script started are stopped or removed, by name or pid. The base
# images, the built image and podman's layer cache are kept, so that a second run reuses them.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

readonly image=localhost/attempts-server:latest
readonly skip_status=77
readonly stand_in_label=attempts.stand-in

say() { printf '==> container-test: %s\n' "$*"; }
fail() {
  printf 'container-test: FAILED: %s\n' "$*" >&2
  exit 1
}
skip() {
  printf 'container-test: SKIPPED: %s\n' "$*"
  exit "$skip_status"
}

# ---- timing ---------------------------------------------------------------------------------------------
step_names=()
step_seconds=()
step_name=
step_t0=
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
step_begin() {
  step_name=$1
  step_t0=$(now)
  say "step $1: $2"
}
step_end() {
  local took
  took=$(since "$step_t0")
  step_names+=("$step_name")
  step_seconds+=("$took")
  say "step $step_name took ${took} s"
  step_name=
}
print_figures() {
  local i
  for i in "${!step_names[@]}"; do
    printf '[  FIGURE  ] container.%s_s = %s\n' "${step_names[$i]}" "${step_seconds[$i]}"
  done
  if [[ -n $step_name ]]; then
    printf '[  FIGURE  ] container.%s_s = %s (stopped there)\n' "$step_name" "$(since "$step_t0")"
  fi
  if [[ -n ${image_size_mb:-} ]]; then
    printf '[  FIGURE  ] container.image_size_mb = %s\n' "$image_size_mb"
  fi
  if [[ -n ${stop_seconds:-} ]]; then
    printf '[  FIGURE  ] container.sigterm_to_exit_s = %s\n' "$stop_seconds"
  fi
}

# ---- what this run started, for the cleanup ----------------------------------------------------------
containers=()
volumes=()
pids=()
made_database=
work=
pg_port=

# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local status=$? c v p
  set +e
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  for c in "${containers[@]}"; do
    if [[ $status -ne 0 && $status -ne $skip_status ]] && podman container exists "$c" 2>/dev/null; then
      say "last lines of the log of $c:"
      podman logs --tail 30 "$c" 2>&1 | sed 's/^/    /'
    fi
    podman rm -f -t 0 "$c" >/dev/null 2>&1
  done
  for v in "${volumes[@]}"; do
    podman volume rm -f "$v" >/dev/null 2>&1
  done
  if [[ -n $made_database ]]; then
    "$ATTEMPTS_TEST_PG_BIN/dropdb" -h 127.0.0.1 -p "$pg_port" -U postgres --if-exists "$made_database"
  fi
  [[ -n $work ]] && rm -rf "$work"
  print_figures
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ $(id -u) -eq 0 ]] || skip "needs root (debootstrap, and podman with the system's storage); run as root"
[[ -n ${ATTEMPTS_TEST_DATABASE_URL:-} ]] ||
  fail "ATTEMPTS_TEST_DATABASE_URL is not set: run scripts/test.sh -L container (it makes a database)"
[[ -x ${ATTEMPTS_TEST_PG_BIN:-}/psql ]] || fail "ATTEMPTS_TEST_PG_BIN must name the directory of psql"
pg_port=$(sed -n 's#^postgresql://[^@]*@127\.0\.0\.1:\([0-9]*\)/.*#\1#p' <<<"$ATTEMPTS_TEST_DATABASE_URL")
[[ -n $pg_port ]] || fail "ATTEMPTS_TEST_DATABASE_URL must be postgresql://USER@127.0.0.1:PORT/DB"

log_dir=$repo/build/container-test
mkdir -p "$log_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/attempts-container-test.XXXXXX")
run_id=attempts-ct-$$

# ---- install ----------------------------------------------------------------------------------------------
step_begin install "Debian packages (skipped when present)"
# runc, not crun: crun refuses cgroup v1 with a cgroup v2 hierarchy beside it ("cgroups in hybrid
# mode not supported"), which is how these VMs mount cgroups.
bash scripts/install-deps.sh podman runc debootstrap uidmap slirp4netns fuse-overlayfs \
  docker-compose socat curl python3-yaml ccache
step_end

# These VMs drop the capability to raise resource limits: every container start fails
# ("error setting rlimits ... rlimit type 7") until podman asks for no more than the hard limits
# it has: this process's open files, and at most 32768 processes (podman 4.3 lowers its own
# limit to that, which its conmon and the container inherit; more fails with "rlimit type 6").
# podman 4.3 reads CONTAINERS_CONF (it ignores CONTAINERS_CONF_OVERRIDE).
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[[ $nofile == unlimited ]] && nofile=1048576
[[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
cat >"$work/containers.conf" <<EOF
# Written by scripts/container-test.sh for this run.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$work/containers.conf
say "podman $(podman version --format '{{.Client.Version}}'), containers.conf: nofile=$nofile nproc=$nproc runtime=runc"

# ---- base images -----------------------------------------------------------------------------------------
# apt_site SUITE: the first site apt uses for SUITE's main component.
apt_site() {
  # shellcheck disable=SC2016 # apt's own $(FIELD) placeholders
  apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' 2>/dev/null |
    awk -v suite="$1" '$2 == suite && $3 == "main" { print $1; exit }'
}

make_base_images() {
  local mirror security root
  mirror=$(apt_site bookworm)
  security=$(apt_site bookworm-security)
  [[ -n $mirror ]] || fail "apt has no source for bookworm main (apt-get indextargets); cannot debootstrap"
  [[ -n $security ]] || security=${mirror%/debian}/debian-security
  root=$work/rootfs
  say "debootstrap --variant=minbase bookworm $root $mirror"
  timeout --kill-after=30 900 debootstrap --variant=minbase bookworm "$root" "$mirror" \
    >"$log_dir/debootstrap.log" 2>&1 ||
    fail "debootstrap (see $log_dir/debootstrap.log)"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  # Sources and apt settings as Debian's official images have them: the release, its updates
  # and its security suite; no binary caches, no .deb kept after an install, no translations.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
// Made by scripts/container-test.sh, as in Debian's official images: no package caches kept.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
  local made
  made="debootstrap --variant=minbase bookworm from $mirror on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  tar -C "$root" -c . | podman import --quiet --change 'CMD ["bash"]' \
    --change "LABEL $stand_in_label=\"$made\"" - localhost/debian:12 >/dev/null
  # -slim as Debian makes it: no documentation (but copyrights), manual pages or translations,
  # now or from packages installed later.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/groff/* "$root"/usr/share/info/* \
    "$root"/usr/share/lintian/* "$root"/usr/share/linda/* "$root"/usr/share/locale/*
  tar -C "$root" -c . | podman import --quiet --change 'CMD ["bash"]' \
    --change "LABEL $stand_in_label=\"$made, slim\"" - localhost/debian:12-slim >/dev/null
  rm -rf "$root"
}

step_begin base "debian:12 and debian:12-slim (made once, then reused)"
if [[ ${CONTAINER_TEST_REMAKE_BASE:-} == 1 ]] ||
  ! podman image exists debian:12 || ! podman image exists debian:12-slim; then
  make_base_images
  base_how=made
else
  base_how=reused
fi
for base in debian:12 debian:12-slim; do
  say "$base ($base_how): $(podman image inspect --format "{{index .Labels \"$stand_in_label\"}}" "$base" 2>/dev/null ||
    echo 'no stand-in label: a real image')"
done
step_end

# Where podman cannot run a container at all (no namespaces, no cgroups, a seccomp or LSM that
# forbids it), there is nothing to test: say why and skip.
if ! probe=$(podman run --rm --network none debian:12-slim true 2>&1); then
  skip "podman cannot run a container here: $probe"
fi

# ---- build ------------------------------------------------------------------------------------------------
# stamp: the build's output to its log, and its STEP lines with the seconds since the start.
stamp() {
  local t0 line
  t0=$(now)
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$log_dir/build.log"
    if [[ $line =~ ^(\[[0-9]+/[0-9]+\]\ )?(STEP|COMMIT)|^Successfully ]]; then
      printf '    [%6ss] %.150s\n' "$(since "$t0")" "$line"
    fi
  done
}

step_begin build "podman build of ./Dockerfile (log: $log_dir/build.log)"
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
version=$(git describe --always --dirty 2>/dev/null || echo unknown)
# What a second run reuses: the bases, podman's layers (the Debian packages of both stages while
# the bases stay; everything when the sources are the same) and the compiler cache lent to the
# build stage at /ccache (the Dockerfile says how), kept on this machine.
ccache_dir=${CONTAINER_TEST_CCACHE_DIR:-/var/cache/attempts-container-test/ccache}
mkdir -p "$ccache_dir"
[[ -f $ccache_dir/ccache.conf ]] || echo 'max_size = 2G' >"$ccache_dir/ccache.conf"
CCACHE_DIR=$ccache_dir ccache --zero-stats >/dev/null
: >"$log_dir/build.log"
set +e
# The version and revision go in twice: as build arguments for the Dockerfile's LABEL, and as
# --label, which podman applies at the commit. podman 4.3 (buildah 1.28) reuses a cached LABEL
# step whose build arguments changed, so after a commit that left the binaries byte for byte the
# same, the build arguments alone left the previous commit's labels.
timeout --kill-after=30 1800 podman build --network host --pull=never --format docker \
  --volume "$ccache_dir:/ccache" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$revision" \
  -t "$image" . 2>&1 | stamp
build_status=${PIPESTATUS[0]}
set -e
((build_status == 0)) || {
  tail -n 40 "$log_dir/build.log" >&2
  fail "podman build exited with $build_status (end of $log_dir/build.log above)"
}
say "compiler cache $ccache_dir: $(CCACHE_DIR=$ccache_dir ccache --print-stats 2>/dev/null |
  awk -F'\t' '$1 == "direct_cache_hit" || $1 == "preprocessed_cache_hit" { hits += $2 }
               $1 == "cache_miss" { misses = $2 } END { printf "%d hits, %d misses (0 and 0: layers reused)", hits, misses }')"
step_end

image_size_mb=$(podman image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f", $1 / 1e6 }')
say "image $image: ${image_size_mb} MB"
podman image inspect --format '{{json .Labels}}' "$image" >"$work/labels.json"
podman image inspect --format '{{json .HealthCheck}}' "$image" >"$work/healthcheck.json"
user=$(podman image inspect --format '{{.User}}' "$image")
/usr/bin/python3 - "$work/labels.json" "$work/healthcheck.json" "$revision" <<'EOF' || fail "image metadata (see above)"
import json, sys
labels = json.load(open(sys.argv[1])) or {}
health = json.load(open(sys.argv[2])) or {}
problems = []
for key in ("title", "description", "version", "revision", "base.name"):
    if not labels.get("org.opencontainers.image." + key):
        problems.append("no label org.opencontainers.image." + key)
if labels.get("org.opencontainers.image.revision") != sys.argv[3]:
    problems.append("label revision %r is not HEAD %s" % (labels.get("org.opencontainers.image.revision"), sys.argv[3]))
if "/healthz" not in " ".join(health.get("Test") or []):
    problems.append("no HEALTHCHECK on /healthz: %r" % health)
for p in problems:
    print("container-test: " + p)
for key in sorted(labels):
    print("    label %s=%s" % (key, labels[key]))
print("    healthcheck %s" % " ".join(health.get("Test") or []))
sys.exit(1 if problems else 0)
EOF
[[ $user == attempts ]] || fail "the image runs as '$user', not attempts"

# ---- helpers for the running containers ------------------------------------------------------------------
# podman_quiet ARGS...: podman, its messages kept in $work/podman.err and shown only when it fails.
# Without systemd podman logs an error for each container with a healthcheck ("unable to get
# systemd connection"): it cannot run the checks on a timer. This test runs them itself
# (`podman healthcheck run`).
podman_quiet() {
  podman "$@" 2>"$work/podman.err" >/dev/null || fail "podman $1 $2: $(cat "$work/podman.err")"
}
psql_at() { "$ATTEMPTS_TEST_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# http_status NETNS_PID|- CURL_ARGS...: curl, printing the status code (000: no answer), with the
# body in $work/body and the header in $work/headers; in the network namespace of NETNS_PID when
# it is a number. Bounded by --max-time.
http_status() {
  local prefix=()
  if [[ $1 =~ ^[0-9]+$ ]]; then
    prefix=(nsenter --target "$1" --net)
  fi
  shift
  "${prefix[@]}" curl -sS -o "$work/body" -D "$work/headers" -w '%{http_code}' --max-time 15 "$@" || true
}

# wait_ready NETNS_PID|- BASE_URL CONTAINER: until GET /readyz is 200 (60 s at most), while the
# container runs.
wait_ready() {
  local deadline=$((SECONDS + 60)) status
  while ((SECONDS < deadline)); do
    [[ $(podman inspect --format '{{.State.Running}}' "$3") == true ]] || fail "$3 exited while starting"
    status=$(http_status "$1" "$2/readyz" 2>/dev/null)
    [[ $status == 200 ]] && return 0
    sleep 0.5
  done
  fail "$3: /readyz did not answer 200 within 60 s (last: $status $(cat "$work/body" 2>/dev/null))"
}

expect_status() { # WHAT EXPECTED ACTUAL
  [[ $3 == "$2" ]] || fail "$1: status $3, expected $2 (body: $(head -c 300 "$work/body" 2>/dev/null))"
  say "$1: $3"
}

# compose_json FILE: the compose file, resolved by docker-compose, as JSON on stdout.
compose_json() {
  docker-compose -f "$1" config | /usr/bin/python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'
}

# compose_args FILE SERVICE PROJECT: the `podman run` arguments that compose FILE gives SERVICE,
# NUL-separated: user, entrypoint, environment, volumes (named volumes as PROJECT_NAME), the
# healthcheck, the image and the command. What it does not apply (ports, networks, depends_on,
# build) it names on stderr.
compose_args() {
  compose_json "$1" | /usr/bin/python3 -c '
import json, sys
service, project = sys.argv[1], sys.argv[2]
compose = json.load(sys.stdin)
s = compose["services"][service]
named = set((compose.get("volumes") or {}).keys())
args = []
if "user" in s: args += ["--user", str(s["user"])]
if "entrypoint" in s:
    e = s["entrypoint"]
    args += ["--entrypoint", json.dumps(e if isinstance(e, list) else ["/bin/sh", "-c", e])]
for k, v in sorted((s.get("environment") or {}).items()):
    args += ["--env", "%s=%s" % (k, "" if v is None else v)]
for v in s.get("volumes") or []:
    parts = v.split(":")
    if parts[0] in named:
        parts[0] = "%s_%s" % (project, parts[0])
    args += ["--volume", ":".join(parts)]
h = s.get("healthcheck")
if h:
    test = h["test"]
    if test[0] == "CMD":
        args += ["--health-cmd", json.dumps(test[1:])]
    elif test[0] == "CMD-SHELL":
        args += ["--health-cmd", test[1]]
    for key, flag in (("interval", "--health-interval"), ("timeout", "--health-timeout"),
                      ("start_period", "--health-start-period"), ("retries", "--health-retries")):
        if key in h: args += [flag, str(h[key])]
args.append(s["image"])
c = s.get("command")
if c is not None:
    args += c if isinstance(c, list) else ["/bin/sh", "-c", c]
for key in ("ports", "networks", "depends_on", "build", "network_mode", "shm_size"):
    if key in s:
        print("compose: %s.%s not applied here: %s" % (service, key, json.dumps(s[key])), file=sys.stderr)
sys.stdout.write("\0".join(args) + "\0")
' "$2" "$3"
}

# ---- keys: the compose files' key flow -------------------------------------------------------------------
step_begin keys "the keys service of docker-compose.yml (and of docker-compose.citus.yml), each into a fresh volume"
project=$run_id
# run_keys FILE PROJECT: FILE's keys service, its volume keys being PROJECT_keys; sets
# volume_dir to the volume's directory.
run_keys() {
  local args
  podman volume create "$2_keys" >/dev/null
  volumes+=("$2_keys")
  mapfile -d '' args < <(compose_args "$1" keys "$2")
  ((${#args[@]})) || fail "could not read the keys service from $1"
  containers+=("$run_id-keys")
  podman run --rm --network none --name "$run_id-keys" "${args[@]}" >"$work/keys.log" 2>&1 ||
    fail "the keys service of $1 failed; the end of its output: $(tail -n 5 "$work/keys.log")"
  volume_dir=$(podman volume inspect --format '{{.Mountpoint}}' "$2_keys")
}
keys_volume=${project}_keys
run_keys docker-compose.yml "$project"
keys_dir=$volume_dir
run_keys docker-compose.citus.yml "$project-citus"
citus_keys_dir=$volume_dir
for dir in "$keys_dir" "$citus_keys_dir"; do
  [[ -s $dir/jwks.json ]] || fail "the keys service left no $dir/jwks.json"
  lines=$(wc -l <"$dir/tokens.txt")
  [[ $lines == 20000 ]] || fail "the keys service left $lines tokens in $dir/tokens.txt, not 20000"
done
token_of() { sed -n "${1}p" "$keys_dir/tokens.txt"; }
say "keys volumes: jwks.json and 20000 tokens each (line s: student s)"
step_end

# ---- run: the image against the test database --------------------------------------------------------------
step_begin run "the image on the host network against the test database"
shutdown_timeout=$(podman run --rm --network none "$image" --print-config |
  sed -n 's/^shutdown-timeout = \([0-9]*\).*/\1/p')
[[ -n $shutdown_timeout ]] || fail "no shutdown-timeout in --print-config"
PG_BIN=$ATTEMPTS_TEST_PG_BIN
# shellcheck source=scripts/lib/pg.sh
source scripts/lib/pg.sh
port=$(pg_free_port)
base=http://127.0.0.1:$port
main=$run_id-main
containers+=("$main")
podman_quiet run -d --name "$main" --network host \
  --env LISTEN="127.0.0.1:$port" --env DATABASE_URL="$ATTEMPTS_TEST_DATABASE_URL" \
  --env JWKS=/keys/jwks.json --volume "$keys_volume:/keys:ro" "$image"
wait_ready - "$base" "$main"
expect_status "GET /healthz" 200 "$(http_status - "$base/healthz")"
expect_status "GET /readyz" 200 "$(http_status - "$base/readyz")"
podman healthcheck run "$main" >"$work/health.log" 2>&1 ||
  fail "the image's HEALTHCHECK: $(cat "$work/health.log")"
say "the image's HEALTHCHECK: healthy"

pid=$(podman inspect --format '{{.State.Pid}}' "$main")
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
comm=$(cat "/proc/$pid/comm")
[[ $comm == attempts-server ]] || fail "the container's process is $comm, not attempts-server"
for u in $uids; do
  [[ $u != 0 ]] || fail "attempts-server runs with uid 0 (real, effective, saved, fs: $uids)"
done
say "attempts-server runs as uid $uids (real, effective, saved, fs)"

# A new attempt of exam 7 for student 4242, saved, and read back from PostgreSQL.
student=4242
token=$(token_of "$student")
status=$(http_status - -X POST "$base/exams/7/attempts" -H "Authorization: Bearer $token" \
  -H "Idempotency-Key: $run_id")
expect_status "POST /exams/7/attempts (student $student)" 201 "$status"
attempt=$(sed -n 's#^[Ll]ocation: /attempts/\([0-9]*\).*#\1#p' "$work/headers")
[[ -n $attempt ]] || fail "no Location /attempts/ID in: $(cat "$work/headers")"
body='{"answers":{"1":[2],"2":[1,3]},"revision":1}'
status=$(http_status - -X PATCH "$base/attempts/$attempt" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' --data "$body")
expect_status "PATCH /attempts/$attempt (its owner)" 204 "$status"
stored=$(psql_at "$ATTEMPTS_TEST_DATABASE_URL" "SELECT answers::text || ' ' || revision FROM attempts WHERE id = $attempt")
[[ $stored == '{"1": [2], "2": [1, 3]} 1' ]] || fail "attempt $attempt holds '$stored' after the 204"
say "stored in PostgreSQL: $stored"
other=$(token_of $((student + 1)))
status=$(http_status - -X PATCH "$base/attempts/$attempt" -H "Authorization: Bearer $other" \
  -H 'Content-Type: application/json' --data '{"answers":{"1":[4]},"revision":2}')
expect_status "PATCH /attempts/$attempt (another student)" 404 "$status"
expect_status "GET /attempts/$attempt (another student)" 404 \
  "$(http_status - "$base/attempts/$attempt" -H "Authorization: Bearer $other")"
stored=$(psql_at "$ATTEMPTS_TEST_DATABASE_URL" "SELECT answers::text || ' ' || revision FROM attempts WHERE id = $attempt")
[[ $stored == '{"1": [2], "2": [1, 3]} 1' ]] || fail "another student's PATCH changed attempt $attempt: '$stored'"
step_end

# ---- sigterm: saves in flight while the container stops ---------------------------------------------------
step_begin sigterm "writers saving while the container stops (shutdown-timeout ${shutdown_timeout} s)"
writers=4
max_saves=400
# writer N ATTEMPT TOKEN: saves revisions 1, 2, ... of ATTEMPT until a request fails to connect,
# max_saves are sent or 60 s pass; logs "revision status" per save.
writer() {
  local n=$1 attempt=$2 token=$3 r status deadline=$((SECONDS + 60))
  for ((r = 1; r <= max_saves && SECONDS < deadline; r++)); do
    status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 -X PATCH "$base/attempts/$attempt" \
      -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      --data "{\"answers\":{\"1\":[$r]},\"revision\":$r}") || true
    printf '%s %s\n' "$r" "$status" >>"$work/writer.$n"
    [[ $status == 000 ]] && break
  done
}
writer_attempts=()
for ((n = 0; n < writers; n++)); do
  s=$((4300 + n))
  status=$(http_status - -X POST "$base/exams/8/attempts" -H "Authorization: Bearer $(token_of "$s")" \
    -H "Idempotency-Key: $run_id-$n")
  expect_status "POST /exams/8/attempts (writer $n, student $s)" 201 "$status"
  writer_attempts+=("$(sed -n 's#^[Ll]ocation: /attempts/\([0-9]*\).*#\1#p' "$work/headers")")
  : >"$work/writer.$n"
  writer "$n" "${writer_attempts[$n]}" "$(token_of "$s")" &
  pids+=($!)
done
# Stop once the writers have some saves acknowledged (20 s at most).
deadline=$((SECONDS + 20))
while ((SECONDS < deadline)) && (($(cat "$work"/writer.* | grep -c ' 204$') < 40)); do
  sleep 0.2
done
t0=$(now)
podman_quiet stop --time $((shutdown_timeout + 5)) "$main"
stop_seconds=$(since "$t0")
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$main")
say "podman stop (SIGTERM, SIGKILL after $((shutdown_timeout + 5)) s): exited $exit_code after ${stop_seconds} s"
[[ $exit_code == 0 ]] || fail "attempts-server exited $exit_code on SIGTERM (137: it had to be killed)"
acknowledged=0
for ((n = 0; n < writers; n++)); do
  last=$(awk '$2 == 204 { r = $1 } END { print r + 0 }' "$work/writer.$n")
  sent=$(wc -l <"$work/writer.$n")
  acknowledged=$((acknowledged + $(grep -c ' 204$' "$work/writer.$n" || true)))
  stored=$(psql_at "$ATTEMPTS_TEST_DATABASE_URL" \
    "SELECT revision || ' ' || (answers->'1'->>0) FROM attempts WHERE id = ${writer_attempts[$n]}")
  read -r stored_revision stored_answer <<<"$stored"
  # The last acknowledged save is stored, or a later one whose answer was lost with the connection.
  ((stored_revision >= last)) ||
    fail "writer $n: revision $last was acknowledged, but attempt ${writer_attempts[$n]} holds revision $stored_revision"
  if ((stored_revision > 0)) && [[ $stored_answer != "$stored_revision" ]]; then
    fail "writer $n: revision $stored_revision stored with the answer of revision $stored_answer"
  fi
  say "writer $n: $sent saves sent, last acknowledged revision $last, stored revision $stored_revision"
done
((acknowledged > 0)) || fail "no save was acknowledged before the stop"
say "$acknowledged saves acknowledged before the stop; every one is stored"
step_end

# ---- compose: the server service as docker-compose.yml writes it ------------------------------------------
step_begin compose "the server service of docker-compose.yml as written, postgres standing in"
# The database the compose file's postgres service would make, in the test cluster.
createdb_out=$("$ATTEMPTS_TEST_PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres attempts 2>&1) ||
  fail "createdb attempts in the test cluster: $createdb_out"
made_database=attempts
pg_load_schema_and_seed "$(pg_url "$pg_port" attempts)"
mapfile -d '' server_args < <(compose_args docker-compose.yml server "$project")
((${#server_args[@]})) || fail "could not read the server service from docker-compose.yml"
server=$run_id-server
containers+=("$server")
# Its own network namespace, with only a loopback (no bridge: every address stays a loopback
# one); "postgres" is 127.0.0.1 there.
podman_quiet run -d --name "$server" --network none --add-host postgres:127.0.0.1 "${server_args[@]}"
server_pid=$(podman inspect --format '{{.State.Pid}}' "$server")
# postgres:5432 in its namespace: socat there relays to a Unix socket, from which socat on the
# host relays to the test PostgreSQL on 127.0.0.1.
socat UNIX-LISTEN:"$work/pg.sock",fork,mode=600 TCP:127.0.0.1:"$pg_port" &
pids+=($!)
for ((i = 0; i < 50; i++)); do
  [[ -S $work/pg.sock ]] && break
  sleep 0.1
done
[[ -S $work/pg.sock ]] || fail "socat made no $work/pg.sock"
nsenter --target "$server_pid" --net \
  socat TCP-LISTEN:5432,bind=127.0.0.1,reuseaddr,fork UNIX-CONNECT:"$work/pg.sock" &
pids+=($!)
wait_ready "$server_pid" http://127.0.0.1:8000 "$server"
say "the server of docker-compose.yml answers /readyz on 0.0.0.0:8000 in its namespace"
podman healthcheck run "$server" >"$work/health.log" 2>&1 ||
  fail "the compose file's healthcheck: $(cat "$work/health.log")"
say "the compose file's healthcheck ($(podman inspect --format '{{join .Config.Healthcheck.Test " "}}' "$server")): healthy"
# Line 42 of the keys service's tokens.txt is student 42's token; attempt 42 is theirs (seed.sql).
token=$(token_of 42)
status=$(http_status "$server_pid" -X PATCH http://127.0.0.1:8000/attempts/42 \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  --data '{"answers":{"3":[1]},"revision":5}')
expect_status "compose: PATCH /attempts/42 with line 42 of tokens.txt" 204 "$status"
stored=$(psql_at "$(pg_url "$pg_port" attempts)" "SELECT answers::text || ' ' || revision FROM attempts WHERE id = 42")
[[ $stored == '{"3": [1]} 5' ]] || fail "attempt 42 of database attempts holds '$stored' after the 204"
say "compose: stored in database attempts: $stored"
expect_status "compose: GET /attempts/42 with student 43's token" 404 \
  "$(http_status "$server_pid" http://127.0.0.1:8000/attempts/42 -H "Authorization: Bearer $(token_of 43)")"
podman_quiet stop --time $((shutdown_timeout + 5)) "$server"
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$server")
[[ $exit_code == 0 ]] || fail "the compose server exited $exit_code on stop"
say "compose: stopped, exit 0"
step_end

say "passed"
