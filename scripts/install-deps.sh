#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use, if any is missing (needs root and
# apt-get; on other systems it only lists what is missing). Used by `make test` and `.ci/run`.
set -euo pipefail
packages=(
    build-essential g++ make pkg-config
    python3 perl git sqlite3 redis-server redis-tools libpython3.11-testsuite procps
    libjemalloc2 libjemalloc-dev libmimalloc2.0 libtcmalloc-minimal4
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-deps: missing packages (install them as root): ${missing[*]}" >&2
    exit 1
fi
echo "install-deps: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
