#!/usr/bin/env bash
# A repository created with --compression zstd (docs/format.md, the feature
# "zstd"): config.json names the codec and the feature, blobs are zstd frames
# (flag 0x04), a backup verifies with --read-data, restores exactly, mounts;
# a damaged zstd blob is found by verify; bad --compression values are usage
# errors; and the same in an encrypted repository (sealed zstd blobs), with
# bkr copy between zstd and zlib repositories, plain and encrypted.
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
expect_exit 0 "$BKR" init -r "$T/rdefault"
python3 - "$T/rdefault/config.json" <<'PY' || fail "bkr init without --compression does not make a zstd repository"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["compression"] == {"codec": "zstd", "level": 2}, c["compression"]
PY
pass "init without --compression: zstd, the default (docs/design.md)"

expect_exit 0 "$BKR" -r "$R" create "$S" --json
json_assert "$T/out" 'r["sources"][0]["compression"] == "zstd"' ||
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
pass "unknown codecs are refused at init"

# --compression none compresses nothing: its level is 0 (docs/format.md); a
# --level beside it was written into config.json and never used
expect_exit 2 "$BKR" init -r "$T/rnone" --compression none --level 3
one_line_error
grep -q "compression none" "$T/err" || fail "--level with --compression none: $(cat "$T/err")"
[ ! -e "$T/rnone" ] || fail "a refused init left $T/rnone"
expect_exit 0 "$BKR" init -r "$T/rnone" --compression none
python3 -c 'import json,sys; c = json.load(open(sys.argv[1]))["compression"]; assert c == {"codec": "none", "level": 0}, c' \
	"$T/rnone/config.json" || fail "init --compression none: $(cat "$T/rnone/config.json")"
expect_exit 0 "$BKR" -r "$T/rnone" create "$T/src"
expect_exit 0 "$BKR" -r "$T/rnone" verify --read-data
pass "init --compression none: level 0, and a --level beside it is refused"

# --- zstd in an encrypted repository: the codec bit is inside each sealed blob
export BKR_TEST_KDF_N=1024 # cheap keys for the test (stored with each key)
export BKR_PASSWORD=zstd-test
RE=$T/renc
RZ=$T/renc-zlib
expect_exit 0 "$BKR" init -r "$RE" --compression zstd --encryption aes-256-gcm
python3 - "$RE/config.json" <<'PY' || fail "config.json of an encrypted zstd repository"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["compression"] == {"codec": "zstd", "level": 2}, c["compression"]
assert sorted(c["features"]["incompat"]) == ["encryption", "zstd"], c["features"]
assert c["encryption"] == "aes-256-gcm", c["encryption"]
PY
expect_exit 0 "$BKR" init -r "$RZ" --compression zlib --encryption aes-256-gcm
# the blobs are sealed, so the codec shows in the size: text of a 3,000-word
# vocabulary is smaller as zstd frames than as zlib streams (about 16 %),
# under the same padding
mkdir -p "$T/s2"
python3 - "$T/s2/vocab.txt" <<'PY'
import random, sys
random.seed(7)
vocab = ["".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(3, 10))) for _ in range(3000)]
with open(sys.argv[1], "w") as f:
    for i in range(60000):
        f.write(" ".join(random.choice(vocab) for _ in range(10)) + "\n")
PY
expect_exit 0 "$BKR" -r "$RE" create "$T/s2"
expect_exit 0 "$BKR" -r "$RZ" create "$T/s2"
ze=$(du -sb "$RE/data" | cut -f1)
zz=$(du -sb "$RZ/data" | cut -f1)
[ "$ze" -lt "$((zz * 9 / 10))" ] || fail "encrypted zstd data ($ze bytes) is not 10 % smaller than encrypted zlib data ($zz bytes)"
expect_exit 0 "$BKR" -r "$RE" create "$S" --json
json_assert "$T/out" 'r["sources"][0]["compression"] == "zstd"' ||
	fail "the manifest of the encrypted repository does not name zstd: $(head -c 600 "$T/out")"
expect_exit 0 "$BKR" -r "$RZ" create "$S" --json
idz=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/out")
! grep -rqa "granite harbor\|alpha backup" "$RE" || fail "plaintext in the encrypted zstd repository"
expect_exit 0 "$BKR" -r "$RE" verify --read-data
expect_exit 0 "$BKR" -r "$RE" restore latest --target "$T/out2"
python3 "$HERE/treecmp.py" "$S" "$T/out2/src" || fail "restore from an encrypted zstd repository differs"
bkrfs_fg "$RE" "$T/mnt2" "$T/bkrfs2.err"
cmp "$S/words.txt" "$T/mnt2/latest/src/words.txt" || fail "words.txt through the mount of the encrypted zstd repository"
bkrfs_unmount "$T/mnt2"
pass "init --compression zstd --encryption aes-256-gcm: both features, sealed zstd blobs (smaller than zlib), verify --read-data, restore and mount exact"

# bkr copy re-encodes every blob in the destination's codec: plain zstd ->
# encrypted zlib, encrypted zstd -> plain zlib, encrypted zlib -> encrypted zstd
RP=$T/rplain
RE2=$T/renc2
RPZ=$T/rplain-zstd # ($R has a damaged blob by now)
expect_exit 0 "$BKR" init -r "$RPZ" --compression zstd
expect_exit 0 "$BKR" -r "$RPZ" create "$T/s2"
expect_exit 0 "$BKR" init -r "$RP" --compression zlib
BKR_PASSWORD=zstd-test2 expect_exit 0 "$BKR" init -r "$RE2" --compression zstd --encryption aes-256-gcm
BKR_TO_PASSWORD=zstd-test expect_exit 0 "$BKR" copy --from "$RPZ" --to "$RZ"
BKR_FROM_PASSWORD=zstd-test expect_exit 0 "$BKR" copy --from "$RE" --to "$RP"
BKR_FROM_PASSWORD=zstd-test BKR_TO_PASSWORD=zstd-test2 expect_exit 0 "$BKR" copy --from "$RZ" --to "$RE2"
expect_exit 0 "$BKR" -r "$RP" verify --read-data
expect_exit 0 "$BKR" -r "$RP" restore latest --target "$T/out3"
python3 "$HERE/treecmp.py" "$S" "$T/out3/src" || fail "encrypted zstd -> plain zlib: the restore differs"
BKR_PASSWORD=zstd-test2 expect_exit 0 "$BKR" -r "$RE2" verify --read-data
BKR_PASSWORD=zstd-test2 expect_exit 0 "$BKR" -r "$RE2" list --json
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/out")" = 3 ] ||
	fail "encrypted zlib -> encrypted zstd: expected 3 backups: $(head -c 600 "$T/out")"
BKR_PASSWORD=zstd-test2 expect_exit 0 "$BKR" -r "$RE2" restore "$idz" --target "$T/out4"
python3 "$HERE/treecmp.py" "$S" "$T/out4/src" || fail "encrypted zlib -> encrypted zstd: the restore differs"
pass "bkr copy between zstd and zlib repositories, plain and encrypted: verify --read-data clean, restores exact"

# tamper: one flipped bit inside a sealed blob is named, never served
python3 - "$RE" <<'PY' || fail "flip a bit in a sealed blob"
import glob, os, sys
packs = sorted(p for p in glob.glob(os.path.join(sys.argv[1], "data", "**", "*.pack"), recursive=True))
p = packs[0]
with open(p, "r+b") as f:
    f.seek(16 + 40)  # inside the first sealed blob (at least 92 bytes)
    b = f.read(1)
    f.seek(16 + 40)
    f.write(bytes([b[0] ^ 0x08]))
PY
expect_exit 1 "$BKR" -r "$RE" verify --read-data
grep -q "authentication failed" "$T/out" "$T/err" || fail "verify does not name the tampered blob: $(cat "$T/out" "$T/err")"
pass "a flipped bit in a sealed zstd repository's blob fails verify --read-data (authentication failed)"

# a file of 64 MiB or more chooses its chunks' level by sampling (docs/design.md,
# "Compression"): log lines (level 1), random bytes (raw), then word text
# (level 2), in one file; it restores exactly and verifies with --read-data
RB=$T/rbig
SB=$T/srcbig
mkdir -p "$SB"
python3 - "$SB/big.log" <<'PY'
import os, random, sys
random.seed(16)
ev = ["stored chunk", "opened file", "skipped unchanged file", "published pack"]
with open(sys.argv[1], "w") as f:
    n = 0
    while n < 48 << 20:
        line = "2026-12-03T05:%02d:%02d.%06dZ INFO bkr[4242]: worker %d %s workspace/logs/session-%04d.json\n" % (
            n // 7 % 60, n // 3 % 60, random.randrange(10**6), random.randrange(4), random.choice(ev), random.randrange(10**4))
        f.write(line)
        n += len(line)
    f.flush()
    f.buffer.write(os.urandom(6 << 20))
    vocab = ["".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randrange(3, 12))) for _ in range(4000)]
    n = 0
    while n < 16 << 20:
        line = " ".join(random.choice(vocab) for _ in range(random.randrange(6, 18))) + "\n"
        f.write(line)
        n += len(line)
PY
expect_exit 0 "$BKR" init -r "$RB"
expect_exit 0 "$BKR" -r "$RB" create "$SB"
expect_exit 0 "$BKR" -r "$RB" verify --read-data
expect_exit 0 "$BKR" -r "$RB" restore latest --target "$T/outbig"
cmp "$SB/big.log" "$T/outbig/srcbig/big.log" || fail "a big file of logs, random bytes and words does not restore exactly"
pass "a 70 MiB file of logs, random bytes and word text (its level chosen by sampling) verifies and restores exactly"
