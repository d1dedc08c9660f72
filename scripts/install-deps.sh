#!/usr/bin/env bash
# Installs the Debian 12 packages the service, its tests and its tools need, or the packages
# named as arguments.
# Idempotent: packages already present are skipped, so a second run does nothing.
set -euo pipefail

# With arguments, installs just those packages (scripts/fuzz.sh asks for clang this way).
packages=("$@")
((${#packages[@]})) || packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libboost1.81-dev libboost-program-options1.81-dev
  libpqxx-dev nlohmann-json3-dev libspdlog-dev libgtest-dev libtoml11-dev libssl-dev zlib1g-dev
  # the integration tests read CSV exports back with a parser that is not ours
  libcsv-dev
  postgresql postgresql-contrib
  curl wrk procps util-linux
  # the identity provider tests make their test CA with the openssl command
  openssl
  # scripts/check-deploy.sh: promtool (Debian ships it in prometheus; where systemd runs, the
  # package also starts a Prometheus on :9090) and systemd-analyze, neither run as a service here.
  prometheus systemd
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
# Waits (5 min at most) for another apt or dpkg on the machine to finish instead of failing.
lock_wait=(-o DPkg::Lock::Timeout=300)
"${sudo_cmd[@]}" apt-get "${lock_wait[@]}" update -qq
"${sudo_cmd[@]}" apt-get "${lock_wait[@]}" install -y -qq --no-install-recommends "${missing[@]}"
