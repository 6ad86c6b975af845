#!/usr/bin/env bash
# Damage under a live mount of an encrypted repository (docs/security.md
# "Threat model", docs/mount.md "Verify results and damage"): once the packs are damaged, what the
# mount may still serve is what it read and checked before (the trees and
# chunks it holds in memory: a lookup in a directory it listed answers from
# the tree it verified, without reading the pack again), never a byte it had
# not checked: a file whose chunk it had not read (a tampered blob after a
# good one of the same pack), a directory whose tree it had not loaded, answer
# EIO, and the daemon's log names the damage.  A fresh mount of the damaged
# repository serves nothing of it.  Needs root (FUSE).
source "$(dirname "$0")/lib.sh"

export BKR_TEST_KDF_N=1024 # cheap keys for the test (stored with each key)
export BKR_PASSWORD='tamper under a mount'
cleanup_hooks+=(bkrfs_stop_all)

S=$T/src
mkdir -p "$S/a" "$S/b"
head -c 300000 /dev/urandom >"$S/a/good.bin"
head -c 300000 /dev/urandom >"$S/a/bad.bin"
head -c 300000 /dev/urandom >"$S/b/c.bin"
R=$T/repo
expect_exit 0 "$BKR" init -r "$R" --encryption aes-256-gcm
expect_exit 0 "$BKR" -r "$R" create --type full "$S"
[ "$(ls "$R"/data/*/*.pack | wc -l)" = 1 ] || fail "the test wants the three chunks in one data pack"

# probe OP PATH [SOURCE]: what OP of PATH gives, as one word: "ok", "same"
# (read: the bytes of SOURCE), "other" (read: other bytes) or the errno's name;
# a read first drops the file's pages from the kernel's cache, so that what
# comes back comes from the daemon
probe() {
	python3 - "$@" <<'PY'
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "list":
        os.listdir(path)
    elif op == "stat":
        os.stat(path)
    else:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            data = b""
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                data += b
        finally:
            os.close(fd)
        print("same" if data == open(sys.argv[3], "rb").read() else "other")
        sys.exit(0)
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
PY
}

M=$T/mnt
bkrfs_fg "$R" "$M" "$T/fs.err"
B=$M/latest/src
# what the mount reads and checks now: the trees of src and src/a, and good.bin's chunk
[ "$(probe read "$B/a/good.bin" "$S/a/good.bin")" = same ] || fail "good.bin through the mount before the damage"
[ "$(ls "$B/a" | tr '\n' ' ')" = "bad.bin good.bin " ] || fail "src/a listed: $(ls "$B/a")"

# every pack damaged in place (a bit flipped in every 64 bytes), under the running mount
for p in "$R"/data/*/*.pack "$R"/tree/*/*.pack; do
	python3 - "$p" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    d = bytearray(f.read())
    for i in range(16, len(d), 64):
        d[i] ^= 1
    f.seek(0)
    f.write(d)
PY
done

# never served: the tampered blob after the good one, the tree not loaded before
got=$(probe read "$B/a/bad.bin" "$S/a/bad.bin")
[ "$got" = EIO ] || fail "bad.bin (its chunk damaged, never read before): $got, not EIO"
got=$(probe list "$B/b")
[ "$got" = EIO ] || fail "listing src/b (its tree damaged, never loaded before): $got, not EIO"
got=$(probe stat "$B/b/c.bin")
[ "$got" = EIO ] || fail "a name in src/b: $got, not EIO"
grep -q "authentication failed" "$T/fs.err" || fail "the daemon does not log the damage: $(cat "$T/fs.err")"
# still served, from what was checked before the damage: a lookup of a name
# that src/a does not have answers from its verified tree (the kernel has no
# entry for it: the daemon is asked), without reading the damaged pack again
got=$(probe stat "$B/a/nothing")
[ "$got" = ENOENT ] || fail "a name src/a lacks, after the damage: $got, not ENOENT from the tree verified before"
# good.bin's chunk: the bytes it checked, or EIO once it no longer holds
# them; other bytes never
got=$(probe read "$B/a/good.bin" "$S/a/good.bin")
[ "$got" = same ] || [ "$got" = EIO ] || fail "good.bin after the damage: $got"
[ "$(probe read "$B/a/bad.bin" "$S/a/bad.bin")" = EIO ] || fail "bad.bin read again: not EIO"
bkrfs_unmount "$M"

# a fresh mount held nothing: the same reads are all EIO
bkrfs_fg "$R" "$M" "$T/fs2.err"
got=$(probe read "$M/latest/src/a/good.bin" "$S/a/good.bin")
[ "$got" = EIO ] || fail "good.bin through a fresh mount of the damaged repository: $got, not EIO"
bkrfs_unmount "$M"
pass "packs damaged under a live encrypted mount: what it had verified is still served, what it had not is EIO, logged"
