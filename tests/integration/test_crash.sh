#!/usr/bin/env bash
# The write protocol: a `bkr create` killed with SIGKILL at any instant, or
# failing at any write/fsync/rename, leaves every earlier backup intact and
# `verify --read-data` clean apart from reported leftovers.  With --encrypted,
# the same on an encrypted repository (fewer random kills by default).
source "$(dirname "$0")/lib.sh"

encrypted=
if [ "${1:-}" = --encrypted ]; then
	encrypted=1
	export BKR_PASSWORD=crash-test BKR_TEST_KDF_N=1024
fi
init_repo() { # dir
	if [ -n "$encrypted" ]; then
		"$BKR" init -r "$1" --encryption aes-256-gcm >/dev/null
	else
		"$BKR" init -r "$1" >/dev/null
	fi
}

src=$T/src
mkdir -p "$src/a" "$src/b"
for i in $(seq 1 200); do head -c $((RANDOM * 8)) /dev/urandom >"$src/a/f$i"; done
seq 1 400000 >"$src/b/text.txt"
# 8 MiB: the incrementals below reuse it unread (same size and mtime), so it
# widens no kill window; every check restores, compares and verifies it
head -c 8M /dev/urandom >"$src/b/big.bin"
init_repo "$T/repo"
R=$T/repo
expect_exit 0 "$BKR" -r "$R" create --type full "$src"
cp -a "$src" "$T/golden"
base=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])' < <("$BKR" -r "$R" list --json))

# each check restores the first backup (200 files) and removes it again: restored into tmpfs
# (lib.sh), whose removal costs 0.15 s, not the 0.6-0.8 s of this disk's
tmpfs_dir RT
check_intact() { # $1: label
	local n
	n=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
	# every backup that exists is complete: verify walks every backup's trees
	# (each file's blobs indexed, undamaged and, --read-data, re-hashed), and it
	# walked all n of them (a `verify ID` per backup checked the same again)
	expect_exit 0 "$BKR" -r "$R" verify --read-data
	grep -q "^verify ok: $n backups," "$T/err" || fail "$1: verify did not walk the $n backups listed: $(cat "$T/err")"
	rm -rf "$RT/restore"
	expect_exit 0 "$BKR" -r "$R" restore "$base" --target "$RT/restore"
	python3 "$HERE/treecmp.py" "$T/golden" "$RT/restore/src" >/dev/null || fail "$1: the first backup changed"
	echo "  $1: intact ($n backups)"
}

# Kill at random instants.  Each round changes the data so that new packs are written.
rounds=$(crash_rounds "$([ -n "$encrypted" ] && echo 8 || echo 25)")
for i in $(seq 1 "$rounds"); do
	head -c 4M /dev/urandom >"$src/b/churn-$i.bin"
	echo "$i" >>"$src/b/text.txt"
	delay=$(python3 -c "import random; print(random.uniform(0.0, 0.8))")
	"$BKR" -q -r "$R" create --type incremental "$src" >/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	check_intact "kill after ${delay}s"
done
pass "$rounds random SIGKILLs left every earlier backup intact"

# Crash (SIGKILL from inside) and fail (EIO, ENOSPC) at each write, fsync and rename.
for point in write fsync rename; do
	for nth in 1 2 3 5 8 13; do
		for action in crash eio enospc; do
			echo "x$point$nth$action" >>"$src/a/f1"
			got=0
			BKR_FAULT="$point:$nth:$action" "$BKR" -q -r "$R" create --type incremental "$src" >/dev/null 2>"$T/fault.err" || got=$?
			if [ "$action" != crash ] && [ "$got" = 0 ]; then
				# the fault point was not reached this many times: the backup completed
				continue
			fi
			if [ "$action" != crash ]; then
				[ "$(wc -l <"$T/fault.err")" -ge 1 ] || fail "$point:$nth:$action: no error message"
				grep -q "injected fault" "$T/fault.err" || { cat "$T/fault.err"; fail "$point:$nth:$action: error does not say what failed"; }
			fi
		done
	done
	check_intact "faults at $point"
done
pass "faults at every write, fsync and rename leave the repository consistent"

# A writer failure on a worker while the scanning thread still queues files:
# the scanner's own error is a consequence, the message must be the worker's
# (it was "bkr create: I/O error" when the scanner found the queue closed).
mkdir -p "$T/many"
for i in $(seq 1 300); do echo "many $i $RANDOM" >"$T/many/f$i"; done
init_repo "$T/repo-many"
got=0
BKR_FAULT=write:2:eio "$BKR" -q -r "$T/repo-many" create --threads 1 "$T/many" >/dev/null 2>"$T/fault.err" || got=$?
[ "$got" != 0 ] || fail "write:2:eio with 300 files: the backup did not fail"
grep -q "injected fault at write" "$T/fault.err" || { cat "$T/fault.err"; fail "a worker's write failure is reported without its message"; }
pass "a worker's failure is reported with its own message while the scan is still queueing"

# A backup after all that works and restores exactly.
expect_exit 0 "$BKR" -r "$R" create --type full "$src"
rm -rf "$RT/restore"
expect_exit 0 "$BKR" -r "$R" restore latest --target "$RT/restore"
python3 "$HERE/treecmp.py" "$src" "$RT/restore/src" || fail "backup after crashes does not restore"
pass "a new backup after the crashes restores exactly"
