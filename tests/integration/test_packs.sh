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

