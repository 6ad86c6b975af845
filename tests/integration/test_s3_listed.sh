#!/bin/bash
# A pack the bucket lists but whose GETs and HEADs answer 404 (an eventually
# consistent store, a misbehaving proxy: s3_norange_proxy.py --missing, in front
# of a real Ceph RADOS Gateway, tools/s3-server.sh) is no damage: asked again
# twice (after a short pause), a 404 that does not last is not seen at all; one
# that lasts is "listed, but not readable", an I/O error (exit 7), and neither
# verify nor repair drops or records anything for it, so the routine's
# verify-then-repair never takes good blobs out of the index; one deleted after
# it was listed (a prune alongside) is "listed, but gone", exit 7 too (docs/s3.md
# "Listed but not readable").  The retries are counted in the proxy's requests,
# never timed.
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
: >"$T/missing"
python3 "$HERE/s3_norange_proxy.py" "$S3_ENDPOINT" "$T/proxy.port" "$T/sent" --missing "$T/missing" \
	2>"$T/proxy.log" &
PROXY=$!
wait_until test -s "$T/proxy.port" || fail "the proxy did not start: $(cat "$T/proxy.log")"
export AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$T/proxy.port")
URL=s3://bkt/repo

# the bucket's keys under PREFIX, straight from the server (not through the proxy)
s3keys() {
	curl -sSf --retry 3 --noproxy '*' --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$S3_ENDPOINT/bkt?list-type=2&prefix=${1//\//%2F}" |
		grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g' || true
}

S=$T/src
mkdir -p "$S"
for i in $(seq 1 20); do head -c 30000 /dev/urandom >"$S/f$i"; done
"$BKR" init -r "$URL" >/dev/null || fail "bkr init -r $URL"
"$BKR" create -r "$URL" --type full "$S" >/dev/null || fail "bkr create -r $URL"
pack=$(s3keys repo/data/ | grep -m1 '\.pack$' || true)
[ -n "$pack" ] || fail "no data pack in the bucket: $(s3keys repo/)"
s3keys repo/index/ >"$T/index.before"

# the 404s the proxy answered for the pack
n404() { grep -c "^404 .*$pack\$" "$T/sent" || true; }

# a 404 that does not last: the second ask reads, nothing is reported
echo "1 /$pack" >"$T/missing"
: >"$T/sent"
expect_exit 0 "$BKR" -r "$URL" verify --read-data
[ "$(n404)" = 1 ] || fail "the proxy answered not one 404 for $pack: $(cat "$T/sent")"
pass "verify --read-data: a listed pack answering 404 once is asked again and reads (no damage)"

# twice: the third ask (after a pause) reads
echo "2 /$pack" >"$T/missing"
: >"$T/sent"
expect_exit 0 "$BKR" -r "$URL" verify --read-data
[ "$(n404)" = 2 ] || fail "the proxy answered not two 404s for $pack: $(cat "$T/sent")"
pass "verify --read-data: a listed pack answering 404 twice is asked a third time and reads (no damage)"

# a 404 that lasts: "listed, but not readable", an I/O error; no damage recorded
echo "-1 /$pack" >"$T/missing"
: >"$T/sent"
expect_exit 7 "$BKR" -r "$URL" verify --read-data
err_has "$pack: listed, but not readable" || fail "verify did not say the pack is listed but not readable: $(cat "$T/err")"
err_has "not damage" || fail "verify did not say it is not damage: $(cat "$T/err")"
[ "$(n404)" = 3 ] || fail "verify asked for $pack not 3 times: $(cat "$T/sent")"
pass "verify --read-data: a listed pack that keeps answering 404 is an I/O error (exit 7), not damage"

# repair (what the routine runs after verify) changes nothing for it: no entry dropped, no index written
: >"$T/sent"
expect_exit 7 "$BKR" -r "$URL" repair
err_has "$pack: listed, but not readable" || fail "repair did not say the pack is listed but not readable: $(cat "$T/err")"
[ "$(n404)" = 3 ] || fail "repair asked for $pack not 3 times: $(cat "$T/sent")"
s3keys repo/index/ >"$T/index.after"
cmp -s "$T/index.before" "$T/index.after" ||
	fail "repair rewrote the index for a pack answering 404: $(diff "$T/index.before" "$T/index.after")"
pass "repair: a listed pack that keeps answering 404 stops it (exit 7) with the index untouched"

# the store serves it again: nothing was lost, nothing is reported damaged
: >"$T/missing"
expect_exit 0 "$BKR" -r "$URL" verify --read-data
expect_exit 0 "$BKR" -r "$URL" repair
s3keys repo/index/ >"$T/index.after"
cmp -s "$T/index.before" "$T/index.after" || fail "repair rewrote a sound index: $(diff "$T/index.before" "$T/index.after")"
expect_exit 0 "$BKR" -r "$URL" restore latest --target "$T/r"
python3 "$HERE/treecmp.py" "$S" "$T/r/src" || fail "the restore differs once the pack is served again"
pass "once the pack is served again: verify --read-data and repair clean, the restore exact"

# prune's repack reads, as verify's: a listed pack to repack whose GETs answer 404 is asked
# three times, then "listed, but not readable" (exit 7), nothing changed; it said "cannot be
# read to repack it (... not found)", exit 3, as if the pack were not there
first=$("$BKR" -r "$URL" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
rm "$S"/f1 "$S"/f2 "$S"/f3 "$S"/f4 "$S"/f5 "$S"/f6 "$S"/f7 "$S"/f8 "$S"/f9 "$S"/f10
"$BKR" create -r "$URL" --type full "$S" >/dev/null || fail "bkr create -r $URL (the second backup)"
expect_exit 0 "$BKR" -r "$URL" delete "$first"
s3keys repo/index/ >"$T/index.before"
echo "-1 /$pack get" >"$T/missing"
for dry in --dry-run ""; do
	: >"$T/sent"
	expect_exit 7 "$BKR" -r "$URL" prune --max-unused 10 $dry
	err_has "$pack: listed, but not readable" || fail "prune $dry did not say the pack is listed but not readable: $(cat "$T/err")"
	err_has "cannot be read to repack it" || fail "prune $dry: $(cat "$T/err")"
	[ "$(n404)" = 3 ] || fail "prune $dry asked for $pack not 3 times: $(cat "$T/sent")"
done
s3keys repo/index/ >"$T/index.after"
cmp -s "$T/index.before" "$T/index.after" || fail "prune rewrote the index: $(diff "$T/index.before" "$T/index.after")"
s3keys repo/data/ | grep -q "$pack" || fail "prune moved $pack"
: >"$T/missing"
expect_exit 0 "$BKR" -r "$URL" verify --read-data
pass "prune: a listed pack to repack whose GETs answer 404 stops it (exit 7, listed but not readable), nothing changed"

# prune's listing, as the reads: a listed pack whose HEADs answer 404 too is asked again, then
# "listed, but not readable" (exit 7), nothing changed; it was taken for a pack gone ("vanished"),
# and the index rewritten without its unused entries
echo "-1 /$pack" >"$T/missing"
for dry in --dry-run ""; do
	: >"$T/sent"
	expect_exit 7 "$BKR" -r "$URL" prune --max-unused 10 $dry
	err_has "$pack: listed, but not readable" || fail "prune $dry did not say the pack is listed but not readable: $(cat "$T/err")"
	[ "$(n404)" -ge 3 ] || fail "prune $dry asked for $pack fewer than 3 times: $(cat "$T/sent")"
done
s3keys repo/index/ >"$T/index.after"
cmp -s "$T/index.before" "$T/index.after" || fail "prune rewrote the index: $(diff "$T/index.before" "$T/index.after")"
s3keys repo/data/ | grep -q "$pack" || fail "prune moved $pack"
: >"$T/missing"
expect_exit 0 "$BKR" -r "$URL" verify --read-data
pass "prune: a listed pack whose HEADs answer 404 stops it (exit 7, listed but not readable), nothing changed"

# deleted after verify listed it (a prune alongside: the proxy deletes it at its first 404): asked
# three times, then its folder listed again no longer names it: "listed, but gone", exit 7, not damage
echo "-1 /$pack delete" >"$T/missing"
: >"$T/sent"
expect_exit 7 "$BKR" -r "$URL" verify --read-data
grep -q "^delete .*$pack 204\$" "$T/sent" || fail "the proxy did not delete $pack: $(cat "$T/sent")"
err_has "$pack: listed, but gone: deleted since it was listed" ||
	fail "verify did not say the pack was deleted since it was listed: $(cat "$T/err")"
err_has "not damage" || fail "verify did not say it is not damage: $(cat "$T/err")"
[ "$(n404)" = 3 ] || fail "verify asked for $pack not 3 times: $(cat "$T/sent")"
s3keys repo/data/ | grep -q "$pack" && fail "$pack is still in the bucket"
pass "verify --read-data: a pack deleted after it was listed is 'listed, but gone' (exit 7), not damage"
