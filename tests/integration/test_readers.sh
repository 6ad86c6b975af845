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
"$BKR" init -r "$R" >/dev/null
expect_exit 0 "$BKR" -q -r "$R" create "$W/src"
first=$(idx_names "$R")
[ "$(echo "$first" | wc -l)" = 1 ] || fail "one backup wrote more than one index file: $first"
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
pass "an old index file put back after two prunes: restore, cat and copy read the blob's intact copy"
