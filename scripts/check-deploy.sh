#!/usr/bin/env bash
# Checks what deploy/ gives an operator; ctest runs each part as a test labelled `operations`
# (scripts/test.sh -L operations). The metric names used by the rules and the dashboard, and
# the rules' evaluation by a real Prometheus, are checked against a live server by
# tests/operations/test_deploy_metrics.cpp.
#
#   scripts/check-deploy.sh prometheus          promtool check config (and so every rule file),
#                                               then the rules' unit tests (promtool test rules)
#   scripts/check-deploy.sh systemd BUILD_DIR   cmake --install BUILD_DIR into a scratch root;
#                                               systemd-analyze verify accepts the installed
#                                               unit there (so ExecStart= finds the installed
#                                               binary); its offline security exposure is 3.0 or
#                                               lower; systemd-sysusers would create its user;
#                                               the example settings parse and fit the unit's
#                                               LimitNOFILE= and TimeoutStopSec=
#
# promtool comes from Debian's prometheus package and systemd-analyze from systemd
# (scripts/install-deps.sh installs both). Nothing here needs systemd to be running.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

say() { printf '==> check-deploy: %s\n' "$*"; }
fail() { printf 'check-deploy: FAILED: %s\n' "$*" >&2; exit 1; }

# The most exposure (systemd-analyze's 0.0-10.0 scale) the unit may have.
readonly max_exposure=3.0

check_prometheus() {
  command -v promtool >/dev/null || fail "promtool not found (Debian package prometheus: scripts/install-deps.sh)"
  say "promtool check config deploy/prometheus/prometheus.yml ($(promtool --version 2>&1 | head -n 1))"
  promtool check config deploy/prometheus/prometheus.yml || fail "promtool check config"
  say "promtool check rules --lint=duplicate-rules"
  promtool check rules --lint=duplicate-rules --lint-fatal deploy/prometheus/rules/*.yml ||
    fail "promtool check rules"
  say "promtool test rules deploy/prometheus/tests/*.yml"
  promtool test rules deploy/prometheus/tests/*.yml || fail "promtool test rules"
}

# unit_value FILE KEY: the value of the last KEY= line of a unit file.
unit_value() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
# toml_value TEXT KEY: the value of `KEY = value` in --print-config's output.
toml_value() { sed -n "s/^$2 = //p" <<<"$1" | tr -d '"'; }
# seconds DURATION: systemd's "15s", "2min" or "15" in seconds (the forms this unit may use).
seconds() {
  case $1 in
    *min) echo $((${1%min} * 60)) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}

check_systemd() {
  local build_dir=$1
  [[ -d $build_dir ]] || fail "no build directory $build_dir"
  command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (Debian package systemd)"
  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/attempts-check-deploy.XXXXXX")
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" EXIT
  local root=$tmp/root

  say "cmake --install $build_dir with DESTDIR=$root (prefix /usr/local)"
  DESTDIR=$root cmake --install "$build_dir" --prefix /usr/local >"$tmp/install.log" ||
    fail "cmake --install: $(cat "$tmp/install.log")"
  local unit=$root/usr/local/lib/systemd/system/attempts.service
  [[ -f $unit ]] || fail "cmake --install did not install lib/systemd/system/attempts.service"
  [[ -x $root/usr/local/bin/attempts-server ]] || fail "cmake --install did not install bin/attempts-server"
  # Apart from the prefix, the installed unit is the one in the repository.
  diff -u deploy/systemd/attempts.service "$unit" || fail "the installed unit differs from deploy/systemd/attempts.service"

  # verify --root loads the units the service depends on (sysinit.target, network-online.target,
  # ...) from the scratch root, and checks that the commands exist there: a copy of this host's
  # units, and /bin/kill for ExecReload.
  mkdir -p "$root/usr/lib/systemd" "$root/usr/bin"
  cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
  ln -s usr/bin "$root/bin"
  cp "$(type -P kill)" "$root/usr/bin/kill"
  say "systemd-analyze verify --root (systemd $(systemd-analyze --version | head -n 1 | cut -d' ' -f2))"
  systemd-analyze verify --root="$root" /usr/local/lib/systemd/system/attempts.service ||
    fail "systemd-analyze verify"
  # And it must fail where the binary is not installed: the check above is not vacuous.
  mv "$root/usr/local/bin/attempts-server" "$tmp/"
  if systemd-analyze verify --root="$root" /usr/local/lib/systemd/system/attempts.service 2>/dev/null; then
    fail "systemd-analyze verify passed without the binary in place"
  fi
  mv "$tmp/attempts-server" "$root/usr/local/bin/"

  say "systemd-analyze security --offline=true (at most $max_exposure)"
  systemd-analyze security --offline=true --no-pager deploy/systemd/attempts.service >"$tmp/security.txt" 2>&1 ||
    fail "systemd-analyze security: $(cat "$tmp/security.txt")"
  grep -E '^✗|Overall exposure' "$tmp/security.txt" || true
  # --threshold takes the exposure times ten.
  systemd-analyze security --offline=true --threshold="${max_exposure/./}" deploy/systemd/attempts.service \
    >/dev/null 2>&1 || fail "exposure above $max_exposure (see above)"

  # With no file named, systemd-sysusers reads its search path in the root: this also shows
  # that the installed lib/sysusers.d/attempts.conf is where it looks.
  say "systemd-sysusers --dry-run --root (the installed lib/sysusers.d/attempts.conf)"
  mkdir -p "$root/etc"
  touch "$root/etc/passwd" "$root/etc/group"
  systemd-sysusers --dry-run --root="$root" >"$tmp/sysusers.log" 2>&1 ||
    fail "systemd-sysusers: $(cat "$tmp/sysusers.log")"
  grep -q "Creating user 'attempts'" "$tmp/sysusers.log" || fail "systemd-sysusers would not create the user attempts"

  say "deploy/systemd/attempts.toml parses, and fits the unit's limits"
  local settings
  settings=$(env -i "$root/usr/local/bin/attempts-server" --config deploy/systemd/attempts.toml --print-config) ||
    fail "attempts-server --config deploy/systemd/attempts.toml --print-config"
  local max_connections shutdown_timeout files stop_timeout
  max_connections=$(toml_value "$settings" max-connections)
  shutdown_timeout=$(toml_value "$settings" shutdown-timeout)
  files=$(unit_value deploy/systemd/attempts.service LimitNOFILE)
  stop_timeout=$(seconds "$(unit_value deploy/systemd/attempts.service TimeoutStopSec)")
  # What main.cpp keeps besides client connections: 2 x pool-size + 4 x threads + 64, here for
  # up to 64 cores (threads and pool-size default to the cores).
  local reserve=$((2 * 64 + 4 * 64 + 64))
  ((files >= max_connections + reserve)) ||
    fail "LimitNOFILE=$files is below --max-connections $max_connections + $reserve"
  # The stop timeout leaves the shutdown its time plus a margin to close the pool and exit.
  ((stop_timeout >= shutdown_timeout + 5)) ||
    fail "TimeoutStopSec=${stop_timeout}s is below --shutdown-timeout $shutdown_timeout + 5 s"
  say "LimitNOFILE=$files >= $max_connections + $reserve; TimeoutStopSec=${stop_timeout}s >= $shutdown_timeout + 5 s"
}

case ${1:-} in
  prometheus) check_prometheus ;;
  systemd)
    (($# == 2)) || fail "usage: $0 systemd BUILD_DIR"
    check_systemd "$2"
    ;;
  *) fail "usage: $0 prometheus | systemd BUILD_DIR" ;;
esac
say "passed"
