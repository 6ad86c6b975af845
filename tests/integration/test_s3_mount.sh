#!/bin/bash
# The mount over S3: a real Ceph RADOS Gateway (tools/s3-server.sh) and a
# real FUSE mount of s3://BUCKET/PREFIX through the disk cache: `diff -r` of
# a backup byte for byte, the cache filled and then enough for a second
# mount (no byte fetched), a new backup appearing (the watcher lists the
# bucket), a byte flipped in a stored pack (rewritten in the bucket) giving
# EIO for that file only, `bkr mount -r s3://...` (and a backup while it
# holds the cache), and a local repository whose cold tier is in the bucket
# (tier migrate, restore, verify --read-data and the mount); a manifest
# damaged in the bucket and put right under its key served again (the
# listing's ETag).
source "$BKR_SOURCE_ROOT/tests/integration/lib.sh"

[ -c /dev/fuse ] && command -v fusermount3 >/dev/null || fail "no /dev/fuse or fusermount3: this test needs real mounts"
SERVER=$BKR_SOURCE_ROOT/tools/s3-server.sh

stop_server() { "$SERVER" stop "$T/s3" >/dev/null 2>&1; }
cleanup_hooks+=(bkrfs_stop_all stop_server)

"$SERVER" start "$T/s3" >"$T/s3.env" 2>"$T/s3.log" || fail "the S3 server did not start: $(tail -5 "$T/s3.log")"
. "$T/s3.env"
"$SERVER" bucket "$T/s3" bkt >/dev/null 2>>"$T/s3.log" || fail "bucket: $(tail -3 "$T/s3.log")"
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_ENDPOINT_URL=$S3_ENDPOINT
export AWS_REGION=$S3_REGION
URL=s3://bkt/repo

mount_fg() { bkrfs_fg "$URL" "$@"; }

S=$T/src
mkdir -p "$S/many/sub"
for i in $(seq 1 200); do printf 'small file %d\n' "$i" >"$S/many/f$i"; done
printf 'deeper\n' >"$S/many/sub/x"
head -c 3000000 /dev/urandom >"$S/big.bin"
head -c 150000 /dev/urandom >"$S/victim.bin"
head -c 1500000 < <(yes "compressible text") >"$S/text.txt"
ln -s big.bin "$S/link"
"$BKR" init -r "$URL" >/dev/null || fail "bkr init -r $URL"
"$BKR" create -r "$URL" --type full "$S" >/dev/null || fail "bkr create -r $URL"
ID=$("$BKR" list -r "$URL" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')

C=$T/mcache # (not $XDG_CACHE_HOME: bkr create keeps its cache there)
M=$T/mnt
mkdir -p "$M"
mount_fg "$M" "$T/d1.err" --cache-dir="$C" -o watch_ms=300
diff -r "$S" "$M/by-id/$ID/src" || fail "the mount over S3 differs from the source"
pass "bkrfs $URL: diff -r of the backup is clean"
root=$(ls -d "$C"/*/)
[ "$(cat "$root/location")" = "$URL at $S3_ENDPOINT" ] || fail "cache location: $(cat "$root/location")"

# a new backup appears: the watcher lists the bucket
printf 'new\n' >"$S/added.txt"
"$BKR" create -r "$URL" --type full "$S" >/dev/null || fail "second backup"
wait_until test -e "$M/latest/src/added.txt" || true # compared next
cmp "$S/added.txt" "$M/latest/src/added.txt" || fail "the new backup did not appear in the mount"
pass "a new backup in the bucket appears in the mount"
bkrfs_unmount "$M"
cache_report "$T/d1.err" >/dev/null

# a second mount reads from the cache alone
mount_fg "$M" "$T/d2.err" --cache-dir="$C"
diff -r "$S" "$M/latest/src" || fail "the warm mount differs"
bkrfs_unmount "$M"
line=$(cache_report "$T/d2.err")
[[ $line == *" 0 bytes fetched"* ]] || fail "a warm mount fetched bytes: $line"
pass "a second mount reads the bucket only for listings and sizes ($line)"

# a byte flipped in a stored pack (rewritten in the bucket): EIO for that file only
python3 - "$S3_ENDPOINT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S/victim.bin" "$T/victim" <<'PY' || fail "could not flip a byte in the bucket"
import subprocess, sys, re
ep, ak, sk, src, keep = sys.argv[1:]
def curl(*args, data=None):
    return subprocess.run(["curl", "-sS", "--fail", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", ak + ":" + sk,
                           "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", *args], input=data, capture_output=True, check=True).stdout
listing = curl(ep + "/bkt?list-type=2&prefix=repo%2Fdata%2F").decode()
pat = open(src, "rb").read()[1000:1064]
for key in re.findall(r"<Key>([^<]+\.pack)</Key>", listing):
    body = bytearray(curl(ep + "/bkt/" + key))
    i = body.find(pat)
    if i >= 0:
        open(keep + ".key", "w").write(key)
        open(keep + ".good", "wb").write(body)
        body[i + 10] ^= 1
        open(keep + ".bad", "wb").write(body)
        curl("-X", "PUT", "--data-binary", "@-", ep + "/bkt/" + key, data=bytes(body))
        sys.exit(0)
sys.exit(1)
PY
mount_fg "$M" "$T/d3.err" --cache-dir="$T/cache2"
expect_eio "$M/by-id/$ID/src/victim.bin"
diff -r -x victim.bin "$S" "$M/latest/src" || fail "other files after the flip"
bkrfs_unmount "$M"
grep -q "EIO: .*victim.bin" "$T/d3.err" || fail "no EIO line: $(cat "$T/d3.err")"
pass "a byte flipped in a pack in the bucket gives EIO for that file only"

s3c() { curl -sf --noproxy '*' --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
	-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }
lastmod() { s3c -I "$S3_ENDPOINT/bkt/$1" | tr -d '\r' | sed -n 's/^[Ll]ast-[Mm]odified: //p'; }

# the damaged pack put right within the same second of Last-Modified as the copy a mount has
# cached: the same size and Last-Modified, another ETag; the next mount with that cache fetches
# the blocks again (docs/s3.md "An object replaced in the bucket").  The damaged copy is put and
# read by a mount (EIO, its blocks cached with the HEAD it made), then the good one put.  Two
# PUTs within one real second could not be had under load (a PUT to the loopback RGW took 0.3 to
# 0.5 s beside other tests: fifteen attempts in a row straddled a second), so the cached blocks'
# trailers are given the good copy's Last-Modified instead (the object time, little-endian bytes 24-31 of the
# 96-byte trailer, is outside the file's checksum): only the ETag still tells them apart.
vkey=$(cat "$T/victim.key")
rm -rf "$T/etcache"
mount_fg "$M" "$T/e1.err" --cache-dir="$T/etcache"
s3c -X PUT --data-binary @"$T/victim.bad" "$S3_ENDPOINT/bkt/$vkey" -o /dev/null || fail "PUT the damaged $vkey"
cat "$M/by-id/$ID/src/victim.bin" >/dev/null 2>&1 && fail "the mount read the damaged pack without EIO"
bkrfs_unmount "$M"
t_bad=$(lastmod "$vkey")
s3c -X PUT --data-binary @"$T/victim.good" "$S3_ENDPOINT/bkt/$vkey" -o /dev/null || fail "PUT the good $vkey"
t_good=$(lastmod "$vkey")
[ -n "$t_bad" ] && [ -n "$t_good" ] || fail "no Last-Modified for $vkey"
blocks=("$T/etcache"/*/b/"${vkey#*/}"/*)   # the pack's name in the repository, without its prefix
[ -f "${blocks[0]}" ] || fail "the mount kept no block of the damaged pack"
python3 - "$t_bad" "$t_good" "${blocks[@]}" <<'PY' || fail "could not give the cached blocks the good copy's Last-Modified"
import email.utils, struct, sys
bad, good = (int(email.utils.parsedate_to_datetime(t).timestamp()) for t in sys.argv[1:3])
for path in sys.argv[3:]:
    with open(path, "r+b") as f:
        f.seek(-96 + 24, 2)
        assert struct.unpack("<Q", f.read(8))[0] == bad, path  # the damaged copy's, as cached
        f.seek(-96 + 24, 2)
        f.write(struct.pack("<Q", good))
PY
mount_fg "$M" "$T/e2.err" --cache-dir="$T/etcache"
cmp "$S/victim.bin" "$M/by-id/$ID/src/victim.bin" ||
	fail "a pack put right within the same second is served from the cached damaged copy: $(grep EIO "$T/e2.err")"
bkrfs_unmount "$M"
pass "a pack put right within the same second of Last-Modified: the ETag tells, the next mount fetches it again"

# bkr mount -r s3://... (a daemon, the default cache under XDG_CACHE_HOME)
XDG_CACHE_HOME=$T/xdg "$BKR" mount -r "$URL" "$M" || fail "bkr mount -r $URL"
BKRFS_MOUNTS+=("$M")
cmp "$S/big.bin" "$M/latest/src/big.bin" || fail "bkr mount: big.bin"
ls -d "$T/xdg/bkrfs"/*/b >/dev/null || fail "bkr mount did not cache under \$XDG_CACHE_HOME/bkrfs"
# a backup while the mount holds the cache: made without it (it reads the bucket), exact (no
# pause for its id: one made in the same second as its parent is dated a microsecond after
# it, docs/format.md, and a change shows in the ctime's nanoseconds)
printf 'while mounted\n' >"$S/mounted.txt"
XDG_CACHE_HOME=$T/xdg "$BKR" -vv create -r "$URL" "$S" >/dev/null 2>"$T/held.err" || fail "create while the mount holds the cache: $(tail -3 "$T/held.err")"
grep -q "request GET tree/" "$T/held.err" || fail "create read its parent's trees from a cache the mount holds"
[ "$("$BKR" cat -r "$URL" latest src/mounted.txt)" = "while mounted" ] || fail "the backup made while the mount held the cache"
fusermount3 -u "$M"
pass "bkr mount -r $URL, cache under \$XDG_CACHE_HOME/bkrfs; a backup meanwhile reads the bucket, not the cache the mount holds"

# --- a tier in a bucket: hot on local disk, cold in S3 (docs/s3.md "A tier in a bucket")
TR=$T/trepo
TW=$T/tws
mkdir -p "$TW/docs"
cat >"$T/tier.json" <<JSON
{"repository": "$TR", "workspace_root": "$TW", "tiers": {"cold": {"path": "s3://bkt/cold", "after_days": 30}}}
JSON
"$BKR" -q init -r "$TR" >/dev/null || fail "init $TR"
start=$(date -u -d 2026-06-01T00:00:00Z +%s)
day() { date -u -d @$((start + $1 * 86400)) +%Y-%m-%dT%H:%M:%SZ; }
for i in 0 1 2; do
	head -c 300000 /dev/urandom >"$TW/docs/blob-$i.bin"
	rm -f "$TW/docs/blob-$((i - 1)).bin"
	BKR_TEST_NOW=$(day $((i * 40))) "$BKR" -q -r "$TR" create "$TW" >/dev/null || fail "tiered backup $i"
	cp -a "$TW" "$T/tgold$i"
done
mapfile -t tids < <("$BKR" -r "$TR" list --json | python3 -c 'import json,sys; [print(b["backup_id"]) for b in json.load(sys.stdin)]')
"$BKR" -c "$T/tier.json" tier migrate --as-of "$(day 85)" --json >"$T/mig.json" 2>"$T/mig.err" || fail "tier migrate to S3: $(cat "$T/mig.err")"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["moved"]; sys.exit(m["cold"]["packs"] != 2)' "$T/mig.json" ||
	fail "migrate did not move the two old packs to the bucket: $(cat "$T/mig.json")"
"$BKR" -r "$TR" tier status --json >"$T/ts.json" || fail "tier status: $(cat "$T/ts.json")"
python3 - "$T/ts.json" <<'PY' || fail "tier status after migrating to S3: $(cat "$T/ts.json")"
import json, sys
t = {x["tier"]: x for x in json.load(open(sys.argv[1]))["tiers"]}
assert t["cold"]["location"] == "s3://bkt/cold" and t["cold"]["data_packs"] == 2 and t["cold"]["tree_packs"] == 0, t
assert t["hot"]["data_packs"] == 1, t
PY
"$BKR" -c "$T/tier.json" tier migrate --as-of "$(day 85)" --json >"$T/mig.json" || fail "second migrate"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); sys.exit(m["stayed_packs"] != 3)' "$T/mig.json" ||
	fail "a second migrate moved something: $(cat "$T/mig.json")"
for i in 0 1 2; do
	rm -rf "$T/trst"
	"$BKR" -q -r "$TR" restore "${tids[$i]}" --target "$T/trst" >/dev/null 2>"$T/trst.err" || fail "restore $i from the S3 tier: $(cat "$T/trst.err")"
	diff -r "$T/tgold$i" "$T/trst/tws" || fail "backup $i restores different bytes from the S3 tier"
done
"$BKR" -r "$TR" verify --read-data >/dev/null 2>"$T/tv.err" || fail "verify --read-data with a tier in S3: $(cat "$T/tv.err")"
bkrfs_fg "$TR" "$M" "$T/d5.err"
for i in 0 1 2; do diff -r "$T/tgold$i" "$M/by-id/${tids[$i]}/tws" || fail "the mount serves backup $i differently (S3 tier)"; done
bkrfs_unmount "$M"
pass "a cold tier in a bucket: tier migrate moves the old packs there, a second moves nothing; restore, verify --read-data and the mount read every backup exactly"

# a tree pack truncated in the bucket, read by a mount (EIO, the short copy cached), then put right:
# the next mount with the same cache fetches it again and serves the backup (docs/s3.md "disk cache")
TU=s3://bkt/treecut
TS=$T/tcsrc
mkdir -p "$TS/d1/d2"
for i in $(seq 1 30); do printf 'f %d\n' "$i" >"$TS/d1/d2/f$i"; done
"$BKR" init -r "$TU" >/dev/null || fail "bkr init -r $TU"
"$BKR" create -r "$TU" --type full "$TS" >/dev/null || fail "bkr create -r $TU"
tk=$(s3c "$S3_ENDPOINT/bkt?list-type=2&prefix=treecut%2Ftree%2F" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g' | head -1)
[ -n "$tk" ] || fail "no tree pack under treecut/tree/"
s3c "$S3_ENDPOINT/bkt/$tk" -o "$T/tc.good" || fail "GET $tk"
head -c 100 "$T/tc.good" >"$T/tc.bad"
s3c -X PUT --data-binary @"$T/tc.bad" "$S3_ENDPOINT/bkt/$tk" -o /dev/null || fail "PUT the short $tk"
TC=$T/tccache
bkrfs_fg "$TU" "$M" "$T/d6.err" --cache-dir="$TC"
! diff -r "$TS" "$M/latest/tcsrc" >/dev/null 2>&1 || fail "a mount over a truncated tree pack served the backup"
bkrfs_unmount "$M"
s3c -X PUT --data-binary @"$T/tc.good" "$S3_ENDPOINT/bkt/$tk" -o /dev/null || fail "PUT the good $tk"
bkrfs_fg "$TU" "$M" "$T/d7.err" --cache-dir="$TC"
diff -r "$TS" "$M/latest/tcsrc" || fail "the mount keeps the short copy of a tree pack put right in the bucket"
bkrfs_unmount "$M"
pass "a tree pack truncated in the bucket and put right: the next mount with the same cache fetches it again"

# a manifest damaged in the bucket, read so by a mount (its /by-source latest answers EIO, the
# damaged copy in the disk cache), then put right under the same key: the watcher's listing
# shows another ETag, and the backup is served within the watch interval, no remount
LID=$("$BKR" list -r "$URL" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
s3c "$S3_ENDPOINT/bkt/repo/backups/$LID.json" -o "$T/mf.good" || fail "GET the manifest of $LID"
python3 - "$T/mf.good" "$T/mf.bad" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[30] ^= 0x20
open(sys.argv[2], "wb").write(b)
PY
s3c -X PUT --data-binary @"$T/mf.bad" "$S3_ENDPOINT/bkt/repo/backups/$LID.json" -o /dev/null || fail "PUT the damaged manifest"
bkrfs_fg "$URL" "$M" "$T/d9.err" --cache-dir="$T/mfcache" -o watch_ms=300
readlink "$M/by-source/src/latest" >/dev/null 2>&1 && fail "by-source/src/latest with the newest manifest damaged: $(readlink "$M/by-source/src/latest")"
[ -L "$M/by-source/src/$LID" ] && fail "by-source/src lists the backup whose manifest is damaged"
s3c -X PUT --data-binary @"$T/mf.good" "$S3_ENDPOINT/bkt/repo/backups/$LID.json" -o /dev/null || fail "PUT the good manifest"
t0=$SECONDS
wait_until readlink "$M/by-source/src/latest" >/dev/null 2>&1 || true # its target is checked next
[ "$(readlink "$M/by-source/src/latest")" = "../../by-id/$LID/src" ] && cmp -s "$S/mounted.txt" "$M/by-source/src/latest/mounted.txt" ||
	fail "the manifest put right in the bucket is not served: by-source/src/latest -> $(readlink "$M/by-source/src/latest" 2>&1)"
bkrfs_unmount "$M"
pass "a manifest damaged in the bucket and put right under its key is served again within $((SECONDS - t0)) s"

# the server goes away under a mount: the first read pauses through the retries,
# the next ones are tried once each (for 10 s: docs/s3.md "Retries"); back, it reads again
TD=$T/downcache
bkrfs_fg "$URL" "$M" "$T/d8.err" --cache-dir="$TD"
ls -lR "$M/by-id/$ID/src" >/dev/null || fail "listing before the server went away"
"$SERVER" gateway-stop "$T/s3"
t0=$(date +%s%N)
cat "$M/by-id/$ID/src/big.bin" >/dev/null 2>&1 && fail "a read with the server gone succeeded"
t1=$(date +%s%N)
cat "$M/by-id/$ID/src/text.txt" >/dev/null 2>&1 && fail "a second read with the server gone succeeded"
t2=$(date +%s%N)
echo "  first read failed after $(((t1 - t0) / 1000000)) ms, the next after $(((t2 - t1) / 1000000)) ms"
grep -q "it did not answer a moment ago: tried once" "$T/d8.err" ||
	fail "the mount's log: the reads after the first are not tried once: $(tail -5 "$T/d8.err")"
"$SERVER" gateway-start "$T/s3" >/dev/null 2>&1 || fail "the gateway did not start again"
cmp "$S/big.bin" "$M/by-id/$ID/src/big.bin" && cmp "$S/text.txt" "$M/by-id/$ID/src/text.txt" ||
	fail "the mount does not read again once the server is back"
bkrfs_unmount "$M"
pass "a server gone under a mount: the first read retries, the next are tried once; back, it reads again"
