#!/usr/bin/env bash
# A backup under a low limit of open files (ulimit -n, a service's
# LimitNOFILE): every file the scan queues for the workers holds an fd until
# it is read, so the scan ran the process out of descriptors and left the
# files it could not open out of the backup ('cannot open, skipped: Too
# many open files', exit 6): lost for this process's own want, not the
# file's.  The queue now takes at most a quarter of the limit and the scan,
# out of descriptors all the same, waits for the queued files to be read
# and opens again; with no fd to spare at all the backup fails, one line,
# exit 7, nothing published.  A restore, whose files in flight hold an fd
# each too, likewise writes every file.
source "$(dirname "$0")/lib.sh"

src=$T/src
mkdir -p "$src/a" "$src/b/c"
# 1 MiB each: a worker reads one in milliseconds while the scan opens
# dozens, so the queue fills before the first is read
for i in $(seq 1 40); do head -c 1M /dev/urandom >"$src/a/f$i"; done
for i in $(seq 1 20); do head -c 256K /dev/urandom >"$src/b/c/g$i"; done
for i in $(seq 1 300); do echo "small $i" >"$src/b/s$i"; done
tmpfs_dir RT

# 8 threads queue up to 80 files: more than 48 descriptors
for threads in 8 1; do
	R=$T/repo-$threads
	"$BKR" init -r "$R" >/dev/null
	got=0
	(ulimit -n 48 && exec "$BKR" -r "$R" create --type full --threads "$threads" "$src") >"$T/out" 2>"$T/err" || got=$?
	[ "$got" = 0 ] || { cat "$T/err"; fail "--threads $threads, ulimit -n 48: exit $got"; }
	! grep -q "skipped" "$T/err" || { cat "$T/err"; fail "--threads $threads, ulimit -n 48: files skipped"; }
	rm -rf "$RT/r"
	expect_exit 0 "$BKR" -r "$R" restore latest --target "$RT/r"
	python3 "$HERE/treecmp.py" "$src" "$RT/r/src" >/dev/null || fail "--threads $threads, ulimit -n 48: the backup does not restore the tree"
done
pass "ulimit -n 48: every file backed up (8 threads and 1), the tree restored exactly"

# restore likewise: each file in flight holds its fd until its last chunk is written (64 at
# once), so under ulimit -n 20 files failed 'create: Too many open files' (exit 6)
for threads in 8 1; do
	rm -rf "$RT/r"
	got=0
	(ulimit -n 20 && exec "$BKR" -r "$T/repo-8" restore latest --threads "$threads" --target "$RT/r") >"$T/out" 2>"$T/err" ||
		got=$?
	[ "$got" = 0 ] || { head -c 2000 "$T/err"; fail "restore --threads $threads, ulimit -n 20: exit $got"; }
	python3 "$HERE/treecmp.py" "$src" "$RT/r/src" >/dev/null || fail "restore --threads $threads, ulimit -n 20: the tree differs"
done
pass "ulimit -n 20: restore writes every file (8 threads and 1)"

# the store keeps up to 64 descriptors of the files it read open for the next read (index
# files, packs): more than ulimit -n 48 left, so a repository of 70 index files failed every
# command that opens them ('open .../index/X.idx: Too many open files', exit 7); the idle ones
# are closed now when an open finds none left
R=$T/repo-idx
"$BKR" init -r "$R" >/dev/null
mkdir -p "$T/i"
for k in $(seq 1 70); do
	echo "$k" >"$T/i/f$k"
	"$BKR" -q -r "$R" create --type incremental "$T/i" >/dev/null
done
for cmd in verify list; do
	got=0
	(ulimit -n 48 && exec "$BKR" -r "$R" $cmd) >"$T/out" 2>"$T/err" || got=$?
	[ "$got" = 0 ] || { head -c 2000 "$T/err"; fail "$cmd of 70 index files, ulimit -n 48: exit $got"; }
done
rm -rf "$RT/r"
got=0
(ulimit -n 48 && exec "$BKR" -r "$R" restore latest --target "$RT/r") >"$T/out" 2>"$T/err" || got=$?
[ "$got" = 0 ] || { head -c 2000 "$T/err"; fail "restore from 70 index files, ulimit -n 48: exit $got"; }
python3 "$HERE/treecmp.py" "$T/i" "$RT/r/i" >/dev/null || fail "restore from 70 index files, ulimit -n 48: the tree differs"
pass "ulimit -n 48: 70 index files (more than the store keeps open) verify, list and restore"

# no descriptor to spare even with the queue read: one line naming what could not be
# opened and why, exit 7, no backup published (never one without the files)
R=$T/repo-tiny
"$BKR" init -r "$R" >/dev/null
for n in 10 12 14; do
	got=0
	(ulimit -n "$n" && exec "$BKR" -q -r "$R" create --type full --threads 8 "$src") >"$T/out" 2>"$T/err" || got=$?
	[ "$got" = 0 ] && continue # enough after all: checked below like the others
	[ "$got" = 7 ] || { cat "$T/err"; fail "ulimit -n $n: exit $got, not 7"; }
	one_line_error
	err_has "Too many open files" || fail "ulimit -n $n: the error does not say why: $(cat "$T/err")"
	! grep -q "skipped" "$T/err" || fail "ulimit -n $n: a file skipped: $(cat "$T/err")"
done
expect_exit 0 "$BKR" -r "$R" verify
n=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
for id in $("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(" ".join(b["backup_id"] for b in json.load(sys.stdin)))'); do
	rm -rf "$RT/r"
	expect_exit 0 "$BKR" -r "$R" restore "$id" --target "$RT/r"
	python3 "$HERE/treecmp.py" "$src" "$RT/r/src" >/dev/null || fail "backup $id made under a tiny limit lacks files"
done
pass "a limit too low for any backup: one line, exit 7; the $n backups published are whole"
