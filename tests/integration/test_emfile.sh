#!/usr/bin/env bash
# A backup whose scan runs out of descriptors for a moment (EMFILE: descriptors
# held by what the queue's reserve does not count, then released).  The queue's
# limit became the scan's open folders plus half the files held, and nothing
# raised it again: a burst with few files held left room for the folders open
# then and one file, and the next folder two levels deeper failed the backup,
# "the limit of open files (ulimit -n 1024) is too low for this backup"
# (exit 7), under a limit a hundred times what it needed; a burst with no file
# held failed it at once ("cannot open: Too many open files").  The lowered
# limit grows back now, a folder past it is tried (the open says whether the
# shortage lasts), and an open with nothing held to wait for pauses a few
# times before it gives up.  A shortage that stays, and a real one (a low
# ulimit -n), still fail at once with one line.
source "$(dirname "$0")/lib.sh"

src=$T/src
# 40 folders deep, 3 small files in each
python3 - "$src" <<'PY'
import os, sys
d = sys.argv[1]
for i in range(40):
    d = os.path.join(d, "d%02d" % i)
    os.makedirs(d)
    for j in range(3):
        open(os.path.join(d, "f%d" % j), "w").write("file %d of level %d\n" % (j, i))
PY
tmpfs_dir RT

# one EMFILE with no file held (the 3rd open), with few (the 6th, the 40th: 19 folders deep), a
# burst of 2 and 3 in a row, and bursts later on
for fault in backup-emfile:3 backup-emfile:6 backup-emfile:40 backup-emfile:3,backup-emfile:4 backup-emfile:3,backup-emfile:4,backup-emfile:5 \
	backup-emfile:40,backup-emfile:41,backup-emfile:90; do
	for threads in 8 1; do
		R=$T/repo
		rm -rf "$R" "$RT/r"
		"$BKR" init -r "$R" >/dev/null
		got=0
		(ulimit -n 1024 && BKR_FAULT=$fault exec "$BKR" -q -r "$R" create --type full --threads "$threads" "$src") \
			>"$T/out" 2>"$T/err" || got=$?
		[ "$got" = 0 ] || fail "EMFILE burst $fault, --threads $threads: exit $got: $(head -c 500 "$T/err")"
		! grep -q "skipped" "$T/err" || fail "EMFILE burst $fault, --threads $threads: files skipped: $(cat "$T/err")"
		expect_exit 0 "$BKR" -r "$R" verify --read-data
		expect_exit 0 "$BKR" -r "$R" restore latest --target "$RT/r"
		python3 "$HERE/treecmp.py" "$src" "$RT/r/src" >/dev/null ||
			fail "EMFILE burst $fault, --threads $threads: the backup does not restore the tree"
	done
done
pass "a burst of EMFILE in a deep tree: the backup completes, verifies and restores exactly (8 threads and 1)"

# a shortage that stays (eight opens in a row): one line naming the file, exit 7, nothing published
R=$T/repo-stays
"$BKR" init -r "$R" >/dev/null
faults=$(seq -s, -f 'backup-emfile:%g' 3 10)
expect_exit 7 env BKR_FAULT="$faults" "$BKR" -q -r "$R" create --type full --threads 2 "$src"
one_line_error
err_has ": cannot open: Too many open files (" || fail "a lasting EMFILE: not the one line: $(cat "$T/err")"
[ "$(ls "$R/backups" | wc -l)" = 0 ] || fail "a create out of descriptors published a backup"
pass "EMFILE that stays: one line, exit 7, nothing published"

# a real shortage: too low at once, the one line
expect_exit 7 bash -c 'ulimit -n 16 && exec "$@"' - "$BKR" -q -r "$R" create --type full --threads 2 "$src"
one_line_error
[ "$(cat "$T/err")" = "bkr create: the limit of open files (ulimit -n 16) is too low for this backup: raise it" ] ||
	fail "ulimit -n 16: not the one line of a limit too low: $(cat "$T/err")"
pass "ulimit -n 16: too low at once, one line, exit 7"
