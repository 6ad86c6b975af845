#!/bin/bash
# History of one file: `bkr log` (and -p against diff -u) and a real bkrfs
# mount's /versions on a scripted history of real backups: a file changed,
# unchanged, metadata-only change, deleted then re-created, a directory that
# becomes a file, a symlink retargeted, a non-UTF-8 name, two backups in one
# second, a binary file; versions byte- and metadata-exact; live refresh;
# /by-source/*/latest after backups of single sources; /by-tag.
. "$(dirname "$0")/lib.sh"

R=$T/repo
W=$T/ws
new_repo
mkdir -p "$W/config" "$W/d"
NAME=$(printf 'name-\377\376')

# backup N at 2026-11-01T0N:00:00Z (SEC seconds when given: 00.1)
backup() {
	BKR_TEST_NOW=2026-11-01T0$1:00:${2:-00}Z "$BKR" -q -r "$R" create "$W" >/dev/null || fail "backup $1"
}
printf 'host = a\nport = 1\nlevel = 3\nname = x\n' >"$W/config/app.json"
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.note", b"recorded")' "$W/config/app.json"
printf 'kept\n' >"$W/keep.txt"
printf 'inner\n' >"$W/d/inner"
printf 'clash\n' >"$W/d/2026-11-01T05:00:00"                # a child named as ws/d's later file version
ln -s t1 "$W/link"
printf 'one\n' >"$W/$NAME"
printf 'bin\0ary\n' >"$W/blob.bin"
touch -h -d '2026-10-01 00:00:00' "$W/config/app.json" "$W/keep.txt" "$W/d/inner" "$W/d/2026-11-01T05:00:00" "$W/link" "$W/$NAME" "$W/blob.bin"
backup 1
backup 2                                                   # nothing changed
printf 'host = b\nport = 1\nlevel = 3\nname = x\nnew = yes\n' >"$W/config/app.json"
ln -sfn t2 "$W/link"
printf 'bin\0ary2\n' >"$W/blob.bin"
backup 3
chmod 600 "$W/config/app.json"                             # metadata only
printf 'two\n' >"$W/$NAME"
backup 4
rm "$W/config/app.json"
rm -r "$W/d"
printf 'now a file\n' >"$W/d"                              # a directory becomes a file
backup 5
printf 'host = c\n' >"$W/config/app.json"                  # re-created
backup 6
printf 'host = d\n' >"$W/config/app.json"
backup 7 00.1
printf 'host = e\n' >"$W/config/app.json"
backup 7 00.2                                                 # the same second
ids=($("$BKR" -r "$R" list --json | python3 -c 'import json,sys; [print(b["backup_id"]) for b in json.load(sys.stdin)]'))
[ "${#ids[@]}" = 8 ] || fail "expected 8 backups, got ${#ids[@]}"

# changes "CHANGE CHANGE ..." newest first, from bkr log --json ARGS
changes() {
	"$BKR" -r "$R" log --json "$@" >"$T/log.json" || fail "bkr log $*"
	json_ok "$T/log.json"
	python3 -c 'import json,sys; print(" ".join(v["change"] for v in json.load(open(sys.argv[1]))["versions"]))' "$T/log.json"
}

# ---- bkr log ------------------------------------------------------------------------
got=$(changes ws/config/app.json)
[ "$got" = "content content added removed metadata content added" ] || fail "app.json: $got"
python3 - "$T/log.json" "${ids[@]}" <<'PY' || fail "app.json versions"
import json, sys, hashlib
v = json.load(open(sys.argv[1]))["versions"]
ids = sys.argv[2:]
assert [x["backup_id"] for x in v] == [ids[7], ids[6], ids[5], ids[4], ids[3], ids[2], ids[0]], v
assert v[0]["sha256"] == hashlib.sha256(b"host = e\n").hexdigest() and v[0]["size"] == 9
assert v[4]["what"] == ["mode"] and v[4]["mode"] == 0o600
assert "sha256" not in v[3] and v[3]["change"] == "removed"
assert v[6]["time"].startswith("2026-11-01T01:00:00")
PY
pass "bkr log: changed, unchanged left out, metadata only, deleted then re-created, two in one second"
[ "$(changes --all ws/config/app.json)" = "content content added removed metadata content unchanged added" ] ||
	fail "--all"
[ "$(changes --until 2026-11-01T02:30:00Z ws/config/app.json)" = "added" ] || fail "--until"
[ "$(changes --since 2026-11-01T03:00:00 --until 2026-11-01T05:00:00Z ws/config/app.json)" = "removed metadata content" ] ||
	fail "--since/--until"
[ "$(changes ws/link)" = "content added" ] || fail "link: $(cat "$T/log.json")"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["versions"]; assert [x["target"] for x in v] == ["t2", "t1"], v' "$T/log.json" ||
	fail "link targets"
[ "$(changes ws/d)" = "content added" ] || fail "ws/d"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["versions"]; assert [x["type"] for x in v] == ["file", "dir"] and "type" in v[0]["what"], v' "$T/log.json" ||
	fail "dir becomes file"
[ "$(changes ws/d/inner)" = "removed added" ] || fail "ws/d/inner"
[ "$(changes "ws/$NAME")" = "content added" ] || fail "non-UTF-8 name"
json_assert "$T/log.json" 'r["path_hex"].endswith("fffe")' ||
	fail "non-UTF-8 path_hex"
[ "$(changes ws/keep.txt)" = "added" ] || fail "keep.txt"
[ "$(changes ws)" = "content content content content content content added" ] || fail "ws"
pass "bkr log: symlink retargeted, directory becomes file, non-UTF-8 name, a directory"

# PATH forms: --source, a path inside the workspace (relative, absolute, gone)
[ "$(changes --source ws config/app.json)" = "content content added removed metadata content added" ] || fail "--source"
[ "$(cd "$W" && changes ./config/app.json)" = "content content added removed metadata content added" ] || fail "./path"
[ "$(changes "$W/d/inner")" = "removed added" ] || fail "absolute path of a file that is gone"
[ "$(cd "$W/config" && changes app.json)" = "content content added removed metadata content added" ] || fail "a file here"
expect_exit 3 "$BKR" -r "$R" log ws/never/there
one_line_error
grep -q "in no backup" "$T/err" || fail "not-found message: $(cat "$T/err")"
expect_exit 3 "$BKR" -r "$R" log nosource/x
one_line_error
expect_exit 3 "$BKR" -r "$R" log /etc/hostname
one_line_error
expect_exit 2 "$BKR" -r "$R" log --since yesterday ws/keep.txt
one_line_error
expect_exit 2 "$BKR" -r "$R" log
expect_exit 0 "$BKR" log --help
grep -q -- "--since" "$T/out" || fail "--help"
expect_exit 0 "$BKR" -r "$R" log ws/config/app.json
[ "$(wc -l <"$T/out")" = 7 ] || fail "text output: $(cat "$T/out")"
grep -q "^2026-11-01T04:00:00Z  ${ids[3]}  metadata:mode file" "$T/out" || fail "text line: $(cat "$T/out")"
pass "bkr log: PATH forms and errors"

# ---- bkr log -p against diff -u ----------------------------------------------------------
"$BKR" -r "$R" log -p --json ws/config/app.json >"$T/p.json"
json_ok "$T/p.json"
"$BKR" -r "$R" cat "${ids[1]}" ws/config/app.json >"$T/v1"
"$BKR" -r "$R" cat "${ids[2]}" ws/config/app.json >"$T/v2"
"$BKR" -r "$R" cat "${ids[5]}" ws/config/app.json >"$T/v6"
"$BKR" -r "$R" cat "${ids[6]}" ws/config/app.json >"$T/v7"
: >"$T/empty"
# the hunks of the patch of the version of backup ID == those of diff -u A B
check_patch() {
	local id=$1 a=$2 b=$3
	python3 - "$T/p.json" "$id" >"$T/ours" <<'PY'
import json, sys
v = [x for x in json.load(open(sys.argv[1]))["versions"] if x["backup_id"] == sys.argv[2]][0]
sys.stdout.write("".join(v["patch"].splitlines(True)[2:]))
PY
	diff -u "$a" "$b" | tail -n +3 >"$T/theirs" || true
	cmp -s "$T/ours" "$T/theirs" || { diff "$T/theirs" "$T/ours"; fail "patch of $id differs from diff -u"; }
}
check_patch "${ids[2]}" "$T/v1" "$T/v2"
check_patch "${ids[6]}" "$T/v6" "$T/v7"
check_patch "${ids[5]}" "$T/empty" "$T/v6"                   # re-created: from nothing
check_patch "${ids[4]}" "$T/v2" "$T/empty"                   # removed: to nothing
python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["versions"]; m=[x for x in v if x["change"]=="metadata"][0]; assert m["patch"] == "", m' "$T/p.json" ||
	fail "a metadata-only change has no patch"
"$BKR" -r "$R" log -p ws/blob.bin >"$T/out"
grep -q "^Binary files differ$" "$T/out" || fail "binary: $(cat "$T/out")"
"$BKR" -r "$R" log -p ws/config/app.json >"$T/out"
grep -q "^-host = a$" "$T/out" && grep -q "^+new = yes$" "$T/out" || fail "text -p: $(cat "$T/out")"
pass "bkr log -p: the hunks of diff -u, binary files say so"

# ---- the mount: /versions --------------------------------------------------------------
M=$T/mnt
mkdir -p "$M"
"$BKRFS" "$R" "$M" -o watch_ms=200 || fail "bkrfs did not mount"
cleanup_hooks+=("fusermount3 -u '$M' 2>/dev/null || fusermount3 -uz '$M' 2>/dev/null")
V=$M/versions
[ "$(ls "$V")" = ws ] || fail "/versions: $(ls "$V")"
[ "$(ls "$V/ws" | tr '\n' ' ')" = "blob.bin config d keep.txt link $NAME " ] || fail "/versions/ws: $(ls "$V/ws")"
s1=${ids[6]##*_}
s2=${ids[7]##*_}
want="2026-11-01T01:00:00 2026-11-01T03:00:00 2026-11-01T04:00:00 2026-11-01T06:00:00 2026-11-01T07:00:00-$s1 2026-11-01T07:00:00-$s2"
[ "$(ls "$V/ws/config/app.json" | tr '\n' ' ')" = "$(echo $want | tr ' ' '\n' | sort | tr '\n' ' ')" ] ||
	fail "versions of app.json: $(ls "$V/ws/config/app.json")"
# each version is the file of its backup: bytes, mode, owner, times, xattrs, user.bkr.backup_id
exact() { # VERSION BACKUP_ID PATH
	local v=$1 id=$2 p=$3 b=$M/by-id/$2/$3
	if [ -L "$v" ]; then
		[ "$(readlink "$v")" = "$(readlink "$b")" ] || fail "$v: target differs from $b"
	else
		cmp "$v" "$b" || fail "$v: content differs from $b"
	fi
	[ "$(stat -c '%f %s %u %g %y %h' "$v")" = "$(stat -c '%f %s %u %g %y %h' "$b")" ] ||
		fail "$v: $(stat -c '%f %s %u %g %y' "$v") vs $(stat -c '%f %s %u %g %y' "$b")"
	[ "$(getfattr -h -d -m - --absolute-names "$v" | tail -n +2)" = "$(getfattr -h -d -m - --absolute-names "$b" | tail -n +2)" ] ||
		fail "$v: xattrs differ"
	# (user.* attributes exist on files and directories only)
	[ -L "$v" ] || [ "$(getfattr -n user.bkr.backup_id --only-values "$v")" = "$id" ] || fail "$v: user.bkr.backup_id"
}
exact "$V/ws/config/app.json/2026-11-01T01:00:00" "${ids[0]}" ws/config/app.json
exact "$V/ws/config/app.json/2026-11-01T03:00:00" "${ids[2]}" ws/config/app.json
exact "$V/ws/config/app.json/2026-11-01T04:00:00" "${ids[3]}" ws/config/app.json
exact "$V/ws/config/app.json/2026-11-01T07:00:00-$s2" "${ids[7]}" ws/config/app.json
[ "$(getfattr -n user.note --only-values "$V/ws/config/app.json/2026-11-01T01:00:00")" = recorded ] || fail "xattr"
[ "$(stat -c %a "$V/ws/config/app.json/2026-11-01T04:00:00")" = 600 ] || fail "metadata-only version"
cmp -s "$V/ws/config/app.json/2026-11-01T03:00:00" "$V/ws/config/app.json/2026-11-01T04:00:00" ||
	fail "a metadata-only version has the same bytes"
cmp "$V/ws/config/app.json/2026-11-01T01:00:00" "$T/v1" || fail "first version's bytes"
! diff -q "$V/ws/config/app.json/2026-11-01T01:00:00" "$V/ws/config/app.json/2026-11-01T03:00:00" >/dev/null ||
	fail "diff between two versions shows no change"
pass "/versions: the distinct versions of a file, exact bytes, metadata, xattrs and backup id"

[ "$(ls "$V/ws/keep.txt")" = 2026-11-01T01:00:00 ] || fail "an unchanged file: $(ls "$V/ws/keep.txt")"
[ "$(ls "$V/ws/link" | tr '\n' ' ')" = "2026-11-01T01:00:00 2026-11-01T03:00:00 " ] || fail "link: $(ls "$V/ws/link")"
[ "$(readlink "$V/ws/link/2026-11-01T01:00:00")$(readlink "$V/ws/link/2026-11-01T03:00:00")" = t1t2 ] ||
	fail "symlink targets"
exact "$V/ws/link/2026-11-01T03:00:00" "${ids[2]}" ws/link
[ "$(ls "$V/ws/d" | tr '\n' ' ')" = "2026-11-01T05:00:00 2026-11-01T05:00:00~ inner " ] || fail "dir becomes file: $(ls "$V/ws/d")"
[ "$(python3 -c 'import os,sys; n=os.listdir(sys.argv[1]); print(len(n), len(set(n)))' "$V/ws/d")" = "3 3" ] ||
	fail "a name listed twice in /versions/ws/d"
[ "$(cat "$V/ws/d/2026-11-01T05:00:00")" = "now a file" ] || fail "the file that was a directory"
# the child named as a version is shown with "~" added, and reached by that name
[ -d "$V/ws/d/2026-11-01T05:00:00~" ] || fail "the child named as a version is not a directory"
[ "$(cat "$V/ws/d/2026-11-01T05:00:00~/2026-11-01T01:00:00")" = clash ] || fail "the child named as a version"
[ "$(ls "$V/ws/d/inner")" = 2026-11-01T01:00:00 ] || fail "a file of the directory era"
[ "$(ls "$V/ws/$NAME" | tr '\n' ' ')" = "2026-11-01T01:00:00 2026-11-01T04:00:00 " ] || fail "non-UTF-8 name"
[ "$(cat "$V/ws/$NAME/2026-11-01T04:00:00")" = two ] || fail "non-UTF-8 name content"
[ "$(find "$V" ! -type d | wc -l)" = 16 ] || fail "find /versions: $(find "$V" ! -type d)"
pass "/versions: unchanged, symlink retargeted, directory becomes file (a child named as a version: ~), deleted then re-created, non-UTF-8"

# ---- live refresh, /by-source after single-source backups, /by-tag --------------------------
printf 'host = f\n' >"$W/config/app.json"
backup 8
wait_until test -e "$V/ws/config/app.json/2026-11-01T08:00:00" || fail "a new version did not appear: $(ls "$V/ws/config/app.json")"
[ "$(cat "$V/ws/config/app.json/2026-11-01T08:00:00")" = "host = f" ] || fail "the new version"
[ "$(ls "$V/ws/config/app.json" | wc -l)" = 7 ] || fail "7 versions after the new backup"
pass "/versions: a new backup's version appears live"

mkdir -p "$T/other"
echo o >"$T/other/o.txt"
BKR_TEST_NOW=2026-11-01T09:00:00Z "$BKR" -q -r "$R" create "other=$T/other" >/dev/null
oid=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
ws8=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-2]["backup_id"])')
wait_until test -e "$M/by-source/other/latest" || fail "/by-source/other/latest did not appear"
[ "$(readlink "$M/by-source/ws/latest")" = "../../by-id/$ws8/ws" ] || fail "/by-source/ws/latest -> $(readlink "$M/by-source/ws/latest")"
[ "$(cat "$M/by-source/ws/latest/config/app.json")" = "host = f" ] || fail "through /by-source/ws/latest"
[ "$(readlink "$M/by-source/other/latest")" = "../../by-id/$oid/other" ] || fail "/by-source/other/latest"
[ "$(cat "$M/by-source/other/latest/o.txt")" = o ] || fail "through /by-source/other/latest"
[ "$(ls "$M/by-source" | tr '\n' ' ')" = "other ws " ] || fail "/by-source: $(ls "$M/by-source")"
[ "$(ls "$M/by-source/ws" | wc -l)" = 10 ] || fail "/by-source/ws: $(ls "$M/by-source/ws")"
[ "$(ls "$M/by-source/other" | tr '\n' ' ')" = "$oid latest " ] || fail "/by-source/other: $(ls "$M/by-source/other")"
[ "$(readlink "$M/latest")" = "by-id/$oid" ] || fail "/latest is the newest of any source"
pass "/by-source: one entry per backup holding the source, latest per source"

[ -z "$(ls "$M/by-tag")" ] || fail "/by-tag before any tag"
"$BKR" -q -r "$R" tag "${ids[2]}" --add release
"$BKR" -q -r "$R" tag "$ws8" --add release --add nightly
wait_until test -e "$M/by-tag/nightly" || fail "/by-tag/nightly did not appear"
[ "$(ls "$M/by-tag" | tr '\n' ' ')" = "nightly release " ] || fail "/by-tag: $(ls "$M/by-tag")"
[ "$(ls "$M/by-tag/release" | tr '\n' ' ')" = "${ids[2]} $ws8 " ] || fail "/by-tag/release: $(ls "$M/by-tag/release")"
[ "$(readlink "$M/by-tag/nightly/$ws8")" = "../../by-id/$ws8" ] || fail "/by-tag link"
[ -f "$M/by-tag/release/${ids[2]}/ws/keep.txt" ] || fail "through /by-tag"
pass "/by-tag: tagged backups, live"

# a backup of another source alone (09:00, "other") is no removal of ws's files
BKR_TEST_NOW=2026-11-01T10:00:00Z "$BKR" -q -r "$R" create "$W" >/dev/null || fail "backup 10"
[ "$(changes ws/keep.txt)" = added ] || fail "keep.txt across a backup of another source: $(changes ws/keep.txt)"
[ "$(changes --all ws/keep.txt | wc -w)" = 10 ] || fail "--all lists a backup without the source: $(changes --all ws/keep.txt)"
wait_until eval '[ "$(ls "$M/by-source/ws" | wc -l)" = 11 ]' || fail "the 10:00 backup did not appear"
[ "$(ls "$V/ws/keep.txt")" = 2026-11-01T01:00:00 ] || fail "/versions/ws/keep.txt: $(ls "$V/ws/keep.txt")"
[ "$(ls "$V/ws/config/app.json" | wc -l)" = 7 ] || fail "/versions/ws/config/app.json: $(ls "$V/ws/config/app.json")"
pass "bkr log, /versions: a backup of another source alone is skipped, not a removal"

# bkr log LIVE_PATH of a single-file source is the file (kept as NAME/NAME), not
# its directory; text log marks a sparse file's digest, which is no SHA-256
R7=$T/repo7
mkdir -p "$T/etc7"
printf 'v1\n' >"$T/etc7/app.conf"
truncate -s 1M "$T/etc7/sp"
printf x | dd of="$T/etc7/sp" bs=1 seek=500000 conv=notrunc status=none
"$BKR" -q init -r "$R7" >/dev/null
BKR_TEST_NOW=2026-11-06T01:00:00Z "$BKR" -q -r "$R7" create "$T/etc7/app.conf" "$T/etc7/sp" >/dev/null || fail "r7 backup 1"
printf 'v2\n' >"$T/etc7/app.conf"
BKR_TEST_NOW=2026-11-06T02:00:00Z "$BKR" -q -r "$R7" create "$T/etc7/app.conf" "$T/etc7/sp" >/dev/null || fail "r7 backup 2"
"$BKR" -r "$R7" log "$T/etc7/app.conf" >"$T/out" 2>"$T/err" || fail "log of a single-file source: $(cat "$T/err")"
[ "$(awk '{print $3, $4}' "$T/out" | tr '\n' ' ')" = "content file added file " ] ||
	fail "log of a single-file source's live path: $(cat "$T/out")"
grep -q 'app.conf/app.conf' "$T/err" || fail "log of a single-file source: $(cat "$T/err")"
"$BKR" -r "$R7" log sp/sp >"$T/out" 2>/dev/null || fail "log sp/sp"
[ "$(awk '{print $NF}' "$T/out")" != "$(sha256sum "$T/etc7/sp" | cut -c1-64)" ] || fail "test assumption: sparse digest"
grep -q ' sparse:[0-9a-f]\{64\}$' "$T/out" || fail "a sparse digest is shown as a SHA-256: $(cat "$T/out")"
pass "bkr log: a single-file source's live path is the file; a sparse digest is marked"
# ... and so is it once the file is deleted (mapped by the backups, not by
# what is on disk): not the directory holding it
rm "$T/etc7/app.conf"
for p in "$T/etc7/app.conf" ./app.conf; do
	(cd "$T/etc7" && "$BKR" -r "$R7" log "$p") >"$T/out" 2>"$T/err" || fail "log of a deleted single-file source $p: $(cat "$T/err")"
	[ "$(awk '{print $3, $4}' "$T/out" | tr '\n' ' ')" = "content file added file " ] ||
		fail "log of a deleted single-file source's live path $p: $(cat "$T/out")"
	grep -q 'app.conf/app.conf' "$T/err" || fail "log of a deleted single-file source $p: $(cat "$T/err")"
done
pass "bkr log: a deleted single-file source's live path is still the file"
fusermount3 -u "$M"

# /latest and /by-source/<s>/latest are the newest backup made by now, as
# 'bkr cat latest': a backup dated in the future (made while the clock was
# ahead) holds older data than the ones made since, and is passed over
W8=$T/ws8
R8=$T/repo8
mkdir -p "$W8/s"
"$BKR" init -r "$R8" >/dev/null
echo ahead >"$W8/s/f"
BKR_TEST_NOW=2030-01-01T00:00:00Z "$BKR" -q -r "$R8" create "$W8/s" >/dev/null
echo now >"$W8/s/f"
"$BKR" -q -r "$R8" create "$W8/s" >/dev/null
bkrfs_fg "$R8" "$T/mnt8" "$T/bkrfs8.err"
[ "$(cat "$T/mnt8/latest/s/f")" = now ] || fail "/latest is the backup dated in the future: $(readlink "$T/mnt8/latest")"
[ "$(cat "$T/mnt8/by-source/s/latest/f")" = now ] ||
	fail "/by-source/s/latest is the backup dated in the future: $(readlink "$T/mnt8/by-source/s/latest")"
[ "$("$BKR" -q -r "$R8" cat latest s/f)" = now ] || fail "bkr cat latest"
ls "$T/mnt8/by-date" | grep -q '^2030-01-01$' || fail "the backup dated 2030 is not listed in /by-date"
readlink "$T/mnt8/latest" >/dev/null
bkrfs_unmount "$T/mnt8"
# the mount says so, once (it said nothing of a readable backup it passed over)
ahead8=$(cd "$R8/backups" && ls backup_2030* | sed 's/\.json$//')
[ "$(grep -c "latest passes over" "$T/bkrfs8.err")" = 1 ] &&
	grep -qxF "bkrfs: /latest passes over 1 backup dated in the future (the clock was ahead when it was made): $ahead8" "$T/bkrfs8.err" ||
	fail "the mount's line on the backup dated 2030: $(cat "$T/bkrfs8.err")"
pass "/latest and /by-source/<s>/latest pass over a backup dated in the future, as bkr's latest; the mount logs it once"

# ... 40 such backups: one line, naming the first 5 (the oldest-dated) and counting the rest
R40=$T/repo40
"$BKR" init -r "$R40" >/dev/null
for k in $(seq 10 49); do
	BKR_TEST_NOW=2030-01-01T00:$k:00Z "$BKR" -q -r "$R40" create "$W8/s" >/dev/null || fail "create at 2030-01-01T00:$k"
done
"$BKR" -q -r "$R40" create "$W8/s" >/dev/null
bkrfs_fg "$R40" "$T/mnt40" "$T/bkrfs40.err"
[ "$(cat "$T/mnt40/latest/s/f")" = now ] || fail "/latest of 40 backups dated in the future: $(readlink "$T/mnt40/latest")"
ls "$T/mnt40/by-id" >/dev/null
bkrfs_unmount "$T/mnt40"
first5=$(cd "$R40/backups" && ls backup_2030* | sed 's/\.json$//' | head -5 | paste -sd, | sed 's/,/, /g')
[ "$(grep -c "dated in the future" "$T/bkrfs40.err")" = 1 ] &&
	grep -qxF "bkrfs: /latest passes over 40 backups dated in the future (the clock was ahead when they were made): $first5 and 35 more (bkr list shows them)" "$T/bkrfs40.err" ||
	fail "the mount's line on 40 backups dated 2030: $(cat "$T/bkrfs40.err")"
pass "the mount names 5 of 40 backups /latest passes over as dated in the future, in one line"

# ... and so over a damaged manifest whose id is dated in the future, as they
# would if it read: bkr's latest and /by-source/<s>/latest named no backup
# (refused, EIO) where /latest passed over it; now all three take the newest
# made by now, bkr with a warning naming the damaged one, the mount a log line
R9=$T/repo9
"$BKR" init -r "$R9" >/dev/null
echo now >"$W8/s/f"
"$BKR" -q -r "$R9" create "$W8/s" >/dev/null
BKR_TEST_NOW=2031-01-01T00:00:00Z "$BKR" -q -r "$R9" create "$W8/s" >/dev/null
ahead9=$(cd "$R9/backups" && ls backup_2031* | sed 's/\.json$//')
[ -n "$ahead9" ] || fail "no backup dated 2031"
printf 'not a manifest' >"$R9/backups/$ahead9.json"
expect_exit 0 "$BKR" -r "$R9" cat latest s/f
[ "$(cat "$T/out")" = now ] || fail "bkr cat latest with a damaged manifest dated in the future: $(cat "$T/out")"
grep -qF "backups/$ahead9.json is damaged and its id is dated in the future (2031-01-01T00:00:00" "$T/err" ||
	fail "bkr cat latest does not name the damaged manifest it passed over: $(cat "$T/err")"
bkrfs_fg "$R9" "$T/mnt9" "$T/bkrfs9.err"
[ "$(cat "$T/mnt9/latest/s/f")" = now ] || fail "/latest with a damaged manifest dated in the future: $(readlink "$T/mnt9/latest")"
[ "$(cat "$T/mnt9/by-source/s/latest/f" 2>&1)" = now ] ||
	fail "/by-source/s/latest with a damaged manifest dated in the future: $(cat "$T/mnt9/by-source/s/latest/f" 2>&1)"
bkrfs_unmount "$T/mnt9"
grep -qF "/by-source/s/latest: backups/$ahead9.json is damaged and its id is dated in the future: passed over" "$T/bkrfs9.err" ||
	fail "the mount does not log the damaged manifest it passed over: $(cat "$T/bkrfs9.err")"
# its name escaped once (a backslash, an escape character: '\\', '\x1b'),
# not twice; an id dated past 2262 (past an int64 of ns) with no date made up
printf 'junk' >"$R9/backups/backup_29990101_000000_full_a\\b.json"
printf 'junk' >"$R9/backups/backup_29990101_000000_full_c$(printf '\033')d.json"
expect_exit 0 "$BKR" -r "$R9" cat latest s/f
[ "$(cat "$T/out")" = now ] || fail "bkr cat latest with damaged manifests dated 2999: $(cat "$T/out")"
grep -qF 'backups/backup_29990101_000000_full_a\\b.json is damaged and its id is dated in the future:' "$T/err" &&
	grep -qF 'backups/backup_29990101_000000_full_c\x1bd.json is damaged and its id is dated in the future:' "$T/err" ||
	fail "the damaged manifests dated 2999, named: $(cat -v "$T/err")"
grep -q 2262 "$T/err" && fail "a date made up for an id dated 2999: $(cat -v "$T/err")"
# one whose escaped name is long (70 control characters: 280 bytes escaped) is named whole
rm -f "$R9/backups/backup_2999"*
printf 'junk' >"$R9/backups/backup_29990101_000000_full_$(head -c 70 /dev/zero | tr '\0' '\1').json"
expect_exit 0 "$BKR" -r "$R9" cat latest s/f
grep -qF "backups/backup_29990101_000000_full_$(for i in $(seq 70); do printf '\\x01'; done).json is damaged" "$T/err" ||
	fail "a damaged manifest with a long escaped name, named: $(cat -v "$T/err")"
rm -f "$R9/backups/backup_2999"*
pass "a damaged manifest dated in the future: bkr's latest, /latest and /by-source/<s>/latest pass over it, as if it read, naming it"

# ... and when it is the only backup there is no older one to speak of: the
# line says there is no 'latest' (it said 'latest' "would name an older one")
R10=$T/repo10
"$BKR" init -r "$R10" >/dev/null
BKR_TEST_NOW=2031-01-01T00:00:00Z "$BKR" -q -r "$R10" create "$W8/s" >/dev/null
only10=$(cd "$R10/backups" && ls)
printf 'not a manifest' >"$R10/backups/$only10"
expect_exit 4 "$BKR" -r "$R10" cat latest s/f
grep -qF "backups/$only10 is damaged and no other backup reads, so there is no 'latest'" "$T/err" ||
	fail "latest with the only manifest damaged: $(cat "$T/err")"
grep -q "older one" "$T/err" && fail "latest with the only manifest damaged speaks of an older one: $(cat "$T/err")"
pass "the only manifest damaged and dated in the future: 'latest' is none, said so"

# a plain readdir (a kernel without readdirplus; the fault point turns it off)
# gives each version the type getattr gives: a FIFO or a device is not a file
RT=$T/repo-types
WT=$T/ws-types
mkdir -p "$WT/s"
"$BKR" init -r "$RT" >/dev/null
echo data >"$WT/s/file"
ln -s file "$WT/s/link"
mkfifo "$WT/s/fifo"
mknod "$WT/s/chr" c 1 3
mknod "$WT/s/blk" b 7 200
"$BKR" -q -r "$RT" create "$WT/s" >/dev/null || fail "backup of the special files"
BKR_FAULT=fs-readdirplus:1 bkrfs_fg "$RT" "$T/mnt-types" "$T/bkrfs-types.err"
python3 - "$T/mnt-types/versions/s" <<'PY' || fail "/versions under plain readdir: d_type disagrees with lstat"
import os, stat, sys
seen = set()
for name in sorted(os.listdir(sys.argv[1])):
    for e in os.scandir(os.path.join(sys.argv[1], name)):
        # DirEntry's is_*() answer from d_type (the readdir reply), stat() asks getattr
        m = e.stat(follow_symlinks=False).st_mode
        got = (e.is_file(follow_symlinks=False), e.is_dir(follow_symlinks=False), e.is_symlink())
        want = (stat.S_ISREG(m), stat.S_ISDIR(m), stat.S_ISLNK(m))
        assert got == want, (name, e.name, oct(m), got)
        seen.add(stat.S_IFMT(m))
assert seen == {stat.S_IFREG, stat.S_IFLNK, stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK}, seen
PY
[ ! -s "$T/bkrfs-types.err" ] || fail "bkrfs under plain readdir: $(cat "$T/bkrfs-types.err")"
bkrfs_unmount "$T/mnt-types"
pass "/versions under plain readdir: FIFOs, devices and symlinks listed with their own type"

# --- a backup made after the view was built and before the first visit of
# /by-source: the history catalog, built at that visit, held it while /by-id
# did not yet (until the watcher's next look: here an hour), so
# /by-source/s/latest and /by-source/s/<id> were symlinks into /by-id that did
# not resolve (ENOENT).  The catalog now holds the backups of the view.
R11=$T/repo11
"$BKR" init -r "$R11" >/dev/null
echo one >"$W8/s/f"
"$BKR" -q -r "$R11" create "$W8/s" >/dev/null
bkrfs_fg "$R11" "$T/mnt11" "$T/bkrfs11.err" -o watch_ms=3600000
ls "$T/mnt11/by-id" >/dev/null # the view is built
echo two >"$W8/s/f"
"$BKR" -q -r "$R11" create "$W8/s" >/dev/null
for e in "$T/mnt11/by-source/s"/*; do
	[ -e "$e" ] || fail "/by-source/s/${e##*/} does not resolve: $(readlink "$e"); /by-id: $(ls "$T/mnt11/by-id")"
done
[ "$(cat "$T/mnt11/by-source/s/latest/f")" = one ] || fail "/by-source/s/latest: $(readlink "$T/mnt11/by-source/s/latest")"
bkrfs_unmount "$T/mnt11"
pass "/by-source entries resolve in /by-id when a backup was made after the view was built"
