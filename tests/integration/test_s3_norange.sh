#!/bin/bash
# S3 reads through a proxy that ignores Range on GETs of packs
# (s3_norange_proxy.py: the whole object for every range) in front of a real
# Ceph RADOS Gateway (tools/s3-server.sh): a restore with 4 threads, verify
# --read-data and a mount read by 4 readers at once restore, check and serve
# every byte while each pack read by ranges is sent whole at most once per
# command (counted by the proxy), not once per read or per reader: the rest
# come from the copy kept (docs/s3.md "Reads of packs"; verify --read-data
# reads data packs whole by design).
source "$BKR_SOURCE_ROOT/tests/integration/lib.sh"

SERVER=$BKR_SOURCE_ROOT/tools/s3-server.sh
PROXY=
stop_server() { "$SERVER" stop "$T/s3" >/dev/null 2>&1; }
stop_proxy() { [ -z "$PROXY" ] || kill "$PROXY" 2>/dev/null; }
cleanup_hooks+=(stop_proxy stop_server)

"$SERVER" start "$T/s3" >"$T/s3.env" 2>"$T/s3.log" || fail "the S3 server did not start: $(tail -5 "$T/s3.log")"
. "$T/s3.env"
"$SERVER" bucket "$T/s3" bkt >/dev/null 2>>"$T/s3.log" || fail "bucket: $(tail -3 "$T/s3.log")"
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_REGION=$S3_REGION
python3 "$HERE/s3_norange_proxy.py" "$S3_ENDPOINT" "$T/proxy.port" "$T/sent" 2>"$T/proxy.log" &
PROXY=$!
wait_until test -s "$T/proxy.port" || fail "the proxy did not start: $(cat "$T/proxy.log")"
export AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$T/proxy.port")
URL=s3://bkt/repo

readers=()
S=$T/src
mkdir -p "$S/small"
head -c 20000000 /dev/urandom >"$S/big.bin"
for i in $(seq 1 40); do head -c 50000 /dev/urandom >"$S/small/f$i"; done
"$BKR" init -r "$URL" >/dev/null || fail "bkr init -r $URL"
"$BKR" create -r "$URL" --type full "$S" >/dev/null || fail "bkr create -r $URL"

# sent_once WHAT [data]: every pack sent whole at most once; at least one (a data pack, with
# "data") sent whole: the proxy did ignore Range
sent_once() {
	[ -s "$T/sent" ] || fail "$1: no pack was sent whole: the proxy did not ignore Range ($(cat "$T/proxy.log"))"
	[ -z "${2:-}" ] || grep -q '^whole .*/data/' "$T/sent" || fail "$1: no data pack was sent whole: $(cat "$T/sent")"
	local twice
	twice=$(grep '^whole ' "$T/sent" | sort | uniq -d)
	[ -z "$twice" ] || fail "$1: packs sent whole more than once: $twice ($(sort "$T/sent" | uniq -c))"
}

: >"$T/sent"
BKR_S3_KEEP_CHECK_MS=86400000 expect_exit 0 "$BKR" -r "$URL" restore latest --threads 4 --target "$T/r1"
python3 "$HERE/treecmp.py" "$S" "$T/r1/src" || fail "restore through a server that ignores Range differs"
grep -qr "ignores Range" "$XDG_STATE_HOME/bkr/" || fail "restore did not log that the server ignores Range"
sent_once restore data
# a copy kept is used without a HEAD per read for s3.keep_check_ms (10 s) after its download:
# at most one HEAD per pack (a day here, so that a slow run does not ask more)
heads=$(grep -c '^head ' "$T/sent" || true)
[ "$heads" -le "$(grep -c '^whole ' "$T/sent")" ] ||
	fail "restore: $heads HEADs of packs for $(grep -c '^whole ' "$T/sent") packs sent whole ($(grep '^head ' "$T/sent" | sort | uniq -c))"
pass "restore --threads 4 through a server that ignores Range: exact, each pack sent whole once ($(grep -c '^whole ' "$T/sent") packs, $(grep -c '^cut ' "$T/sent") answers dropped after their headers, $heads HEADs)"

: >"$T/sent"
expect_exit 0 "$BKR" -r "$URL" verify --read-data
sent_once "verify --read-data"
pass "verify --read-data through a server that ignores Range: clean, each pack read by ranges sent whole once"

# the mount: four readers of the big file at once (and the look-ahead) through the disk cache
[ -c /dev/fuse ] && command -v fusermount3 >/dev/null || fail "no /dev/fuse or fusermount3: this test needs real mounts"
: >"$T/sent"
M=$T/mnt
BKR_S3_KEEP_CHECK_MS=86400000 bkrfs_fg "$URL" "$M" "$T/mount.err" --cache-dir="$T/mcache"
for k in 0 1 2 3; do
	python3 - "$M/latest/src/big.bin" "$k" "$S/big.bin" <<'PY' &
import sys
path, k, orig = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path, "rb") as f, open(orig, "rb") as o:
    f.seek(k * 5000000); o.seek(k * 5000000)
    if f.read(5000000) != o.read(5000000):
        sys.exit(f"{path}: bytes {k * 5000000}.. differ")
PY
	readers+=($!)
done
for p in "${readers[@]}"; do wait "$p" || fail "a reader of the mount got other bytes"; done
python3 "$HERE/treecmp.py" "$S" "$M/latest/src" >/dev/null || fail "the mount through a server that ignores Range differs"
sent_once mount data
# one HEAD per pack and mount (the disk cache's, for its size), none per read of a copy kept
heads=$(grep -c '^head ' "$T/sent" || true)
[ "$heads" -le "$(grep -c '^whole ' "$T/sent")" ] ||
	fail "mount: $heads HEADs of packs for $(grep -c '^whole ' "$T/sent") packs sent whole ($(grep '^head ' "$T/sent" | sort | uniq -c))"
bkrfs_unmount "$M"
pass "bkrfs through a server that ignores Range: 4 readers at once and a tree compare, each pack sent whole once, $heads HEADs"
