# shellcheck shell=bash
# For the scripts that check a built server against the database scripts/test.sh provides
# (scripts/contract.sh, scripts/browser-test.sh). Source this file; it defines functions only.
#
#   under_test_init NAME LABEL ARGS...   reads --server BIN and --token-tool BIN from ARGS
#                                        (default: the binaries of build/${PRESET:-debug}) into
#                                        $server and $token_tool; defines say and fail, which
#                                        prefix their lines with NAME; fails unless both binaries
#                                        and ATTEMPTS_TEST_DATABASE_URL are there (LABEL is the
#                                        ctest label that provides the database).

under_test_init() {
  local name=$1 label=$2 repo
  shift 2
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  server=$repo/build/${PRESET:-debug}/attempts-server
  token_tool=$repo/build/${PRESET:-debug}/tools/attempts-token
  while (($#)); do
    case $1 in
      --server) server=$2; shift 2 ;;
      --token-tool) token_tool=$2; shift 2 ;;
      *) echo "usage: $name [--server BIN] [--token-tool BIN]" >&2; exit 2 ;;
    esac
  done
  UNDER_TEST_NAME=$name
  [[ -n ${ATTEMPTS_TEST_DATABASE_URL:-} ]] ||
    fail "ATTEMPTS_TEST_DATABASE_URL is not set: run scripts/test.sh -L $label (it makes a database)"
  [[ -x $server ]] || fail "no server binary $server (build the preset first)"
  [[ -x $token_tool ]] || fail "no attempts-token binary $token_tool (build the preset first)"
}

say() { printf '==> %s: %s\n' "$UNDER_TEST_NAME" "$*"; }
fail() { printf '%s: FAILED: %s\n' "$UNDER_TEST_NAME" "$*" >&2; exit 1; }
