#!/usr/bin/env bash
# Readers of packs against large and hostile packs: verify --read-data reads a
# pack in bounded windows, never whole (a pack whose blob area has a hole of
# gigabytes costs no more memory than a small one).
. "$(dirname "$0")/lib.sh"

W=$T/ws
mkdir -p "$W/src"

# maxrss_kib CMD...: run CMD (stdout to $T/out, stderr to $T/err), print its peak RSS in KiB; its
# exit status into $T/rc
maxrss_kib() {
	python3 - "$T" "$@" <<'PY'
import resource, subprocess, sys
t = sys.argv[1]
with open(t + "/out", "wb") as o, open(t + "/err", "wb") as e:
    rc = subprocess.call(sys.argv[2:], stdout=o, stderr=e)
open(t + "/rc", "w").write(str(rc))
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
}

# first_pack REPO: the path of its (one) data pack
first_pack() { find "$1/data" -name '*.pack' | head -n 1; }

# --- a pack whose blob area holds a hole of 2 GiB before its footer (a valid
# pack: its blobs lie inside [0, footer offset), its footer checksummed): verify
# --read-data, restore and cat read it in bounded memory (verify used to read
# a pack whole when the blobs the index names in it were small)
R=$T/r1
head -c 3000000 /dev/urandom >"$W/src/a.bin"
"$BKR" init -r "$R" --compression none >/dev/null
expect_exit 0 "$BKR" -q -r "$R" create "$W/src"
pack=$(first_pack "$R")
python3 - "$pack" $((2 << 30)) <<'PY'
import hashlib, struct, sys
p, gap = sys.argv[1], int(sys.argv[2])
b = open(p, "rb").read()
t = b[-64:]
count, off = struct.unpack_from("<IQ", t, 12)
footer = b[off:-64]
head = t[:16] + struct.pack("<Q", off + gap) + t[24:32]
with open(p, "wb") as f:
    f.write(b[:off])
    f.seek(off + gap)
    f.write(footer + head + hashlib.sha256(footer + head).digest())
PY
[ "$(stat -c %s "$pack")" -gt $((2 << 30)) ] || fail "the forged pack is not larger than 2 GiB"
rss=$(maxrss_kib "$BKR" -r "$R" verify --read-data)
[ "$(cat "$T/rc")" = 0 ] || fail "verify --read-data of a pack with a 2 GiB hole: exit $(cat "$T/rc"): $(cat "$T/out" "$T/err")"
[ "$rss" -lt $((512 << 10)) ] || fail "verify --read-data of a pack with a 2 GiB hole: peak RSS $rss KiB"
rss=$(maxrss_kib "$BKR" -r "$R" restore latest --target "$T/rest1")
[ "$(cat "$T/rc")" = 0 ] || fail "restore: exit $(cat "$T/rc"): $(cat "$T/err")"
[ "$rss" -lt $((512 << 10)) ] || fail "restore of a pack with a 2 GiB hole: peak RSS $rss KiB"
cmp "$W/src/a.bin" "$T/rest1/src/a.bin" || fail "restore of a pack with a 2 GiB hole: wrong bytes"
pass "a pack with a hole of 2 GiB: verify --read-data and restore read it in bounded memory"

# --- verify names the index file that holds a stale entry, and what repair
# does about it: an old index file put back after prune removed its packs
idx_names() { (cd "$1/index" && ls -- *.idx); }
R=$T/r2
mkdir -p "$W/two"
head -c 200000 /dev/urandom >"$W/two/gone.bin"
"$BKR" init -r "$R" >/dev/null
expect_exit 0 "$BKR" -q -r "$R" create "$W/two"
old=$(idx_names "$R")
cp "$R/index/$old" "$T/old.idx"
rm "$W/two/gone.bin"
head -c 200000 /dev/urandom >"$W/two/keep.bin"
expect_exit 0 "$BKR" -q -r "$R" create "$W/two"
expect_exit 0 "$BKR" -r "$R" list --json
id1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["backup_id"])' "$T/out")
expect_exit 0 "$BKR" -q -r "$R" delete "$id1"
expect_exit 0 "$BKR" -q -r "$R" prune --grace 0 # the first backup's packs into the trash, the index merged
echo 3 >"$W/two/n.txt"
expect_exit 0 "$BKR" -q -r "$R" create "$W/two"
expect_exit 0 "$BKR" -q -r "$R" prune --grace 0 # the packs deleted, the merged index merged again
[ -z "$(find "$R/trash" -name '*.pack')" ] || fail "the first backup's packs are still in the trash"
cp "$T/old.idx" "$R/index/$old"
expect_exit 1 "$BKR" -r "$R" verify
grep -q "is named by the index but missing.* in index/$old: 'bkr repair' drops" "$T/out" ||
	fail "verify: the stale index file not named: $(cat "$T/out")"
expect_exit 1 "$BKR" -r "$R" verify --json
json_ok "$T/out"
python3 - "$T/out" "index/$old" <<'PY' || fail "verify --json: index_files: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
packs = [p for p in d["problems"] if p["kind"] == "pack"]
assert packs and all(p["index_files"] == [sys.argv[2]] for p in packs), packs
assert all("index_files" not in p for p in d["problems"] if p["kind"] not in ("pack", "index", "blob"))
PY
expect_exit 0 "$BKR" -q -r "$R" repair
[ ! -e "$R/index/$old" ] || fail "repair left the stale index file $old"
expect_exit 0 "$BKR" -q -r "$R" verify --read-data
pass "an old index file put back after prune removed its packs: verify (and --json index_files) names it and says what repair does; repair replaces it"

# --- a damaged copy: the blob problem names the index file of its entry
R=$T/r3
"$BKR" init -r "$R" --compression none >/dev/null
expect_exit 0 "$BKR" -q -r "$R" create "$W/two"
idx=$(idx_names "$R")
pack=$(first_pack "$R")
python3 - "$pack" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[100] ^= 1 # inside the first blob's payload
open(p, "wb").write(b)
PY
expect_exit 1 "$BKR" -r "$R" verify --read-data --json
python3 - "$T/out" "index/$idx" <<'PY' || fail "verify --read-data --json: the damaged copy's index file: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
blobs = [p for p in d["problems"] if p["kind"] == "blob"]
assert len(blobs) == 1 and blobs[0]["index_files"] == [sys.argv[2]], blobs
assert "its index entry is in " + sys.argv[2] + ": 'bkr repair' reads it again" in blobs[0]["message"], blobs
PY
pass "a damaged copy: verify --read-data names the index file holding its entry"

# --- a forged pack: a trailer claiming 16M entries (a footer of 896 MiB) over
# a file with a hole of 1 GiB (sparse: nothing on disk).  Every reader of
# footers (verify, repair, prune's leftovers) names it damaged in bounded
# memory; it used to allocate and read the whole claimed footer.  Plain, and
# encrypted (whose footer is sealed: its count is bounded by the smallest
# sealed blob).
for enc in none aes-256-gcm; do
	R=$T/forged-$enc
	export BKR_TEST_KDF_N=1024 BKR_PASSWORD='forged: correct horse'
	"$BKR" init -r "$R" --encryption "$enc" >/dev/null
	expect_exit 0 "$BKR" -q -r "$R" create "$W/two"
	forged=data/ab/ab$(printf '%030d' 7).pack
	mkdir -p "$R/data/ab"
	python3 - "$R/$forged" "$enc" <<'PY'
import struct, sys
p, enc = sys.argv[1], sys.argv[2]
count, off = 1 << 24, 1 << 30
sealed = enc != "none"
size = off + count * 56 + (28 if sealed else 0) + 64
t = b"BKRPACK\0" + struct.pack("<IIQQ", 1, count, off, 1 if sealed else 0) + bytes(32)
with open(p, "wb") as f:
    f.truncate(size - 64)
    f.seek(size - 64)
    f.write(t)
PY
	rss=$(maxrss_kib "$BKR" -r "$R" verify)
	[ "$(cat "$T/rc")" = 1 ] || fail "$enc: verify of a forged pack: exit $(cat "$T/rc"): $(cat "$T/out" "$T/err")"
	grep -q "$forged: .*(a pack the index does not name)" "$T/out" || fail "$enc: verify: the forged pack not named: $(cat "$T/out")"
	[ "$rss" -lt $((512 << 10)) ] || fail "$enc: verify of a forged pack: peak RSS $rss KiB"
	rss=$(maxrss_kib "$BKR" -r "$R" repair --dry-run)
	grep -q "$forged" "$T/out" "$T/err" || fail "$enc: repair: the forged pack not named: $(cat "$T/out" "$T/err")"
	[ "$rss" -lt $((512 << 10)) ] || fail "$enc: repair of a forged pack: peak RSS $rss KiB"
	rss=$(maxrss_kib "$BKR" -r "$R" prune --grace 0)
	[ "$(cat "$T/rc")" = 0 ] || fail "$enc: prune beside a forged pack: exit $(cat "$T/rc"): $(cat "$T/err")"
	[ "$rss" -lt $((512 << 10)) ] || fail "$enc: prune beside a forged pack: peak RSS $rss KiB"
	expect_exit 0 "$BKR" -r "$R" restore latest --target "$T/rest-$enc"
	cmp "$W/two/keep.bin" "$T/rest-$enc/two/keep.bin" || fail "$enc: restore beside a forged pack: wrong bytes"
done
pass "a forged pack claiming a footer of 896 MiB over a hole (plain and encrypted): verify, repair and prune name it in bounded memory"

# --- garbage index files below the 4.1 GiB bound over a hole of 4 GiB (sparse: nothing on
# disk): zeros, and an index file's header whose counts declare 2 entries.  A reader judges
# such a file before it reads its body: a plain one by its header (a ranged read), an
# encrypted one, which GCM opens only whole, by its size; it used to read all 4 GiB into
# memory (about 5 s a GiB) before the header said "bad magic".  Named by path, left out
# with its warning like any damaged index file, the rest of the repository intact.
for enc in none aes-256-gcm; do
	R=$T/gidx-$enc
	export BKR_TEST_KDF_N=1024 BKR_PASSWORD='garbage: correct horse'
	"$BKR" init -r "$R" --encryption "$enc" >/dev/null
	expect_exit 0 "$BKR" -q -r "$R" create "$W/two"
	zeros=index/$(printf '%064d' 0).idx
	forged=index/$(printf '%064d' 1).idx
	python3 - "$R/$zeros" "$R/$forged" <<'PY'
import struct, sys
size = 4 << 30
for path, head in ((sys.argv[1], b""), (sys.argv[2], b"BKRIDX\0\0" + struct.pack("<IIQI", 1, 0, 2, 0) + bytes(4))):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
PY
	[ "$enc" = none ] || rm "$R/$forged" # an encrypted repository's header is sealed: the zeros judge its size
	rss=$(maxrss_kib "$BKR" -r "$R" verify)
	[ "$(cat "$T/rc")" = 1 ] || fail "$enc: verify beside a garbage index file: exit $(cat "$T/rc"): $(cat "$T/out" "$T/err")"
	if [ "$enc" = none ]; then
		grep -q "$zeros: bad magic" "$T/out" "$T/err" || fail "$enc: verify: $zeros not named: $(cat "$T/out" "$T/err")"
		grep -q "$forged: header counts (2 entries, 0 superseded) do not match the file size 4294967296" \
			"$T/out" "$T/err" || fail "$enc: verify: $forged not named: $(cat "$T/out" "$T/err")"
	else
		grep -q "$zeros: 4294967260 bytes once opened, not the size of an index file" "$T/out" "$T/err" ||
			fail "$enc: verify: $zeros not named: $(cat "$T/out" "$T/err")"
	fi
	[ "$rss" -lt $((256 << 10)) ] || fail "$enc: verify beside a garbage index file of 4 GiB: peak RSS $rss KiB"
	rss=$(maxrss_kib "$BKR" -r "$R" restore latest --target "$T/gidx-rest-$enc")
	[ "$(cat "$T/rc")" = 0 ] || fail "$enc: restore beside a garbage index file: exit $(cat "$T/rc"): $(cat "$T/err")"
	cmp "$W/two/keep.bin" "$T/gidx-rest-$enc/two/keep.bin" || fail "$enc: restore beside a garbage index file: wrong bytes"
	[ "$rss" -lt $((256 << 10)) ] || fail "$enc: restore beside a garbage index file of 4 GiB: peak RSS $rss KiB"
done
pass "garbage index files of 4 GiB over a hole (plain: zeros and forged counts; encrypted: zeros): refused by header or size, in bounded memory"
