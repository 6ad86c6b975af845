#!/bin/bash
# History of one file: `bkr log` (and -p against diff -u) on a scripted
# history of real backups: a file changed, unchanged, metadata-only change,
# deleted then re-created, a directory that becomes a file, a symlink
# retargeted, a non-UTF-8 name, two backups in one second, a binary file.
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
printf 'kept\n' >"$W/keep.txt"
printf 'inner\n' >"$W/d/inner"
ln -s t1 "$W/link"
printf 'one\n' >"$W/$NAME"
printf 'bin\0ary\n' >"$W/blob.bin"
touch -h -d '2026-10-01 00:00:00' "$W/config/app.json" "$W/keep.txt" "$W/d/inner" "$W/link" "$W/$NAME" "$W/blob.bin"
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
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["path_hex"].endswith("fffe"), d' "$T/log.json" ||
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
