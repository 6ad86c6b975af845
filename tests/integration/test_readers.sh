#!/usr/bin/env bash
# Readers against hostile index files: an old index file put back after two
# prunes (its entry names a pack prune removed; the present index names the
# blob's intact copy), index files larger than any the writer writes.
. "$(dirname "$0")/lib.sh"

idx_names() { (cd "$1/index" && ls -- *.idx); }

# --- an old index file put back after two prunes: readers try the blob's other
# entries before calling it missing (docs/security.md, the tamper table)
W=$T/ws
mkdir -p "$W/src"
head -c 300000 /dev/urandom >"$W/src/keep.bin"
head -c 300000 /dev/urandom >"$W/src/gone.bin"
R=$T/r1
# lookups take the last index file in name order first: the first backup's
# file (to be put back) should sort in the upper half, so that a later
# present file sorts before it within a few prunes (each time 1 in 2 or better)
for try in $(seq 1 40); do
	rm -rf "$R"
	head -c 300000 /dev/urandom >"$W/src/keep.bin"
	"$BKR" init -r "$R" >/dev/null
	expect_exit 0 "$BKR" -q -r "$R" create "$W/src"
	first=$(idx_names "$R")
	[ "$(echo "$first" | wc -l)" = 1 ] || fail "one backup wrote more than one index file: $first"
	[[ "$first" > 8 ]] && break
	[ "$try" -lt 40 ] || fail "40 first backups, each index file name below 8"
done
cp "$R/index/$first" "$T/old.idx"
rm "$W/src/gone.bin"
expect_exit 0 "$BKR" -q -r "$R" create "$W/src"
expect_exit 0 "$BKR" -r "$R" list --json
id1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["backup_id"])' "$T/out")
id2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[1]["backup_id"])' "$T/out")
expect_exit 0 "$BKR" -q -r "$R" delete "$id1"
# prune 1: keep.bin's blob repacked out of the first pack (half unused); the
# first index file merged away
expect_exit 0 "$BKR" -r "$R" prune --grace 0
grep -q "repacked [1-9]" "$T/out" || fail "prune repacked nothing: $(cat "$T/out")"
# prune 2 (and more, until the put-back file sorts after the present one, as
# lookups take the last file in name order first): the first pack leaves the
# trash, the file that superseded the old one is merged again
n=0
while :; do
	n=$((n + 1))
	[ $n -le 40 ] || fail "40 prunes, the old index file always sorted first"
	echo "$n" >"$W/src/n.txt"
	expect_exit 0 "$BKR" -q -r "$R" create "$W/src"
	expect_exit 0 "$BKR" -q -r "$R" prune --grace 0
	cur=$(idx_names "$R")
	[ "$(echo "$cur" | wc -l)" = 1 ] || fail "prune left more than one index file: $cur"
	[[ "$first" > "$cur" ]] && break
done
[ -z "$(find "$R/trash" -name '*.pack')" ] || fail "the first pack is still in the trash"
cp "$T/old.idx" "$R/index/$first"
expect_exit 0 "$BKR" -r "$R" restore "$id2" src --target "$T/out2"
cmp "$W/src/keep.bin" "$T/out2/src/keep.bin" || fail "restore with an old index file put back: wrong bytes"
expect_exit 0 "$BKR" -r "$R" cat "$id2" src/keep.bin
cmp "$W/src/keep.bin" "$T/out" || fail "cat with an old index file put back: wrong bytes"
"$BKR" init -r "$T/r1copy" >/dev/null
expect_exit 0 "$BKR" -q -r "$T/r1copy" copy --from "$R" "$id2"
expect_exit 0 "$BKR" -r "$T/r1copy" cat "$id2" src/keep.bin
cmp "$W/src/keep.bin" "$T/out" || fail "copy with an old index file put back: wrong bytes"
# verify names the stale entries' pack, not the backups (whose blob reads)
expect_exit 1 "$BKR" -r "$R" verify --read-data
grep -q "is named by the index but missing" "$T/out" || fail "verify: the stale entries not named: $(cat "$T/out")"
! grep -q "$id2" "$T/out" || fail "verify: a backup whose blobs read is reported: $(cat "$T/out")"
mnt=$T/mnt
bkrfs_fg "$R" "$mnt" "$T/fs.err"
cmp "$W/src/keep.bin" "$mnt/by-id/$id2/src/keep.bin" || fail "the mount with an old index file put back: $(cat "$T/fs.err")"
bkrfs_unmount "$mnt"
expect_exit 0 "$BKR" -q -r "$R" repair
expect_exit 0 "$BKR" -q -r "$R" verify --read-data
pass "an old index file put back after two prunes: restore, cat, copy and the mount read the blob's intact copy; verify names the stale entries, not the backup; repair drops them"

# --- exit codes agree (bkr(1) EXIT STATUS): a tree missing because its index
# file is damaged is damaged data, 4, for copy as for restore and cat; a
# damaged manifest left out makes log exit 4, as list and ls
R=$T/r2
mkdir -p "$W/two"
echo one >"$W/two/f"
"$BKR" init -r "$R" >/dev/null
expect_exit 0 "$BKR" -q -r "$R" create "$W/two"
idx=$(idx_names "$R") # the first backup's
echo two >"$W/two/f"
expect_exit 0 "$BKR" -q -r "$R" create "$W/two"
expect_exit 0 "$BKR" -r "$R" list --json
old=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["backup_id"])' "$T/out")
cp -a "$R" "$T/r2idx"
python3 - "$T/r2idx/index/$idx" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-1] ^= 1
open(p, "wb").write(b)
PY
expect_exit 4 "$BKR" -r "$T/r2idx" restore "$old" --target "$T/r2out"
expect_exit 4 "$BKR" -r "$T/r2idx" cat "$old" two/f
"$BKR" init -r "$T/r2dst" >/dev/null
expect_exit 4 "$BKR" -r "$T/r2dst" copy --from "$T/r2idx"
err_has "$idx: trailer checksum mismatch" || fail "copy: the damaged index file not named: $(cat "$T/err")"
python3 - "$R/backups/$old.json" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[40] ^= 1
open(p, "wb").write(b)
PY
expect_exit 4 "$BKR" -r "$R" list
expect_exit 4 "$BKR" -r "$R" log two/f
err_has "$old.json" || fail "log: the damaged manifest not named: $(cat "$T/err")"
grep -q "$(ls "$R/backups" | grep -v "$old" | sed 's/\.json$//')" "$T/out" || fail "log: the readable backup not shown: $(cat "$T/out")"
expect_exit 4 "$BKR" -q -r "$R" log two/f --json
json_ok "$T/out"
pass "a tree behind a damaged index file: copy exits 4 as restore and cat; a damaged manifest: log exits 4 as list"
