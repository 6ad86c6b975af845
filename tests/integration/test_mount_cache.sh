#!/bin/bash
# The mount read through the disk cache (bkr/store_cache.h), over a local
# repository given --cache-dir (the path a remote repository always takes;
# test_s3_mount.sh does the same over a real S3 server): byte-exact against
# the source, the cache filled (index, trees, data blocks) and enough for a
# second mount (no byte fetched), a torn and a damaged cache file fetched
# again (never served), a flipped byte in a stored pack answering EIO, a new
# backup appearing in the mount, the size bound, one mount per cache
# directory, bad options, and `bkr mount --cache-dir`.
source "$BKR_SOURCE_ROOT/tests/integration/lib.sh"

[ -c /dev/fuse ] && command -v fusermount3 >/dev/null || fail "no /dev/fuse or fusermount3: this test needs real mounts"


S=$T/src
mkdir -p "$S/many" "$S/sub/deeper"
for i in $(seq 1 300); do printf 'file %d\n' "$i" >"$S/many/f$i"; done
head -c 3000000 /dev/urandom >"$S/big.bin"
head -c 200000 /dev/urandom >"$S/victim.bin"
head -c 2000000 < <(yes "a line of text") >"$S/text.txt"
printf 'deep\n' >"$S/sub/deeper/file"
ln -s big.bin "$S/link"
new_repo
R=$T/repo
"$BKR" create -r "$R" --type full "$S" >/dev/null
ID=$(ls "$R/backups" | sed 's/\.json$//')
C=$T/cache
M=$T/mnt
mkdir -p "$M"

# ---- cold: everything through the cache --------------------------------------------------
bkrfs_fg "$R" "$M" "$T/d1.err" --cache-dir="$C" -o watch_ms=200
diff -r "$S" "$M/by-id/$ID/src" || fail "the mount differs from the source"
[ "$(readlink "$M/by-id/$ID/src/link")" = big.bin ] || fail "symlink"
pass "a mount through the cache equals the source (diff -r)"
root=$(ls -d "$C"/*/)
[ "$(cat "$root/location")" = "$R" ] || fail "cache location file: $(cat "$root/location")"
grep -q '\.idx$' <(ls "$root/w/index") || fail "no index file in the cache"
grep -q "$ID.json" <(ls "$root/w/backups") || fail "no manifest in the cache"
grep -q . <(find "$root/w/tree" -name '*.pack') || fail "no tree pack in the cache"
grep -q . <(find "$root/b/data" -type f) || fail "no data block in the cache"
[ ! -e "$root/w/config.json" ] || fail "config.json was cached"
pass "index, manifest, tree packs and data blocks are in the cache; config.json is not"

# ---- a new backup appears, listed through the store -------------------------------------------
printf 'new\n' >"$S/added.txt"
"$BKR" create -r "$R" --type full "$S" >/dev/null
ID2=$(ls "$R/backups" | sed 's/\.json$//' | grep -v "^$ID$")
wait_until test -e "$M/by-id/$ID2" || fail "the new backup did not appear in the mount"
cmp "$S/added.txt" "$M/by-id/$ID2/src/added.txt" || fail "the new backup's file"
pass "a new backup appears in the mount"
# a second mount on the same cache directory is refused, one line
mkdir -p "$T/mnt2"
expect_exit 2 "$BKRFS" "$R" "$T/mnt2" -f --cache-dir="$C"
one_line_error
grep -q "in use by another process" "$T/err" || fail "second mount: $(cat "$T/err")"
pass "a second mount on the same cache directory is refused: $(cat "$T/err")"
bkrfs_unmount "$M"
cache_report "$T/d1.err" >/dev/null

# ---- warm: a second mount fetches nothing ------------------------------------------------------
bkrfs_fg "$R" "$M" "$T/d2.err" --cache-dir="$C"
diff -r "$S" "$M/by-id/$ID2/src" || fail "the warm mount differs from the source"
bkrfs_unmount "$M"
line=$(cache_report "$T/d2.err")
[[ $line == *" 0 bytes fetched"* ]] || fail "a warm mount fetched bytes: $line"
pass "a second mount reads from the cache alone ($line)"

# ---- a torn and a damaged cache file: fetched again, never served -----------------------------
blocks=$(find "$root/b/data" -type f | sort)
first=$(sed -n 1p <<<"$blocks")
last=$(sed -n '$p' <<<"$blocks")
truncate -s -10 "$first"
printf '\377' | dd of="$last" bs=1 seek=100 conv=notrunc status=none
tree=$(find "$root/w/tree" -name '*.pack' | sort | sed -n 1p)
: >"$tree"
bkrfs_fg "$R" "$M" "$T/d3.err" --cache-dir="$C"
diff -r "$S" "$M/by-id/$ID2/src" || fail "damaged cache files were served"
bkrfs_unmount "$M"
line=$(cache_report "$T/d3.err")
[[ $line == *" 3 refetched"* ]] || fail "damaged cache files not refetched: $line"
[ "$(grep -vc "cache .*requests" "$T/d3.err")" = 0 ] || fail "unexpected daemon stderr: $(cat "$T/d3.err")"
pass "a truncated block, a flipped block and an emptied tree pack were fetched again ($line)"

# ---- a flipped byte in the stored pack: EIO (a fresh cache fetches the bad bytes) --------------
damage_stored "$R" "$S/victim.bin" 1000 || fail "could not flip a byte of victim.bin in its pack"
bkrfs_fg "$R" "$M" "$T/d4.err" --cache-dir="$T/cache2" --cache-max=1
expect_eio "$M/by-id/$ID/src/victim.bin"
diff -r -x victim.bin "$S" "$M/by-id/$ID2/src" || fail "other files after the flip"
du=$(du -sb "$T/cache2" | cut -f1)
[ "$du" -le $((1024 * 1024 + 65536)) ] || fail "the cache grew past --cache-max=1: $du bytes"
bkrfs_unmount "$M"
grep -q "EIO: .*victim.bin" "$T/d4.err" || fail "no EIO line: $(cat "$T/d4.err")"
pass "a flipped byte in a stored pack gives EIO through the cache, other files read; the cache stays within 1 MiB ($du bytes)"

# ---- options, and bkr mount --------------------------------------------------------------------
expect_exit 1 "$BKRFS" "$R" "$M" --cache-max=0
one_line_error
expect_exit 1 "$BKRFS" "$R" "$M" -o cache_dir=
one_line_error
grep -q -- "--cache-dir" <("$BKRFS" --help) || fail "--help does not name --cache-dir"
"$BKR" mount -r "$R" "$M" --cache-dir "$T/cache3" --cache-max 64 || fail "bkr mount --cache-dir"
BKRFS_MOUNTS+=("$M")
cmp "$S/big.bin" "$M/by-id/$ID/src/big.bin" || fail "bkr mount: big.bin"
ls "$T/cache3"/*/b/data >/dev/null || fail "bkr mount did not use --cache-dir"
fusermount3 -u "$M"
pass "bad cache options are one-line errors; bkr mount passes --cache-dir and --cache-max"
