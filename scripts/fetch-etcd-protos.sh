#!/usr/bin/env bash
# Fetches etcd's own API definitions from Debian's golang-etcd-server-dev package (downloaded and
# unpacked, not installed: the package pulls in many Go libraries Chorus does not need) and
# strips the gogoproto and HTTP-gateway annotations, which only etcd's Go build uses.
#
#   scripts/fetch-etcd-protos.sh OUT_DIR
#
# OUT_DIR receives etcd/etcdserver/etcdserverpb/rpc.proto, etcd/mvcc/mvccpb/kv.proto and
# etcd/auth/authpb/auth.proto, laid out as rpc.proto's imports name them. Does nothing if they
# are already there (with the additions below, marked by OUT_DIR/ADDITIONS).
#
# Additions: etcd 3.5's Auth.AuthStatus call, which Debian's 3.4 definitions lack, with 3.5's
# exact messages and field numbers, so 3.5 clients (etcdctl auth status) get their answer.
set -euo pipefail

out=${1:?usage: fetch-etcd-protos.sh OUT_DIR}
files=(etcdserver/etcdserverpb/rpc.proto mvcc/mvccpb/kv.proto auth/authpb/auth.proto)
additions=1

have_all=1
for f in "${files[@]}"; do
  [ -s "$out/etcd/$f" ] || have_all=0
done
[ "$(cat "$out/ADDITIONS" 2>/dev/null)" = "$additions" ] || have_all=0
[ $have_all -eq 1 ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$work" && apt-get download -q golang-etcd-server-dev >/dev/null 2>&1) || {
  echo "chorus: cannot download golang-etcd-server-dev (apt-get download failed);" \
    "run 'apt-get update' and retry" >&2
  exit 1
}
dpkg -x "$work"/golang-etcd-server-dev_*.deb "$work/x"
src="$work/x/usr/share/gocode/src/go.etcd.io/etcd"

for f in "${files[@]}"; do
  [ -f "$src/$f" ] || { echo "chorus: $f missing from golang-etcd-server-dev" >&2; exit 1; }
  mkdir -p "$(dirname "$out/etcd/$f")"
  # Drop the gogoproto and google.api imports, file options and HTTP rule blocks; field options
  # like [(gogoproto.nullable) = false] do not occur in these three files (checked below).
  sed -e '/^import "gogoproto\/gogo.proto";/d' \
      -e '/^import "google\/api\/annotations.proto";/d' \
      -e '/^option (gogoproto\./d' \
      -e '/option (google.api.http) = {/,/};/d' \
      "$src/$f" >"$out/etcd/$f.tmp"
  if grep -q 'gogoproto\|google.api' "$out/etcd/$f.tmp"; then
    echo "chorus: $f still has annotations the build cannot strip" >&2
    exit 1
  fi
  mv "$out/etcd/$f.tmp" "$out/etcd/$f"
done
rpc="$out/etcd/etcdserver/etcdserverpb/rpc.proto"
if ! grep -q 'rpc AuthStatus' "$rpc"; then
  sed -i -e '/^service Auth {/a\
  // AuthStatus displays authentication status (etcd 3.5).\
  rpc AuthStatus(AuthStatusRequest) returns (AuthStatusResponse) {\
  }' "$rpc"
  cat >>"$rpc" <<'PROTO'

message AuthStatusRequest {
}

message AuthStatusResponse {
  ResponseHeader header = 1;
  bool enabled = 2;
  // authRevision is the current revision of auth store
  uint64 authRevision = 3;
}
PROTO
fi
echo "$additions" >"$out/ADDITIONS"
dpkg-deb -f "$work"/golang-etcd-server-dev_*.deb Version >"$out/VERSION"
echo "chorus: etcd API definitions $(cat "$out/VERSION") in $out"
