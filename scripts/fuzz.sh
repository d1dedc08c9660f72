#!/usr/bin/env bash
# Builds the libFuzzer targets (CMake preset `fuzz`: Clang 14, ASan+UBSan) and runs each for a
# bounded time; exits non-zero if any of them finds a crash, a sanitizer report, a violated
# invariant, a timeout or an out-of-memory input. See fuzz/README.md.
#
#   scripts/fuzz.sh          # 60 s per target (what .ci/run does)
#   scripts/fuzz.sh 3600     # an hour per target
#   FUZZ_TARGETS=answers scripts/fuzz.sh 600   # one target only (http_request, answers, token)
#
# Each target starts from a temporary copy of fuzz/corpus/<target> (the repo corpus never
# grows). libFuzzer's log goes to build/fuzz/logs/<target>.log; a failing input is written to
# build/fuzz/artifacts/<target>-crash-<sha1> (or -timeout-, -oom-, -leak-), and is printed here
# in hex with the end of the log (the stack).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

seconds=${1:-60}
if [[ ! $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS per target, default 60]" >&2
  exit 2
fi
read -r -a targets <<<"${FUZZ_TARGETS:-http_request answers token}"

say() { printf '==> fuzz.sh: %s\n' "$*"; }

say "installing dependencies"
bash scripts/install-deps.sh
# The compiler and libFuzzer runtime: Debian packages, only when missing.
bash "$repo/scripts/install-deps.sh" clang-14 libclang-rt-14-dev

say "building preset fuzz"
cmake --preset fuzz
cmake --build --preset fuzz -j"$(nproc)"

build_dir=$repo/build/fuzz
logs=$build_dir/logs
artifacts=$build_dir/artifacts
mkdir -p "$logs" "$artifacts"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/attempts-fuzz.XXXXXX")
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Per target: dictionary and largest input (bodies may reach the 64 KiB body limit; a token
# just over the verifier's 4096-byte limit, or a payload whose token would be).
declare -A dict=([http_request]=fuzz/dict/http.dict [answers]=fuzz/dict/json.dict
                 [token]=fuzz/dict/jwt.dict)
declare -A max_len=([http_request]=70000 [answers]=65536 [token]=4200)

status=0
summary=()
for target in "${targets[@]}"; do
  binary=$build_dir/fuzz/fuzz_$target
  [[ -x $binary && -n ${dict[$target]:-} ]] || { echo "fuzz.sh: unknown target $target" >&2; exit 2; }
  corpus=$tmp/$target
  mkdir -p "$corpus"
  cp fuzz/corpus/"$target"/* "$corpus"/
  log=$logs/$target.log
  started=$tmp/$target.started
  touch "$started"
  say "fuzz_$target for ${seconds}s from $(find "$corpus" -type f | wc -l) seeds (log: $log)"
  set +e
  "$binary" "$corpus" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$target]}" \
    -dict="${dict[$target]}" -print_final_stats=1 \
    -artifact_prefix="$artifacts/$target-" >"$log" 2>&1
  rc=$?
  set -e
  final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
  execs=$(final_stat number_of_executed_units)
  line="fuzz_$target: ${execs:-?} executions ($(final_stat average_exec_per_sec) exec/s), $(final_stat new_units_added) new inputs, corpus $(find "$corpus" -type f | wc -l) files, peak RSS $(final_stat peak_rss_mb) MB"
  if ((rc != 0)); then
    status=1
    line+=" -- FAILED (libFuzzer exit $rc)"
    echo "---- end of $log:" >&2
    tail -n 60 "$log" >&2
    # The failing input in hex: the artifacts this run wrote.
    while IFS= read -r -d '' found; do
      echo "---- failing input $found ($(wc -c <"$found") bytes):" >&2
      od -A x -t x1z -v "$found" | head -n 64 >&2
    done < <(find "$artifacts" -maxdepth 1 -type f -name "$target-*" -newer "$started" -print0)
  fi
  say "$line"
  summary+=("$line")
done

say "summary:"
printf '  %s\n' "${summary[@]}"
exit "$status"
