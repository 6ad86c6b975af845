# An S3 repository against a real S3 server on 127.0.0.1 (Ceph's RADOS
# Gateway, started once by tools/s3-server.sh): every backup type round-trips
# the edge-case tree, the read commands, racing writers, a backup killed
# mid-upload and one whose server stops mid-upload, a flipped byte caught by
# verify --read-data, locks, and the errors for missing credentials and a
# wrong endpoint.
. "$(dirname "$0")/lib.sh"

SRV=$BKR_SOURCE_ROOT/tools/s3-server.sh
# hold_port PORT FILE: a process listening on 127.0.0.1:PORT (0: any) till the test ends
# or it is killed ($held), its port written to FILE once it listens
hold_port() {
	python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
open(sys.argv[2] + ".tmp", "w").write(str(s.getsockname()[1])); __import__("os").rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(3600)' "$1" "$2" &
	held=$!
	cleanup_hooks+=("kill $held 2>/dev/null")
	wait_until test -s "$2" || fail "no listener on port $1"
}
# The monitor's port is picked before the monitor binds it: another process
# listening there first (here on purpose, as S3_SERVER_MON_PORT) makes the
# start try again on another, not fail or wait two minutes.
hold_port 0 "$T/taken"
S3_SERVER_MON_PORT=$(cat "$T/taken") "$SRV" start "$T/s3" >"$T/s3.env" 2>"$T/s3.log" ||
	{ cat "$T/s3.log"; fail "the S3 server did not start"; }
cleanup_hooks+=("\"$SRV\" stop \"$T/s3\" >/dev/null 2>&1")
grep -q "port $(cat "$T/taken") was taken by another process: starting again" "$T/s3.log" ||
	{ cat "$T/s3.log"; fail "the start did not see the monitor's port taken"; }
kill "$held"
. "$T/s3.env"
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_ENDPOINT_URL=$S3_ENDPOINT
export AWS_REGION=$S3_REGION
unset AWS_SESSION_TOKEN AWS_DEFAULT_REGION AWS_ENDPOINT_URL_S3
"$SRV" bucket "$T/s3" bkr-test
R=s3://bkr-test/repo

# s3get KEY FILE / s3put FILE KEY: the raw objects, behind bkr's back
# (--retry: a loaded server's 503 or a timeout is tried again, as bkr itself does)
s3curl() { curl -sSf --retry 3 --noproxy '*' --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
	-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }
# (SigV4 as curl signs it wants the query percent-encoded: '/' as %2F)
s3keys() { s3curl "$S3_ENDPOINT/bkr-test?list-type=2&prefix=${1//\//%2F}" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g' || true; }
# locks_older PREFIX SECONDS: PREFIX/locks/ holds objects, each last written more than
# SECONDS ago by the server's clock (Date - Last-Modified), which is how bkr judges a
# lock stale (docs/s3.md); if not, $locks_left is the seconds at least still to wait
locks_older() {
	local k h age keys
	locks_left=0.2
	keys=$(s3keys "$1/locks/")
	[ -n "$keys" ] || return 1
	for k in $keys; do
		h=$(s3curl -I "$S3_ENDPOINT/bkr-test/$k" | tr -d '\r') || return 1
		age=$(($(date -d "$(sed -n 's/^date: //Ip' <<<"$h")" +%s) - $(date -d "$(sed -n 's/^last-modified: //Ip' <<<"$h")" +%s)))
		[ "$age" -gt "$2" ] || { locks_left=$(($2 + 1 - age)); return 1; }
	done
}
# wait_locks_older PREFIX SECONDS: until locks_older (0) or two minutes have passed (1),
# what a test waits for instead of sleeping a fixed time; each try (a listing and a HEAD
# per lock, ~10 processes) after the time the server's clock said was left
wait_locks_older() {
	local end=$((SECONDS + 120))
	until locks_older "$1" "$2"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep "$locks_left"
	done
}

# the cases that meet a dead endpoint retry quickly (s3.retry_pause_ms: 10, 20, 40, 80, 150 ms; docs/config.md)
printf '{"repository": "s3://bkr-test/nokey", "workspace_root": "%s", "s3": {"retry_pause_ms": 10}}\n' "$T" >"$T/fast.json"

# --- errors: one line naming what is missing, nothing written
expect_exit 2 env -u AWS_ACCESS_KEY_ID "$BKR" init -r s3://bkr-test/nokey
one_line_error
grep -q "AWS_ACCESS_KEY_ID" "$T/err" || fail "a missing access key is not named: $(cat "$T/err")"
expect_exit 2 env -u AWS_SECRET_ACCESS_KEY "$BKR" init -r s3://bkr-test/nokey
grep -q "AWS_SECRET_ACCESS_KEY" "$T/err" || fail "a missing secret key is not named: $(cat "$T/err")"
expect_exit 8 env AWS_SECRET_ACCESS_KEY=wrong "$BKR" init -r s3://bkr-test/nokey
one_line_error
grep -q "secret key" "$T/err" || fail "a wrong secret key is not named: $(cat "$T/err")"
closed=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_exit 8 env AWS_ENDPOINT_URL=http://127.0.0.1:$closed BKR_CONFIG="$T/fast.json" "$BKR" init
one_line_error
grep -q "cannot reach the S3 endpoint http://127.0.0.1:$closed" "$T/err" || fail "a wrong endpoint is not named: $(cat "$T/err")"
expect_exit 3 "$BKR" init -r s3://no-such-bucket/x
grep -q "bucket 'no-such-bucket' does not exist" "$T/err" || fail "a missing bucket is not named: $(cat "$T/err")"
for cmd in list verify "create $T" "restore latest --target $T/nb" prune; do
	# shellcheck disable=SC2086
	expect_exit 3 "$BKR" -r s3://no-such-bucket/x $cmd
	one_line_error
	grep -q "bucket 'no-such-bucket' does not exist at $S3_ENDPOINT" "$T/err" || fail "$cmd: a missing bucket is not named: $(cat "$T/err")"
done
mkdir -p "$T/mnt-nb"
expect_exit 2 "$BKRFS" s3://no-such-bucket/x "$T/mnt-nb"   # bkrfs: 2 = the repository is missing (bkrfs.1)
grep -q "bucket 'no-such-bucket' does not exist at $S3_ENDPOINT" "$T/err" || fail "bkrfs: a missing bucket is not named: $(cat "$T/err")"
[ -z "$(s3keys nokey)" ] || fail "a failed init wrote objects"
pass "missing credentials, a wrong secret, a wrong endpoint and a missing bucket: one line each, nothing written"

# --- an endpoint that is not S3 (found by hostile testing: a web server's
# 404 page read as "not a bkrfs repository" or "no such object", exit 3; a
# catch-all 200 page as "config.json: not a JSON object", exit 4): named as
# not answering like S3, exit 8, whatever the command
cat >"$T/web.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def _a(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = b"<html><body>Not Found</body></html>\n"
        if len(sys.argv) > 3:  # a page of that many bytes
            body = b"<html><body>" + b"x" * int(sys.argv[3]) + b"</body></html>\n"
        self.send_response(int(sys.argv[2]))
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except OSError:
                pass  # bkr stops reading a page larger than what it asked for
    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _a
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
for status in 404 200; do
	/usr/bin/python3 "$T/web.py" "$T/web$status.port" "$status" >"$T/web$status.port" &
	cleanup_hooks+=("kill $! 2>/dev/null")
	web_pid[$status]=$!
done
for status in 404 200; do
	wait_line "$T/web$status.port" '^[0-9]' "${web_pid[$status]}" || fail "the HTML server ($status) did not start"
	web=http://127.0.0.1:$(head -1 "$T/web$status.port")
	for cmd in list init "create $T" verify; do
		# shellcheck disable=SC2086
		expect_exit 8 env AWS_ENDPOINT_URL="$web" "$BKR" -r s3://bkr-test/web $cmd
		one_line_error
		grep -q "s3://bkr-test/web: the endpoint $web does not answer like an S3 server (HTTP $status with an HTML page" "$T/err" ||
			fail "HTTP $status HTML, $cmd: $(cat "$T/err")"
	done
done
pass "an endpoint that answers HTML (404 or 200 to everything): named as not S3, exit 8"
# ... also when its page is larger than the object asked for (2 MiB; config.json
# may have 1 MiB): the transfer stops, and that was 'config.json: too large',
# exit 4, as if the repository were damaged
/usr/bin/python3 "$T/web.py" "$T/webbig.port" 200 2100000 >"$T/webbig.port" &
cleanup_hooks+=("kill $! 2>/dev/null")
wait_line "$T/webbig.port" '^[0-9]' $! || fail "the HTML server (2 MiB pages) did not start"
web=http://127.0.0.1:$(head -1 "$T/webbig.port")
for cmd in list verify init; do
	expect_exit 8 env AWS_ENDPOINT_URL="$web" "$BKR" -r s3://bkr-test/web $cmd
	one_line_error
	grep -q "s3://bkr-test/web: the endpoint $web does not answer like an S3 server (HTTP 200 with an HTML page" "$T/err" ||
		fail "a 2 MiB HTML page, $cmd: $(cat "$T/err")"
done
pass "an endpoint whose HTML page is larger than the object asked for: named as not S3, exit 8"

# --- two writers racing to publish the same object: exactly one wins
pids=()
for i in 1 2 3 4 5 6; do "$BKR" init -r s3://bkr-test/race >"$T/race$i.out" 2>&1 & pids+=($!); done
won=0
for p in "${pids[@]}"; do if wait "$p"; then won=$((won + 1)); fi; done
[ "$won" = 1 ] || { cat "$T"/race*.out; fail "$won of 6 racing inits succeeded, expected exactly 1"; }
expect_exit 0 "$BKR" list -r s3://bkr-test/race
pass "six hosts racing to create one repository: exactly one wins (If-None-Match)"
# a repository under another one's prefix is refused (the outer prune would take its objects for its own)
for inner in runs deeper/one; do
	expect_exit 2 "$BKR" init -r "s3://bkr-test/race/$inner"
	one_line_error
	grep -q "inside the repository s3://bkr-test/race" "$T/err" || fail "init under a repository's prefix: $(cat "$T/err")"
done
[ -z "$(s3keys race/runs)$(s3keys race/deeper)" ] || fail "a refused init wrote objects"
expect_exit 0 "$BKR" -r s3://bkr-test/race prune
pass "a repository under another one's prefix is refused; the outer one prunes"

# --- every backup type round-trips the edge-case tree
src=$T/src
make_edge_tree "$src"
expect_exit 0 "$BKR" init -r "$R"
expect_exit 7 "$BKR" init -r "$R"
expect_exit 0 "$BKR" -r "$R" create --type full "$src"
expect_exit 0 "$BKR" -r "$R" restore latest --target "$T/r1"
python3 "$HERE/treecmp.py" "$src" "$T/r1/src" || fail "full backup on S3 does not restore exactly"
# no pause for the next backups' ids: one made in the same second as its parent is dated a
# microsecond after it (docs/format.md), and a change shows in the ctime's nanoseconds
printf 'changed\n' >"$src/small.txt"
rm "$src/hard2"
printf 'new file\n' >"$src/added.txt"
find "$src" -depth -type d -exec touch -d '2020-06-07 08:09:10.111222333' {} +
for type in incremental differential snapshot; do
	expect_exit 0 "$BKR" -r "$R" create --type "$type" "$src" --json
	id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/out")
	rm -rf "$T/r2"
	expect_exit 0 "$BKR" -r "$R" restore "$id" --target "$T/r2"
	python3 "$HERE/treecmp.py" "$src" "$T/r2/src" || fail "$type backup on S3 does not restore exactly"
done
pass "full, incremental, differential and snapshot backups on S3 restore the edge-case tree exactly"

# --- create reads through the disk cache ($XDG_CACHE_HOME/bkrfs, kept in $T by lib.sh; docs/s3.md)
CR=s3://bkr-test/cached
KS=$T/ksrc
for d in $(seq 1 30); do mkdir -p "$KS/d$d"; for f in 1 2 3; do printf 'file %d %d\n' "$d" "$f" >"$KS/d$d/f$f"; done; done
expect_exit 0 "$BKR" init -r "$CR"
# the full backup by "another host" (its own cache); `bkr -vv` logs every request
XDG_CACHE_HOME=$T/host-b expect_exit 0 "$BKR" -r "$CR" create --type full "$KS"
requests() { grep -c "request $1" "$T/err" || true; }
expect_exit 0 "$BKR" -vv -r "$CR" create "$KS"
[ "$(requests 'GET tree/')" -gt 0 ] || fail "the first incremental did not fetch its parent's trees: $(cat "$T/err")"
expect_exit 0 "$BKR" -vv -r "$CR" create "$KS"
[ "$(requests 'GET tree/')" = 0 ] && [ "$(requests 'GET index/')" = 0 ] && [ "$(requests 'GET backups/')" = 0 ] ||
	fail "a second incremental fetched trees, index files or manifests: $(grep 'request GET [a-z]' "$T/err")"
n=$(requests '')
[ "$n" -le 13 ] || fail "a no-change incremental made $n requests (docs/s3.md: 13): $(grep request "$T/err")"
# one listing of backups/ finds the parent and dates the backup (docs/format.md)
[ "$(requests 'GET (bucket)?list-type=2&prefix=cached%2Fbackups%2F:')" = 1 ] ||
	fail "a no-change incremental listed backups/ more than once: $(grep 'request GET (bucket)' "$T/err")"
pass "create on S3: a second incremental fetches no tree, index file or manifest, lists backups/ once ($n requests in all)"
# damaged cache files are caught by their checksum and fetched again, never used
croot=$(dirname "$(grep -lx "$CR at $S3_ENDPOINT" "$XDG_CACHE_HOME"/bkrfs/*/location)")
tp=$(find "$croot/w/tree" -type f | head -1)
ix=$(find "$croot/w/index" -type f | head -1)
[ -n "$tp" ] && [ -n "$ix" ] || fail "no tree pack or index file in the cache $croot"
python3 -c 'import sys; f=open(sys.argv[1], "r+b"); f.seek(20); b=f.read(1); f.seek(20); f.write(bytes([b[0] ^ 1]))' "$tp"
truncate -s -1 "$ix"
printf 'changed under a damaged cache\n' >"$KS/d3/f1"
expect_exit 0 "$BKR" -vv -r "$CR" create "$KS"
grep -q "request GET tree/.*$(basename "$tp")" "$T/err" || fail "the damaged cached tree pack was not fetched again"
grep -q "request GET index/.*$(basename "$ix")" "$T/err" || fail "the truncated cached index file was not fetched again"
rm -rf "$T/rk"
expect_exit 0 "$BKR" -r "$CR" restore latest --target "$T/rk"
python3 "$HERE/treecmp.py" "$KS" "$T/rk/ksrc" >/dev/null || fail "a backup made over a damaged cache does not restore exactly"
pass "a flipped byte in a cached tree pack and a truncated cached index file: fetched again, the backup exact"
# a tree pack truncated in the bucket, read once (kept so in the cache), then put right: fetched again
CD=s3://bkr-test/cachedamage
CDS=$T/cdsrc
mkdir -p "$CDS/d"
for i in $(seq 1 40); do printf 'file %d\n' "$i" >"$CDS/d/f$i"; done
expect_exit 0 "$BKR" init -r "$CD"
expect_exit 0 "$BKR" -r "$CD" create --type full "$CDS"
tk=$(s3keys cachedamage/tree/ | head -1)
s3curl "$S3_ENDPOINT/bkr-test/$tk" -o "$T/tree.good"
head -c 100 "$T/tree.good" >"$T/tree.bad"
s3curl -X PUT --data-binary @"$T/tree.bad" "$S3_ENDPOINT/bkr-test/$tk" -o /dev/null
printf 'two\n' >"$CDS/d/g"
rc=0
XDG_CACHE_HOME=$T/cd-cache "$BKR" -r "$CD" create "$CDS" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 4 ] || [ "$rc" = 6 ] || fail "a backup over a truncated parent tree pack: exit $rc: $(cat "$T/err")"
grep -q "$tk: truncated" "$T/err" || fail "the truncated tree pack is not named: $(cat "$T/err")"
# what it published (exit 6: files read again in full) goes, so that the next one reads the same parent
for id in $("$BKR" -r "$CD" list --json | python3 -c 'import json,sys; print(" ".join(m["backup_id"] for m in json.load(sys.stdin)[1:]))'); do
	expect_exit 0 "$BKR" -r "$CD" delete "$id"
done
s3curl -X PUT --data-binary @"$T/tree.good" "$S3_ENDPOINT/bkr-test/$tk" -o /dev/null
printf 'three\n' >"$CDS/d/h"
XDG_CACHE_HOME=$T/cd-cache expect_exit 0 "$BKR" -r "$CD" create "$CDS"
! grep -q "truncated\|unreadable" "$T/err" || fail "the cached short copy of the tree pack was used again: $(cat "$T/err")"
XDG_CACHE_HOME=$T/cd-cache expect_exit 0 "$BKR" -r "$CD" verify --read-data
rm -rf "$T/rk"
XDG_CACHE_HOME=$T/cd-cache expect_exit 0 "$BKR" -r "$CD" restore latest --target "$T/rk"
python3 "$HERE/treecmp.py" "$CDS" "$T/rk/cdsrc" >/dev/null || fail "the backup after the tree pack was put right does not restore exactly"
pass "a tree pack truncated in the bucket and then put right: the cached short copy is fetched again, the next backup exact"
# the same for a manifest: its cached copy fails to parse, is dropped and read again from the bucket
mk=$(s3keys cachedamage/backups/ | head -1)
mid=$(basename "$mk" .json)
s3curl "$S3_ENDPOINT/bkr-test/$mk" -o "$T/man.good"
head -c 50 "$T/man.good" >"$T/man.bad"
for id in $("$BKR" -r "$CD" list --json | python3 -c 'import json,sys; print(" ".join(m["backup_id"] for m in json.load(sys.stdin)[1:]))'); do
	expect_exit 0 "$BKR" -r "$CD" delete "$id"
done
s3curl -X PUT --data-binary @"$T/man.bad" "$S3_ENDPOINT/bkr-test/$mk" -o /dev/null
XDG_CACHE_HOME=$T/cm-cache "$BKR" -r "$CD" create "$CDS" --json >"$T/out" 2>"$T/err" || true
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("parent"))' "$T/out")" != "$mid" ] ||
	fail "a backup took a truncated manifest as parent: $(head -c 400 "$T/out")"
for id in $("$BKR" -r "$CD" list --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(m["backup_id"] for m in json.load(sys.stdin)))'); do
	expect_exit 0 "$BKR" -r "$CD" delete "$id"
done
s3curl -X PUT --data-binary @"$T/man.good" "$S3_ENDPOINT/bkr-test/$mk" -o /dev/null
printf 'four\n' >"$CDS/d/i"
XDG_CACHE_HOME=$T/cm-cache expect_exit 0 "$BKR" -r "$CD" create "$CDS" --json
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["parent"])' "$T/out")" = "$mid" ] ||
	fail "the backup after the manifest was put right did not take it as parent: $(head -c 400 "$T/out")"
pass "a manifest truncated in the bucket and then put right: the cached copy that fails to parse is read again"
# another host's backup in between: the next incremental takes it as parent (listings are never cached)
printf 'from host b\n' >"$KS/d1/f1"
XDG_CACHE_HOME=$T/host-b expect_exit 0 "$BKR" -r "$CR" create "$KS" --json
idb=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/out")
printf 'from host a\n' >"$KS/d2/f1"
expect_exit 0 "$BKR" -r "$CR" create "$KS" --json
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["parent"])' "$T/out")" = "$idb" ] ||
	fail "the incremental after another host's backup did not take it as parent: $(head -c 400 "$T/out")"
rm -rf "$T/rk"
expect_exit 0 "$BKR" -r "$CR" restore latest --target "$T/rk"
python3 "$HERE/treecmp.py" "$KS" "$T/rk/ksrc" >/dev/null || fail "the backup after another host's does not restore exactly"
expect_exit 0 "$BKR" -r "$CR" verify --read-data
pass "another host's backup in between: taken as parent, restored exactly, verify --read-data clean"
# verify reads records/ once: the backups' pins and tags, the runs' and its own
# earlier results come from one listing and one GET per record
expect_exit 0 "$BKR" -r "$CR" pin latest
nrec=$(s3keys cached/records/ | grep -c '\.json$' || true)
[ "$nrec" -ge 2 ] || fail "expected a pin and a verify record in cached/records/, found $nrec"
expect_exit 0 "$BKR" -vv -r "$CR" verify
[ "$(requests 'GET (bucket)?list-type=2&prefix=cached%2Frecords%2F:')" = 1 ] && [ "$(requests 'GET records/')" = "$nrec" ] ||
	fail "verify did not read records/ once ($nrec records): $(grep 'request GET' "$T/err" | grep records)"
pass "verify on S3 lists records/ once and reads each of its $nrec records once"

# --- the read commands
expect_exit 0 "$BKR" -r "$R" list --json
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/out")
[ "$n" = 4 ] || fail "list shows $n backups, expected 4"
expect_exit 0 "$BKR" -r "$R" list --json
cp "$T/out" "$T/list.json"
expect_exit 0 "$BKR" -r "$R" show latest
expect_exit 0 "$BKR" -r "$R" ls latest src
grep -q "small.txt" "$T/out" || fail "ls does not list small.txt"
expect_exit 0 "$BKR" -r "$R" cat latest src/small.txt
[ "$(cat "$T/out")" = changed ] || fail "cat gave '$(cat "$T/out")'"
first=$(python3 -c 'import json,sys; print(min(m["backup_id"] for m in json.load(open(sys.argv[1])) if "_full_" in m["backup_id"]))' "$T/list.json")
expect_exit 1 "$BKR" -r "$R" diff --exit-code "$first" latest
grep -q "added.txt" "$T/out" || fail "diff does not show added.txt"
expect_exit 0 "$BKR" -r "$R" verify --read-data
pass "list, show, ls, cat, diff and verify --read-data on S3"

# --- an encrypted repository on S3: round trip, verify, and no plaintext in the bucket
E=$T/esrc
mkdir -p "$E/dir-marker-qzx"
head -c 200000 < <(yes 'plaintext-marker-qzx') >"$E/dir-marker-qzx/name-marker-qzx.txt"
head -c 500000 /dev/urandom >"$E/r.bin"
export BKR_PASSWORD='s3: correct horse'
export BKR_TEST_KDF_N=1024 # cheap keys (test builds; test_crypto checks the real parameters)
expect_exit 0 "$BKR" init -r s3://bkr-test/enc --encryption aes-256-gcm
expect_exit 0 "$BKR" -r s3://bkr-test/enc create --type full "$E"
expect_exit 0 "$BKR" -r s3://bkr-test/enc restore latest --target "$T/re"
python3 "$HERE/treecmp.py" "$E" "$T/re/esrc" || fail "an encrypted backup on S3 does not restore exactly"
expect_exit 0 "$BKR" -r s3://bkr-test/enc verify --read-data
BKR_PASSWORD='not it' expect_exit 9 "$BKR" -r s3://bkr-test/enc list
n=0
for k in $(s3keys enc/); do
	s3curl "$S3_ENDPOINT/bkr-test/$k" -o "$T/obj"
	! grep -q "marker-qzx" "$T/obj" || fail "plaintext in the encrypted repository's object $k"
	n=$((n + 1))
done
[ "$n" -gt 5 ] || fail "only $n objects in the encrypted repository"
# config.json (and its copy) edited to say "none" beside key files: the key
# files give it away on S3 as on a local repository (found by hostile
# testing: an S3 listing never saw them, and the message said "keys/ emptied")
s3curl "$S3_ENDPOINT/bkr-test/enc/config.json" -o "$T/enc-config.json"
python3 - "$T/enc-config.json" "$T/enc-none.json" <<'PY'
import hashlib, json, sys
c = json.loads(open(sys.argv[1]).read())
c["encryption"] = "none"; c["features"]["incompat"].remove("encryption")
del c["sha256"]
t = json.dumps(c, separators=(",", ":"))[:-1] + ',"sha256":"' + "0" * 64 + '"}'
open(sys.argv[2], "w").write(t.replace("0" * 64, hashlib.sha256(t.encode()).hexdigest()))
PY
s3curl "$S3_ENDPOINT/bkr-test/enc/config.copy.json" -o "$T/enc-config.copy.json"
for k in config.json config.copy.json; do s3curl -T "$T/enc-none.json" "$S3_ENDPOINT/bkr-test/enc/$k" -o /dev/null; done
expect_exit 4 "$BKR" -r s3://bkr-test/enc list
one_line_error
grep -q "config.json says the repository is not encrypted, but keys/ holds key files" "$T/err" ||
	fail "a downgraded config.json on S3: $(cat "$T/err")"
s3curl -T "$T/enc-config.json" "$S3_ENDPOINT/bkr-test/enc/config.json" -o /dev/null
s3curl -T "$T/enc-config.copy.json" "$S3_ENDPOINT/bkr-test/enc/config.copy.json" -o /dev/null
BKR_PASSWORD='s3: correct horse' expect_exit 0 "$BKR" -r s3://bkr-test/enc list
# two holders removing each other's key at once (found by hostile testing:
# both succeeded, keys/ left empty): the second waits for the keys lock
printf 'bob: s3\n' >"$T/pw-s3b"
expect_exit 0 "$BKR" -r s3://bkr-test/enc key add --new-password-file "$T/pw-s3b" --json
kb=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["added"])' "$T/out")
ka=$(s3keys enc/keys/ | sed 's|.*/||; s|\.json$||' | grep -v "$kb")
BKR_FAULT=key-remove:1:stop "$BKR" -r s3://bkr-test/enc key remove "$kb" >"$T/ra.out" 2>"$T/ra.err" &
ra=$!
cleanup_hooks+=("kill -9 $ra 2>/dev/null")
wait_stopped "$ra" || fail "S3: the first key remove never paused after its checks"
# a stopped (or killed) holder's lock stays until it is stale: --no-wait
# fails at once naming the holder; a waiting command says it waits, once
expect_exit 5 timeout 30 "$BKR" -r s3://bkr-test/enc --password-file "$T/pw-s3b" key remove "$ka" --no-wait
one_line_error
grep -q "keys lock: s3://bkr-test/enc/locks/keys.lock: held exclusively by pid $ra on host .*(refreshed [0-9]* s ago; a lock not refreshed for 300 s is stale); not waiting (--no-wait)" "$T/err" ||
	fail "S3: key remove --no-wait while the keys lock is held: $(cat "$T/err")"
"$BKR" -r s3://bkr-test/enc --password-file "$T/pw-s3b" key remove "$ka" >"$T/rb.out" 2>"$T/rb.err" &
rb=$!
cleanup_hooks+=("kill -9 $rb 2>/dev/null")
wait_line "$T/rb.err" "^bkr key: waiting for the keys lock" "$rb" ||
	fail "S3: the second key remove did not wait, or not saying so: $(cat "$T/rb.out" "$T/rb.err")"
sleep 1
kill -0 "$rb" 2>/dev/null || fail "S3: the second key remove did not go on waiting: $(cat "$T/rb.out" "$T/rb.err")"
[ "$(grep -c "^bkr key: waiting for the keys lock (s3://bkr-test/enc/locks/keys.lock: held exclusively by pid $ra on host .*(refreshed [0-9]* s ago; a lock not refreshed for 300 s is stale))" "$T/rb.err")" = 1 ] ||
	fail "S3: the second key remove waits without saying so: $(cat "$T/rb.err")"
kill -CONT "$ra"
rca=0 rcb=0
wait "$ra" || rca=$?
wait "$rb" || rcb=$?
[ "$rca" = 0 ] && [ "$rcb" = 2 ] || fail "S3 key removal race: exits $rca and $rcb: $(cat "$T/ra.err" "$T/rb.err")"
[ "$(s3keys enc/keys/ | sed 's|.*/||')" = "$ka.json" ] || fail "S3: keys/ after two removals: $(s3keys enc/keys/)"
unset BKR_PASSWORD BKR_TEST_KDF_N
pass "an encrypted repository on S3: restored exactly, verify --read-data clean, a wrong passphrase refused, no plaintext in $n objects"

# --- a backup killed mid-upload, and one whose server stops mid-upload
S=$T/small
mkdir -p "$S"
head -c 3000000 /dev/urandom >"$S/a.bin"
R2=s3://bkr-test/crash
expect_exit 0 "$BKR" init -r "$R2"
expect_exit 0 "$BKR" -r "$R2" create --type full "$S"
before=$(s3keys crash/backups/)
[ -n "$before" ] || fail "the bucket listing of the test sees no manifest"
head -c 3000000 /dev/urandom >"$S/b.bin"
rc=0
BKR_FAULT=s3-send:1:crash "$BKR" -r "$R2" create "$S" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 137 ] || { cat "$T/err"; fail "the backup was not killed mid-upload (exit $rc)"; }
[ "$(s3keys crash/backups/)" = "$before" ] || fail "a killed backup published a manifest"
expect_exit 0 "$BKR" -r "$R2" verify --read-data
head -c 3000000 /dev/urandom >"$S/c.bin"
BKR_FAULT=s3-send:1:stop BKR_CONFIG="$T/fast.json" "$BKR" -r "$R2" create "$S" >"$T/out" 2>"$T/err" &
pid=$!
wait_stopped "$pid" || { cat "$T/err"; fail "the backup never reached the middle of an upload"; }
"$SRV" gateway-stop "$T/s3"
kill -CONT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 8 ] || { cat "$T/err"; fail "a backup whose server went away: expected exit 8, got $rc"; }
grep -q "cannot reach the S3 endpoint" "$T/err" || fail "the lost server is not named: $(cat "$T/err")"
# the gateway's port, taken while it was down: the start says so at once, every
# time (a gateway that cannot bind often exits before its log says why: 1 try
# in 8 was "rgw exited before it listened")
hold_port "${S3_ENDPOINT##*:}" "$T/taken2"
for _ in 1 2 3 4 5 6 7 8; do
	expect_exit 1 "$SRV" gateway-start "$T/s3"
	grep -q "port ${S3_ENDPOINT##*:} is taken by another process" "$T/err" ||
		fail "a taken port is not named: $(cat "$T/err")"
done
kill "$held"
wait "$held" || true
"$SRV" gateway-start "$T/s3"
[ "$(s3keys crash/backups/)" = "$before" ] || fail "an interrupted backup published a manifest"
expect_exit 0 "$BKR" -r "$R2" verify --read-data
expect_exit 0 "$BKR" -r "$R2" restore latest --target "$T/r3"
cmp "$S/a.bin" "$T/r3/small/a.bin" || fail "the earlier backup changed"
expect_exit 0 "$BKR" -r "$R2" create "$S"
pass "a backup killed mid-upload and one whose server stopped mid-upload: earlier backups intact, verify clean"

# --- a writer killed after a pack was uploaded: its mark (locks/writers.lock)
# stays until it is stale, so verify cannot tell it from a live writer; it
# says "possibly" and names the mark's holder (found by hostile testing:
# "left by a command writing to the repository now" with nothing running)
mkdir -p "$T/big"
head -c 40000000 /dev/urandom >"$T/big/big.bin"
expect_exit 0 "$BKR" init -r s3://bkr-test/dead
BKR_FAULT=s3-send:2:crash "$BKR" -r s3://bkr-test/dead create "$T/big" >/dev/null 2>&1 || true
rm -r "$T/big"
expect_exit 0 "$BKR" -r s3://bkr-test/dead verify
grep -q "leftover: .*data/.*pack not referenced" "$T/out" "$T/err" || { cat "$T/out" "$T/err"; fail "the killed writer's pack is no leftover"; }
grep -q "possibly a command writing to the repository now (locks/writers.lock: .*held shared by pid [0-9]* on host .*refreshed [0-9]* s ago" "$T/out" "$T/err" ||
	{ cat "$T/out" "$T/err"; fail "verify calls a killed S3 writer's leftover the work of a running command"; }
pass "a writer killed on S3: verify says its leftover is possibly a running command's, naming the mark's holder"

# --- locks: a dead holder's lock is named, then stale
cat >"$T/bkr.json" <<EOF
{"repository": "$R2", "workspace_root": "$S",
 "s3": {"endpoint_url": "$S3_ENDPOINT", "access_key_id": "$S3_ACCESS_KEY",
        "secret_access_key": "$S3_SECRET_KEY", "lock_stale_seconds": 3}}
EOF
head -c 3000000 /dev/urandom >"$S/d.bin"
# the backup killed above left a lock that is stale after its own 300 s (docs/s3.md): removed by hand
for k in $(s3keys crash/locks/); do s3curl -X DELETE "$S3_ENDPOINT/bkr-test/$k" -o /dev/null; done
BKR_FAULT=s3-send:1:crash env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL "$BKR" -c "$T/bkr.json" create "$S" >/dev/null 2>&1 || true
[ -n "$(s3keys crash/locks/)" ] || fail "a killed backup left no lock object"
# judged by a host whose own period is 120 s (a lock is stale after the larger of
# the holder's and the judge's): still held, however slowly this runs (with the
# 3 s period of bkr.json a loaded machine took longer than that to get here)
sed 's/"lock_stale_seconds": 3/"lock_stale_seconds": 120/' "$T/bkr.json" >"$T/bkr-long.json"
expect_exit 5 env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL "$BKR" -c "$T/bkr-long.json" prune --no-wait
grep -q "stale" "$T/err" || fail "the lock message does not say when a lock is stale: $(cat "$T/err")"
wait_locks_older crash 3 || fail "the killed backup's lock objects never grew 3 s old: $(s3keys crash/locks/)"
expect_exit 0 env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL "$BKR" -c "$T/bkr.json" prune --no-wait
expect_exit 0 "$BKR" -r "$R2" verify --read-data
pass "a killed backup's lock blocks prune, named; once stale (s3.lock_stale_seconds) it is removed"

# --- a backup paused past its lock's stale period, its lock taken over by prune: it publishes nothing (exit 5)
LK=s3://bkr-test/lost
printf '{"repository": "%s", "workspace_root": "%s", "s3": {"lock_stale_seconds": 2}}\n' "$LK" "$T" >"$T/lost2.json"
printf '{"repository": "%s", "workspace_root": "%s"}\n' "$LK" "$T" >"$T/lost300.json"
L=$T/lostsrc
mkdir -p "$L"
head -c 2000000 /dev/urandom >"$L/dup.bin"
expect_exit 0 "$BKR" init -r "$LK"
expect_exit 0 "$BKR" -c "$T/lost2.json" create --type full "$L" --json
expect_exit 0 "$BKR" -c "$T/lost2.json" delete "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/out")"
head -c 3000000 /dev/urandom >"$L/new.bin"
# stopped in the middle of its first pack (new.bin), after deduplicating dup.bin against the deleted backup's pack
BKR_FAULT=s3-send:1:stop "$BKR" -c "$T/lost2.json" create --type full "$L" >"$T/lost.out" 2>"$T/lost.err" &
pid=$!
wait_stopped "$pid" || { cat "$T/lost.err"; fail "the backup never reached the middle of an upload"; }
wait_locks_older lost 2 || fail "the stopped backup's lock objects never grew 2 s old: $(s3keys lost/locks/)"
expect_exit 0 "$BKR" -c "$T/lost2.json" prune --no-wait   # the stopped backup's lock is stale: removed
kill -CONT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 5 ] || { cat "$T/lost.err"; fail "a backup whose lock was taken over: expected exit 5, got $rc"; }
[ "$(wc -l <"$T/lost.err")" = 1 ] && grep -q "locks/repo.lock-s-.*repository lock lost.*nothing was published" "$T/lost.err" ||
	fail "the lost lock is not one line naming it: $(cat "$T/lost.err")"
[ -z "$(s3keys lost/backups/)" ] || fail "a backup whose lock was taken over published a manifest"
expect_exit 0 "$BKR" -c "$T/lost2.json" verify
# a holder's own stale period (300 s) is honoured by a host configured with 2 s
BKR_FAULT=s3-send:1:stop "$BKR" -c "$T/lost300.json" create --type full "$L" >"$T/lost.out" 2>"$T/lost.err" &
pid=$!
wait_stopped "$pid" || { cat "$T/lost.err"; fail "the backup never reached the middle of an upload"; }
# stale for the 2 s of lost2.json: only the holder's own 300 s keeps it
wait_locks_older lost 2 || fail "the stopped backup's lock objects never grew 2 s old: $(s3keys lost/locks/)"
expect_exit 5 "$BKR" -c "$T/lost2.json" prune --no-wait
grep -q "stale after\|is stale" "$T/err" && grep -q "300 s is stale" "$T/err" ||
	fail "prune does not name the holder's own stale period: $(cat "$T/err")"
kill -CONT "$pid"
wait "$pid" || { cat "$T/lost.err"; fail "the backup whose lock another host left alone failed"; }
expect_exit 0 "$BKR" -c "$T/lost2.json" verify
pass "a backup stopped past its lock's stale period and taken over by prune fails (exit 5, one line) and publishes nothing; a holder's own stale period wins over a shorter one of another host"

# --- a prune paused past its lock's stale period, its lock taken over by a backup: it moves nothing after that (exit 5)
PK=s3://bkr-test/lostprune
printf '{"repository": "%s", "workspace_root": "%s", "s3": {"lock_stale_seconds": 2}}\n' "$PK" "$T" >"$T/lostp.json"
P=$T/lostprunesrc
mkdir -p "$P"
head -c 2000000 /dev/urandom >"$P/old.bin"
expect_exit 0 "$BKR" init -r "$PK"
expect_exit 0 "$BKR" -c "$T/lostp.json" create --type full "$P" --json
old=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/out")
rm "$P/old.bin"
head -c 1000000 /dev/urandom >"$P/new.bin"
expect_exit 0 "$BKR" -c "$T/lostp.json" create --type full "$P"
expect_exit 0 "$BKR" -c "$T/lostp.json" delete "$old"   # old.bin's pack and the old tree: unused
# stopped after writing its trash batch, before moving the unused packs into trash/
BKR_FAULT=trash-move:1:stop "$BKR" -c "$T/lostp.json" prune >"$T/lostp.out" 2>"$T/lostp.err" &
pid=$!
wait_stopped "$pid" || { cat "$T/lostp.err"; fail "prune never reached its trash moves"; }
packs=$(s3keys lostprune/data/; s3keys lostprune/tree/)
trash=$(s3keys lostprune/trash/)   # the deleted backup's manifest and the stopped prune's batch
[ -n "$(s3keys lostprune/trash/batch-)" ] || fail "the stopped prune wrote no trash batch"
wait_locks_older lostprune 2 || fail "the stopped prune's lock objects never grew 2 s old: $(s3keys lostprune/locks/)"
# another host's backup finds the stopped prune's exclusive lock stale, removes it and runs
head -c 100000 /dev/urandom >"$P/newer.bin"
expect_exit 0 "$BKR" -c "$T/lostp.json" create "$P"
kill -CONT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 5 ] || { cat "$T/lostp.err"; fail "a prune whose lock was taken over: expected exit 5, got $rc"; }
[ "$(wc -l <"$T/lostp.err")" = 1 ] &&
	grep -q "locks/repo.lock-x-.*repository lock lost.*nothing was published, moved or removed" "$T/lostp.err" ||
	fail "the lost lock is not one line naming it: $(cat "$T/lostp.err")"
for k in $packs; do
	[ -n "$(s3keys "$k")" ] || fail "a prune whose lock was taken over moved $k"
done
[ "$(s3keys lostprune/trash/)" = "$trash" ] || fail "a prune whose lock was taken over moved objects into trash: $(s3keys lostprune/trash/)"
expect_exit 0 "$BKR" -c "$T/lostp.json" verify --read-data
# the packs its new index no longer names are leftovers: the next prune moves them once past the grace period
expect_exit 0 "$BKR" -c "$T/lostp.json" prune --grace 0 --json
json_assert "$T/out" 'r["leftover_packs"] == 2 and r["moved_to_trash_bytes"] > 1900000' ||
	fail "the next prune did not move the unused packs: $(cat "$T/out")"
expect_exit 0 "$BKR" -c "$T/lostp.json" verify --read-data
expect_exit 0 "$BKR" -c "$T/lostp.json" restore latest --target "$T/rlostp"
cmp "$P/new.bin" "$T/rlostp/lostprunesrc/new.bin" && cmp "$P/newer.bin" "$T/rlostp/lostprunesrc/newer.bin" ||
	fail "the latest backup does not restore after the lost prune"
pass "a prune stopped past its lock's stale period and taken over by a backup fails (exit 5, one line) and moves nothing into trash"

# --- objects the server refuses to give (a bucket policy): that error (exit 8), never "damaged"
"$SRV" bucket "$T/s3" bkr-deny
DR=s3://bkr-deny/r
expect_exit 0 "$BKR" init -r "$DR"
expect_exit 0 "$BKR" -r "$DR" create --type full "$S"
deny() { # deny GetObject on the keys below PREFIX/ of bkr-deny
	s3curl -X PUT --data-binary '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkr-deny/r/'"$1"'/*"}]}' \
		"$S3_ENDPOINT/bkr-deny?policy=" -o /dev/null || fail "the bucket policy was refused"
}
deny backups
for cmd in list "restore latest --target $T/rdeny" verify "repair -n"; do
	# shellcheck disable=SC2086
	expect_exit 8 "$BKR" -r "$DR" $cmd
	one_line_error
	grep -q "backups/.*access denied by $S3_ENDPOINT" "$T/err" || fail "$cmd: the denied manifest is not named: $(cat "$T/err")"
	! grep -qi "damaged\|delete --force" "$T/out" "$T/err" || fail "$cmd calls a denied manifest damaged: $(cat "$T/out" "$T/err")"
done
deny data
for cmd in verify "verify --read-data" "repair -n"; do
	# shellcheck disable=SC2086
	expect_exit 8 "$BKR" -r "$DR" $cmd
	one_line_error
	grep -q "data/.*access denied by $S3_ENDPOINT" "$T/err" || fail "$cmd: the denied pack is not named: $(cat "$T/err")"
done
s3curl -X DELETE "$S3_ENDPOINT/bkr-deny?policy=" -o /dev/null
expect_exit 0 "$BKR" -r "$DR" verify --read-data
pass "a manifest or pack the server denies: list, restore latest, verify, repair -n exit 8 naming it, never 'damaged'"

# --- text from the bucket (a lock's host, a manifest's key) is escaped in messages: no forged line, no ESC
EV=s3://bkr-test/evil
expect_exit 0 "$BKR" init -r "$EV"
printf '{"host":"evil\nFAKE LINE: all good\033[31mRED","pid":1}' >"$T/evil.lock"
s3curl -X PUT --data-binary @"$T/evil.lock" "$S3_ENDPOINT/bkr-test/evil/locks/repo.lock-x-evil" -o /dev/null
expect_exit 5 "$BKR" -r "$EV" create --no-wait "$S"
one_line_error
grep -qF 'host evil\x0aFAKE LINE: all good\x1b[31mRED' "$T/err" || fail "the lock's host is not escaped: $(cat -A "$T/err")"
s3curl -X DELETE "$S3_ENDPOINT/bkr-test/evil/locks/repo.lock-x-evil" -o /dev/null
printf '{}' | s3curl -X PUT --data-binary @- "$S3_ENDPOINT/bkr-test/evil/backups/z%0AFAKE%20LINE%1B%5B31m.json" -o /dev/null
expect_exit 4 "$BKR" -r "$EV" list   # its only manifest is damaged
! grep -q '^FAKE' "$T/err" || fail "a manifest's key forged a line: $(cat -A "$T/err")"
grep -qF 'backups/z\x0aFAKE LINE\x1b[31m.json' "$T/err" || fail "the manifest's key is not escaped: $(cat -A "$T/err")"
! grep -q $'\033' "$T/err" "$T/out" || fail "an escape byte reached the output"
pass "a lock's host and a manifest's key holding a newline and an escape sequence: escaped, one line each"

# the configuration's s3 object serves a repository named with -r too
expect_exit 0 env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL "$BKR" -c "$T/bkr.json" -r s3://bkr-test/viacfg init
expect_exit 0 env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL "$BKR" -c "$T/bkr.json" -r s3://bkr-test/viacfg list
[ -n "$(s3keys viacfg/config)" ] || fail "init with -r and the configuration's credentials wrote no config object"
pass "-c with -r s3://...: the configuration's credentials and endpoint are used"

# --- repair on S3: every index object lost, the index rebuilt from the packs' footers
for k in $(s3keys crash/index/); do s3curl -X DELETE "$S3_ENDPOINT/bkr-test/$k" -o /dev/null; done
[ -z "$(s3keys crash/index/)" ] || fail "the index objects are still there"
expect_exit 1 "$BKR" -r "$R2" verify
expect_exit 0 "$BKR" -r "$R2" repair
grep -q "rewritten as one index file" "$T/out" || fail "repair does not say it rewrote the index: $(cat "$T/out")"
[ "$(s3keys crash/index/ | wc -l)" = 1 ] || fail "repair did not write one index object"
expect_exit 0 "$BKR" -r "$R2" verify --read-data
expect_exit 0 "$BKR" -r "$R2" repair --json
python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["rewritten"] is not False)' "$T/out" ||
	fail "a second repair rewrote the index: $(cat "$T/out")"
pass "repair on S3: every index object lost, rebuilt from the packs' footers (ranged GETs), verify --read-data clean"

# --- a flipped byte in a stored pack is caught by verify --read-data
pack=$(s3keys crash/data/ | grep '\.pack$' | head -1)
[ -n "$pack" ] || fail "no data pack in the bucket"
s3curl "$S3_ENDPOINT/bkr-test/$pack" -o "$T/pack"
flip_byte_in_blob "$T/pack"
s3curl -X PUT --data-binary @"$T/pack" "$S3_ENDPOINT/bkr-test/$pack" -o /dev/null
expect_exit 1 "$BKR" -r "$R2" verify --read-data
grep -q "$(basename "$pack" .pack)" "$T/out" "$T/err" || fail "verify does not name the damaged pack"
pass "a flipped byte in a pack on S3 is caught by verify --read-data"

# --- repair takes the damaged blobs out of the index; the next backup stores them again
expect_exit 1 "$BKR" -r "$R2" repair
expect_exit 0 "$BKR" -r "$R2" create "$S"
expect_exit 0 "$BKR" -r "$R2" verify latest --read-data
rm -rf "$T/r4"
expect_exit 0 "$BKR" -r "$R2" restore latest --target "$T/r4"
python3 "$HERE/treecmp.py" "$S" "$T/r4/small" >/dev/null || fail "the healed backup does not restore exactly"
pass "repair on S3 takes the damaged blobs out of the index; the next backup stores them again; verify --read-data clean"

# --- scan, recover and batch with the backup strategy on an S3 repository; the run is stored there
W=$T/ws
mkdir -p "$W/conv"
for i in 1 2 3 4 5 6; do printf '{"id":%d,"text":"conversation %d"}\n' "$i" "$i" >"$W/conv/c$i.json"; done
cat >"$T/rec.json" <<EOF
{"repository": "s3://bkr-test/rec", "workspace_root": "$W",
 "recovery": {"staging_dir": "$T/staged",
              "rules": [{"pattern": "conv/{id}.json", "strategies": ["backup"]}]}}
EOF
expect_exit 0 "$BKR" init -r s3://bkr-test/rec
expect_exit 0 "$BKR" create -c "$T/rec.json" --type full
expect_exit 0 "$BKR" scan -c "$T/rec.json"
(cd "$W" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/rec-before.sha"
rm "$W/conv/c1.json" "$W/conv/c2.json"
printf '{"id":' >"$W/conv/c3.json"
expect_exit 1 "$BKR" scan -c "$T/rec.json" --json
python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["found"] != 3)' "$T/out" ||
	fail "scan on S3 does not find the three damaged files: $(head -c 600 "$T/out")"
expect_exit 0 "$BKR" recover -c "$T/rec.json" --file conv/c1.json --apply
expect_exit 0 "$BKR" batch -c "$T/rec.json" --apply --json
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(not (r["summary"]["recovered"] == 2 and r["storage"]["kind"] == "repository"))' "$T/out" ||
	fail "batch on S3: $(head -c 600 "$T/out")"
(cd "$W" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/rec-after.sha"
diff "$T/rec-before.sha" "$T/rec-after.sha" || fail "the recovered files differ"
expect_exit 0 "$BKR" scan -c "$T/rec.json"
expect_exit 0 "$BKR" recovered -c "$T/rec.json" --json
python3 -c 'import json,sys; sys.exit(len(json.load(open(sys.argv[1]))) != 2)' "$T/out" ||
	fail "bkr recovered does not list the two runs: $(head -c 600 "$T/out")"
expect_exit 0 "$BKR" recovered -c "$T/rec.json" latest
grep -q '"conv/c3.json"' "$T/out" || fail "bkr recovered latest: $(head -c 600 "$T/out")"
[ ! -e "$T/staged" ] || fail "a run was staged instead of stored in the S3 repository"
pass "scan, recover, batch --apply and recovered on an S3 repository: every file back exactly, the runs stored in the bucket"
# --- bkr copy local -> S3 -> local, exact and incremental (docs/bkr.1.md "copy")
CL=$T/copy-local
CB=$T/copy-back
CS=s3://bkr-test/copy
json_n() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/out" "$1"; }
expect_exit 0 "$BKR" init -r "$CL"
expect_exit 0 "$BKR" -r "$CL" create --type full "$src"
expect_exit 0 "$BKR" init -r "$CS"
expect_exit 0 "$BKR" init -r "$CB"
expect_exit 0 "$BKR" copy --from "$CL" --to "$CS" --json
[ "$(json_n backups_copied)" = 1 ] && [ "$(json_n blobs_sent)" -gt 0 ] || fail "local -> S3: $(cat "$T/out")"
expect_exit 0 "$BKR" copy --from "$CS" --to "$CB" --json
[ "$(json_n backups_copied)" = 1 ] || fail "S3 -> local: $(cat "$T/out")"
for r in "$CL" "$CB"; do "$BKR" -r "$r" list --json | python3 -c 'import json,sys; print([(m["backup_id"], m["tree"]) for m in json.load(sys.stdin)])'; done >"$T/trees"
[ "$(sed -n 1p "$T/trees")" = "$(sed -n 2p "$T/trees")" ] || fail "local -> S3 -> local changed the backups: $(cat "$T/trees")"
rm -rf "$T/rc"
expect_exit 0 "$BKR" -r "$CB" restore latest --target "$T/rc"
python3 "$HERE/treecmp.py" "$src" "$T/rc/src" >/dev/null || fail "local -> S3 -> local does not restore exactly"
expect_exit 0 "$BKR" -r "$CS" verify --read-data
for pair in "$CL $CS" "$CS $CB"; do
	set -- $pair
	expect_exit 0 "$BKR" copy --from "$1" --to "$2" --json
	[ "$(json_n blobs_sent)" = 0 ] && [ "$(json_n backups_copied)" = 0 ] || fail "a second copy $1 -> $2 sent: $(cat "$T/out")"
done
printf 'copied later\n' >"$src/copy-later.txt"
expect_exit 0 "$BKR" -r "$CL" create --type incremental "$src"
for pair in "$CL $CS" "$CS $CB"; do
	set -- $pair
	expect_exit 0 "$BKR" copy --from "$1" --to "$2" --json
	[ "$(json_n backups_copied)" = 1 ] && [ "$(json_n blobs_sent)" -le 4 ] || fail "incremental copy $1 -> $2: $(cat "$T/out")"
done
rm -rf "$T/rc"
expect_exit 0 "$BKR" -r "$CB" restore latest --target "$T/rc"
python3 "$HERE/treecmp.py" "$src" "$T/rc/src" >/dev/null || fail "the incremental copy back does not restore exactly"
pass "bkr copy local -> S3 -> local: the same backups and trees, exact restores; a second run sends nothing; an incremental sends its few blobs"

# health sizes the packs of an S3 repository through the store (it stat(2)ed
# the URL, found nothing and said 0 B in every tier): as tier status does
printf '{"repository": "%s", "workspace_root": "%s", "sources": [{"name": "src", "paths": ["%s"], "schedule": "manual"}]}\n' \
	"$CS" "$src" "$src" >"$T/health.json"
expect_exit 0 "$BKR" -r "$CS" tier status --json
cp "$T/out" "$T/status.json"
expect_exit 0 "$BKR" -c "$T/health.json" health --json
python3 - "$T/out" "$T/status.json" <<'PY' || fail "health --json storage of an S3 repository: $(cat "$T/out")"
import json, sys
h, st = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
hot = [t for t in st["tiers"] if t["tier"] == "hot"][0]
want = [hot["data_packs"] + hot["tree_packs"], hot["data_bytes"] + hot["tree_bytes"]]
assert want[0] >= 2 and [h["storage"]["hot"]["packs"], h["storage"]["hot"]["bytes"]] == want, (h["storage"], want)
assert h["repository_bytes"] == want[1], h
PY
pass "health on an S3 repository: the packs and bytes tier status counts"

# --- create under a low limit of open files: the reserve counts the S3 store's connections (4 threads
# making requests: the scan, the writer's publisher, the refreshers of the lock and the mark; each a
# curl handle holding its connection and libcurl's socket pair, one more while it connects: 16), so
# that the lowest working limit bkr.1 states for an S3 repository is exact: one below fails at once
# with the one line, nothing published, never out of descriptors half-way; at it, the backup works
# (it was counted as a local repository's: 21 let it start, and its connections took what the
# queue's files were counted in)
LR=s3://bkr-test/limits
flat=$T/flat
mkdir -p "$flat"
for i in $(seq 1 30); do head -c 100000 /dev/urandom >"$flat/f$i"; done
expect_exit 0 "$BKR" init -r "$LR"
got=0
(ulimit -n 41 && exec "$BKR" -r "$LR" create --type full "$flat") >"$T/out" 2>"$T/err" || got=$?
[ "$got" = 7 ] || fail "create at ulimit -n 41: exit $got, not 7: $(cat "$T/err")"
[ "$(cat "$T/err")" = "bkr create: the limit of open files (ulimit -n 41) is too low for this backup: raise it" ] ||
	fail "create at ulimit -n 41: not the one line: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$LR" list --json
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/out")" = 0 ] ||
	fail "create at ulimit -n 41 published a backup: $(cat "$T/out")"
for threads in 8 1; do
	got=0
	(ulimit -n 42 && exec "$BKR" -r "$LR" create --type full --threads "$threads" "$flat") >"$T/out" 2>"$T/err" || got=$?
	[ "$got" = 0 ] || fail "create --threads $threads at ulimit -n 42: exit $got: $(cat "$T/err")"
done
expect_exit 0 "$BKR" -r "$LR" verify --read-data
rm -rf "$T/rl"
expect_exit 0 "$BKR" -r "$LR" restore latest --target "$T/rl"
python3 "$HERE/treecmp.py" "$flat" "$T/rl/flat" >/dev/null || fail "the backup made at ulimit -n 42 does not restore exactly"
pass "create on S3 at ulimit -n 41: too low at once, one line, nothing published; at 42 (8 threads and 1): backed up, verified, exact"
