#!/usr/bin/env bash
# A repository created with --compression zstd (docs/format.md, the feature
# "zstd"): config.json names the codec and the feature, blobs are zstd frames
# (flag 0x04), a backup verifies with --read-data, restores exactly, mounts;
# a damaged zstd blob is found by verify and named by restore; zstd with
# encryption is refused at init, and bad --compression values are usage errors.
source "$(dirname "$0")/lib.sh"

R=$T/repo
S=$T/src
mkdir -p "$S/sub"
head -c 3000000 /dev/urandom >"$S/random.bin"
printf 'hello\n' >"$S/small.txt"
: >"$S/empty"
seq 1 20000 >"$S/sub/numbers.txt"
ln -s small.txt "$S/link"
# compressible text: a zstd frame each chunk
python3 - "$S/words.txt" <<'PY'
import random, sys
random.seed(7)
w = ["alpha", "backup", "cherry", "delta", "engine", "falcon", "granite", "harbor", "island", "jungle"]
with open(sys.argv[1], "w") as f:
    for i in range(200000):
        f.write(" ".join(random.choice(w) for _ in range(8)) + "\n")
PY

expect_exit 0 "$BKR" init -r "$R" --compression zstd
python3 - "$R/config.json" <<'PY' || fail "config.json of a zstd repository"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["compression"] == {"codec": "zstd", "level": 2}, c["compression"]
assert c["features"]["incompat"] == ["zstd"], c["features"]
PY
pass "init --compression zstd: codec zstd, level 2, feature 'zstd' in features.incompat"

expect_exit 0 "$BKR" -r "$R" create "$S" --json
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["sources"][0]["compression"] == "zstd", m["sources"]' "$T/out" ||
	fail "the manifest does not name zstd: $(head -c 600 "$T/out")"
# the data packs hold zstd frames (flag 0x04) and raw blobs (random.bin), nothing else
python3 - "$R" <<'PY' || fail "blob flags in the data packs"
import glob, os, struct, sys
flags = set()
for p in glob.glob(os.path.join(sys.argv[1], "data", "**", "*"), recursive=True):
    if not os.path.isfile(p) or os.path.basename(p).startswith("."):
        continue
    with open(p, "rb") as f:
        b = f.read()
    t = b[-64:]
    count, off = struct.unpack("<I", t[12:16])[0], struct.unpack("<Q", t[16:24])[0]
    for i in range(count):
        e = b[off + 56 * i: off + 56 * (i + 1)]
        flags.add(e[49])
        h = b[struct.unpack("<Q", e[32:40])[0]:][:16]
        assert h[1] == e[49], (p, i, h[1], e[49])
        if e[49] == 4:
            payload = b[struct.unpack("<Q", e[32:40])[0] + 16:][:4]
            assert payload == b"\x28\xb5\x2f\xfd", payload
assert flags == {0, 4}, flags
PY
pass "data blobs are zstd frames (flag 0x04) or raw"

expect_exit 0 "$BKR" -r "$R" verify --read-data
expect_exit 0 "$BKR" -r "$R" restore latest --target "$T/out1"
python3 "$HERE/treecmp.py" "$S" "$T/out1/src" || fail "restore from a zstd repository differs"
pass "a zstd backup verifies with --read-data and restores exactly"

bkrfs_fg "$R" "$T/mnt" "$T/bkrfs.err"
cmp "$S/words.txt" "$T/mnt/latest/src/words.txt" || fail "words.txt through the mount differs"
cmp "$S/random.bin" "$T/mnt/latest/src/random.bin" || fail "random.bin through the mount differs"
bkrfs_unmount "$T/mnt"
pass "the mount reads zstd blobs"

# damage one byte inside the first zstd blob of a data pack
pack=$(python3 - "$R" <<'PY'
import glob, os, struct, sys
for p in sorted(glob.glob(os.path.join(sys.argv[1], "data", "**", "*"), recursive=True)):
    if not os.path.isfile(p) or os.path.basename(p).startswith("."):
        continue
    b = open(p, "rb").read()
    t = b[-64:]
    count, off = struct.unpack("<I", t[12:16])[0], struct.unpack("<Q", t[16:24])[0]
    for i in range(count):
        e = b[off + 56 * i: off + 56 * (i + 1)]
        if e[49] == 4:
            at = struct.unpack("<Q", e[32:40])[0] + 16 + struct.unpack("<I", e[40:44])[0] // 2
            print(p, at)
            sys.exit(0)
PY
)
read -r file at <<<"$pack"
[ -n "$at" ] || fail "no zstd blob found to damage"
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])); b=f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0]^0x5a]))' "$file" "$at"
expect_exit 1 "$BKR" -r "$R" verify --read-data
grep -q "1 error\|damaged\|corrupt\|mismatch\|invalid" "$T/out" "$T/err" || fail "verify does not name the damage: $(cat "$T/out" "$T/err")"
pass "a damaged zstd blob fails verify --read-data"

expect_exit 2 "$BKR" init -r "$T/r2" --compression lz4
one_line_error
grep -q "zlib, zstd or none" "$T/err" || fail "bad --compression: $(cat "$T/err")"
export BKR_PASSWORD=zstd-test
expect_exit 2 "$BKR" init -r "$T/r3" --compression zstd --encryption aes-256-gcm
one_line_error
grep -q "encrypted" "$T/err" || fail "zstd with encryption: $(cat "$T/err")"
[ ! -e "$T/r3/config.json" ] || fail "zstd with encryption created a repository"
pass "zstd with encryption and unknown codecs are refused at init"
