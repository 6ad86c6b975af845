#!/bin/bash
# Restore safety (tests/integration/lib.sh).
#
# Attributes are set through a descriptor of the object restore created,
# never by a name another user could swap: restore is paused (BKR_FAULT
# "restore-meta:N:stop") between creating an entry and setting its
# attributes, the entry is replaced by a symlink to a 0600 file, and that
# file must keep its mode.
. "$(dirname "$0")/lib.sh"

R=$T/repo
src=$T/src
mkdir -p "$src/d"
mkfifo -m 0666 "$src/d/fifo"
printf 'data\n' >"$src/d/file"
chmod 0777 "$src/d"
expect_exit 0 "$BKR" -r "$R" init
expect_exit 0 "$BKR" -r "$R" create --type full "$src"

victim=$T/victim
printf 'secret\n' >"$victim"
chmod 0600 "$victim"

# paused_restore N SWAP TARGET ARGS...: restore paused at the N-th restore-meta
# point; run the shell code SWAP there, continue; exit status in $rc
paused_restore() {
	local n=$1 swap=$2 target=$3 pid
	shift 3
	rm -rf "$target"
	BKR_FAULT="restore-meta:$n:stop" "$BKR" -r "$R" restore latest "$@" --target "$target" \
		>"$T/out" 2>"$T/err" &
	pid=$!
	wait_stopped "$pid" || { cat "$T/err"; fail "restore never paused at restore-meta:$n"; }
	eval "$swap"
	kill -CONT "$pid"
	rc=0
	wait "$pid" || rc=$?
}

mode_of() { stat -c %a "$1"; }

# a fifo swapped for a symlink before its mode is set
swap_fifo='f=$(find "$T/r1/src/d" -type p); [ -n "$f" ] || fail "no fifo to swap"; rm "$f"; ln -s "$victim" "$f"'
paused_restore 1 "$swap_fifo" "$T/r1" src/d
[ "$(mode_of "$victim")" = 600 ] || fail "restore changed the mode of a swapped-in symlink's target to $(mode_of "$victim")"
[ "$rc" = 6 ] || { cat "$T/err"; fail "a fifo replaced during restore: expected exit 6, got $rc"; }
grep -q "fifo" "$T/err" || fail "the replaced fifo is not named"
pass "a fifo swapped for a symlink during restore: the link's target keeps its mode"

# the top directory of 'restore ID PATH' swapped before its mode is set
swap_dir='mv "$T/r1/src/d" "$T/r1/src/d.moved"; ln -s "$victim" "$T/r1/src/d"'
paused_restore 2 "$swap_dir" "$T/r1" src/d
[ "$(mode_of "$victim")" = 600 ] || fail "restore changed the mode of a swapped-in symlink's target to $(mode_of "$victim")"
[ "$(mode_of "$T/r1/src/d.moved")" = 777 ] || fail "the restored directory did not get its mode"
pass "the top directory swapped for a symlink during restore: the link's target keeps its mode"

# --- --overwrite replaces a file only with a copy that checked out
src2=$T/two
R2=$T/repo2
mkdir -p "$src2"
printf 'first\n' >"$src2/a.txt"
head -c 3000000 /dev/urandom >"$src2/big.bin"
printf 'small\n' >"$src2/small.txt"
expect_exit 0 "$BKR" -r "$R2" init
expect_exit 0 "$BKR" -r "$R2" create --type full "$src2"
expect_exit 0 "$BKR" -r "$R2" restore latest --target "$T/live"
# again, into what it wrote: each file is already there as in the backup (as
# --dry-run says): nothing to refuse; one that differs is refused without --overwrite
expect_exit 0 "$BKR" -r "$R2" restore latest --target "$T/live" --dry-run
grep -q "0 new, 0 changed, 4 unchanged" "$T/out" || fail "dry run into the restored tree: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R2" restore latest --target "$T/live"
grep -q "0 files, 1 directories, 0 B (3 already there as in the backup)" "$T/out" ||
	fail "a restore run again: $(cat "$T/out" "$T/err")"
printf 'other\n' >"$T/live/two/a.txt"
expect_exit 6 "$BKR" -r "$R2" restore latest --target "$T/live"
[ "$(cat "$T/err")" = "bkr restore: two/a.txt: exists (--overwrite replaces it)" ] || fail "a changed file: $(cat "$T/err")"
grep -q "other" "$T/live/two/a.txt" || fail "a changed file was replaced without --overwrite"
cp "$src2/a.txt" "$T/live/two/a.txt" && touch -r "$src2/a.txt" "$T/live/two/a.txt"
printf 'the user changed this since\n' >"$T/live/two/big.bin"
cp "$T/live/two/big.bin" "$T/live.golden"
printf 'also changed\n' >"$T/live/two/small.txt"
damage_stored "$R2" "$src2/big.bin" 1000 || fail "could not damage the backup's copy of big.bin"
expect_exit 6 "$BKR" -r "$R2" restore latest --target "$T/live" --overwrite
grep -q "big.bin" "$T/err" || fail "the damaged file is not named"
# big.bin has several chunks, read without their own hashes (the content
# hash covers them): the failed content hash still names the damaged one
grep -Eq "chunk 0 \([0-9a-f]{64}\).*content hash mismatch" "$T/err" || { cat "$T/err"; fail "the damaged chunk is not named"; }
cmp "$T/live/two/big.bin" "$T/live.golden" || fail "--overwrite lost the live file when the backup's copy was damaged"
cmp "$T/live/two/small.txt" "$src2/small.txt" || fail "an undamaged file was not replaced"
[ -z "$(find "$T/live" -name '.bkr-restore-*')" ] || fail "a failed file left its temporary behind"
pass "restore --overwrite with a damaged backup copy keeps the live file"

# --- a damaged later chunk, one worker: named too, and the file not placed
RLATE=$T/repo-late
expect_exit 0 "$BKR" -r "$RLATE" init
expect_exit 0 "$BKR" -r "$RLATE" create --type full "$src2"
damage_stored "$RLATE" "$src2/big.bin" 2990000 || fail "could not damage the last chunk of big.bin"
expect_exit 6 "$BKR" -r "$RLATE" restore latest --target "$T/four" --threads 1
grep -Eq "chunk [1-9][0-9]* \([0-9a-f]{64}\).*content hash mismatch" "$T/err" || { cat "$T/err"; fail "the damaged later chunk is not named"; }
[ ! -e "$T/four/two/big.bin" ] || fail "a file that failed its content hash got its name"
cmp "$T/four/two/small.txt" "$src2/small.txt" || fail "an undamaged file was not restored"
pass "restore names a damaged later chunk (one worker) and does not place its file"

# --- a killed restore leaves no partial file at a final name
R3=$T/repo3
expect_exit 0 "$BKR" -r "$R3" init
expect_exit 0 "$BKR" -r "$R3" create --type full "$src2"
# killed at the third write: files are written in parallel (a.txt and small.txt
# one write each, big.bin several), so which files were complete by then varies,
# but the file being written has no name yet (O_TMPFILE): nothing of it is left;
# where the filesystem has no O_TMPFILE (restore-tmpfile: the first attempt fails,
# as there) it is under a temporary name
killed_restore() {
	local out=$1 fault=$2 f n=0
	expect_exit 137 env BKR_FAULT="$fault" "$BKR" -r "$R3" restore latest --target "$out"
	while IFS= read -r -d '' f; do
		case "$(basename "$f")" in
		.bkr-restore-*) continue ;;
		esac
		cmp "$f" "$src2/${f#"$out/two/"}" || fail "a killed restore left $f at its final name, not complete"
		n=$((n + 1))
	done < <(find "$out" -type f -print0)
	[ "$n" -le 2 ] || fail "expected at most 2 complete files (the third being written), found $n"
}
killed_restore "$T/killed" restore-write:3:crash
[ -z "$(find "$T/killed" -name '.bkr-restore-*')" ] || fail "a killed restore left a temporary of a new file"
killed_restore "$T/killed-named" restore-tmpfile:1,restore-write:3:crash
[ -n "$(find "$T/killed-named" -name '.bkr-restore-*')" ] ||
	fail "without O_TMPFILE the file being written when killed is not under a temporary name"
pass "a killed restore leaves complete files at final names only"

# --- a path that is not in the backup: exit 3 (not found), nothing written
expect_exit 3 "$BKR" -r "$R3" restore latest two/nope two/a.txt --target "$T/nf"
one_line_error
grep -q "two/nope" "$T/err" || fail "the missing path is not named"
[ ! -e "$T/nf" ] || fail "a restore naming a missing path wrote $T/nf"
pass "restoring a path that is not in the backup exits 3 and writes nothing"

# --- "FILE/" (or "FILE/.") names a directory, as for open(2): a file there is
# not in the backup, for restore as for ls and cat (ENOTDIR: exit 3, ls's
# message), in place too, and nothing is written
for pf in two/a.txt/:two/a.txt two/a.txt/.:two/a.txt two//a.txt//:two//a.txt; do
	p=${pf%:*}
	for where in "--target $T/nd" --in-place; do
		expect_exit 3 "$BKR" -r "$R3" restore latest two/small.txt "$p" $where
		one_line_error
		msg=$(<"$T/err")
		[ "$msg" = "bkr restore: path '$p': '${pf#*:}' is not a directory" ] || fail "restore $p $where: $msg"
		expect_exit 3 "$BKR" -r "$R3" ls latest "$p"
		[ "$(<"$T/err")" = "${msg/restore/ls}" ] || fail "ls $p says otherwise than restore: $(cat "$T/err")"
	done
	[ ! -e "$T/nd" ] || fail "a restore naming $p wrote $T/nd"
done
expect_exit 0 "$BKR" -r "$R3" restore latest two/ --target "$T/nd"
cmp "$T/nd/two/a.txt" "$src2/a.txt" || fail "a directory named with a slash was not restored"
pass "a file named with a trailing slash is refused as ls refuses it (exit 3, nothing written); a directory is restored"

# --- overlapping or repeated PATHs are restored once; '..' is a usage error up front
for sel in "two two/a.txt" "two/a.txt two/a.txt" "two/a.txt two//./a.txt" "two/ two/a.txt"; do
	rm -rf "$T/ov"
	expect_exit 0 "$BKR" -r "$R3" restore latest $sel --target "$T/ov"
	cmp "$T/ov/two/a.txt" "$src2/a.txt" || fail "restore $sel"
done
expect_exit 0 "$BKR" -r "$R3" restore latest two two/small.txt --target "$T/ovd" --dry-run --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); n=[c["path"] for c in d["paths"]]; assert len(n) == len(set(n)) == 4 == d["new"], d' "$T/out" ||
	fail "a dry run counts an entry twice: $(cat "$T/out")"
expect_exit 2 "$BKR" -r "$R3" restore latest two/small.txt two/x/../a.txt --target "$T/dd"
one_line_error
grep -q "'\.\.' is not allowed" "$T/err" || fail "'..' is not named: $(cat "$T/err")"
[ ! -e "$T/dd" ] || fail "a restore with a '..' PATH wrote $T/dd"
pass "overlapping and repeated PATHs are restored once; '..' is refused before anything is written"

# --- a PATH below directories the target lacks: they are made with the
# backup's mode and mtime (they were left 0700, so no other user could reach
# what was restored), once every PATH is in (a later one must not change
# them), those that exist are left as they are; a symlink on
# the way is not followed, and the error names it (it named the PATH)
mkdir -p "$T/wp/d/e" "$T/wpout" "$T/wps/wp"
printf 'f\n' >"$T/wp/d/e/f"
printf 'x\n' >"$T/wp/x"
chmod 2751 "$T/wp/d"
chmod 751 "$T/wp"
touch -d '2021-05-05 00:00 UTC' "$T/wp/d"
expect_exit 0 "$BKR" -q -r "$T/wpr" init
expect_exit 0 "$BKR" -q -r "$T/wpr" create "$T/wp"
# two PATHs: the second makes an entry in wp, made for the first
expect_exit 0 "$BKR" -r "$T/wpr" restore latest wp/d/e wp/x --target "$T/wpt"
want="751 $(stat -c %Y "$T/wp") 2751 $(date -d '2021-05-05 00:00 UTC' +%s) "
[ "$(stat -c '%a %Y' "$T/wpt/wp" "$T/wpt/wp/d" | tr '\n' ' ')" = "$want" ] && cmp -s "$T/wp/d/e/f" "$T/wpt/wp/d/e/f" ||
	fail "the directories made on the way to a PATH: $(stat -c '%n %a %Y' "$T/wpt/wp" "$T/wpt/wp/d"), want $want"
chmod 700 "$T/wpt/wp"
expect_exit 0 "$BKR" -r "$T/wpr" restore latest wp/d --target "$T/wpt" --overwrite
[ "$(stat -c %a "$T/wpt/wp")" = 700 ] || fail "a directory on the way that was there got attributes: $(stat -c %a "$T/wpt/wp")"
ln -s "$T/wpout" "$T/wps/wp/d"
expect_exit 6 "$BKR" -r "$T/wpr" restore latest wp/d/e --target "$T/wps"
one_line_error
grep -qx "bkr restore: wp/d: exists and is not a directory (--overwrite replaces it)" "$T/err" ||
	fail "a symlink on the way to a PATH is not named: $(cat "$T/err")"
[ -z "$(ls -A "$T/wpout")" ] || fail "restore followed a symlink on the way to a PATH: $(ls -A "$T/wpout")"
pass "directories made on the way to a PATH get the backup's attributes; a symlink on the way is named, not followed"

# --- a target inside the repository is refused, however it is named
ln -s "$R3/data" "$T/into-repo"
for target in "$R3" "$R3/new/dir" "$T/into-repo/x"; do
	expect_exit 2 "$BKR" -r "$R3" restore latest --target "$target"
	one_line_error
	grep -q "inside the repository" "$T/err" || fail "refusal does not say why: $(cat "$T/err")"
done
[ ! -e "$R3/new" ] && [ ! -e "$R3/data/x" ] || fail "a refused restore wrote into the repository"
pass "a restore target inside the repository is refused"

# --- restore --in-place (and --dry-run): back to where the source was
live=$T/inplace
R4=$T/repo4
mkdir -p "$live/sub"
printf 'one\n' >"$live/one.txt"
printf 'two\n' >"$live/sub/two.txt"
printf 'same\n' >"$live/same.txt"
ln -s same.txt "$live/link"
printf 'linked\n' >"$live/hl1"
ln "$live/hl1" "$live/hl2"
expect_exit 0 "$BKR" -r "$R4" init
expect_exit 0 "$BKR" -r "$R4" create --type full "$live"
printf 'ONE, since changed\n' >"$live/one.txt"
rm "$live/sub/two.txt"
printf 'not in the backup\n' >"$live/extra.txt"
expect_exit 2 "$BKR" -r "$R4" restore latest --in-place --target "$T/x"
expect_exit 0 "$BKR" -r "$R4" restore latest --in-place --dry-run --json
json_ok "$T/out"
python3 - "$T/out" "$live" <<'PY' || fail "in-place dry run: wrong list"
import json, sys
v, live = json.load(open(sys.argv[1])), sys.argv[2]
got = {(p["change"], p["path"]) for p in v["paths"]}
assert ("changed", live + "/one.txt") in got, got
assert ("new", live + "/sub/two.txt") in got, got
assert not any(p.endswith(("/same.txt", "/link", "/extra.txt", "/hl1", "/hl2")) for _, p in got), got
assert v["new"] == 1 and v["unchanged"] == 4 and v["changed"] == len(got) - 1, v
assert v["dry_run"] and v["in_place"] and v["target"] is None, v
PY
expect_exit 0 "$BKR" -r "$R4" restore latest --in-place --dry-run
grep -q "^changed $live/one.txt$" "$T/out" || { cat "$T/out"; fail "human dry run does not list one.txt as changed"; }
grep -q "^new *$live/sub/two.txt$" "$T/out" || fail "human dry run does not list sub/two.txt as new"
grep -q "1 new, .* changed, 4 unchanged; nothing written" "$T/out" || fail "human dry run has no counts"
[ "$(cat "$live/one.txt")" = "ONE, since changed" ] && [ ! -e "$live/sub/two.txt" ] || fail "a dry run wrote"
expect_exit 0 "$BKR" -r "$R4" restore latest --in-place
[ "$(cat "$live/one.txt")" = one ] || fail "in place: one.txt not restored"
[ "$(cat "$live/sub/two.txt")" = two ] || fail "in place: sub/two.txt not restored"
[ -e "$live/extra.txt" ] || fail "in place removed a file the backup does not have"
[ -z "$(find "$live" -name '.bkr-restore-*')" ] || fail "in place left a temporary"
expect_exit 0 "$BKR" -r "$R4" restore latest --in-place --dry-run --json
python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
assert v["new"] == 0 and v["changed"] == 0 and v["paths"] == [], v' "$T/out" || fail "after an in-place restore a dry run still finds changes"
name=$(basename "$live")
printf 'again\n' >"$live/one.txt"
printf 'also\n' >"$live/same.txt"
expect_exit 0 "$BKR" -r "$R4" restore latest "$name/one.txt" --in-place
[ "$(cat "$live/one.txt")" = one ] && [ "$(cat "$live/same.txt")" = also ] || fail "in place with a PATH restored more or less than that path"
# a hardlink broken into two equal files is linked again
rm "$live/hl2"
cp -p "$live/hl1" "$live/hl2"
expect_exit 0 "$BKR" -r "$R4" restore latest "$name" --in-place --dry-run
grep -q "^changed $live/hl2$" "$T/out" || { cat "$T/out"; fail "a broken hardlink is not listed as changed"; }
expect_exit 0 "$BKR" -r "$R4" restore latest "$name" --in-place
[ "$live/hl1" -ef "$live/hl2" ] || fail "in place did not link hl2 to hl1 again"
expect_exit 3 "$BKR" -r "$R4" restore latest nosuchsource/x --in-place
pass "restore --in-place puts back what differs, --dry-run lists it and writes nothing"

# the source's directory replaced by a symlink (create records the path
# resolved): not followed, in a dry run too, one line naming it, exit 7 (the
# backup was written where the link points, and that directory's mode and
# mtime set)
mv "$live" "$live.moved"
mkdir "$T/elsewhere"
ln -s "$T/elsewhere" "$live"
for dry in "" --dry-run; do
	expect_exit 7 "$BKR" -r "$R4" restore latest --in-place $dry
	one_line_error
	grep -qx "bkr restore: in place: $live is a symlink now, not the directory backed up; not followed (restore it with --target)" "$T/err" ||
		fail "in place through a symlink: $(cat "$T/err")"
done
[ -z "$(ls -A "$T/elsewhere")" ] || fail "in place followed the symlink that replaced the source: $(ls -A "$T/elsewhere")"
rm "$live"
mv "$live.moved" "$live"
pass "restore --in-place does not follow a symlink that replaced the source's directory"

# --- in place, a single-file source goes back to that file (its directory is left alone)
one=$T/single.conf
printf 'v1\n' >"$one"
expect_exit 0 "$BKR" -r "$R4" create --type full "$one"
printf 'v2\n' >"$one"
expect_exit 0 "$BKR" -r "$R4" restore latest --in-place --dry-run
grep -q "^changed $one$" "$T/out" || { cat "$T/out"; fail "a changed file source is not listed"; }
expect_exit 0 "$BKR" -r "$R4" restore latest --in-place
[ "$(cat "$one")" = v1 ] || fail "in place did not restore a file source"
rm "$one"
expect_exit 0 "$BKR" -r "$R4" restore latest --in-place
[ "$(cat "$one")" = v1 ] || fail "in place did not restore a deleted file source"
pass "restore --in-place of a single-file source"

# --- the ROOT tree unreadable restores nothing: that is damaged data (exit
# 4, one line naming the backup), said before anything is written - not a
# file that failed among others (6)
R5=$T/repo5
mkdir -p "$T/src5/a/b"
printf 'f\n' >"$T/src5/a/f"
printf 'g\n' >"$T/src5/a/b/g"
expect_exit 0 "$BKR" -r "$R5" init
expect_exit 0 "$BKR" -r "$R5" create --type full "$T/src5"
id5=$("$BKR" -r "$R5" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
root5=$("$BKR" -r "$R5" show --json "$id5" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tree"])')
damage_tree "$R5" "$root5"
for args in "" "src5/a" "src5/a/f"; do
	# shellcheck disable=SC2086
	expect_exit 4 "$BKR" -r "$R5" restore "$id5" $args --target "$T/out5"
	one_line_error
	grep -q "^bkr restore: backup $id5: root directory: .*tree/.*\.pack: blob $root5" "$T/err" ||
		fail "restore '$args' of a backup whose root tree is damaged: $(cat "$T/err")"
	[ ! -e "$T/out5" ] || fail "restore '$args' made its target though nothing can be restored"
done
expect_exit 4 "$BKR" -r "$R5" --json restore "$id5" --target "$T/out5"
python3 -c 'import json,sys; e = json.load(open(sys.argv[1]))["error"]; assert e["exit"] == 4 and "root directory" in e["message"], e' "$T/out" ||
	fail "restore --json of a damaged root tree: $(cat "$T/out")"
expect_exit 4 "$BKR" -r "$R5" restore "$id5" --in-place --dry-run
pass "a damaged root tree: restore exits 4 naming it and writes nothing"

# --- --overwrite replaces what differs from the backup and leaves alone what is
# already as in it (bkr.1.md): it rewrote every file, a restore run again
# with --overwrite wrote the whole tree anew
src6=$T/six
R6=$T/repo6
mkdir -p "$src6/d"
printf 'same\n' >"$src6/d/same.txt"
printf 'orig\n' >"$src6/d/edit.txt"
expect_exit 0 "$BKR" -r "$R6" init
expect_exit 0 "$BKR" -r "$R6" create --type full "$src6"
expect_exit 0 "$BKR" -r "$R6" restore latest --target "$T/live6"
ino=$(stat -c %i "$T/live6/six/d/same.txt")
printf 'edited\n' >"$T/live6/six/d/edit.txt"
expect_exit 0 "$BKR" -r "$R6" restore latest --target "$T/live6" --overwrite
cmp "$T/live6/six/d/edit.txt" "$src6/d/edit.txt" || fail "--overwrite did not replace a file that differs"
[ "$(stat -c %i "$T/live6/six/d/same.txt")" = "$ino" ] || fail "--overwrite rewrote a file already as in the backup"
grep -q ": 1 files, .*(1 already there as in the backup)" "$T/out" || fail "--overwrite's summary: $(cat "$T/out")"
pass "restore --overwrite writes what differs and leaves what is as in the backup"

# --- --overwrite puts a directory in the place of a file in its way only once
# the directory is made: the file was removed first, and a failure after that
# left neither (restore-rename:1 fails the move into place; restore-exchange:1
# takes RENAME_EXCHANGE away, as on a filesystem without it)
in_the_way() {
	rm -rf "$T/live6/six/d"
	printf 'in the way\n' >"$T/live6/six/d"
}
no_tmp() {
	[ -z "$(find "$T/live6" -name '.bkr-restore-*')" ] || fail "$1 left $(find "$T/live6" -name '.bkr-restore-*')"
}
in_the_way
expect_exit 6 env BKR_FAULT=restore-rename:1 "$BKR" -r "$R6" restore latest --target "$T/live6" --overwrite
grep -q "six/d: cannot replace: Input/output error" "$T/err" || fail "the failed replacement is not said: $(cat "$T/err")"
[ "$(cat "$T/live6/six/d")" = "in the way" ] || fail "a failed replacement by a directory lost the file in its way"
no_tmp "a failed replacement by a directory"
for fault in restore-exchange:1 none:1; do
	in_the_way
	expect_exit 0 env BKR_FAULT=$fault "$BKR" -r "$R6" restore latest --target "$T/live6" --overwrite
	cmp "$T/live6/six/d/edit.txt" "$src6/d/edit.txt" || fail "($fault) the directory did not replace the file in its way"
	no_tmp "($fault) a directory replacing a file"
done
pass "restore --overwrite replaces a file in the way of a directory only when the directory is ready"

# --- a path longer than PATH_MAX (20 directories of 254 bytes): restore's
# line about it was cut at 1 KiB with "...", naming no file.  Now whole.
mkdir -p "$T/dp"
make_deep_tree "$T/dp" $'bottom\nfile' $'bottom\n'
"$BKR" init -r "$T/dpr" >/dev/null
expect_exit 0 "$BKR" -q -r "$T/dpr" create "$T/dp"
expect_exit 0 "$BKR" -q -r "$T/dpr" restore latest --target "$T/dpt"
python3 - "$T/dpt/dp" <<'PY'
import os, sys
os.chdir(sys.argv[1])
for i in range(20):
    os.chdir(b"D%02d" % i + b"d" * 250)
assert open(b"bottom\nfile", "rb").read() == b"bottom\n"
open(b"bottom\nfile", "ab").write(b"changed here\n")
PY
expect_exit 6 "$BKR" -r "$T/dpr" restore latest --target "$T/dpt"
one_line_error
want=$(python3 -c 'print("bkr restore: dp/" + "".join("D%02d" % i + "d" * 250 + "/" for i in range(20)) + "bottom\\x0afile: exists (--overwrite replaces it)")')
[ "$(cat "$T/err")" = "$want" ] || fail "restore's line about a path longer than PATH_MAX: $(tail -c 200 "$T/err")"
pass "restore's line about a file deeper than PATH_MAX bytes names the whole path"

# --- a set-user-ID file whose owner cannot be given keeps no set-ID bit: in a
# user namespace that maps only root (a rootless container) chown to the
# file's owner fails, and the file, left owned by the restoring root, must
# not become set-user-ID root
if unshare --user --map-root-user true 2>/dev/null; then
	mkdir -p "$T/su"
	printf '#!/bin/sh\n' >"$T/su/tool"
	printf 'data\n' >"$T/su/data"
	chown 1000:1000 "$T/su/tool" "$T/su/data"
	chmod 6755 "$T/su/tool"
	expect_exit 0 "$BKR" -q -r "$T/sur" init
	expect_exit 0 "$BKR" -q -r "$T/sur" create "$T/su"
	rc=0
	unshare --user --map-root-user "$BKR" -r "$T/sur" restore latest --target "$T/sut" --numeric-ids \
		>"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = 0 ] || { cat "$T/err"; fail "restore where chown fails: expected exit 0, got $rc"; }
	[ "$(stat -c %a "$T/sut/su/tool")" = 755 ] ||
		fail "a file restored without its owner kept set-ID bits: $(stat -c '%a %u:%g' "$T/sut/su/tool")"
	grep -q "su/tool: chown: .*set-ID bits not restored" "$T/err" || fail "the dropped set-ID bits are not said: $(cat "$T/err")"
	pass "a set-ID file whose owner cannot be set is restored without its set-ID bits"

	# run again, and in place: a file whose only difference is an owner
	# root's chown is refused is as this restore can make it, not changed
	# (it was: an error, 'exists', exit 6, run again; in place rewritten,
	# as root's, every run); the warning stays.  In place the backup's own
	# data (1000:1000 still) is left as it is; tool is rewritten once,
	# without its set-ID bits, as into a target
	data_ino=$(stat -c %i "$T/su/data")
	rc=0
	for run in target inplace1 inplace2; do
		where=(--target "$T/sut")
		[ "$run" = target ] || where=(--in-place)
		[ "$run" = inplace2 ] && before=$(stat -c %i "$T/su/tool")
		unshare --user --map-root-user "$BKR" -r "$T/sur" restore latest "${where[@]}" --numeric-ids \
			>"$T/out.$run" 2>"$T/err.$run" || rc=$?
		[ "$rc" = 0 ] || break
	done
	[ "$rc" = 0 ] || fail "restore run again where chown fails ($run): exit $rc: $(cat "$T/err.$run")"
	grep -q "(2 already there as in the backup)" "$T/out.target" ||
		fail "run again where chown fails: $(cat "$T/out.target")"
	grep -q "(0 new, 0 changed, 3 unchanged)" "$T/out.inplace2" &&
		[ "$(stat -c %i "$T/su/tool")" = "$before" ] && [ "$(stat -c '%i %u:%g' "$T/su/data")" = "$data_ino 1000:1000" ] ||
		fail "in place where chown fails, run again, rewrote files: $(cat "$T/out.inplace2")"
	grep -q "su/tool: chown: Invalid argument; set-ID bits not restored" "$T/err.inplace2" &&
		grep -q "su/data: chown: Invalid argument" "$T/err.inplace2" ||
		fail "the owners not restored are no longer said: $(cat "$T/err.inplace2")"
	pass "a restore run again where root's chown is refused leaves files whose owner it cannot set as they are"
fi

# --- a user who is not root restores every file as their own (no chown): a
# set-ID bit of another owner's or group's file must not make it set-ID the
# restoring user (cp -a drops them so; GNU tar drops all of them without -p);
# the user's own set-ID file keeps them
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$T/nr"
	chown 65534:65534 "$T/nr" # in place below: the user's directory
	for f in other mine grp; do printf '#!/bin/sh\n' >"$T/nr/$f"; done
	chown 1000:1000 "$T/nr/other"
	chown 65534:65534 "$T/nr/mine"
	chown 65534:1000 "$T/nr/grp"
	chmod 6755 "$T/nr/other" "$T/nr/mine" "$T/nr/grp"
	expect_exit 0 "$BKR" -q -r "$T/nrr" init
	expect_exit 0 "$BKR" -q -r "$T/nrr" create "$T/nr"
	mkdir "$T/nrt" "$T/nrstate"
	chown -R 65534:65534 "$T/nrr" "$T/nrt" "$T/nrstate"
	chmod 755 "$T" # let uid 65534 reach them
	rc=0
	XDG_STATE_HOME=$T/nrstate setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$BKR" -r "$T/nrr" restore latest --target "$T/nrt" --numeric-ids >"$T/out" 2>"$T/err" || rc=$?
	chmod 700 "$T"
	[ "$rc" = 0 ] || { cat "$T/err"; fail "restore as uid 65534: expected exit 0, got $rc"; }
	got=$(cd "$T/nrt/nr" && stat -c '%n %a %u:%g' other mine grp | tr '\n' ' ')
	[ "$got" = "other 755 65534:65534 mine 6755 65534:65534 grp 4755 65534:65534 " ] ||
		fail "set-ID bits restored by a user who is not root: $got"
	grep -q "nr/other: owner 1000:1000 not restored (not root); set-ID bits not restored" "$T/err" &&
		grep -q "nr/grp: owner 65534:1000 not restored" "$T/err" && ! grep -q "nr/mine" "$T/err" ||
		fail "the dropped set-ID bits are not said (or said of the user's own file): $(cat "$T/err")"
	pass "restore by a user who is not root keeps set-ID bits only on files with their recorded owner and group"

	# run again, and in place: a file restored so is as this user can
	# restore it, not changed (it was: the mode differs from the backup's),
	# so it is neither an error ('exists', exit 6) nor rewritten each run;
	# the warning stays
	rm "$T/nr/other" "$T/nr/grp"
	chmod 755 "$T"
	rc=0
	for run in target inplace1 inplace2; do
		where=(--target "$T/nrt")
		[ "$run" = target ] || where=(--in-place)
		[ "$run" = inplace2 ] && before=$(stat -c %i "$T/nr/other" "$T/nr/grp")
		XDG_STATE_HOME=$T/nrstate setpriv --reuid=65534 --regid=65534 --clear-groups \
			"$BKR" -r "$T/nrr" restore latest "${where[@]}" --numeric-ids >"$T/out.$run" 2>"$T/err.$run" || rc=$?
		[ "$rc" = 0 ] || break
	done
	chmod 700 "$T"
	[ "$rc" = 0 ] || fail "restore run again as uid 65534 ($run): exit $rc: $(cat "$T/err.$run")"
	grep -q "(0 new, 0 changed, 4 unchanged)" "$T/out.inplace2" &&
		[ "$(stat -c %i "$T/nr/other" "$T/nr/grp")" = "$before" ] ||
		fail "in place as uid 65534, run again, rewrote the files without their set-ID bits: $(cat "$T/out.inplace2")"
	got=$(cd "$T/nr" && stat -c '%n %a %u:%g' other mine grp | tr '\n' ' ')
	[ "$got" = "other 755 65534:65534 mine 6755 65534:65534 grp 4755 65534:65534 " ] ||
		fail "in place as uid 65534: $got"
	grep -q "nr/other: owner 1000:1000 not restored (not root); set-ID bits not restored" "$T/err.inplace2" &&
		grep -q "nr/grp: owner 65534:1000 not restored" "$T/err.inplace2" ||
		fail "the set-ID bits not restored are no longer said: $(cat "$T/err.inplace2")"
	pass "a restore run again by a user who is not root leaves files without the set-ID bits it may not set as they are"
fi

# --- a target restore may not write in is one error about it, as one it
# cannot make: exit 7, one line, nothing written (it was each entry failing,
# exit 6, for an existing read-only DIR and exit 7 for one to make below a
# read-only directory); an entry below DIR that cannot be written fails
# alone (exit 6) and the rest is restored, with --target as in place
if [ "$(id -u)" = 0 ]; then
	ro=$T/ro
	mkdir -p "$ro/src/a" "$ro/src/b" "$ro/state" "$ro/t" "$ro/t2"
	printf 'one\n' >"$ro/src/a/f"
	printf 'two\n' >"$ro/src/b/g"
	printf 'three\n' >"$ro/src/top"
	expect_exit 0 "$BKR" -q -r "$ro/repo" init
	expect_exit 0 "$BKR" -q -r "$ro/repo" create "$ro/src"
	chown -R 65534:65534 "$ro"
	chmod 555 "$ro/t"
	chmod 755 "$T"
	as_nobody() { XDG_STATE_HOME=$ro/state setpriv --reuid=65534 --regid=65534 --clear-groups "$BKR" -r "$ro/repo" "$@"; }
	rc=0
	for t in "$ro/t" "$ro/t/new"; do
		st=0; as_nobody restore latest --target "$t" >"$T/out" 2>"$T/err" || st=$?
		if [ "$st" != 7 ] || [ "$(<"$T/err")" != "bkr restore: $( [ "$t" = "$ro/t" ] &&
			echo "restore target $t: cannot write in it" || echo "mkdir $t"): Permission denied" ]; then
			rc=1; break
		fi
		[ -z "$(ls -A "$ro/t")" ] || { rc=2; break; }
	done
	# below DIR: src/a read-only, its file changed; the rest differs too
	if [ "$rc" = 0 ]; then
		st=0; as_nobody restore latest --target "$ro/t2" >"$T/out" 2>"$T/err" || st=$?
		[ "$st" = 0 ] || rc=3
		printf 'changed\n' | tee "$ro/t2/src/a/f" "$ro/t2/src/b/g" >"$ro/t2/src/top"
		chmod 444 "$ro/t2/src/top"
		chmod 555 "$ro/t2/src/a"
		st=0; as_nobody restore latest --target "$ro/t2" --overwrite >"$T/out" 2>"$T/err.t2" || st=$?
		[ "$st" = 6 ] || rc=4
	fi
	# in place: the source's directory a is read-only, its file changed
	if [ "$rc" = 0 ]; then
		printf 'changed\n' | tee "$ro/src/a/f" >"$ro/src/b/g"
		chmod 555 "$ro/src/a"
		st=0; as_nobody restore latest --in-place >"$T/out" 2>"$T/err.ip" || st=$?
		[ "$st" = 6 ] || rc=5
	fi
	chmod 700 "$T"
	case $rc in
	1) fail "restore into $t, a directory it may not write in: expected exit 7 and one line naming it, got $st: $(cat "$T/err")" ;;
	2) fail "a restore into a target it may not write in wrote $(ls -A "$ro/t")" ;;
	3) fail "restore into $ro/t2: exit $st: $(cat "$T/err")" ;;
	4) fail "a file in a read-only directory below the target: expected exit 6, got $st: $(cat "$T/err.t2")" ;;
	5) fail "in place, a file in a read-only source directory: expected exit 6, got $st: $(cat "$T/err.ip")" ;;
	esac
	[ "$(cat "$T/err.t2")" = "bkr restore: src/a/f: create: Permission denied" ] ||
		fail "the file that could not be written is not named alone: $(cat "$T/err.t2")"
	[ "$(cat "$ro/t2/src/a/f")" = changed ] && [ "$(cat "$ro/t2/src/b/g")" = two ] && [ "$(cat "$ro/t2/src/top")" = three ] ||
		fail "--overwrite beside a read-only directory did not restore the rest (a read-only file is replaced, as rsync does)"
	[ "$(cat "$T/err.ip")" = "bkr restore: src/a/f: create: Permission denied" ] ||
		fail "in place, the file that could not be written is not named: $(cat "$T/err.ip")"
	[ "$(cat "$ro/src/a/f")" = changed ] && [ "$(cat "$ro/src/b/g")" = two ] ||
		fail "in place beside a read-only directory: the rest was not restored"
	pass "a target restore may not write in: exit 7, one line, nothing written; an entry below it that cannot be written fails alone (exit 6)"
fi

# --- a target that is a symlink to nothing: the target's error (exit 7, one
# line naming it), as a target that is a file; it was exit 3, the code of a
# backup or path not found
ln -s "$T/nowhere" "$T/dangling"
printf 'x\n' >"$T/afile"
for t in "$T/dangling" "$T/afile"; do
	expect_exit 7 "$BKR" -r "$R" restore latest --target "$t"
	one_line_error
	err_has "restore target $t: " || fail "restore into $t: $(cat "$T/err")"
done
[ ! -e "$T/nowhere" ] || fail "a restore into a symlink to nothing made its target"
pass "a target that is a symlink to nothing or a file: exit 7, one line naming it"

# --- a write-back error at the final syncfs fails the restore: files placed
# without an fsync of their own (new ones) may not be on disk
expect_exit 6 env BKR_FAULT=restore-syncfs:1 "$BKR" -r "$R" restore latest --target "$T/syncfs"
one_line_error
grep -q "^bkr restore: .*syncfs: Input/output error; what was restored here may not be on disk" "$T/err" ||
	fail "the failed syncfs is not said: $(cat "$T/err")"
pass "a restore whose final syncfs fails exits 6 and says so"
