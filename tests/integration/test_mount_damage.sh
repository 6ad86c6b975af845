#!/bin/bash
# What the mount answers over damage that is not a flipped byte (tests/integration/lib.sh;
# docs/mount.md): data a backup names that is missing is EIO, never a
# missing name or a shorter listing.
#
# A page of a big directory (over 4096 entries, BKR_TREE_PAGE_MAX) that the
# index lacks: the second backup of a directory of 5000 files shares its
# first page with the first backup, whose index file is then damaged (left
# out, with a warning).  A lookup of a name on that page answered ENOENT and
# a listing ended after "." and ".." without an error (glibc's readdir takes
# ENOENT from getdents for the end): both are EIO, logged.  (A manifest that
# goes missing: below.)
. "$(dirname "$0")/lib.sh"

R=$T/repo
mkdir -p "$T/ws/many"
(cd "$T/ws/many" && for i in $(seq 1 5000); do : >"f$i"; done)
"$BKR" -q init -r "$R"
"$BKR" -q create -r "$R" "$T/ws"
idx1=$(ls "$R/index")
: >"$T/ws/many/zzz" # on the last page: the first page is the first backup's
"$BKR" -q create -r "$R" "$T/ws"
id2=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
python3 - "$R/index/$idx1" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
d[100] ^= 0x5a
open(p, "wb").write(bytes(d))
PY

mnt=$T/mnt
bkrfs_fg "$R" "$mnt" "$T/fs.err"
many=$mnt/by-id/$id2/ws/many
# errno_of OP PATH: the errno name of stat or listdir of PATH ("ok" when it worked)
errno_of() {
	python3 - "$1" "$2" <<'PY'
import errno, os, sys
try:
    n = len(os.listdir(sys.argv[2])) if sys.argv[1] == "list" else os.stat(sys.argv[2]) and 0
    print("ok %d" % n)
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}
[ "$(errno_of stat "$many/zzz")" = "ok 0" ] || fail "a name on the page the index has: $(errno_of stat "$many/zzz")"
got=$(errno_of stat "$many/f1")
[ "$got" = EIO ] || fail "a name on the page the index lacks: $got, not EIO"
got=$(errno_of list "$many")
[ "$got" = EIO ] || fail "listing the directory: $got, not EIO"
grep -q "directory 'ws/many'.*not in the index" "$T/fs.err" || fail "not logged: $(cat "$T/fs.err")"
bkrfs_unmount "$mnt"
pass "a directory page the index lacks: lookup and listing answer EIO (not ENOENT, not a short listing), logged"

# ... and the read commands the same: damage (exit 4, the blob named), never
# "no such file" (3): bkr_dir_find's ENOTFOUND for the page was taken for a
# name not there, and log said "in no backup" (3) of a file in both backups
blob=$(grep -o "blob [0-9a-f]\{64\}: not in the index" "$T/fs.err" | head -1 | cut -d' ' -f2)
[ -n "$blob" ] || fail "the missing page's blob is not in the mount's log"
for cmd in "ls $id2 ws/many" "ls $id2 ws/many/f1" "cat $id2 ws/many/f1" "diff latest --live" "log ws/many/f1"; do
	# shellcheck disable=SC2086 # the words of cmd
	expect_exit 4 "$BKR" -r "$R" $cmd
	grep -q "blob $blob" "$T/err" || fail "bkr $cmd: the missing blob is not named: $(cat "$T/err")"
done
grep -q "ws/many/f1: in no backup that could be read" "$T/err" || fail "log: $(cat "$T/err")"
# log lists what it could read, the rest as 'error', and still says so in its status
expect_exit 4 "$BKR" -r "$R" log ws/many/zzz
grep -q "$id2  added" "$T/out" || fail "log: the readable version is not listed: $(cat "$T/out")"
grep -q "  error " "$T/out" || fail "log: the unreadable backup is not listed as error: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" cat "$id2" ws/many/zzz
pass "the read commands over that page: exit 4 naming the blob (ls, cat, diff, log), never 'no such file'; log lists the rest"

# A backup whose manifest does not read when it is first listed (gone between
# the watcher's looks: deleted, or moved away by an operator and put back):
# its listing was empty, without an error, and the kernel kept that listing
# (a backup's directories are cached for good); it is EIO, and once the
# manifest is back the backup lists in full.
"$BKR" -q init -r "$T/r2"
"$BKR" -q create -r "$T/r2" "$T/ws"
id=$("$BKR" -r "$T/r2" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
bkrfs_fg "$T/r2" "$mnt" "$T/fs2.err" -o watch_ms=600000
stat "$mnt/by-id/$id" >/dev/null
mv "$T/r2/backups/$id.json" "$T/manifest"
got=$(errno_of list "$mnt/by-id/$id")
[ "$got" = EIO ] || fail "listing a backup whose manifest is gone: $got, not EIO"
mv "$T/manifest" "$T/r2/backups/$id.json"
got=$(errno_of list "$mnt/by-id/$id")
[ "$got" = "ok 1" ] || fail "listing the backup once its manifest is back: $got"
[ "$(errno_of list "$mnt/by-id/$id/ws/many")" = "ok 5001" ] || fail "the backup's big directory"
bkrfs_unmount "$mnt"
pass "a backup whose manifest is gone lists as EIO, not as an empty directory the kernel keeps"

# An index file that stops reading under a running mount: the index was
# mapped (files of 4 KiB and more), so a page of it that could no longer be
# read (a bad sector once the page cache dropped it; here the file cut short
# in place, which the kernel answers the same way) killed the mount with
# SIGBUS at the next lookup.  Index files are read into memory: the mount
# goes on with what it read.  One that cannot be read when the mount starts
# (an I/O error, BKR_FAULT index-read) is one line naming it, exit 2.
I=$T/ri
mkdir -p "$T/iws"
for i in $(seq 1 200); do head -c 2000 /dev/urandom >"$T/iws/f$i"; done
"$BKR" -q init -r "$I"
"$BKR" -q create -r "$I" "$T/iws"
idx=$(ls "$I/index")
[ "$(stat -c %s "$I/index/$idx")" -gt 8192 ] || fail "the index file is too small to have been mapped"
bkrfs_fg "$I" "$mnt" "$T/fs3.err"
truncate -s 0 "$I/index/$idx"
for i in 1 100 200; do
	cmp "$mnt/latest/iws/f$i" "$T/iws/f$i" || fail "f$i through the mount, its index file cut short"
done
kill -0 "$DAEMON" || fail "the mount died: $(cat "$T/fs3.err")"
bkrfs_unmount "$mnt"
"$BKR" -q init -r "$T/r3"
"$BKR" -q create -r "$T/r3" "$T/iws"
rc=0
BKR_FAULT=index-read:1:eio "$BKRFS" "$T/r3" "$mnt" -f 2>"$T/err" || rc=$?
[ $rc = 2 ] || fail "bkrfs with the index file unreadable: exit $rc (not 2): $(cat "$T/err")"
one_line_error
grep -q "^bkrfs: .*read $T/r3/index/[0-9a-f]\{64\}\.idx: injected fault at index-read" "$T/err" ||
	fail "bkrfs with the index file unreadable: $(cat "$T/err")"
! mountpoint -q "$mnt" || fail "bkrfs mounted without its index"
pass "an index file that stops reading under a mount: the mount goes on (it was read, not mapped); unreadable at the start: one line naming it, exit 2"
