#!/bin/bash
# Sparse files (tests/integration/lib.sh; issue 10 item 12).
#
# A 1 TiB file holding a few bytes is backed up, restored (sparse, the same
# bytes at the data offsets), mounted and read at its data offsets, and
# scanned --deep as healthy, each without reading or hashing its holes:
# before the sparse content digest (docs/format.md, "Content digests") the
# backup alone hashed a terabyte of zeros (~20 minutes), so the test-level
# timeout (tests/meson.build) is what fails.  A dense copy of a small
# sparse file compares equal to the sparse entry (scan --deep, restore's
# skip of an identical file, log), one byte different does not.
. "$(dirname "$0")/lib.sh"

ws=$T/ws
R=$T/repo
mkdir -p "$ws/data"
cfg=$T/bkr.json
cat >"$cfg" <<JSON
{"repository": "$R", "workspace_root": "$ws", "log_dir": "$T/logs"}
JSON
TIB=$((1 << 40))
big=$ws/data/big
truncate -s $TIB "$big"
# poke FILE OFFSET TEXT: write TEXT at OFFSET, keeping the rest as it is
poke() { printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
poke "$big" 100 head
poke "$big" $((TIB / 2 + 12345)) middle
poke "$big" $((TIB - 3)) end
# a small sparse file: data, a 1 MiB hole, data, a trailing hole; and zeros
# inside a data extent
small=$ws/data/small
truncate -s $((3 << 20)) "$small"
head -c 70000 /dev/urandom | dd of="$small" conv=notrunc status=none
dd if=/dev/zero of="$small" bs=4096 seek=20 count=3 conv=notrunc status=none
head -c 5000 /dev/urandom | dd of="$small" bs=1 seek=$((1 << 21)) conv=notrunc status=none
[ "$(stat -c %b "$big")" -lt 1000 ] || fail "the test filesystem does not keep $big sparse"

expect_exit 0 "$BKR" -r "$R" init
expect_exit 0 "$BKR" -c "$cfg" create --type full
pass "a 1 TiB sparse file is backed up"
# its digest is the sparse form, and says so
expect_exit 0 "$BKR" -r "$R" --json ls latest ws/data
grep -q '"path":"ws/data/big",.*"sparse_digest":"[0-9a-f]\{64\}"' "$T/out" || fail "ls --json: $(cat "$T/out")"
grep -q '"path":"ws/data/big",.*"sha256"' "$T/out" && fail "ls --json calls a sparse digest sha256: $(cat "$T/out")"

# restore: sparse, the same bytes at the data offsets
expect_exit 0 "$BKR" -r "$R" restore latest --target "$T/rest"
rb=$T/rest/ws/data/big
[ "$(stat -c %s "$rb")" = $TIB ] || fail "restored size $(stat -c %s "$rb")"
[ "$(stat -c %b "$rb")" -lt 1000 ] || fail "restored file is not sparse: $(stat -c %b "$rb") blocks"
# at FILE OFFSET LEN: the bytes there
at() { dd if="$1" bs=1 skip="$2" count="$3" status=none; }
check_big() {
	[ "$(at "$1" 100 4)" = head ] || fail "$1: bytes at 100: $(at "$1" 100 4 | od -c)"
	[ "$(at "$1" $((TIB / 2 + 12345)) 6)" = middle ] || fail "$1: bytes in the middle"
	[ "$(at "$1" $((TIB - 3)) 3)" = end ] || fail "$1: bytes at the end"
	[ "$(at "$1" $((TIB / 4)) 8 | tr -d '\0')" = "" ] || fail "$1: a hole is not zeros"
}
check_big "$rb"
cmp "$small" "$T/rest/ws/data/small" || fail "small sparse file restored differently"
pass "restored sparse, same bytes at the data offsets"

# a dry run over the restored tree compares each file with its entry (the
# digest in the entry's form): every one is unchanged
expect_exit 0 "$BKR" -r "$R" restore latest --target "$T/rest" --overwrite --dry-run
grep -q " 0 new, 0 changed," "$T/out" || fail "restore --dry-run over identical files: $(cat "$T/out")"
pass "restore recognises an identical sparse file"

# the mount reads it at its data offsets
mnt=$T/mnt
mkdir -p "$mnt"
bkrfs_fg "$R" "$mnt" "$T/fs.err"
mb=$mnt/latest/ws/data/big
check_big "$mb"
getfattr --absolute-names -n user.bkr.sha256 "$mb" >/dev/null 2>&1 && fail "the mount calls a sparse digest user.bkr.sha256"
bkrfs_unmount "$mnt"
pass "the mount reads the sparse file at its data offsets"

# scan --deep hashes the workspace file in the entry's form: healthy
expect_exit 0 "$BKR" -c "$cfg" scan --deep
pass "scan --deep: the sparse files are healthy"

# a dense copy of the small sparse file, same mtime: equal
cp --sparse=never "$small" "$T/dense"
touch -r "$small" "$T/dense"
mv "$T/dense" "$small"
[ "$(stat -c %b "$small")" -ge $(((3 << 20) / 512)) ] || fail "the copy is not dense"
expect_exit 0 "$BKR" -c "$cfg" scan --deep
pass "a dense copy of a sparse file compares equal"
# ... and log/diff across a backup of the dense copy see no content change
expect_exit 0 "$BKR" -c "$cfg" create --type full --all
expect_exit 0 "$BKR" -r "$R" log ws/data/small
grep -q "content" "$T/out" && fail "log reports a content change for a dense copy: $(cat "$T/out")"
grep -q " in 2 backup(s) of its source" "$T/err" || fail "log: not the two backups: $(cat "$T/err")"
pass "log: dense and sparse copies of the same bytes are the same content"
read -r sparse_id dense_id < <("$BKR" -r "$R" list --json | python3 -c '
import json, sys
print(*[b["backup_id"] for b in sorted(json.load(sys.stdin), key=lambda b: b["timestamp"])][-2:])')
expect_exit 0 "$BKR" -r "$R" diff "$sparse_id" "$dense_id"
grep -q "small" "$T/out" && fail "diff reports a change for a dense copy: $(cat "$T/out")"
pass "diff: dense and sparse copies of the same bytes are the same content"

# the dense copy's content, read to compare the two, damaged (in a copy of
# the repository): an error naming the file, exit 4, not a content change
# ('M', exit 0: the read error was cleared and taken for "differs")
cp -a "$R" "$T/dmg"
damage_stored "$T/dmg" "$small" 1000 || fail "could not damage the copies of small"
for args in "$sparse_id $dense_id" "$sparse_id $dense_id ws/data/small"; do
	expect_exit 4 "$BKR" -r "$T/dmg" diff $args
	one_line_error
	grep -q "^bkr diff: ws/data/small: .*chunk 0" "$T/err" || fail "diff $args: the unreadable file is not named: $(cat "$T/err")"
	[ -s "$T/out" ] && fail "diff $args with a file it cannot compare printed: $(cat "$T/out")"
done
expect_exit 4 "$BKR" -r "$T/dmg" log ws/data/small
grep -q "$dense_id  error " "$T/out" && grep -q "warning: backup $dense_id, path 'ws/data/small': .*chunk 0" "$T/err" ||
	fail "log: the version that cannot be compared is not an error: $(cat "$T/out" "$T/err")"
pass "diff and log: a dense copy whose content cannot be read to compare it with a sparse one is an error, not a change"

# one byte written into a hole of the big file, mtime kept: silent corruption
touch -r "$big" "$T/ref"
poke "$big" $((TIB / 4)) X
touch -r "$T/ref" "$big"
expect_exit 1 "$BKR" -c "$cfg" scan --deep
grep -q "big" "$T/out" || fail "scan --deep does not name the changed file: $(cat "$T/out")"
pass "scan --deep: a byte written into a hole is found"
