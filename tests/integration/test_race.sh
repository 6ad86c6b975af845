#!/usr/bin/env bash
# Backups racing cleanup and prune (issue 11, "Concurrency"): a backup that
# starts while cleanup/prune holds the exclusive lock waits for it and then
# dedups only against what is left (never a blob prune removed); a cleanup
# that starts while a backup runs waits for the backup; --no-wait fails at
# once (exit 5); and backups started at random instants beside a cleanup all
# complete, verify and restore exactly.
source "$(dirname "$0")/lib.sh"

R=$T/repo
ws=$T/ws
mkdir -p "$ws/docs" "$T/gold"
new_repo

# gold_of ID: the golden copy of a backup (made before it started)
n=0
backup() { # backup LABEL [args...]: a backup of $ws whose gold copy is $T/gold/LABEL
	local label=$1
	shift
	cp -a "$ws" "$T/gold/$label"
	"$BKR" -r "$R" create "$ws" "$@" --json >"$T/$label.json" 2>"$T/$label.err"
}
id_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/$1.json"; }

# restore_exact LABEL: the backup made as LABEL restores to its golden copy
restore_exact() {
	local id
	id=$(id_of "$1")
	rm -rf "$T/restore"
	expect_exit 0 "$BKR" -r "$R" restore "$id" --target "$T/restore"
	python3 "$HERE/treecmp.py" "$T/gold/$1" "$T/restore/ws" --no-dir-mtime >/dev/null ||
		fail "backup $1 ($id) does not restore exactly"
}

# Ten backups, each adding a file and dropping an old one, so that cleanup
# frees data a later backup could want again (blob-2 comes back below).
for i in $(seq 0 9); do
	head -c 150000 /dev/urandom >"$ws/docs/blob-$i.bin"
	[ "$i" -lt 3 ] || mv "$ws/docs/blob-$((i - 3)).bin" "$T/saved-$((i - 3)).bin"
	backup "b$i" || fail "backup $i: $(cat "$T/b$i.err")"
done
policy=(--keep-last 2)

# --- a backup started while cleanup holds the exclusive lock waits -------------
# cleanup stops (SIGSTOP, from inside) at its first rename: it holds the lock
# and has moved nothing yet.  The backup brings back a file only removed
# backups used: its blobs are exactly what prune frees.
mv "$T/saved-2.bin" "$ws/docs/blob-2.bin"
BKR_FAULT=rename:1:stop "$BKR" -q -r "$R" cleanup "${policy[@]}" >"$T/cleanup.out" 2>"$T/cleanup.err" &
cpid=$!
wait_stopped "$cpid" || fail "cleanup did not stop at its first rename: $(cat "$T/cleanup.err")"
expect_exit 5 "$BKR" -r "$R" create "$ws" --no-wait
one_line_error
backup racer &
bpid=$!
for _ in $(seq 1 500); do grep -q "waiting" "$T/racer.err" 2>/dev/null && break; sleep 0.02; done
grep -q "waiting" "$T/racer.err" || fail "the backup does not say it waits for the cleanup: $(cat "$T/racer.err")"
kill -0 "$bpid" 2>/dev/null || fail "the backup did not wait for the cleanup"
kill -CONT "$cpid"
wait "$cpid" || fail "cleanup failed: $(cat "$T/cleanup.err")"
wait "$bpid" || fail "the backup failed: $(cat "$T/racer.err")"
expect_exit 0 "$BKR" -r "$R" verify --read-data
restore_exact racer
restore_exact b9
pass "a backup started during cleanup waits, then stores again what prune freed; --no-wait fails at once"

# --- a cleanup started while a backup runs waits for it ------------------------
head -c 150000 /dev/urandom >"$ws/docs/late.bin"
cp -a "$ws" "$T/gold/slow"
BKR_FAULT=write:1:stop "$BKR" -r "$R" create "$ws" --json >"$T/slow.json" 2>"$T/slow.err" &
bpid=$!
wait_stopped "$bpid" || fail "the backup did not stop at its first write"
expect_exit 5 "$BKR" -r "$R" cleanup "${policy[@]}" --no-wait
"$BKR" -r "$R" cleanup "${policy[@]}" >"$T/cleanup.out" 2>"$T/cleanup.err" &
cpid=$!
for _ in $(seq 1 500); do grep -q "waiting" "$T/cleanup.err" 2>/dev/null && break; sleep 0.02; done
grep -q "waiting" "$T/cleanup.err" || fail "cleanup does not say it waits for the backup: $(cat "$T/cleanup.err")"
kill -CONT "$bpid"
wait "$bpid" || fail "the backup failed: $(cat "$T/slow.err")"
wait "$cpid" || fail "cleanup failed: $(cat "$T/cleanup.err")"
expect_exit 0 "$BKR" -r "$R" verify --read-data
restore_exact slow
pass "a cleanup started during a backup waits for it; the backup is complete and kept"

# --- backups at random instants beside cleanups ----------------------------------
rounds=${BKR_RACE_ROUNDS:-3}
for r in $(seq 1 "$rounds"); do
	head -c 150000 /dev/urandom >"$ws/docs/round-$r.bin"
	rm -f "$ws/docs/round-$((r - 1)).bin"
	"$BKR" -q -r "$R" cleanup --keep-last 1 >/dev/null 2>"$T/cleanup.err" &
	cpid=$!
	sleep "$(python3 -c 'import random; print(random.uniform(0, 0.2))')"
	backup "race$r" &
	bpid=$!
	wait "$cpid" || fail "round $r: cleanup failed: $(cat "$T/cleanup.err")"
	wait "$bpid" || fail "round $r: the backup failed: $(cat "$T/race$r.err")"
	expect_exit 0 "$BKR" -r "$R" verify --read-data
	# the backup may have run before the cleanup (and been removed by it) or after
	if grep -q "$(id_of "race$r")" <("$BKR" -r "$R" list --json); then
		restore_exact "race$r"
	fi
done
pass "$rounds backups racing cleanups: every remaining backup verifies and restores exactly"
