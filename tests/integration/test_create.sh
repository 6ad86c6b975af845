#!/usr/bin/env bash
# bkr create: what a source may be and what is left out of it.  --exclude and
# --exclude-file; -x/--one-file-system; pseudo-filesystems (proc, a bkrfs
# mount) never read; the repository, its tiers and the log directory never
# backed up when inside a source (and config check says so); a single file
# as a source.  Needs root (mounts).
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || fail "needs root: it mounts tmpfs and proc"
R=$T/repo
S=$T/src
mkdir -p "$S/keep" "$S/cache" "$S/logs"
printf 'keep\n' >"$S/keep/a.txt"
printf 'tmp\n' >"$S/keep/b.tmp"
printf 'cache\n' >"$S/cache/c.bin"
printf 'log\n' >"$S/logs/app.log"
printf 'other\n' >"$S/logs/other.txt"
"$BKR" init -r "$R" >/dev/null

# listing of the latest backup, one path a line
listing() { "$BKR" -r "$R" ls latest -R | sed 's,/$,,' | sort; }

# --- --exclude and --exclude-file
printf '# comment\n\n*.log\ncache\n' >"$T/excl"
expect_exit 0 "$BKR" -r "$R" create "$S" --exclude '*.tmp' --exclude-file "$T/excl"
got=$(listing | tr '\n' ' ')
[ "$got" = "src src/keep src/keep/a.txt src/logs src/logs/other.txt " ] || fail "excludes: got '$got'"
expect_exit 2 "$BKR" -r "$R" create "$S" --exclude-file "$T/missing"
one_line_error
grep -q "$T/missing" "$T/err" || fail "--exclude-file error does not name the file"
pass "--exclude and --exclude-file leave paths out (comments and blank lines ignored)"

# --- -x and pseudo-filesystems
mkdir -p "$S/tmpfs" "$S/proc"
mount -t tmpfs tmpfs "$S/tmpfs"
cleanup_hooks+=("umount '$S/tmpfs' 2>/dev/null")
mount -t proc proc "$S/proc"
cleanup_hooks+=("umount '$S/proc' 2>/dev/null")
printf 'on tmpfs\n' >"$S/tmpfs/inside"
expect_exit 0 "$BKR" -r "$R" create "$S" --json
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["warnings"] == [], m["warnings"]' "$T/out" ||
	fail "proc inside a source gave warnings"
listing >"$T/list"
grep -qx "src/tmpfs/inside" "$T/list" || fail "a tmpfs below a source was not read without -x"
grep -qx "src/proc" "$T/list" || fail "the proc mount point is not kept"
! grep -q "^src/proc/" "$T/list" || fail "proc was read: $(grep -c '^src/proc/' "$T/list") entries"
expect_exit 0 "$BKR" -r "$R" create -x "$S"
listing >"$T/list"
grep -qx "src/tmpfs" "$T/list" || fail "-x dropped the mount point itself"
! grep -q "^src/tmpfs/" "$T/list" || fail "-x read another filesystem"
grep -qx "src/keep/a.txt" "$T/list" || fail "-x lost the source's own files"
expect_exit 0 "$BKR" -r "$R" create --one-file-system "$S"
expect_exit 2 "$BKR" -r "$R" create /proc
one_line_error
grep -q "proc" "$T/err" || fail "create /proc: error does not say why"
pass "-x stays on one filesystem; proc is never read, its mount point kept"

# a bkrfs mount inside a source is never read
bkrfs_fg "$R" "$S/mnt" "$T/daemon.err"
[ -n "$(ls "$S/mnt/by-id")" ] || fail "the mount shows no backups"
expect_exit 0 "$BKR" -r "$R" create "$S"
listing >"$T/list"
grep -qx "src/mnt" "$T/list" || fail "the bkrfs mount point is not kept"
! grep -q "^src/mnt/" "$T/list" || fail "a bkrfs mount was read"
fusermount3 -u "$S/mnt"
wait "$DAEMON" || fail "bkrfs exited non-zero"
umount "$S/tmpfs" "$S/proc"
rmdir "$S/tmpfs" "$S/proc" "$S/mnt"
pass "a bkrfs mount inside a source is not read"

# --- the repository, its tiers and the log directory inside a source
W=$T/ws
mkdir -p "$W/data" "$W/logs" "$W/warm"
printf 'data\n' >"$W/data/f"
"$BKR" init -r "$W/repo" >/dev/null
cat >"$T/cfg.json" <<JSON
{"repository": "$W/repo", "workspace_root": "$W", "log_dir": "$W/logs",
 "tiers": {"warm": {"path": "$W/warm"}},
 "sources": [{"name": "ws", "paths": ["$W"]}]}
JSON
expect_exit 0 "$BKR" config check -c "$T/cfg.json"
grep -q "repository $W/repo lies inside $W" "$T/err" || fail "config check does not warn: $(cat "$T/err")"
expect_exit 0 "$BKR" -c "$T/cfg.json" create
expect_exit 0 "$BKR" -c "$T/cfg.json" create --all
"$BKR" -c "$T/cfg.json" ls latest -R | sed 's,/$,,' | sort >"$T/list"
grep -qx "ws/data/f" "$T/list" || fail "the workspace's data is missing"
! grep -Eq "^ws/(repo|logs|warm)" "$T/list" || fail "repository, log dir or tier backed up: $(grep -E '^ws/(repo|logs|warm)' "$T/list")"
expect_exit 0 "$BKR" -r "$R" create "$T"
grep -q "^$(basename "$T")/repo" <("$BKR" -r "$R" ls latest -R) && fail "a repository given by -r backed itself up"
pass "repository, tiers and log directory inside a source are left out; config check warns"

# --- a single file as a source
printf 'a single file\n' >"$T/single.conf"
expect_exit 0 "$BKR" -r "$R" create "$T/single.conf"
expect_exit 0 "$BKR" -r "$R" cat latest single.conf/single.conf
[ "$(cat "$T/out")" = "a single file" ] || fail "single file content: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" restore latest --target "$T/r1"
cmp "$T/single.conf" "$T/r1/single.conf/single.conf" || fail "single file does not restore"
printf 'changed\n' >>"$T/single.conf"
expect_exit 0 "$BKR" -r "$R" create "$T/single.conf" --json
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["parent"], m' "$T/out" ||
	fail "the second backup of a file source has no parent"
touch -d '-1 hour' "$T/single.conf"
expect_exit 0 "$BKR" -r "$R" create "$T/single.conf"
expect_exit 0 "$BKR" -r "$R" create "$T/single.conf" --json
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["stats"]["new_bytes"] == 0 and m["stats"]["reused_bytes"] > 0, m["stats"]' "$T/out" ||
	fail "an unchanged file source is read again instead of taken from the parent"
expect_exit 0 "$BKR" -r "$R" diff latest --live "$T/single.conf"
[ ! -s "$T/out" ] || fail "diff --live of an unchanged file source: $(cat "$T/out")"
printf 'more\n' >>"$T/single.conf"
printf 'sibling\n' >"$T/sibling.conf"
expect_exit 0 "$BKR" -r "$R" diff latest --live "$T/single.conf"
grep -q "^M.*single.conf/single.conf" "$T/out" || fail "diff --live misses the change: $(cat "$T/out")"
! grep -q sibling "$T/out" || fail "diff --live of a file source lists its siblings"
expect_exit 0 "$BKR" -r "$R" create /etc/hostname
pass "a single file is a source (create, cat, restore, incremental, diff --live)"

# --- a configured single-file source beside a directory source, named other
# than its file: diff --live of the file's live path compares that one file
# (not every source), also once the file is deleted; so does a deleted file
# of the directory source, and the whole --live diff names both removals
mkdir -p "$T/fs/data"
printf 'a\n' >"$T/fs/data/a"
printf 'conf\n' >"$T/fs/app.conf"
cat >"$T/fs.json" <<JSON
{"repository": "$T/fsrepo", "workspace_root": "$T/fs",
 "sources": [{"name": "data", "paths": ["data"]}, {"name": "conf", "paths": ["app.conf"]}]}
JSON
expect_exit 0 "$BKR" init -r "$T/fsrepo"
expect_exit 0 "$BKR" -c "$T/fs.json" create --all
printf 'b\n' >"$T/fs/data/b"
expect_exit 0 "$BKR" -c "$T/fs.json" diff latest --live "$T/fs/app.conf"
[ ! -s "$T/out" ] || fail "diff --live of an unchanged configured file source: $(cat "$T/out")"
# a path added since (a file, a directory, a file in a new directory) is
# added, as a path only in the newer of two backups; one in neither the
# backup nor the live files is an error naming it, before anything is printed
mkdir -p "$T/fs/data/nd/deep" && printf 'n\n' >"$T/fs/data/nd/deep/n"
expect_exit 0 "$BKR" -c "$T/fs.json" diff latest --live "$T/fs/data/b"
[ "$(cat "$T/out")" = "+  data/b" ] || fail "diff --live of an added file: $(cat "$T/out") $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$T/fsrepo" diff latest --live "$T/fs/data/nd"
[ "$(cat "$T/out")" = "+  data/nd" ] || fail "diff --live of an added directory: $(cat "$T/out") $(cat "$T/err")"
(cd "$T/fs/data" && "$BKR" -c "$T/fs.json" diff latest --live nd/deep/n ./a --json) >"$T/out" ||
	fail "diff --live nd/deep/n ./a"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["changes"] == [{"change": "added", "path": "data/nd/deep/n"}] and d["added"] == 1, d' "$T/out" ||
	fail "diff --live --json of a file in an added directory: $(cat "$T/out")"
expect_exit 3 "$BKR" -r "$T/fsrepo" diff latest --live "$T/fs/data/b" "$T/fs/data/zz"
one_line_error
grep -q "path 'data/zz': in neither backup .* nor the live files ($T/fs/data/zz)" "$T/err" ||
	fail "diff --live of a path in neither: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "diff --live with a path in neither printed: $(cat "$T/out")"
rm -r "$T/fs/data/nd"
printf 'more\n' >>"$T/fs/app.conf"
for how in "-c $T/fs.json" "-r $T/fsrepo"; do
	expect_exit 0 "$BKR" $how diff latest --live "$T/fs/app.conf"
	[ "$(cat "$T/out")" = "M  conf/app.conf" ] || fail "diff $how --live of a file source: $(cat "$T/out")"
done
(cd "$T/fs" && "$BKR" -c "$T/fs.json" diff latest --live app.conf --json) >"$T/out" || fail "diff --live app.conf"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [c["path"] for c in d["changes"]] == ["conf/app.conf"], d' "$T/out" ||
	fail "diff --live --json of a file source: $(cat "$T/out")"
rm "$T/fs/app.conf" "$T/fs/data/a"
expect_exit 0 "$BKR" -r "$T/fsrepo" diff latest --live "$T/fs/app.conf"
[ "$(cat "$T/out")" = "-  conf/app.conf" ] || fail "diff --live of a deleted file source: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$T/fsrepo" diff latest --live "$T/fs/data/a"
[ "$(cat "$T/out")" = "-  data/a" ] || fail "diff --live of a deleted file: $(cat "$T/out")"
expect_exit 0 "$BKR" -c "$T/fs.json" diff latest --live
[ "$(LC_ALL=C sort "$T/out" | tr '\n' ' ')" = "+  data/b -  conf/app.conf -  data/a " ] ||
	fail "diff --live with a deleted file source: $(cat "$T/out") $(cat "$T/err")"
pass "diff --live of a configured file source: that file alone, also deleted"

# --- diff --live PATH of a directory below its source that is no directory in
# the live files now: deleted, it is removed ('-', as a deleted file is and as
# the whole --live diff lists it); replaced by a file, it changed type ('M');
# never 'cannot open' (exit 3 or 7)
mkdir -p "$T/dd/ws/data/sub"
printf 'x\n' >"$T/dd/ws/data/sub/x"
printf 'k\n' >"$T/dd/ws/data/keep"
cat >"$T/dd.json" <<JSON
{"repository": "$T/dd/repo", "workspace_root": "$T/dd/ws", "sources": [{"name": "data", "paths": ["data"]}]}
JSON
expect_exit 0 "$BKR" init -r "$T/dd/repo"
expect_exit 0 "$BKR" -c "$T/dd.json" create --all
rm -r "$T/dd/ws/data/sub"
expect_exit 0 "$BKR" -c "$T/dd.json" diff latest --live "$T/dd/ws/data/sub"
[ "$(cat "$T/out")" = "-  data/sub" ] || fail "diff --live of a deleted directory: $(cat "$T/out") $(cat "$T/err")"
expect_exit 0 "$BKR" -c "$T/dd.json" diff latest --live
[ "$(cat "$T/out")" = "-  data/sub" ] || fail "diff --live with a deleted directory: $(cat "$T/out") $(cat "$T/err")"
# named with a trailing slash ("sub/", as typed for a directory), the same;
# it was 'not a source of backup ..., nor inside one' (diff) and 'no such
# file or directory' (log), exit 3, once the directory was gone
expect_exit 0 "$BKR" -c "$T/dd.json" diff latest --live "$T/dd/ws/data/sub/"
[ "$(cat "$T/out")" = "-  data/sub" ] || fail "diff --live of a deleted dir/: $(cat "$T/out") $(cat "$T/err")"
expect_exit 0 "$BKR" -c "$T/dd.json" log "$T/dd/ws/data/sub/"
grep -q "of data/sub in 1 backup" "$T/err" || fail "log of a deleted dir/: $(cat "$T/out") $(cat "$T/err")"
printf 'now a file\n' >"$T/dd/ws/data/sub"
expect_exit 0 "$BKR" -c "$T/dd.json" diff latest --live "$T/dd/ws/data/sub" --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert [(c["change"], c["path"], "type" in c["what"]) for c in d["changes"]] == [("modified", "data/sub", True)], d' "$T/out" ||
	fail "diff --live of a directory replaced by a file: $(cat "$T/out") $(cat "$T/err")"
pass "diff --live PATH of a directory deleted (also as dir/) or replaced by a file since the backup"

# --- a single-file source now elsewhere under another name (NAME=PATH, or
# its configured path changed): the backup's file is removed and the live one
# added, as a diff of a backup from before the move and one from after it
# lists them; the backup's side was limited to the new name (only '+')
mkdir -p "$T/sf/ws/etc"
printf 'c\n' >"$T/sf/ws/etc/app.conf"
cat >"$T/sf.json" <<JSON
{"repository": "$T/sf/repo", "workspace_root": "$T/sf/ws", "sources": [{"name": "conf", "paths": ["etc/app.conf"]}]}
JSON
expect_exit 0 "$BKR" init -r "$T/sf/repo"
expect_exit 0 "$BKR" -c "$T/sf.json" create --all
mv "$T/sf/ws/etc/app.conf" "$T/sf/ws/etc/app2.conf"
sed -i 's|etc/app.conf|etc/app2.conf|' "$T/sf.json"
for how in "-r $T/sf/repo diff latest --live conf=$T/sf/ws/etc/app2.conf" "-c $T/sf.json diff latest --live"; do
	expect_exit 0 "$BKR" $how
	[ "$(LC_ALL=C sort "$T/out" | tr '\n' ' ')" = "+  conf/app2.conf -  conf/app.conf " ] ||
		fail "bkr $how of a moved and renamed file source: $(cat "$T/out") $(cat "$T/err")"
done
pass "diff --live of a single-file source moved under another name: removed and added"

# --- diff --live applies a source's excludes relative to the source, as backup
# does: a pattern with a '/' (sub/*.log) left out of the backup is not 'added'
mkdir -p "$T/ex/ws/data/sub"
printf 'l\n' >"$T/ex/ws/data/sub/x.log"
printf 'k\n' >"$T/ex/ws/data/keep"
cat >"$T/ex.json" <<JSON
{"repository": "$T/ex/repo", "workspace_root": "$T/ex/ws",
 "sources": [{"name": "data", "paths": ["data"], "excludes": ["sub/*.log"]}]}
JSON
expect_exit 0 "$BKR" init -r "$T/ex/repo"
expect_exit 0 "$BKR" -c "$T/ex.json" create --all
expect_exit 0 "$BKR" -c "$T/ex.json" ls latest -R
! grep -q x.log "$T/out" || fail "test assumption: sub/x.log is excluded"
expect_exit 0 "$BKR" -c "$T/ex.json" diff latest --live
[ ! -s "$T/out" ] || fail "diff --live lists an excluded file: $(cat "$T/out")"
expect_exit 0 "$BKR" -c "$T/ex.json" diff latest --live "$T/ex/ws/data/sub"
[ ! -s "$T/out" ] || fail "diff --live PATH lists an excluded file: $(cat "$T/out")"
expect_exit 3 "$BKR" -c "$T/ex.json" diff latest --live "$T/ex/ws/data/sub/x.log"
grep -q "path 'data/sub/x.log': not in backup .*, and source 'data' excludes" "$T/err" ||
	fail "diff --live of an excluded path: $(cat "$T/err")"
pass "diff --live leaves out what the source's excludes leave out"

# backups made at the same clock reading: each is dated just after the one before
# (a microsecond on), so 'latest' and retention take the last made, whatever the
# random suffixes of the ids
R2=$T/same-second
"$BKR" init -r "$R2" >/dev/null
mkdir -p "$T/same"
for n in 1 2 3 4 5 6; do
	echo "version $n" >"$T/same/a"
	BKR_TEST_NOW=2026-06-03T00:00:00Z expect_exit 0 "$BKR" -r "$R2" -q create --type incremental "$T/same"
done
expect_exit 0 "$BKR" -r "$R2" cat latest same/a
[ "$(cat "$T/out")" = "version 6" ] || fail "latest of six backups in one second is not the last made: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R2" list --json
python3 -c '
import json,sys
ts=[b["timestamp"] for b in json.load(open(sys.argv[1]))]
assert len(ts)==6 and ts==sorted(ts) and len(set(ts))==6 and ts[0]=="2026-06-03T00:00:00.000000Z", ts' "$T/out" ||
	fail "six backups in one second are not dated in order: $(cat "$T/out")"
BKR_TEST_NOW=2026-06-03T00:00:00Z expect_exit 0 "$BKR" -r "$R2" -q cleanup --keep-last 1
expect_exit 0 "$BKR" -r "$R2" cat latest same/a
[ "$(cat "$T/out")" = "version 6" ] || fail "cleanup --keep-last 1 kept an older backup: $(cat "$T/out")"
pass "backups made in the same second are dated in the order made (latest, cleanup --keep-last)"
# the same for full backups and one given --parent, which list backups/ for this
# alone (an automatic parent's listing dates the others): the last made is latest
R3=$T/same-second-full
"$BKR" init -r "$R3" >/dev/null
for n in 1 2 3; do
	echo "full $n" >"$T/same/a"
	BKR_TEST_NOW=2026-06-03T00:00:00Z expect_exit 0 "$BKR" -r "$R3" -q create --type full "$T/same"
done
expect_exit 0 "$BKR" -r "$R3" list --json
first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["backup_id"])' "$T/out")
echo "with parent" >"$T/same/a"
BKR_TEST_NOW=2026-06-03T00:00:00Z expect_exit 0 "$BKR" -r "$R3" -q create --type incremental --parent "$first" "$T/same"
expect_exit 0 "$BKR" -r "$R3" cat latest same/a
[ "$(cat "$T/out")" = "with parent" ] || fail "latest of full backups and one with --parent in one second: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R3" list --json
python3 -c '
import json,sys
ts=[b["timestamp"] for b in json.load(open(sys.argv[1]))]
assert len(ts)==4 and ts==sorted(ts) and len(set(ts))==4, ts' "$T/out" ||
	fail "full backups and one with --parent in one second are not dated in order: $(cat "$T/out")"
pass "full backups and one given --parent in the same second are dated in the order made"

# --- a live path that is gone, given as a directory ("DIR/"): the same path as
# without the slash (cli_live_abs took the empty name after the slash and
# failed: 'bkr log /abs/sub/' of a deleted directory said "no such file or
# directory" while 'bkr log /abs/sub' listed its history)
mkdir -p "$T/fs/data/sub"
printf 'x\n' >"$T/fs/data/sub/x"
printf 'conf\n' >"$T/fs/app.conf"
expect_exit 0 "$BKR" -c "$T/fs.json" create --all
rm -r "$T/fs/data/sub"
expect_exit 0 "$BKR" -r "$T/fsrepo" log "$T/fs/data/sub"
cp "$T/out" "$T/log-noslash"
grep -q "added *dir" "$T/log-noslash" || fail "log of a deleted directory: $(cat "$T/out")"
for p in "$T/fs/data/sub/" "$T/fs/data/sub//"; do
	expect_exit 0 "$BKR" -r "$T/fsrepo" log "$p"
	cmp -s "$T/out" "$T/log-noslash" || fail "log $p of a deleted directory: $(cat "$T/out") $(cat "$T/err")"
done
(cd "$T/fs/data" && "$BKR" -r "$T/fsrepo" log ./sub/) >"$T/out" 2>"$T/err" || fail "log ./sub/ (relative, deleted): $(cat "$T/err")"
cmp -s "$T/out" "$T/log-noslash" || fail "log ./sub/ (relative) of a deleted directory: $(cat "$T/out")"
pass "a deleted directory's live path with a trailing slash is that directory (log)"

# --- xattrs read with listxattrat/getxattrat (Linux 6.13) and through /proc/self/fd/N/name
# (older kernels; BKR_TEST_XATTRAT=off): the same tree, and the restore has them
x=$T/xat
mkdir -p "$x/d" && printf 'a\n' >"$x/f" && ln -s f "$x/l"
python3 - "$x" <<'PY'
import os, sys
d = sys.argv[1]
os.setxattr(d + "/f", "user.small", b"v")
os.setxattr(d + "/f", "user.big", b"b" * 3000)   # stored as a blob
os.setxattr(d + "/d", "user.dir", b"on a directory")
os.setxattr(d + "/l", "trusted.link", b"on the link itself", follow_symlinks=False)
PY
"$BKR" init -r "$T/xrepo" >/dev/null
tree_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tree"])' "$1"; }
BKR_TEST_XATTRAT=off expect_exit 0 "$BKR" -r "$T/xrepo" create --type full "$x" --json
proc_tree=$(tree_id "$T/out")
expect_exit 0 "$BKR" -r "$T/xrepo" create --type full "$x" --json
[ "$(tree_id "$T/out")" = "$proc_tree" ] || fail "xattrs read with listxattrat and through /proc differ"
expect_exit 0 "$BKR" -r "$T/xrepo" restore latest --target "$T/xrestore"
python3 - "$T/xrestore/xat" <<'PY' || fail "the restored xattrs differ"
import os, sys
d = sys.argv[1]
assert os.getxattr(d + "/f", "user.small") == b"v"
assert os.getxattr(d + "/f", "user.big") == b"b" * 3000
assert os.getxattr(d + "/d", "user.dir") == b"on a directory"
assert os.getxattr(d + "/l", "trusted.link", follow_symlinks=False) == b"on the link itself"
PY
pass "xattrs of files, directories and symlinks: the same through listxattrat and /proc"
# under a seccomp filter that does not know listxattrat/getxattrat (464, 465) and
# kills on them, as systemd 252's SystemCallFilter=@system-service may in
# bkr-routine@.service: bkr reads xattrs through /proc, never dies of SIGSYS
expect_exit 0 python3 "$HERE/seccomp_deny.py" 464,465 "$BKR" -r "$T/xrepo" create --type full "$x" --json
[ "$(tree_id "$T/out")" = "$proc_tree" ] || fail "xattrs read under a seccomp filter differ"
pass "under a seccomp filter the xattrs are read through /proc"
