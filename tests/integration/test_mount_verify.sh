#!/bin/bash
# The mount shows verify results and damage (tests/integration/lib.sh;
# docs/bkrfs.8.md "user.bkr.verify", "user.bkr.damage"), on a real mount:
# never verified; a verify of every backup shows on the root and on each
# backup; a verify of one backup only on that one; a backup made after a
# verify is not covered by it; a damaged chunk read through the mount is EIO
# and counted in user.bkr.damage; the next verify's problems show at once.
. "$(dirname "$0")/lib.sh"

R=$T/repo
mkdir -p "$T/src"
head -c 300000 /dev/urandom >"$T/src/one.bin"
"$BKR" -q init -r "$R"
"$BKR" -q create -r "$R" "$T/src"
head -c 300000 /dev/urandom >"$T/src/two.bin"
"$BKR" -q create -r "$R" "$T/src"
mapfile -t ids < <("$BKR" -r "$R" list --json | python3 -c 'import json,sys; [print(b["backup_id"]) for b in json.load(sys.stdin)]')
[ "${#ids[@]}" = 2 ] || fail "expected 2 backups: ${ids[*]}"

mnt=$T/mnt
mkdir -p "$mnt"
bkrfs_fg "$R" "$mnt" "$T/fs.err"
# attr PATH NAME: the value of xattr NAME of PATH
attr() { getfattr --absolute-names --only-values -n "$2" "$1"; }

getfattr --absolute-names -d "$mnt" >"$T/all" || fail "getfattr -d on the root"
grep -q '^user.bkr.verify="result=never"$' "$T/all" || fail "root before any verify: $(cat "$T/all")"
grep -q '^user.bkr.damage="eio_chunks=0"$' "$T/all" || fail "root damage before any read: $(cat "$T/all")"
[ "$(attr "$mnt/by-id/${ids[0]}" user.bkr.verify)" = "result=never" ] || fail "backup before any verify"
pass "never verified: result=never, no damage"

# a verify of everything: on the root and on every backup, at once
"$BKR" -q -r "$R" verify
v=$(attr "$mnt" user.bkr.verify)
[[ $v =~ ^time=[0-9T:.-]+Z\ result=ok\ scope=all\ read_data=no\ errors=0\ damaged_blobs=0\ damaged_files=0$ ]] ||
	fail "root after verify: $v"
for id in "${ids[@]}"; do
	[ "$(attr "$mnt/by-id/$id" user.bkr.verify)" = "$v" ] || fail "backup $id after verify: $(attr "$mnt/by-id/$id" user.bkr.verify)"
done
[ "$(attr "$mnt/latest" user.bkr.verify)" = "$v" ] || fail "latest after verify"
pass "verify of every backup: $v"

# a verify of one backup: that one and the root, not the other
"$BKR" -q -r "$R" verify --read-data "${ids[1]}"
v1=$(attr "$mnt/by-id/${ids[1]}" user.bkr.verify)
[[ $v1 == *" result=ok scope=${ids[1]} read_data=yes "* ]] || fail "the verified backup: $v1"
[ "$(attr "$mnt" user.bkr.verify)" = "$v1" ] || fail "root after one backup's verify"
[ "$(attr "$mnt/by-id/${ids[0]}" user.bkr.verify)" = "$v" ] || fail "the other backup took the newer verify"
pass "verify of one backup shows on it alone"

# one named as 'latest' (or a prefix): its record names the backup by its full
# id, so it shows on that backup (it kept the ID as given, matched no backup)
"$BKR" -q -r "$R" verify latest
v3=$(attr "$mnt/by-id/${ids[1]}" user.bkr.verify)
[[ $v3 == *" result=ok scope=${ids[1]} read_data=no "* ]] && [ "$v3" != "$v1" ] ||
	fail "a verify of 'latest' on the latest backup: $v3 (before it: $v1)"
[ "$(attr "$mnt/by-id/${ids[0]}" user.bkr.verify)" = "$v" ] || fail "the other backup took the verify of 'latest'"
pass "verify of 'latest' shows on that backup: $v3"

# damage the first backup's data: the mount answers EIO and counts it
pack=$(python3 - "$R" <<'PY'
import os, sys
packs = sorted((os.path.getmtime(os.path.join(d, f)), os.path.join(d, f))
               for d, _, fs in os.walk(os.path.join(sys.argv[1], "data")) for f in fs if f.endswith(".pack"))
print(packs[0][1])   # the first backup's
PY
)
flip_byte_in_blob "$pack"
expect_eio "$mnt/by-id/${ids[0]}/src/one.bin"
d=$(attr "$mnt" user.bkr.damage)
[[ $d == "eio_chunks=1 last=backup ${ids[0]}, file 'src/one.bin': chunk "* ]] || fail "damage after EIO: $d"
pass "EIO counted on the root: ${d:0:80}..."

# the next verify finds it: problems on the root and on the backups it covered
"$BKR" -q -r "$R" verify --read-data >/dev/null 2>&1 && fail "verify missed the damage"
v2=$(attr "$mnt" user.bkr.verify)
[[ $v2 =~ result=problems\ scope=all\ read_data=yes\ errors=[1-9][0-9]*\ damaged_blobs=[1-9] ]] || fail "root after damage: $v2"
[ "$(attr "$mnt/by-id/${ids[0]}" user.bkr.verify)" = "$v2" ] || fail "damaged backup after verify"
pass "verify problems show at once: $v2"

# a backup made after that verify is not covered by it
echo new >"$T/src/three.txt"
"$BKR" -q -r "$R" create "$T/src" || true
id3=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
[ "$id3" != "${ids[1]}" ] || fail "no third backup"
wait_until test -e "$mnt/by-id/$id3" || fail "the third backup did not appear in the mount"
[ "$(attr "$mnt/by-id/$id3" user.bkr.verify)" = "result=never" ] || fail "a newer backup took an older verify"
pass "a backup newer than every verify: result=never"

bkrfs_unmount "$mnt"

# a backup whose trees the index lacks (tree packs lost): listing and lookups
# answer EIO and the log names the tree, never an empty or missing directory
R2=$T/repo-notrees
"$BKR" -q init -r "$R2"
"$BKR" -q create -r "$R2" "$T/src"
find "$R2/tree" -name '*.pack' -delete
bkrfs_fg "$R2" "$mnt" "$T/fs2.err"
id=$(ls "$mnt/by-id")
python3 - "$mnt/by-id/$id" <<'PY' || fail "a backup without its trees did not answer EIO"
import errno, os, sys
root = sys.argv[1]
for what, f in (("list", lambda: os.listdir(root)), ("lookup", lambda: os.stat(root + "/src")),
                ("list latest", lambda: os.listdir(os.path.dirname(os.path.dirname(root)) + "/latest"))):
    try:
        f()
    except OSError as e:
        if e.errno != errno.EIO:
            sys.exit("%s: %s, not EIO" % (what, e))
    else:
        sys.exit("%s: no error" % what)
PY
grep -q "tree blob [0-9a-f]\{64\}: pack [0-9a-f]*: missing" "$T/fs2.err" || fail "the log does not name the missing tree: $(cat "$T/fs2.err")"
bkrfs_unmount "$mnt"
pass "a backup whose trees are lost: EIO on listing and lookup, the tree named in the log"

# a bkrfs killed -9 leaves its mount point dead (ENOTCONN): a new bkrfs there says
# how to clear it, exit 3 (mount point)
bkrfs_fg "$R2" "$mnt" "$T/fs3.err"
kill -9 "$DAEMON"
wait "$DAEMON" 2>/dev/null || true
rc=0
"$BKRFS" "$R2" "$mnt" -f 2>"$T/fs4.err" || rc=$?
fusermount3 -uz "$mnt" 2>/dev/null
[ "$rc" = 3 ] || fail "bkrfs on a dead mount point exited $rc: $(cat "$T/fs4.err")"
grep -q "Transport endpoint is not connected (a bkrfs that died left it mounted: fusermount3 -u $mnt)" "$T/fs4.err" ||
	fail "bkrfs on a dead mount point gives no hint: $(cat "$T/fs4.err")"
pass "bkrfs on the dead mount point of a killed bkrfs says to unmount it (fusermount3 -u)"
