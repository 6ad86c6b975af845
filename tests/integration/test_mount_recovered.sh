#!/usr/bin/env bash
# `bkr mount` and the /recovered view: a recovery run stored by `bkr batch`
# shows up at /recovered/<run_id>/ (the recovered files and report.json) and
# /recovered/latest, and a later run appears without remounting.
source "$(dirname "$0")/lib.sh"

ws=$T/ws
mkdir -p "$ws/conversations" "$ws/config" "$T/mnt"
for i in $(seq 1 20); do
	printf '{"session_id":"s%02d","messages":["hi %d"]}\n' "$i" "$i" >"$ws/conversations/s$i.json"
done
printf '{"port": 8080}\n' >"$ws/config/service.json"
printf '{"a workspace file named": "report.json"}\n' >"$ws/report.json"
mkdir "$ws/report.json~" # the name the recovered report.json would be shown under
printf '{"in": "report.json~"}\n' >"$ws/report.json~/x.json"
cat >"$T/bkr.json" <<JSON
{"repository": "$T/repo", "workspace_root": "$ws", "log_dir": "$T/logs"}
JSON
export BKR_CONFIG=$T/bkr.json
new_repo
expect_exit 0 "$BKR" create --type full
cp "$ws/conversations/s3.json" "$T/s3.golden"
cp "$ws/config/service.json" "$T/service.golden"
cp "$ws/report.json" "$T/report.golden"
cp "$ws/report.json~/x.json" "$T/x.golden"

rm "$ws/conversations/s3.json" "$ws/report.json" "$ws/report.json~/x.json"
printf '{"port": ' >"$ws/config/service.json" # invalid JSON
expect_exit 1 "$BKR" scan
expect_exit 0 "$BKR" batch --apply --json
json_ok "$T/out"
run=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$T/out")
[ -n "$run" ] || fail "batch printed no run_id"
cmp "$ws/conversations/s3.json" "$T/s3.golden" || fail "s3.json not restored exactly"
cmp "$ws/config/service.json" "$T/service.golden" || fail "service.json not restored exactly"

expect_exit 0 "$BKR" mount "$T/mnt"
cleanup_hooks+=("fusermount3 -u '$T/mnt' 2>/dev/null || fusermount3 -uz '$T/mnt' 2>/dev/null")
mountpoint -q "$T/mnt" || fail "bkr mount returned before the mount was ready"
[ -d "$T/mnt/recovered/$run" ] || { ls -la "$T/mnt/recovered"; fail "/recovered/$run missing"; }
[ "$(readlink "$T/mnt/recovered/latest")" = "$run" ] || fail "/recovered/latest -> $(readlink "$T/mnt/recovered/latest"), not $run"
json_ok "$T/mnt/recovered/$run/report.json"
"$BKR" recovered "$run" >"$T/report.cli"
cmp "$T/mnt/recovered/$run/report.json" "$T/report.cli" ||
	python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(a != b)' \
		"$T/mnt/recovered/$run/report.json" "$T/report.cli" || fail "report.json in the mount differs from bkr recovered"
found=$(find "$T/mnt/recovered/$run" -name s3.json | head -1)
[ -n "$found" ] || { find "$T/mnt/recovered/$run"; fail "the recovered s3.json is not under /recovered/$run"; }
cmp "$found" "$T/s3.golden" || fail "recovered s3.json in the mount has other bytes"
cmp "$T/mnt/latest/ws/conversations/s5.json" "$ws/conversations/s5.json" || fail "/latest content"
# the recovered top-level report.json: the name is the report's, so it is
# report.json~ with '~' added until the name is free: here report.json~~,
# beside the recovered directory report.json~ (which it hid)
[ "$(ls -a "$T/mnt/recovered/$run" | grep -c '^report\.json$')" = 1 ] || fail "report.json listed twice: $(ls -a "$T/mnt/recovered/$run")"
cmp "$T/mnt/recovered/$run/report.json~~" "$T/report.golden" || fail "the recovered report.json is not report.json~~"
cmp "$T/mnt/recovered/$run/report.json~/x.json" "$T/x.golden" || fail "the recovered directory report.json~ is hidden"
grep -q '"run_id"' "$T/mnt/recovered/$run/report.json" || fail "report.json is not the run's report"
[ "$(find "$T/mnt/recovered/$run" -maxdepth 1 -name 'report.json~~' -type f | wc -l)" = 1 ] || fail "report.json~~ not listed"
[ "$(find "$T/mnt/recovered/$run" -maxdepth 1 -name 'report.json~' -type d | wc -l)" = 1 ] ||
	fail "report.json~ not listed as the directory: $(ls -la "$T/mnt/recovered/$run")"
[ "$(ls -a "$T/mnt/recovered/$run" | grep -c '^report\.json')" = 3 ] || fail "report.json names: $(ls -a "$T/mnt/recovered/$run")"
pass "/recovered/<run>/ holds the recovered files and report.json"

# report.json names the run's files and their hashes: mode 0400, owned by
# the repository's owner, unreadable to anyone else even with allow_other.
[ "$(stat -c '%a %u' "$T/mnt/recovered/$run/report.json")" = "400 $(stat -c %u "$T/repo")" ] ||
	fail "report.json: mode/owner $(stat -c '%a %u' "$T/mnt/recovered/$run/report.json")"
fusermount3 -u "$T/mnt"
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$T" # let uid 65534 reach the mount point
	expect_exit 0 "$BKR" mount "$T/mnt" -o allow_other
	if setpriv --reuid=65534 --regid=65534 --clear-groups cat "$T/mnt/recovered/$run/report.json" >/dev/null 2>"$T/err"; then
		fail "another user read report.json through allow_other"
	fi
	grep -q "Permission denied" "$T/err" || fail "report.json to another user: $(cat "$T/err")"
	setpriv --reuid=65534 --regid=65534 --clear-groups cat "$T/mnt/latest/ws/conversations/s5.json" >/dev/null ||
		fail "another user cannot read a 0644 file through allow_other"
	fusermount3 -u "$T/mnt"
fi
expect_exit 0 "$BKR" mount "$T/mnt"
pass "report.json: 0400, the repository owner's only"

# A second run appears without remounting.
rm "$ws/conversations/s7.json"
expect_exit 0 "$BKR" batch --apply --json
run2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$T/out")
wait_until eval '[ -d "$T/mnt/recovered/$run2" ] && [ "$(readlink "$T/mnt/recovered/latest")" = "$run2" ]' || true # checked next
[ -d "$T/mnt/recovered/$run2" ] || fail "a new run did not appear"
[ "$(readlink "$T/mnt/recovered/latest")" = "$run2" ] || fail "/recovered/latest did not move to the new run"
pass "a new recovery run appears without remounting"

# A run's directories carry the source's modes: a file under a 0700
# directory stays under a 0700 directory in /recovered (issue 10, item 2).
mkdir -p "$ws/secret" && chmod 700 "$ws/secret"
printf '{"token": "t"}\n' >"$ws/secret/token.json" && chmod 600 "$ws/secret/token.json"
expect_exit 0 "$BKR" create --all --type full
rm "$ws/secret/token.json"
expect_exit 0 "$BKR" batch --apply --json
run3=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$T/out")
wait_until test -d "$T/mnt/recovered/$run3" || fail "the third run did not appear: $(ls "$T/mnt/recovered")"
[ "$(stat -c %a "$T/mnt/recovered/$run3/secret")" = 700 ] ||
	fail "/recovered/$run3/secret has mode $(stat -c %a "$T/mnt/recovered/$run3/secret"), not the source's 700"
[ "$(stat -c %a "$T/mnt/recovered/$run3/secret/token.json")" = 600 ] || fail "token.json mode in /recovered"
pass "a run's directories carry the source's modes"

# A run whose manifest is damaged is left out of /recovered with one line naming it
# (as bkr list warns of it), once however often /recovered is rebuilt; the others stay
fusermount3 -u "$T/mnt"
cp "$T/repo/runs/$run2.json" "$T/run2.good"
printf 'X' | dd of="$T/repo/runs/$run2.json" bs=1 seek=20 conv=notrunc status=none
bkrfs_fg "$T/repo" "$T/mnt2" "$T/bkrfs.err"
ls "$T/mnt2/recovered" >"$T/ls" || fail "ls /recovered with a damaged run"
grep -qx "$run" "$T/ls" && grep -qx "$run3" "$T/ls" || fail "/recovered lost the good runs: $(cat "$T/ls")"
! grep -q "$run2" "$T/ls" || fail "/recovered lists the damaged run $run2: $(cat "$T/ls")"
[ "$(readlink "$T/mnt2/recovered/latest")" = "$run3" ] || fail "/recovered/latest -> $(readlink "$T/mnt2/recovered/latest")"
[ ! -e "$T/mnt2/recovered/$run2" ] || fail "/recovered/$run2 (damaged) can be looked up"
# a new run rebuilds /recovered: the damaged one is not named again
rm "$ws/conversations/s9.json"
expect_exit 0 "$BKR" batch --apply --json
run4=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$T/out")
wait_until test -d "$T/mnt2/recovered/$run4" || fail "the fourth run did not appear: $(ls "$T/mnt2/recovered")"
ls "$T/mnt2/recovered" >/dev/null
bkrfs_unmount "$T/mnt2"
[ "$(grep -c . "$T/bkrfs.err")" = 1 ] && grep -q "^bkrfs: run $run2: its manifest is damaged, left out of /recovered: .*$run2.json" "$T/bkrfs.err" ||
	fail "the mount did not log the damaged run in one line: $(cat "$T/bkrfs.err")"
cp "$T/run2.good" "$T/repo/runs/$run2.json"
expect_exit 0 "$BKR" mount "$T/mnt"
pass "a damaged run is left out of /recovered, logged once in one line naming it"

# Everything in the mount is read-only.
if touch "$T/mnt/recovered/$run/new" 2>"$T/err"; then fail "created a file in /recovered"; fi
grep -q "Read-only file system" "$T/err" || fail "write in /recovered did not answer EROFS: $(cat "$T/err")"
fusermount3 -u "$T/mnt"
pass "EROFS in /recovered; clean unmount"

# user.bkr.sha256 of report.json is the SHA-256 of its bytes, also in an
# encrypted repository, whose blob ids are HMACs (it gave the report's HMAC)
printf '{"enc": 1}\n' >"$ws/config/enc.json"
cat >"$T/bkr-enc.json" <<JSON
{"repository": "$T/repo-enc", "workspace_root": "$ws", "log_dir": "$T/logs"}
JSON
export BKR_CONFIG=$T/bkr-enc.json BKR_PASSWORD=pw
expect_exit 0 "$BKR" init -r "$T/repo-enc" --encryption aes-256-gcm
expect_exit 0 "$BKR" create --type full
rm "$ws/config/enc.json"
expect_exit 0 "$BKR" batch --apply --json
run=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$T/out")
expect_exit 0 "$BKR" mount "$T/mnt"
for r in "$T/mnt/recovered/$run/report.json" "$T/mnt/recovered/$run/config/enc.json"; do
	[ "$(getfattr --absolute-names --only-values -n user.bkr.sha256 "$r")" = "$(sha256sum <"$r" | cut -d' ' -f1)" ] ||
		fail "user.bkr.sha256 of $r is not the SHA-256 of its bytes"
done
fusermount3 -u "$T/mnt"
pass "user.bkr.sha256 of report.json in an encrypted repository"
