#!/usr/bin/env bash
# Fetches Redis 7.0's own test suite (the TCL tests of Debian's `redis` source package) into DIR,
# for `make test-redis-suite`. Adds a deb-src entry for Debian's archive when apt has none, then
# `apt-get source --download-only redis` and unpacks the upstream tarball. Nothing is committed:
# the tests stay Redis's, fetched at test time. Prints the unpacked tree's path.
#
#   scripts/fetch-redis-suite.sh [DIR]   (default build/redis-suite)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/redis-suite}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

found=$(find "$dir" -maxdepth 3 -path '*/tests/test_helper.tcl' 2>/dev/null | head -n1)
if [ -n "$found" ]; then
  dirname "$(dirname "$found")"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi

if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "chorus: adding a deb-src entry for Debian's archive (/etc/apt/sources.list.d/chorus-deb-src.sources)" >&2
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
    "${sudo_cmd[@]}" tee /etc/apt/sources.list.d/chorus-deb-src.sources >/dev/null
  "${sudo_cmd[@]}" apt-get update -qq >&2
fi

work=$(mktemp -d "$dir/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source --download-only redis >"$work/apt.log" 2>&1) || {
  # apt may only have package lists without sources: refresh once and retry.
  "${sudo_cmd[@]}" apt-get update -qq >&2
  (cd "$work" && apt-get source --download-only redis >&2)
}
tarball=$(find "$work" -maxdepth 1 -name 'redis_*.orig.tar.gz' | head -n1)
if [ -z "$tarball" ]; then
  echo "chorus: apt-get source redis gave no upstream tarball" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$dir"
found=$(find "$dir" -maxdepth 3 -path '*/tests/test_helper.tcl' | head -n1)
[ -n "$found" ] || { echo "chorus: the redis source has no tests/test_helper.tcl" >&2; exit 1; }
dirname "$(dirname "$found")"
