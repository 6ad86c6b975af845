#!/usr/bin/env bash
# Repository lifecycle: 60 backups over simulated days (BKR_TEST_NOW, honoured
# by test builds only), `bkr cleanup` keeps exactly the set restic's rules
# give (checked against an independent implementation below), every kept
# backup restores exactly, prune frees space, a pinned backup is refused by
# delete, --no-wait fails clearly while a backup holds the lock, the mount
# stops showing a deleted backup, and cleanup/prune killed at any instant or
# failing at any write/fsync/rename lose no byte of a kept backup while a
# rerun completes.
source "$(dirname "$0")/lib.sh"

R=$T/repo
ws=$T/ws
# the golden copies and the restores compared with them (restore_kept, ~30 calls) in tmpfs
# (lib.sh): on the test's disk removing each restore's synced files cost ~0.5 s a call
tmpfs_dir gold
tmpfs_dir RT
mkdir -p "$ws/docs"
new_repo

# 60 backups, one every 13 hours from 2026-08-01T06:00Z (several a day, some
# days without one).  Each adds a 64 KiB file and removes the one from three
# backups ago, so removing backups leaves data no one uses.
start=$(date -u -d 2026-08-01T06:00:00Z +%s)
for i in $(seq 0 59); do
	when=$(date -u -d @$((start + i * 13 * 3600)) +%Y-%m-%dT%H:%M:%SZ)
	echo "backup $i at $when" >"$ws/docs/counter.txt"
	head -c 65536 /dev/urandom >"$ws/docs/blob-$i.bin"
	rm -f "$ws/docs/blob-$((i - 3)).bin"
	BKR_TEST_NOW=$when "$BKR" -q -r "$R" create "$ws" >/dev/null || fail "backup $i"
	cp -a "$ws" "$gold/$when"
done
"$BKR" -r "$R" list --json >"$T/all.json"
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/all.json")
[ "$n" = 60 ] || fail "expected 60 backups, got $n"
pass "60 backups over simulated days"

# a BKR_TEST_NOW that is not a time stops the command (it fell back to today)
expect_exit 2 env BKR_TEST_NOW=2026-08-01T25:00:00Z "$BKR" -r "$R" create "$ws"
one_line_error
grep -qF "BKR_TEST_NOW: '2026-08-01T25:00:00Z' is not an ISO 8601 time" "$T/err" || fail "bad BKR_TEST_NOW: $(cat "$T/err")"
"$BKR" -r "$R" list --json >"$T/again.json"
cmp -s "$T/all.json" "$T/again.json" || fail "a create with a bad BKR_TEST_NOW made a backup"
pass "a BKR_TEST_NOW that is not a time stops the command"

# Pin the 5th backup (old: no rule below keeps it).
pinned=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[4]["backup_id"])' "$T/all.json")
expect_exit 0 "$BKR" -r "$R" pin "$pinned"

# --- --max-unused out of range: one line (cleanup printed two) -------------------
for cmd in cleanup prune; do
	for v in -1 101 x; do
		expect_exit 2 "$BKR" -r "$R" $cmd --max-unused "$v" --dry-run
		one_line_error
		grep -q "^bkr $cmd: --max-unused: expected a percentage 0..100 (.*), not '$v'" "$T/err" || fail "$cmd --max-unused $v: $(cat "$T/err")"
	done
done

# --- delete of a pinned backup is refused, nothing changes ---------------------
expect_exit 2 "$BKR" -r "$R" delete "$pinned"
one_line_error
grep -q "pinned" "$T/err" || fail "the refusal does not say the backup is pinned: $(cat "$T/err")"
expect_exit 2 "$BKR" -r "$R" delete --json "$pinned"
json_ok "$T/out"
grep -q "$pinned" <("$BKR" -r "$R" list --json) || fail "a refused delete removed the pinned backup"
pass "delete of a pinned backup is refused (one-line error, valid --json)"

# --- the plan, checked against an independent implementation ------------------
AS_OF=2026-09-03T00:00:00Z
POLICY=(--keep-last 3 --keep-daily 5 --keep-weekly 3 --keep-monthly 2)
cat >"$T/oracle.py" <<'PY'
# restic forget over UTC periods, written from the spec, not from retention.c
import json, sys, datetime as dt
backups, as_of, last, daily, weekly, monthly, pinned = json.load(open(sys.argv[1])), sys.argv[2], *map(int, sys.argv[3:7]), sys.argv[7]
t = lambda m: dt.datetime.strptime(m["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")
order = sorted(backups, key=lambda m: (t(m), m["backup_id"]), reverse=True)
keep = {order[0]["backup_id"], pinned}          # the newest of the source; the pin
for n, key in ((last, None), (daily, lambda d: d.date()), (weekly, lambda d: d.isocalendar()[:2]),
               (monthly, lambda d: (d.year, d.month))):
    seen = []
    for i, m in enumerate(order):
        if len(seen) == n:
            break
        b = i if key is None else key(t(m))
        if b not in seen:
            seen.append(b)
            keep.add(m["backup_id"])
print("\n".join(sorted(keep)))
PY
python3 "$T/oracle.py" "$T/all.json" "$AS_OF" 3 5 3 2 "$pinned" >"$T/expected"
expect_exit 0 "$BKR" -r "$R" cleanup --dry-run --json --as-of "$AS_OF" "${POLICY[@]}"
json_ok "$T/out"
python3 - "$T/out" >"$T/planned" <<'PY'
import json, sys
print("\n".join(sorted(b["backup_id"] for b in json.load(open(sys.argv[1]))["backups"] if b["action"] == "keep")))
PY
diff "$T/expected" "$T/planned" || fail "cleanup --dry-run keeps a different set than restic's rules"
grep -q "\"rules\":\"pinned\"" "$T/out" || fail "the dry run does not name the pin as the deciding rule"
kept=$(wc -l <"$T/expected")
[ "$kept" -ge 8 ] && [ "$kept" -le 16 ] || fail "the policy should keep 8..16 backups, keeps $kept"
"$BKR" -r "$R" list --json | python3 -c 'import json,sys; assert len(json.load(sys.stdin)) == 60' ||
	fail "--dry-run changed something"
expect_exit 0 "$BKR" -r "$R" cleanup --dry-run --as-of "$AS_OF" "${POLICY[@]}"
[ "$(grep -c '^REMOVE' "$T/out")" = $((60 - kept)) ] || fail "the text dry run does not list every removal"
[ "$(grep -c '^KEEP' "$T/out")" = "$kept" ] || fail "the text dry run does not list every kept backup"
pass "cleanup --dry-run keeps exactly restic's set ($kept of 60) and names the rules"

# The crash tests below start from this repository.
cp -a "$R" "$T/repo-60"

# restore_kept LABEL: the repository verifies, and every backup of
# $T/expected restores exactly its golden copy (each into its own directory,
# then one treecmp for them all: ~30 calls of 8..16 restores each)
restore_kept() {
	local id ts pairs=()
	expect_exit 0 "$BKR" -r "$R" verify --read-data
	"$BKR" -r "$R" list --json | python3 -c '
import json, sys
keep = set(open(sys.argv[1]).read().split())
for m in json.load(sys.stdin):
    if m["backup_id"] in keep:
        print(m["backup_id"], m["timestamp"][:19] + "Z")' "$T/expected" >"$T/listed"
	[ "$(wc -l <"$T/listed")" = "$(wc -l <"$T/expected")" ] || fail "$1: a backup to keep is gone"
	rm -rf "$RT/restore"
	while read -r id ts; do
		expect_exit 0 "$BKR" -r "$R" restore "$id" --target "$RT/restore/$id"
		pairs+=("$gold/$ts" "$RT/restore/$id/ws")
	done <"$T/listed"
	python3 "$HERE/treecmp.py" "${pairs[@]}" --no-dir-mtime >"$T/cmp" ||
		{ cat "$T/cmp"; fail "$1: a kept backup does not restore exactly (the pairs above: golden copy vs restore/ID)"; }
}

# list_ids: the backup ids listed, sorted
list_ids() {
	"$BKR" -r "$R" list --json | python3 -c 'import json,sys; print("\n".join(sorted(m["backup_id"] for m in json.load(sys.stdin))))'
}

# --- cleanup for real; prune frees space -----------------------------------------
before=$(du -sb "$R" | cut -f1)
expect_exit 0 "$BKR" -r "$R" cleanup --as-of "$AS_OF" "${POLICY[@]}"
list_ids >"$T/after"
diff "$T/expected" "$T/after" || fail "cleanup kept a different set than it planned"
restore_kept "after cleanup"
# cleanup's own prune moved the data into trash (grace period: 1 day); empty it now
expect_exit 0 "$BKR" -r "$R" prune --grace 0 --json
json_ok "$T/out"
after=$(du -sb "$R" | cut -f1)
echo "  repository size: $before bytes before, $after after"
[ $((after * 2)) -lt "$before" ] || fail "prune did not free space: $before -> $after bytes"
[ "$(find "$R/index" -name '*.idx' | wc -l)" = 1 ] || fail "prune left more than one index file"
restore_kept "after prune"
pass "cleanup kept exactly the planned set, every kept backup restores, prune freed space ($before -> $after bytes)"

# A second prune has nothing to do.
expect_exit 0 "$BKR" -r "$R" prune --grace 0 --json
python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); assert p["unused_packs"] == 0 and p["repacked_packs"] == 0, p' "$T/out" ||
	fail "a second prune still found work"
pass "prune is idempotent"

# --- the configuration's policy; no retention key = keep 30 days ----------------
printf '{"repository": "%s", "workspace_root": "%s"}\n' "$R" "$ws" >"$T/bkr.json"
expect_exit 0 "$BKR" -r "$R" -c "$T/bkr.json" cleanup --dry-run --json --as-of 2026-09-20T00:00:00Z
python3 - "$T/out" "$pinned" <<'PY' || fail "without a retention key, cleanup does not keep exactly 30 days"
import json, sys, datetime as dt
out, pinned = json.load(open(sys.argv[1])), sys.argv[2]
as_of = dt.datetime(2026, 9, 20)
newest = max(b["timestamp"] for b in out["backups"])
for b in out["backups"]:
    t = dt.datetime.strptime(b["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")
    want = as_of - t < dt.timedelta(days=30) or b["backup_id"] == pinned or b["timestamp"] == newest
    assert (b["action"] == "keep") == want, b
PY
printf '{"repository": "%s", "workspace_root": "%s", "retention": {"keep_last": 2}}\n' "$R" "$ws" >"$T/bkr.json"
expect_exit 0 "$BKR" -r "$R" -c "$T/bkr.json" cleanup --dry-run --json
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["kept"] == 3, o["kept"]' "$T/out" ||
	fail "retention {keep_last: 2} does not keep the last 2 plus the pin"
pass "the configuration's policy applies; without a retention key cleanup keeps 30 days"

# --- delete: --no-wait while a backup holds the lock; waiting; the mount ------------
victim=$(sed -n 2p "$T/after")
[ "$victim" != "$pinned" ] || victim=$(sed -n 3p "$T/after")
exec 9>"$R/locks/repo.lock"
flock -s 9
expect_exit 5 "$BKR" -r "$R" delete --no-wait "$victim"
one_line_error
grep -q "is locked by another command (a backup or copy, or a delete, cleanup, prune, repair or tier migration).*; not waiting (--no-wait)$" "$T/err" || fail "--no-wait does not say why: $(cat "$T/err")"
exec 9>&-
pass "delete --no-wait fails clearly while a backup holds the shared lock"

bkrfs_fg "$R" "$T/mnt" "$T/bkrfs.log" -o watch_ms=100
[ -d "$T/mnt/by-id/$victim" ] || fail "the mount does not show $victim"
expect_exit 0 "$BKR" -r "$R" delete "$victim"
grep -q "deleted $victim" "$T/out" || fail "delete does not say what it deleted"
wait_until test ! -d "$T/mnt/by-id/$victim" || fail "the mount still shows the deleted backup $victim"
grep -q "$victim" <(list_ids) && fail "bkr list still shows the deleted backup"
[ -e "$R/trash/$victim.json" ] || fail "the manifest did not go into trash/"
fusermount3 -u "$T/mnt"
wait "$DAEMON" || fail "bkrfs exited with an error: $(cat "$T/bkrfs.log")"
pass "a deleted backup leaves bkr list and the mount; its manifest waits in trash/"

# --- crash safety: cleanup and prune killed or failing anywhere --------------------
# check_crash LABEL: every backup to keep is intact; a rerun completes the work
check_crash() {
	restore_kept "$1"
	expect_exit 0 "$BKR" -r "$R" cleanup --as-of "$AS_OF" "${POLICY[@]}"
	expect_exit 0 "$BKR" -r "$R" prune --grace 0
	list_ids >"$T/rerun"
	diff "$T/expected" "$T/rerun" >/dev/null || fail "$1: the rerun did not complete the cleanup"
	[ "$(find "$R/index" -name '*.idx' | wc -l)" = 1 ] || fail "$1: the rerun left more than one index file"
	[ -z "$(find "$R" -name '.tmp-*')" ] || fail "$1: the rerun left temporaries: $(find "$R" -name '.tmp-*')"
	restore_kept "$1, rerun"
	echo "  $1: intact, rerun completed"
}

rounds=$(crash_rounds 4)
for i in $(seq 1 "$rounds"); do
	rm -rf "$R" && cp -a "$T/repo-60" "$R"
	delay=$(python3 -c "import random; print(random.uniform(0.0, 0.3))")
	"$BKR" -q -r "$R" cleanup --as-of "$AS_OF" "${POLICY[@]}" >/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	check_crash "cleanup killed after ${delay}s"
done
pass "$rounds random SIGKILLs of cleanup lost nothing"

# Faults in cleanup: its moves into trash (renames), prune's index (write,
# fsync, rename) and its moves of packs.
for fault in rename:1:crash rename:30:crash rename:50:eio write:2:crash fsync:2:eio; do
	rm -rf "$R" && cp -a "$T/repo-60" "$R"
	got=0
	BKR_FAULT=$fault "$BKR" -q -r "$R" cleanup --as-of "$AS_OF" "${POLICY[@]}" >/dev/null 2>"$T/fault.err" || got=$?
	[ "$got" != 0 ] || fail "cleanup with $fault: the fault point was not reached"
	case $fault in *eio) grep -q "injected fault" "$T/fault.err" || { cat "$T/fault.err"; fail "$fault: no message"; } ;; esac
	check_crash "cleanup $fault"
done
pass "cleanup failing or crashing at writes, fsyncs and renames lost nothing; reruns completed"

# Faults in prune alone, repacking every pack with unused data (--max-unused 0).
rm -rf "$R" && cp -a "$T/repo-60" "$R"
expect_exit 0 "$BKR" -r "$R" cleanup --no-prune --as-of "$AS_OF" "${POLICY[@]}"
cp -a "$R" "$T/repo-cleaned"
for fault in write:1:crash write:5:crash fsync:2:crash rename:2:crash rename:9:eio; do
	rm -rf "$R" && cp -a "$T/repo-cleaned" "$R"
	got=0
	BKR_FAULT=$fault "$BKR" -q -r "$R" prune --max-unused 0 --grace 0 >/dev/null 2>&1 || got=$?
	[ "$got" != 0 ] || fail "prune with $fault: the fault point was not reached"
	check_crash "prune $fault"
done
pass "prune crashing or failing at writes, fsyncs and renames lost nothing; reruns completed"

# A merge killed after it published the merged index but before it removed the
# files that index supersedes: those files are skipped by readers, and the next
# prune must remove them (not leave them to come back once the merged index
# is itself superseded).
rm -rf "$R" && cp -a "$T/repo-cleaned" "$R"
cp -a "$R/index" "$T/index-before"
[ "$(find "$T/index-before" -name '*.idx' | wc -l)" -gt 1 ] || fail "the fixture has a single index file"
expect_exit 0 "$BKR" -r "$R" prune --grace 0
cp -n "$T/index-before"/*.idx "$R/index/"
check_crash "merge killed before removing the superseded index files"
pass "index files a killed merge superseded are removed by the next prune"

# Verify tells the work in progress of a running backup from the leftovers of
# a dead one (issue 10, item 21): a backup paused at its first write holds the
# writers' mark; once it is killed, the same unfinished file is a leftover of
# an interrupted command.
rm -rf "$R" && cp -a "$T/repo-cleaned" "$R"
head -c 300000 /dev/urandom >"$ws/docs/new.bin"
BKR_FAULT=write:1:stop "$BKR" -q -r "$R" create "$ws" >/dev/null 2>&1 &
writer=$!
cleanup_hooks+=("kill -9 $writer 2>/dev/null")
wait_stopped "$writer" || fail "the backup never paused at its first write"
"$BKR" -r "$R" verify >"$T/out" 2>&1 || true
grep -q "unfinished write, left by a command writing to the repository now" "$T/out" ||
	{ cat "$T/out"; fail "verify did not tell a running backup's unfinished write"; }
kill -9 "$writer"
wait "$writer" 2>/dev/null || true
"$BKR" -r "$R" verify >"$T/out" 2>&1 || true
grep -q "unfinished write, left by an interrupted command (no command is writing now" "$T/out" ||
	{ cat "$T/out"; fail "verify did not call a killed backup's unfinished write a leftover"; }
grep -q "writing to the repository now" "$T/out" && fail "a dead writer was called running: $(cat "$T/out")"
pass "verify tells a running backup's unfinished write from a dead one's"
