#!/usr/bin/env bash
# bkr end to end: every backup type round-trips an edge-case tree exactly;
# list/show/ls/cat/diff; a real tree; damage is found and contained; bad input
# gets one-line errors and the documented exit codes.
source "$(dirname "$0")/lib.sh"

# flip_blob REPO data|tree HEXID: flip a byte in the payload of blob HEXID (found through the pack footers)
flip_blob() {
	python3 - "$@" <<'PY'
import glob, struct, sys
repo, kind, want = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
for p in glob.glob(repo + "/" + kind + "/*/*.pack"):
    b = bytearray(open(p, "rb").read())
    count, footer = struct.unpack_from("<IQ", b, len(b) - 64 + 12)
    for k in range(count):
        e = footer + 56 * k
        if b[e:e + 32] == want:
            off = struct.unpack_from("<Q", b, e + 32)[0]
            b[off + 16 + 2] ^= 0x5a   # inside the payload, after the 16-byte header
            open(p, "wb").write(b)
            sys.exit(0)
sys.exit("blob %s not found" % sys.argv[3])
PY
}

src=$T/src
make_edge_tree "$src"
new_repo
R=$T/repo

# --- every --help works
for c in init create backup list show ls cat restore verify diff config mount pin unpin tag scan recover batch recovered; do
	expect_exit 0 "$BKR" "$c" --help
	grep -q "^usage: bkr" "$T/out" || fail "bkr $c --help prints no usage"
done
expect_exit 0 "$BKR" --help
cmds=$(sed -n '/^Commands:/,/^$/s/^  \([a-z]*\) .*/\1/p' "$T/out")
# each command's --help, kept for the checks against bkr.1.md at the end ($T/help-CMD)
for c in $cmds; do "$BKR" "$c" --help >"$T/help-$c"; done
cat "$T"/help-* >"$T/helps"
grep -ohE "['\`]bkr [a-z][a-z-]+" "$T/helps" "$BKR_SOURCE_ROOT/docs/bkr.1.md" "$BKR_SOURCE_ROOT/README.md" | sort -u |
	while read -r _ w; do
		case " $(echo $cmds) " in *" $w "*) ;; *) fail "help or docs name 'bkr $w', which is not a command" ;; esac
	done
! grep -qi "hot tier" "$T/helps" || fail "a --help promises tier placement, which no command does"
# help texts are written with fputs: a printf escape there shows as it is ('at least 90%% of')
! grep -n '%%' "$T/helps" || fail "a --help prints '%%' where it means '%'"
# restic's and borg's command names get a pointer to bkr's, still exit 2
for w in check snapshots forget; do
	expect_exit 2 "$BKR" -r "$R" "$w"
	case "$w" in check) want=verify ;; snapshots) want=list ;; forget) want=cleanup ;; esac
	[ "$(wc -l <"$T/err")" = 1 ] && grep -q "^bkr: '$w' is not a bkr command: .*'bkr $want" "$T/err" ||
		fail "bkr $w: $(cat "$T/err")"
done
# comments cite documents that ship with the tree
! grep -rn "DESIGN §" "$BKR_SOURCE_ROOT/engine" "$BKR_SOURCE_ROOT/fs" "$BKR_SOURCE_ROOT/tools" ||
	fail "a comment cites DESIGN, which is not in the tree"
pass "--help on every command; help and docs name only commands that exist"

# --- the version is meson's project version everywhere
ver=$(sed -n "s/^ *version : '\([^']*\)',.*/\1/p" "$BKR_SOURCE_ROOT/meson.build" | head -1)
[ -n "$ver" ] || fail "no version in meson.build"
expect_exit 0 "$BKR" --version
[ "$(cat "$T/out")" = "bkr $ver" ] || fail "bkr --version: $(cat "$T/out"), meson.build: $ver"
expect_exit 0 "$BKRFS" --version
grep -q "^bkrfs $ver " "$T/out" || fail "bkrfs --version: $(cat "$T/out"), meson.build: $ver"
pass "bkr and bkrfs report meson's version $ver"

# --- the README's commands work on a minimal Debian 12 as root (no sudo there)
! sed -n '/^```sh/,/^```/p' "$BKR_SOURCE_ROOT/README.md" | grep -qE '(^|[;&|] *)sudo ' ||
	fail "a README command needs sudo, which a minimal Debian 12 lacks"
pass "README commands need no sudo"

# --- full backup and exact restore
expect_exit 0 "$BKR" -r "$R" create --type full "$src"
grep -q "full backup" "$T/out" || fail "create prints no summary"
expect_exit 0 "$BKR" -r "$R" restore latest --target "$T/r1"
python3 "$HERE/treecmp.py" "$src" "$T/r1/src" || fail "full backup does not restore exactly"
pass "full backup restores every field"

# --- incremental after changes, differential, snapshot (no pause for their ids: one made
# in the same second as its parent is dated a microsecond after it, docs/format.md, and a
# change shows in the ctime's nanoseconds)
printf 'changed\n' >"$src/small.txt"
rm "$src/hard2"
printf 'new file\n' >"$src/added.txt"
echo more >>"$src/wide/f00007"
find "$src" -depth -type d -exec touch -d '2020-06-07 08:09:10.111222333' {} +
for type in incremental differential snapshot; do
	expect_exit 0 "$BKR" -r "$R" create --type "$type" "$src" --json
	json_ok "$T/out"
	id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/out")
	case "$id" in backup_20*_${type}_*) ;; *) fail "bad backup id $id" ;; esac
	python3 - "$T/out" "$type" <<'PY' || fail "$type backup re-read unchanged files"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["backup_type"] == sys.argv[2], m["backup_type"]
assert m["parent"], "no parent"
# almost everything must be reused from the parent: the changes are a few bytes
assert m["stats"]["new_bytes"] < 1 << 20, m["stats"]
PY
	rm -rf "$T/r2"
	expect_exit 0 "$BKR" -r "$R" restore "$id" --target "$T/r2"
	python3 "$HERE/treecmp.py" "$src" "$T/r2/src" || fail "$type backup does not restore exactly"
done
pass "incremental, differential and snapshot restore exactly and reuse unchanged data"

# --- list / show / ls / cat
expect_exit 0 "$BKR" -r "$R" list --json
json_ok "$T/out"
python3 - "$T/out" <<'PY' || fail "list --json lacks the seed's fields"
import json, sys
l = json.load(open(sys.argv[1]))
assert len(l) == 4, len(l)
for m in l:
    for k in ("backup_id", "timestamp", "backup_type", "sources", "metadata", "validation"):
        assert k in m, k
    s = m["sources"][0]
    for k in ("source", "files_backed_up", "total_size_bytes", "checksum", "compression"):
        assert k in s, k
    for k in ("hostname", "workspace_root", "backup_duration_seconds"):
        assert k in m["metadata"], k
    assert m["validation"]["integrity_check"] == "passed"
assert [m["backup_type"] for m in l] == ["full", "incremental", "differential", "snapshot"]
PY
full=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["backup_id"])' "$T/out")
expect_exit 0 "$BKR" -r "$R" list
[ "$(grep -c '^backup_' "$T/out")" = 4 ] || fail "list shows $(grep -c '^backup_' "$T/out") backups, not 4"
grep -q "pinned" "$T/out" || fail "the snapshot is not shown as pinned"
expect_exit 0 "$BKR" -r "$R" show "${full:0:25}"
grep -q "$full" "$T/out" || fail "show by prefix"
# ids: the random suffix or a prefix of it, everywhere an id is taken; an ambiguous one lists the candidates
expect_exit 0 "$BKR" -r "$R" show "${full##*_}"
grep -q "$full" "$T/out" || fail "show by the random suffix"
expect_exit 0 "$BKR" -r "$R" diff "${full##*_}" latest
expect_exit 0 "$BKR" -r "$R" ls "${full##*_}" src
expect_exit 0 "$BKR" -r "$R" verify "${full##*_}"
expect_exit 2 "$BKR" -r "$R" show backup_20
one_line_error
for id in $("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(" ".join(m["backup_id"] for m in json.load(sys.stdin)))'); do
	grep -q "$id" "$T/err" || fail "an ambiguous id does not list candidate $id: $(cat "$T/err")"
done
expect_exit 3 "$BKR" -r "$R" show ffffffffff
# list: the columns stay aligned when ids differ in length (differential is the longest type)
expect_exit 0 "$BKR" -r "$R" list
python3 - "$T/out" <<'PY' || fail "list columns are not aligned: $(cat "$T/out")"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
cols = {l.index("TIME") if l.startswith("ID") else re.search(r" \d{4}-\d\d-\d\d ", l).start() + 1 for l in lines}
assert len(cols) == 1, cols
PY
expect_exit 0 "$BKR" -r "$R" ls latest src -l
grep -q "small.txt" "$T/out" || fail "ls misses small.txt"
expect_exit 0 "$BKR" -r "$R" ls latest --json -R
json_ok "$T/out"
expect_exit 0 "$BKR" -r "$R" cat latest src/random.bin
cmp "$T/out" "$src/random.bin" || fail "cat gives other bytes"
expect_exit 0 "$BKR" -r "$R" cat latest src/sparse.img
cmp "$T/out" "$src/sparse.img" || fail "cat of a sparse file"
pass "list, show, ls, cat"

# --- diff
expect_exit 0 "$BKR" -r "$R" diff "$full" latest --json
json_ok "$T/out"
python3 - "$T/out" <<'PY' || fail "diff full -> latest is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
ch = {c["path"]: c for c in d["changes"]}
assert ch["src/added.txt"]["change"] == "added", ch.get("src/added.txt")
assert ch["src/hard2"]["change"] == "removed"
assert ch["src/small.txt"]["change"] == "modified" and ch["src/small.txt"]["content"]
assert ch["src/wide/f00007"]["change"] == "modified"
assert "src/random.bin" not in ch
PY
touch -d '2001-01-01' "$src/data.json"
expect_exit 0 "$BKR" -r "$R" diff latest --live "$src" --json
python3 - "$T/out" <<'PY' || fail "diff --live is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
ch = {c["path"]: c for c in d["changes"]}
assert ch["src/data.json"]["change"] == "modified" and not ch["src/data.json"]["content"], ch
assert len([c for c in d["changes"] if c["change"] != "modified" or c["content"]]) == 0, d["changes"]
PY
# --live PATH inside a source limits the comparison to it (a directory or a file);
# a path in no source is an error naming it (exit 3), not the whole backup
touch -r "$src/wide/f00007" "$T/wide.ref"
touch -d '2001-01-01' "$src/wide/f00007"
expect_exit 0 "$BKR" -r "$R" diff latest --live "$src/wide"
[ "$(cat "$T/out")" = "m  src/wide/f00007" ] || fail "diff --live of a subtree: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" diff latest --live "$src/data.json"
[ "$(cat "$T/out")" = "m  src/data.json" ] || fail "diff --live of a file: $(cat "$T/out")"
touch -r "$T/wide.ref" "$src/wide/f00007"
mkdir -p "$T/nosource"
expect_exit 3 "$BKR" -r "$R" diff latest --live "$T/nosource"
one_line_error
grep -q "$T/nosource: not a source" "$T/err" || fail "diff --live of a path in no source: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "diff --live of a path in no source printed: $(cat "$T/out")"
# a PATH in neither backup is not found (exit 3), as for ls, cat, log and restore;
# in one of them only it is a change
for p in src/no-such-file /src/no-such-file src/small.txt/x; do
	for flag in "" --exit-code --json; do
		expect_exit 3 "$BKR" -r "$R" diff "$full" latest "$p" $flag
		one_line_error
		grep -q "path '$p': in neither backup" "$T/err" || fail "diff does not name the missing path: $(cat "$T/err")"
	done
done
expect_exit 3 "$BKR" -r "$R" diff "$full" latest src/small.txt src/no-such-file
[ ! -s "$T/out" ] || fail "diff printed changes before finding a missing path: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" diff "$full" latest src/added.txt
grep -q "^+  src/added.txt" "$T/out" || fail "a path in the newer backup only: $(cat "$T/out")"
expect_exit 1 "$BKR" -r "$R" diff "$full" latest /src/hard2 --exit-code
pass "diff between backups and against live files; a path in neither backup is not found"

# --live: a live file (same size, another mtime) or directory that cannot be
# read is an error naming it (exit 7), never a content change ('M', exit 0)
# nor, for a directory, the same as the backup (its contents unsaid, exit 0)
if [ "$(id -u)" = 0 ]; then
	lv=$T/lv
	mkdir -p "$lv/src/d"
	printf 'a\n' >"$lv/src/f"
	printf 'b\n' >"$lv/src/d/g"
	expect_exit 0 "$BKR" -q -r "$lv/repo" init
	expect_exit 0 "$BKR" -q -r "$lv/repo" create "$lv/src"
	printf 'c\n' >"$lv/src/f"
	chmod 600 "$lv/src/f"
	chmod -R a+rX "$lv/repo"
	chmod 755 "$T" "$lv"
	for what in f d; do
		[ "$what" = d ] && chmod 644 "$lv/src/f" && chmod 700 "$lv/src/d"
		rc=0
		XDG_STATE_HOME=$lv/state setpriv --reuid=65534 --regid=65534 --clear-groups \
			"$BKR" -r "$lv/repo" diff latest --live >"$T/out.$what" 2>"$T/err" || rc=$?
		[ "$rc" = 7 ] || { chmod 700 "$T"; fail "diff --live with src/$what unreadable: exit $rc: $(cat "$T/out.$what" "$T/err")"; }
		one_line_error
		cp "$T/err" "$T/err.$what"
	done
	chmod 700 "$T"
	grep -qx "bkr diff: src/f: open: Permission denied" "$T/err.f" && [ ! -s "$T/out.f" ] ||
		fail "diff --live, an unreadable file: $(cat "$T/out.f" "$T/err.f")"
	grep -qx "bkr diff: src/d: open directory: Permission denied" "$T/err.d" && [ "$(cat "$T/out.d")" = "m  src/d" ] ||
		fail "diff --live, an unreadable directory: $(cat "$T/out.d" "$T/err.d")"
	pass "diff --live: a live file or directory that cannot be read is an error naming it, not a change nor the same"
fi

# --- verify clean, then damage one data blob
expect_exit 0 "$BKR" -r "$R" verify --read-data
# data.json is in every backup, unchanged (a file of one chunk: its blob id is
# its content's hash).  The first blob of the largest pack, damaged before,
# could belong to a file version only the full backup holds (which blobs a
# pack gets depends on the worker threads' order): then restoring latest was
# rightly clean and the test failed once in a while.
flip_blob "$R" data "$(sha256sum <"$src/data.json" | cut -c1-64)"
expect_exit 1 "$BKR" -r "$R" verify --read-data --json
json_ok "$T/out"
python3 - "$T/out" <<'PY' || fail "verify does not name the damage"
import json, sys
v = json.load(open(sys.argv[1]))
assert not v["ok"]
kinds = {p["kind"] for p in v["problems"]}
assert "blob" in kinds, kinds
files = [p for p in v["problems"] if p["kind"] == "damaged-file"]
assert files and all(p["backup_id"] and p["path"] for p in files), files
PY
expect_exit 1 "$BKR" -r "$R" verify --read-data
grep -q "damaged-file" "$T/out" || fail "human verify output does not list damaged files"
bad=$(python3 -c '
import json,sys
v=json.load(open(sys.argv[1]))
print(sorted({p["path"] for p in v["problems"] if p["kind"]=="damaged-file"})[0])' <(cd "$T" && "$BKR" -r "$R" verify --read-data --json || true))
[ "$bad" = src/data.json ] || fail "verify names $bad as damaged, not src/data.json"
rm -rf "$T/r3"
expect_exit 6 "$BKR" -r "$R" restore latest --target "$T/r3"
grep -q "$(basename "$bad")" "$T/err" || fail "restore does not name the damaged file $bad"
[ ! -e "$T/r3/$bad" ] || ! cmp -s "$T/r3/$bad" "$src/${bad#src/}" || fail "restore wrote wrong bytes for $bad"
cmp "$T/r3/src/small.txt" "$src/small.txt" || fail "an undamaged file was not restored"
expect_exit 4 "$BKR" -r "$R" cat latest "$bad"
one_line_error
pass "a flipped byte is found by verify --read-data and only the affected files fail"

# --- bad input: one line, right exit code, nothing written
expect_exit 3 "$BKR" -r "$T/nope" list
one_line_error
grep -q "$T/nope" "$T/err" || fail "error does not name the repository"
expect_exit 2 "$BKR" -r "$R" list --bogus
expect_exit 3 "$BKR" -r "$R" show backup_does_not_exist
one_line_error
mkdir "$T/notempty" && touch "$T/notempty/x"
expect_exit 7 "$BKR" init -r "$T/notempty"
one_line_error
# a repository inside another one (its folders, or deeper, relative or not): refused, nothing made
before=$(find "$R" | sort | md5sum)
for inner in "$R/runs" "$R/data/new/deeper" "$R/sub"; do
	expect_exit 2 "$BKR" init -r "$inner"
	one_line_error
	grep -q "inside the repository $(realpath "$R"); a repository needs a place of its own" "$T/err" || fail "init $inner: $(cat "$T/err")"
done
(cd "$R/data" && "$BKR" init -r rel/repo) >/dev/null 2>&1 && fail "init of a relative path inside a repository succeeded"
[ "$(find "$R" | sort | md5sum)" = "$before" ] || fail "a refused init inside the repository changed it"
cp -r "$R" "$T/badrepo"
# a damaged config.json alone: its copy serves, with a warning naming both
sed -i 's/"version":1/"version":9/' "$T/badrepo/config.json"
expect_exit 0 "$BKR" -r "$T/badrepo" list
grep -q "config.json.*config.copy.json" "$T/err" || fail "no warning that config.json is damaged: $(cat "$T/err")"
# both damaged: one line, exit 4
sed -i 's/"version":1/"version":9/' "$T/badrepo/config.copy.json"
expect_exit 4 "$BKR" -r "$T/badrepo" list
one_line_error
grep -q "config.json" "$T/err" || fail "error does not name config.json"
echo '{"repository": "'"$R"'", "workspace_root": 42}' >"$T/bad.json"
expect_exit 2 "$BKR" config check -c "$T/bad.json"
one_line_error
grep -q "workspace_root" "$T/err" || fail "config check does not name the key"
expect_exit 2 "$BKR" config check -c "$T/bad.json" --json
json_ok "$T/out"
# a key repeated inside a nested object, as at the top level
echo '{"repository": "'"$R"'", "workspace_root": "'"$src"'", "recovery": {"rules": [{"pattern": "*",
 "strategies": ["backup"]}], "rules": []}}' >"$T/dup.json"
expect_exit 2 "$BKR" config check -c "$T/dup.json"
one_line_error
grep -q "key 'recovery.rules': appears more than once" "$T/err" || fail "a repeated nested key: $(cat "$T/err")"
# the repository: -r, else BKR_REPO, else the configuration's (which is read all the same)
expect_exit 0 "$BKR" init -r "$T/other"
printf '{"repository": "%s", "workspace_root": "%s"}\n' "$R" "$src" >"$T/prec.json"
expect_exit 0 "$BKR" -c "$T/prec.json" list
grep -q "backup_" "$T/out" || fail "-c: the configuration's repository is not the one listed"
expect_exit 0 env BKR_REPO="$T/other" "$BKR" -c "$T/prec.json" list
! grep -q "backup_" "$T/out" || fail "BKR_REPO does not win over the configuration"
expect_exit 0 env BKR_REPO="$T/other" "$BKR" -c "$T/prec.json" -r "$R" list
grep -q "backup_" "$T/out" || fail "-r does not win over BKR_REPO"
expect_exit 2 "$BKR" -c "$T/bad.json" -r "$R" list
grep -q "workspace_root" "$T/err" || fail "a bad configuration named with -c is not reported when -r is given"
echo 'not json' >"$R/backups/backup_20990101_000000_full_deadbeef.json"
expect_exit 4 "$BKR" -r "$R" list
grep -q "backup_20990101_000000_full_deadbeef.json" "$T/err" || fail "damaged manifest not named"
rm "$R/backups/backup_20990101_000000_full_deadbeef.json"
# a pin until a time already past would protect nothing: refused, naming the time, nothing recorded
expect_exit 2 "$BKR" -r "$R" pin "$full" --until 2020-01-01
one_line_error
grep -q "'2020-01-01' is not in the future" "$T/err" || fail "a pin until a past date: $(cat "$T/err")"
# beyond the last time bkr can hold: the bound is named
expect_exit 2 "$BKR" -r "$R" pin "$full" --until 9999-12-31
one_line_error
grep -q "out of range: '9999-12-31' (times go from 1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z)" "$T/err" ||
	fail "a pin until 9999-12-31: $(cat "$T/err")"
expect_exit 2 env BKR_TEST_NOW=2030-06-01T12:00:00Z "$BKR" -r "$R" pin "$full" --until 2030-06-01 # ended at 00:00
expect_exit 2 "$BKR" -r "$R" create --type snapshot "$src" --pin-until 2020-01-01T00:00:00Z
one_line_error
grep -q "pin-until: '2020-01-01T00:00:00Z' is not in the future" "$T/err" || fail "--pin-until in the past: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$R" show "$full"
! grep -q "^pin" "$T/out" || fail "a refused pin was recorded: $(cat "$T/out")"
# a pin reads in UTC whatever offset it was given, and says when it has expired
expect_exit 0 env BKR_TEST_NOW=2030-06-01T12:00:00Z "$BKR" -r "$R" pin "$full" --until 2030-06-02T05:00:00+05:00
expect_exit 0 "$BKR" -r "$R" show "$full"
grep -q "^pin  *pinned until 2030-06-02T00:00:00.*Z$" "$T/out" || fail "a pin until a future date: $(cat "$T/out")"
expect_exit 0 env BKR_TEST_NOW=2030-06-03T00:00:00Z "$BKR" -r "$R" list
grep "^$full " "$T/out" | grep -q "\[pin expired 2030-06-02T00:00:00.*Z\]$" || fail "list of an expired pin: $(cat "$T/out")"
expect_exit 0 env BKR_TEST_NOW=2030-06-03T00:00:00Z "$BKR" -r "$R" show "$full"
grep -q "^pin  *pin expired 2030-06-02T00:00:00.*Z$" "$T/out" || fail "show of an expired pin: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" unpin "$full"
# tags: not empty, no comma, no control character, at most 128 bytes (such tags broke list's TAGS
# column), a name for the mount's /by-tag/TAG
long=$(printf 'x%.0s' $(seq 129))
for t in "" "a,b" $'nl\ntag' $'c1\xc2\x85' a/b .. "$long"; do
	expect_exit 2 "$BKR" -r "$R" tag "$full" --add ok --add "$t"
	one_line_error
	grep -q "^bkr tag: --add: " "$T/err" || fail "a bad tag: $(cat "$T/err")"
done
grep -qF "tag '${long:0:40}" "$T/err" || fail "a long tag is not named: $(cat "$T/err")"
expect_exit 2 "$BKR" -r "$R" tag "$full" --add $'nl\ntag'
grep -qF "tag 'nl\x0atag' holds a control character" "$T/err" || fail "a tag with a newline: $(cat "$T/err")"
expect_exit 2 "$BKR" -r "$R" create "$src" --tag 'a,b'
one_line_error
grep -qF "tag 'a,b' holds a comma" "$T/err" || fail "create --tag with a comma: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$R" show "$full"
! grep -q "^tag" "$T/out" || fail "a refused tag was recorded: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" tag "$full" --add "${long:1}" --add 'release:1.0 é'
expect_exit 0 "$BKR" -r "$R" list
grep -qF " ${long:1},release:1.0 é" "$T/out" || fail "good tags in list: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" tag "$full" --remove "${long:1}" --remove 'release:1.0 é'
# one tag both added and removed: refused (its two records have no order), nothing recorded
expect_exit 2 "$BKR" -r "$R" tag "$full" --add both --add other --remove both
one_line_error
grep -qF "tag 'both' is both in --add and --remove" "$T/err" || fail "--add T --remove T: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$R" show "$full"
! grep -q "^tag" "$T/out" || fail "a refused tag command recorded a tag: $(cat "$T/out")"
pass "bad input gets one-line errors and documented exit codes"

# --- NAME=PATH: two sources with the same last component in one backup
mkdir -p "$T/na/config" "$T/nb/config" "$T/eq=dir"
echo a >"$T/na/config/x"
echo b >"$T/nb/config/x"
echo e >"$T/eq=dir/y"
expect_exit 2 "$BKR" -r "$R" create "$T/na/config" "$T/nb/config"
one_line_error
grep -q "NAME=PATH" "$T/err" || fail "the clash does not suggest NAME=PATH: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$R" create --type full "a=$T/na/config" "b=$T/nb/config" "$T/eq=dir" --json
python3 -c '
import json,sys
m=json.load(open(sys.argv[1]))
assert sorted(s["source"] for s in m["sources"]) == ["a", "b", "eq=dir"], m["sources"]' "$T/out" || fail "NAME=PATH sources misnamed"
expect_exit 0 "$BKR" -r "$R" restore latest --target "$T/nr"
[ "$(cat "$T/nr/a/x")$(cat "$T/nr/b/x")$(cat "$T/nr/eq=dir/y")" = abe ] || fail "NAME=PATH sources do not restore"
(cd "$T" && expect_exit 0 "$BKR" -r "$R" create --type full ./eq=dir --json)
python3 -c '
import json,sys
assert [s["source"] for s in json.load(open(sys.argv[1]))["sources"]] == ["eq=dir"]' "$T/out" || fail "./x=y is not taken as a path"
expect_exit 2 "$BKR" -r "$R" create "..=$T/na/config"
# NAME= with no PATH is a usage error naming it (it was "source : No such file or directory", exit 3)
expect_exit 2 "$BKR" -r "$R" create "a=" "$T/nb/config"
one_line_error
grep -qF "bkr create: source a=: no PATH after '=' (NAME=PATH)" "$T/err" || fail "create a=: $(cat "$T/err")"
# a symlink names the source after itself, as bkr(1) says (its last component), not after its
# target; the backup reads through it.  '.' and '..' name the directory they are
ln -s "$T/na/config" "$T/cfglink"
for arg in "$T/cfglink" "$T/cfglink/"; do
	expect_exit 0 "$BKR" -r "$R" create --type full "$arg" --json
	python3 -c '
import json,sys
m=json.load(open(sys.argv[1]))
assert [(s["source"], s["path"]) for s in m["sources"]] == [("cfglink", sys.argv[2])], m["sources"]' "$T/out" "$(realpath "$T/na/config")" ||
		fail "a symlink given as $arg names the source after its target"
done
expect_exit 0 "$BKR" -r "$R" cat latest cfglink/x
[ "$(cat "$T/out")" = a ] || fail "the backup of a symlinked directory does not read through it"
(cd "$T/na/config" && expect_exit 0 "$BKR" -r "$R" create --type full . --json)
grep -q '"source":.*"config"' "$T/out" || fail "'.' does not name the source after the directory"
pass "NAME=PATH names sources; same-named paths get a clear error; a symlink names its source"

# --- ls and cat: a path an intact backup lacks is "not found" (3); a tree
# blob the backup references that cannot be found (its pack gone) is damage (4)
M=$T/treemiss
expect_exit 0 "$BKR" init -r "$M"
expect_exit 0 "$BKR" -r "$M" create "$T/na/config" --json
mid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/out")
mtree=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tree"])' "$T/out")
expect_exit 3 "$BKR" -r "$M" ls "$mid" config/nope
expect_exit 3 "$BKR" -r "$M" cat "$mid" config/nope
rm -f "$M"/tree/*/*.pack
for cmd in "ls $mid" "ls $mid config" "ls -R $mid" "cat $mid config/x"; do
	# shellcheck disable=SC2086
	expect_exit 4 "$BKR" -r "$M" $cmd
	one_line_error
	grep -q "backup $mid: .*tree blob $mtree: pack .*missing" "$T/err" ||
		fail "'$cmd' with the backup's trees missing does not name the backup and blob: $(cat "$T/err")"
done
pass "ls and cat: a missing tree blob is damage (4), a missing path is not found (3)"

# --- a damaged root tree: the messages name the backup, never an empty path
D=$T/rootdmg
expect_exit 0 "$BKR" init -r "$D"
expect_exit 0 "$BKR" -r "$D" create "$T/na/config" --json
rid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/out")
rtree=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tree"])' "$T/out")
flip_blob "$D" tree "$rtree"
# nothing can be restored: damaged data (exit 4), one line, before anything is written
expect_exit 4 "$BKR" -r "$D" restore latest --target "$T/rd"
one_line_error
! grep -q "^bkr restore: :" "$T/err" || fail "a damaged root tree is reported with an empty path: $(cat "$T/err")"
grep -q "^bkr restore: backup $rid: root directory: " "$T/err" || fail "a damaged root tree does not name the backup: $(cat "$T/err")"
pass "a damaged root tree is named by its backup"

# --- a damaged newest manifest: 'latest' never silently means an older backup
D=$T/latestdmg
expect_exit 0 "$BKR" init -r "$D"
# each in a second of its own (the test clock), so that the newer one's id sorts last
BKR_TEST_NOW=2026-06-01T00:00:00Z expect_exit 0 "$BKR" -q -r "$D" create --type full "$T/na/config"
BKR_TEST_NOW=2026-06-01T00:00:01Z expect_exit 0 "$BKR" -q -r "$D" create --type full "$T/na/config"
newest=$(ls "$D/backups" | sort | tail -1)
printf junk >"$D/backups/$newest"
for cmd in "restore latest --target $T/ld" "ls latest" "show latest"; do
	expect_exit 4 "$BKR" -r "$D" $cmd
	one_line_error
	grep -q "backups/$newest is damaged and newer than every readable backup" "$T/err" ||
		fail "bkr $cmd with a damaged newest manifest: $(cat "$T/err")"
done
[ ! -e "$T/ld" ] || fail "restore latest restored an older backup"
oldest=$(ls "$D/backups" | sort | head -1)
expect_exit 0 "$BKR" -q -r "$D" ls "${oldest%.json}" # named explicitly, it is there
printf junk >"$D/backups/notabackup.json" # a name that is no backup id says nothing of 'latest'
rm -f "$D/backups/$newest"
expect_exit 0 "$BKR" -q -r "$D" ls latest
pass "a damaged newest manifest: 'latest' refuses (exit 4) rather than name an older backup"

# --- a name with a newline cannot forge a line of text output: quoted as git does
Q=$T/quoted
mkdir -p "$Q/ws/src"
nl=$(printf 'x\n-  important.db')
printf 'one\n' >"$Q/ws/src/$nl"
ln -s "$(printf 't\tz')" "$Q/ws/src/lnk"
expect_exit 0 "$BKR" init -r "$Q/repo"
expect_exit 0 "$BKR" -q -r "$Q/repo" create "$Q/ws/src"
q1=$("$BKR" -r "$Q/repo" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
printf 'two\n' >"$Q/ws/src/$nl"
expect_exit 0 "$BKR" -q -r "$Q/repo" create "$Q/ws/src"
expect_exit 0 "$BKR" -r "$Q/repo" ls latest -R -l
grep -qx '.* src/lnk -> "t\\tz"' "$T/out" || fail "ls -l does not quote a link target with a tab: $(cat "$T/out")"
grep -qx '"src/x\\n-  important.db"' <(sed 's/^.* \("src\/x\)/\1/' "$T/out") || fail "ls does not quote a name with a newline: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$Q/repo" diff "$q1" latest
[ "$(cat "$T/out")" = 'M  "src/x\n-  important.db"' ] || fail "diff does not quote a name with a newline: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$Q/repo" log "src/$nl" -p
grep -q '^--- "a/src/x\\n-  important.db"'$'\t' "$T/out" && grep -q '^+++ "b/src/x\\n-  important.db"'$'\t' "$T/out" ||
	fail "log -p does not quote the names in its headers: $(cat "$T/out")"
! grep -qx -- '-  important.db.*' "$T/out" || fail "a name forged a line of log output: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$Q/repo" ls latest -R --json
python3 -c 'import json,sys; n=[e["path"] for e in json.load(open(sys.argv[1]))]; assert "src/x\n-  important.db" in n, n' "$T/out" ||
	fail "ls --json does not keep the name's bytes: $(cat "$T/out")"
# verify names a damaged file's path quoted too
python3 - "$Q/repo/data" <<'PY' || fail "no pack holds the plain bytes 'two'"
import os, sys
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        p = os.path.join(d, f); b = bytearray(open(p, 'rb').read()); i = b.find(b'two\n')
        if i >= 0:
            b[i] ^= 1; open(p, 'wb').write(b); sys.exit(0)
sys.exit(1)
PY
expect_exit 1 "$BKR" -r "$Q/repo" verify --read-data
grep -qx 'damaged-file [^ ]*: "src/x\\n-  important.db": .*damaged' "$T/out" || fail "verify does not quote a damaged file's name: $(cat "$T/out")"
! grep -q '^-  important.db' "$T/out" || fail "a name forged a line of verify output: $(cat "$T/out")"
pass "names with control characters are quoted in text output (ls, diff, log, verify), kept as bytes in --json"

# --- a real tree
real=/usr/include
# restored into tmpfs (lib.sh): removing its 9,000 restored files from the disk took ~14 s;
# the edge-case tree's restores above are the ones made on the test's own file system
tmpfs_dir realt
expect_exit 0 "$BKR" -r "$T/repo2" init
expect_exit 0 "$BKR" -r "$T/repo2" create --type full "$real"
expect_exit 0 "$BKR" -r "$T/repo2" restore latest --target "$realt"
python3 "$HERE/treecmp.py" "$real" "$realt/include" || fail "/usr/include does not round-trip"
expect_exit 0 "$BKR" -r "$T/repo2" create --type incremental "$real" --json
python3 -c '
import json,sys
m=json.load(open(sys.argv[1]))
assert m["stats"]["new_bytes"] == 0, m["stats"]' "$T/out" || fail "no-change incremental stored new data"
expect_exit 0 "$BKR" -r "$T/repo2" verify --read-data
pass "/usr/include round-trips; a no-change incremental stores nothing"

# --- --json of every command is valid UTF-8 JSON, whatever the names hold
J=$T/jsonrepo$'\xfe'
jsrc=$T/jsrc
mkdir -p "$jsrc"
python3 - "$jsrc" <<'PY'
import os, sys
d = os.fsencode(sys.argv[1])
for name in [b"bad\xffname", b"ctl\x01\x1b\x7f", b"quote\"back\\slash", b"new\nline\ttab", b"ok-\xc3\xa9"]:
    with open(os.path.join(d, name), "wb") as f:
        f.write(os.urandom(70000))
os.symlink(b"target-\xfe", os.path.join(d, b"link\xfe"))
PY
jsonall() { # jsonall EXIT CMD...: the exit status, and stdout parses as UTF-8 JSON
	expect_exit "$@"
	python3 -c 'import json,sys; json.loads(open(sys.argv[1], "rb").read().decode("utf-8", "strict"))' "$T/out" ||
		{ head -c 2000 "$T/out"; fail "--json output is not valid UTF-8 JSON: ${*:2}"; }
}
jsonall 0 "$BKR" --json -r "$J" init
python3 -c '
import json,os,sys
o=json.load(open(sys.argv[1]))
assert bytes.fromhex(o["repository_hex"]) == os.fsencode(sys.argv[2]), o' "$T/out" "$J" || fail "init --json loses the repository path bytes"
jsonall 0 "$BKR" -r "$J" create --type full "$jsrc" --json
jsonall 0 "$BKR" -r "$J" create --type full "$jsrc" --json
jsonall 0 "$BKR" -r "$J" list --json
jsonall 0 "$BKR" -r "$J" show latest --json
python3 -c '
import json,sys
m=json.load(open(sys.argv[1]))
assert m["metadata"]["bkr_version"] == sys.argv[2], m["metadata"]' "$T/out" "$ver" || fail "the manifest does not record version $ver"
# list/show --json of a backup whose source, paths and host are not UTF-8:
# U+FFFD and KEY_hex with the exact bytes (the manifest file keeps them as they are)
J8=$T/j8repo
L1=$T/$'caf\xe9'
mkdir -p "$L1" && echo x >"$L1/f"
"$BKR" -q init -r "$J8" >/dev/null && "$BKR" -q -r "$J8" create --host $'h\xff' "$L1" >/dev/null || fail "Latin-1 backup"
for cmd in list "show latest"; do
	jsonall 0 "$BKR" -r "$J8" --json $cmd
	python3 - "$T/out" "$L1" <<'PY' || fail "$cmd --json loses the bytes of a Latin-1 source"
import json, os, sys
m = json.load(open(sys.argv[1]))
m = m[0] if isinstance(m, list) else m
s = m["sources"][0]
assert s["source"] == "caf\ufffd" and bytes.fromhex(s["source_hex"]) == b"caf\xe9", s
assert bytes.fromhex(s["path_hex"]) == os.fsencode(sys.argv[2]), s
md = m["metadata"]
assert bytes.fromhex(md["workspace_root_hex"]) == os.fsencode(sys.argv[2]), md
assert md["hostname"] == "h\ufffd" and md["hostname_hex"] == "68ff", md
PY
done
# control characters from outside never reach the terminal: show's host and
# source, an error naming a PATH argument, restore's per-file lines
C8=$T/ctlrepo
mkdir -p "$T/ctlws"
echo x >"$T/ctlws/"$'n\nl\e[2J'
"$BKR" -q init -r "$C8" >/dev/null &&
	"$BKR" -q -r "$C8" create --host $'evil\e[2J\nforged' $'src\e[31m'="$T/ctlws" >/dev/null || fail "control-character backup"
expect_exit 0 "$BKR" -r "$C8" show latest
! grep -q $'\e' "$T/out" && ! grep -q '^forged' "$T/out" || fail "show prints control characters: $(cat -A "$T/out")"
expect_exit 3 "$BKR" -r "$C8" cat latest $'src\e[31m/x\nbkr: all good'
one_line_error
! grep -q $'\e' "$T/err" || fail "an error echoes the PATH raw: $(cat -A "$T/err")"
"$BKR" -q -r "$C8" restore latest --target "$T/ctlt" >/dev/null 2>&1
find "$T/ctlt" -type f -exec sh -c 'echo changed >"$1"' _ {} \; # differs: refused, named
expect_exit 6 "$BKR" -r "$C8" restore latest --target "$T/ctlt"
! grep -q $'\e' "$T/err" && ! grep -q '^l' "$T/err" || fail "restore prints a name raw: $(cat -A "$T/err")"
grep -q 'n\\x0al\\x1b\[2J: exists' "$T/err" || fail "restore's line does not name the file: $(cat -A "$T/err")"
# delete of an unknown ID names it, as every other command does; nothing is deleted
expect_exit 3 "$BKR" -r "$C8" delete latest zzz-typo
one_line_error
grep -q "backup 'zzz-typo': no such backup" "$T/err" || fail "delete does not name the unknown ID: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$C8" show latest
jsonall 0 "$BKR" -r "$J" ls latest --json -R
cp "$T/out" "$T/lsjson"
python3 - "$T/out" <<'PY' || fail "ls --json does not keep the exact bytes of names"
import json, sys
l = json.load(open(sys.argv[1]))
got = {bytes.fromhex(e["path_hex"]) if "path_hex" in e else e["path"].encode() for e in l}
for want in [b"jsrc/bad\xffname", b"jsrc/ctl\x01\x1b\x7f", b"jsrc/quote\"back\\slash", b"jsrc/new\nline\ttab",
             "jsrc/ok-\u00e9".encode(), b"jsrc/link\xfe"]:
    assert want in got, (want, got)
link = [e for e in l if e.get("path_hex") == b"jsrc/link\xfe".hex()][0]
assert link["path"] == "jsrc/link\ufffd" and bytes.fromhex(link["target_hex"]) == b"target-\xfe", link
assert all("path_hex" not in e for e in l if e["path"] == "jsrc/ok-\u00e9"), "a UTF-8 name got path_hex"
PY
jsonall 0 "$BKR" -r "$J" ls latest $'jsrc/bad\xffname' --json
first_j=$("$BKR" -r "$J" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
printf 'changed' >"$jsrc/bad"$'\xff'"name"
jsonall 0 "$BKR" -r "$J" create --type incremental "$jsrc" --json
jsonall 0 "$BKR" -r "$J" diff "$first_j" latest --json
python3 - "$T/out" <<'PY' || fail "diff --json does not name the non-UTF-8 file exactly"
import json, sys
d = json.load(open(sys.argv[1]))
assert [bytes.fromhex(c["path_hex"]) for c in d["changes"] if "path_hex" in c] == [b"jsrc/bad\xffname"], d
PY
jsonall 0 "$BKR" -r "$J" diff latest --live "$jsrc" --json
jsonall 0 "$BKR" -r "$J" restore latest --target "$T/jrestore"$'\x01\xff' --json
jsonall 0 "$BKR" -r "$J" pin latest --json
jsonall 0 "$BKR" -r "$J" unpin latest --json
jsonall 0 "$BKR" -r "$J" tag latest --add 't"\' --json
jsonall 2 "$BKR" -r "$J" tag latest --add $'t\x02"' --json
jsonall 2 "$BKR" -r "$J" tag latest --add $'t\xff' --json
jsonall 2 "$BKR" -r "$J" create "$jsrc" --tag $'t\xff' --json
jsonall 0 "$BKR" -r "$J" list --json
jsonall 0 "$BKR" -r "$J" verify --read-data --json
badsum=$(python3 -c '
import json,sys
print([e for e in json.load(open(sys.argv[1])) if e.get("path_hex") == b"jsrc/bad\xffname".hex()][0]["sha256"])' "$T/lsjson")
flip_blob "$J" data "$badsum"   # a 70 kB file is one chunk: its blob id is the file's hash
jsonall 1 "$BKR" -r "$J" verify --read-data --json
python3 - "$T/out" <<'PY' || fail "verify --json does not name the damaged non-UTF-8 file exactly"
import json, sys
v = json.load(open(sys.argv[1]))
paths = {bytes.fromhex(p["path_hex"]) for p in v["problems"] if "path_hex" in p}
assert any(p.endswith(b"bad\xffname") for p in paths), v["problems"]
PY
jsonall 3 "$BKR" -r "$J" show $'nope\xff' --json
jsonall 2 "$BKR" -r "$J" list --bogus --json
echo '{"repository": "'"$J"'", "workspace_root": 42}' >"$T/jbad.json"
jsonall 2 "$BKR" config check -c "$T/jbad.json" --json
for args in "--json" "--json frobnicate" "frobnicate --json" "--json --bogus list" "--json -r $J"; do
	# shellcheck disable=SC2086
	jsonall 2 "$BKR" $args
	one_line_error
	python3 -c '
import json,sys
e=json.load(open(sys.argv[1]))["error"]
assert e["exit"] == 2 and e["message"], e' "$T/out" || fail "bkr $args: no JSON error object"
done
pass "--json output is valid UTF-8 JSON with non-UTF-8 names and control characters, and keeps their bytes"

# --- verify names an object's kind once: "pack X is named by the index but missing", not "pack pack X ..."
VR=$T/vkind
mkdir -p "$T/vkind-src"
head -c 200000 /dev/urandom >"$T/vkind-src/a"
expect_exit 0 "$BKR" init -r "$VR"
expect_exit 0 "$BKR" -r "$VR" create --type full "$T/vkind-src"
rm "$(find "$VR/data" -name '*.pack' | head -1)"
expect_exit 1 "$BKR" -r "$VR" verify
grep -q "^pack [0-9a-f]* is named by the index but missing" "$T/out" || fail "verify does not report the missing pack: $(cat "$T/out")"
! grep -Eq "^(blob blob|pack pack|tree tree|index index) " "$T/out" || fail "verify doubles the kind: $(cat "$T/out")"
pass "verify says an object's kind once"

# --- routine and health text: a source's path or name from the configuration (a newline, an ESC) is
# escaped as with -q, never printed raw: no forged summary line, no escape sequence for the terminal
IJ=$T/inj
mkdir -p "$IJ/ws/a" "$IJ/logs"
echo x >"$IJ/ws/a/f"
"$BKR" init -r "$IJ/repo" --compression zlib >/dev/null
cat >"$IJ/c.json" <<J
{"repository":"$IJ/repo","workspace_root":"$IJ/ws","log_dir":"$IJ/logs",
 "sources":[{"name":"h","paths":["gone\nFAKE: step ok\u001b[2J"],"schedule":"hourly"},
            {"name":"e","paths":["a"],"schedule":"hourly"}]}
J
expect_exit 6 env BKR_TEST_NOW=2026-12-01T00:00:00Z "$BKR" -c "$IJ/c.json" routine hourly
python3 - "$T/out" <<'PY' || fail "routine summary prints control characters raw: $(cat -A "$T/out")"
import sys
out = open(sys.argv[1], "rb").read()
assert b"\x1b" not in out and b"\nFAKE" not in out, out
assert b"gone\\x0aFAKE: step ok\\x1b[2J" in out, out
assert b"alert (no alert_command): hourly routine: step backup failed: source 'h': cannot open " in out, out
PY
expect_exit 1 env BKR_TEST_NOW=2026-12-01T00:00:00Z "$BKR" -c "$IJ/c.json" health
python3 - "$T/out" <<'PY' || fail "health prints control characters raw: $(cat -A "$T/out")"
import sys
out = open(sys.argv[1], "rb").read()
assert b"\x1b" not in out and b"\nFAKE" not in out, out
assert b"gone\\x0aFAKE: step ok\\x1b[2J" in out, out
PY
pass "routine summary, alert lines, health reasons: control characters escaped"
# a source name is text, as a tag is: a control character or a byte that is not UTF-8 is refused (exit 2, one line)
for name in 'e\u001b[31mX' 'q\"b\\s\nnl' 'c1\u0085' "$(printf 'a\xff')"; do
	printf '{"repository":"%s","workspace_root":"%s","sources":[{"name":"%s","paths":["a"]}]}\n' "$IJ/repo" "$IJ/ws" "$name" >"$IJ/n.json"
	expect_exit 2 "$BKR" config check -c "$IJ/n.json"
	one_line_error
	grep -q "n.json: key 'sources\[0\].name': source name '.*' \(holds a control character\|is not UTF-8 text\)" "$T/err" ||
		fail "source name $name: $(cat -A "$T/err")"
	! grep -q $'\x1b' "$T/err" || fail "the refusal prints the name raw: $(cat -A "$T/err")"
done
pass "a source name with a control character, or not UTF-8, is refused naming the key"

# --- config show --json is UTF-8 JSON (a path's other bytes as U+FFFD beside KEY_hex); the text form keeps the bytes;
# a byte order mark is skipped; config check's line escapes the repository
printf '\xef\xbb\xbf{"repository":"%s/r\\nX","workspace_root":"%s/ws","log_dir":"/tmp/\xc0\xaf"}' "$IJ" "$IJ" >"$IJ/u.json"
expect_exit 0 "$BKR" config check -c "$IJ/u.json"
grep -qF "u.json: ok (1 source, repository $IJ/r\\x0aX)" "$T/out" || fail "config check: $(cat -A "$T/out")"
expect_exit 0 "$BKR" --json config show -c "$IJ/u.json"
python3 - "$T/out" <<'PY' || fail "config show --json: $(cat -A "$T/out")"
import json, sys
v = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
assert v["log_dir"] == "/tmp/\ufffd\ufffd" and bytes.fromhex(v["log_dir_hex"]) == b"/tmp/\xc0\xaf", v
PY
expect_exit 0 "$BKR" config show -c "$IJ/u.json"
grep -qa $'"/tmp/\xc0\xaf"' "$T/out" || fail "config show (text) does not keep the path's bytes: $(cat -A "$T/out")"
pass "config show --json is UTF-8 with log_dir_hex, the text keeps the bytes; a BOM is skipped"

# --- --as-of: an argument with a newline is escaped in the one-line error; a time before 1970 is refused
for cmd in "health" "cleanup --dry-run" "routine hourly --dry-run" "tier migrate --dry-run"; do
	# shellcheck disable=SC2086
	expect_exit 2 "$BKR" -c "$IJ/c.json" $cmd --as-of $'2026-12-01\n'
	one_line_error
	grep -qF "not '2026-12-01\x0a'" "$T/err" || fail "$cmd --as-of with a newline: $(cat -A "$T/err")"
	# shellcheck disable=SC2086
	expect_exit 2 "$BKR" -c "$IJ/c.json" $cmd --as-of 1969-12-31T23:59:59Z
	one_line_error
	grep -q "is before 1970" "$T/err" || fail "$cmd --as-of before 1970: $(cat "$T/err")"
done
pass "--as-of: one escaped line for a bad time, a time before 1970 refused"

# --- option parsing: a global option without its value says so; long options by their exact names only
# (as the global ones: no abbreviation); restore --target '' names --target
for a in -r -c --repo --config --password-file; do
	expect_exit 2 "$BKR" "$a"
	one_line_error
	grep -qF "option '$a' needs a value" "$T/err" || fail "bkr $a: $(cat "$T/err")"
done
expect_exit 2 "$BKR" -r "$IJ/repo" list --ty incremental
grep -qF "unknown option '--ty'" "$T/err" || fail "an abbreviated option: $(cat "$T/err")"
expect_exit 2 "$BKR" -r "$IJ/repo" list --typ=incremental
grep -qF "unknown option '--typ'" "$T/err" || fail "an abbreviated option with =: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$IJ/repo" list --type=incremental
expect_exit 0 "$BKR" -r "$IJ/repo" list --tag --ty   # a value that looks like an option is a value
expect_exit 2 "$BKR" -r "$IJ/repo" restore latest --target ''
one_line_error
grep -qF "bkr restore: --target: expected a value, not ''" "$T/err" || fail "restore --target '': $(cat "$T/err")"
pass "option parsing: missing values named, exact long option names, --target ''"

# --- a global option's value may be joined to it before the command as after it (bkr.1:
# "--password-file=FILE", "-rREPO"): before the command they were unknown options (exit 2)
printf 'pw one\n' >"$T/pw1"
printf 'pw two\n' >"$T/pw2"
expect_exit 0 "$BKR" --new-password-file="$T/pw1" -q init -r "$T/joined" --encryption aes-256-gcm
expect_exit 0 "$BKR" --password-file="$T/pw1" -r"$T/joined" list
expect_exit 9 "$BKR" --password-file="$T/pw2" --repo="$T/joined" list  # the value is taken, not ignored
one_line_error
expect_exit 0 "$BKR" --password-command="cat $T/pw1" -r"$T/joined" list
expect_exit 0 "$BKR" -r"$T/joined" list --password-file="$T/pw1"
pass "global options: --password-file=FILE, --password-command=CMD, --new-password-file=FILE, -rREPO before the command"

# --- an empty operand or option value is a usage error naming it (exit 2), before anything is
# read or written: '' named no path ('ls ID ""' listed the root, 'restore ID "" --target D'
# restored everything), no pattern ('--exclude ""' was taken), no configuration ('-c ""' read
# none) and no passphrase file ('--password-file ""', bkrfs '-o password_file=' mounted)
mkdir -p "$T/e-mnt"
nb=$("$BKR" -r "$IJ/repo" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
# each line: the operand's position, then the command, '' where the empty operand goes
while read -r n line; do
	args=()
	for w in $line; do if [ "$w" = "''" ]; then args+=(""); else args+=("$w"); fi; done
	expect_exit 2 "$BKR" -r "$IJ/repo" "${args[@]}" </dev/null
	one_line_error
	err_has "bkr ${args[0]}: operand $n is empty" || fail "bkr ${args[*]}: $(cat "$T/err")"
	[ ! -s "$T/out" ] || fail "bkr ${args[*]} printed: $(cat "$T/out")"
done <<OPERANDS
1 init ''
1 create ''
2 create $T/qsrc ''
1 show ''
1 ls ''
2 ls latest ''
2 cat latest ''
1 restore '' --target $T/e-never
2 restore latest '' --target $T/e-never
2 restore latest '' --in-place --dry-run
1 verify ''
2 diff latest ''
3 diff latest latest ''
2 diff latest --live ''
1 log ''
2 config check ''
1 mount ''
1 delete ''
2 delete latest '' --dry-run
1 pin ''
1 unpin ''
1 tag '' --add t
1 key ''
2 key remove ''
1 hold ''
2 hold release ''
1 scan ''
1 recover ''
1 recovered ''
1 routine ''
2 tier forget ''
1 copy --from $IJ/repo ''
1 prune ''
OPERANDS
# each line: the option as the message names it, then the command with the option last; its value is ''
while read -r o line; do
	# shellcheck disable=SC2086
	expect_exit 2 "$BKR" $line "" </dev/null
	one_line_error
	err_has "$o: expected a value, not ''" || fail "bkr $line '': $(cat "$T/err")"
done <<OPTIONS
-r -r
--repo --repo
-c -c
--config --config
--password-file --password-file
--password-command --password-command
--new-password-file --new-password-file
-c -r $IJ/repo list -c
--config -r $IJ/repo list --config
-r list -r
--password-file -r $IJ/repo list --password-file
--password-command -r $IJ/repo list --password-command
--new-password-file init -r $T/e-never --new-password-file
--exclude -r $IJ/repo create $T/qsrc --exclude
--exclude-file -r $IJ/repo create $T/qsrc --exclude-file
--source -r $IJ/repo create --source
--tag -r $IJ/repo create $T/qsrc --tag
--host -r $IJ/repo create $T/qsrc --host
--parent -r $IJ/repo create $T/qsrc --parent
-t -r $IJ/repo create $T/qsrc -t
--type -r $IJ/repo list --type
--tag -r $IJ/repo list --tag
--target -r $IJ/repo restore latest --target
--source -r $IJ/repo log a/f --source
--since -r $IJ/repo log a/f --since
--cache-dir -r $IJ/repo mount $T/e-mnt --cache-dir
-o -r $IJ/repo mount $T/e-mnt -o
--until -r $IJ/repo pin latest --until
--add -r $IJ/repo tag latest --add
--remove -r $IJ/repo tag latest --remove
--from copy --to $T/e-never --from
--to -r $IJ/repo copy --from $IJ/repo --to
--keep-within -r $IJ/repo cleanup --dry-run --keep-within
--as-of -r $IJ/repo cleanup --dry-run --as-of
--grace -r $IJ/repo prune --dry-run --grace
--prometheus -c $IJ/c.json health --prometheus
--file -c $IJ/c.json recover --file
--strategy -c $IJ/c.json recover a/f --strategy
--host -c $IJ/c.json scan --host
--encryption init -r $T/e-never --encryption
OPTIONS
# joined to the option with '=' too, and with --json the error object
expect_exit 2 "$BKR" --repo= list
grep -qF -- "bkr: --repo: expected a value, not ''" "$T/err" || fail "bkr --repo=: $(cat "$T/err")"
expect_exit 2 "$BKR" -r "$IJ/repo" create "$T/qsrc" --exclude=
grep -qF -- "bkr create: --exclude: expected a value, not ''" "$T/err" || fail "create --exclude=: $(cat "$T/err")"
expect_exit 2 "$BKR" -r "$IJ/repo" --json ls latest ""
python3 -c 'import json,sys; e = json.load(open(sys.argv[1]))["error"]; assert e["exit"] == 2 and "operand 2 is empty" in e["message"], e' "$T/out" ||
	fail "ls --json latest '': $(cat "$T/out")"
# bkrfs: its usage status 1 (bkr mount: 2), one line naming the option or operand; nothing mounted
for o in password_file password_command cache_dir tz; do
	expect_exit 1 "$BKRFS" "$IJ/repo" "$T/e-mnt" -o "$o="
	one_line_error
	grep -qF "bad value in option '$o=': expected a value" "$T/err" || fail "bkrfs -o $o=: $(cat "$T/err")"
	expect_exit 2 "$BKR" -r "$IJ/repo" mount "$T/e-mnt" -o "$o="
	one_line_error
	if mountpoint -q "$T/e-mnt"; then
		fusermount3 -u "$T/e-mnt"
		fail "-o $o= mounted"
	fi
done
expect_exit 1 "$BKRFS" "$IJ/repo" "$T/e-mnt" --cache-dir=
grep -qF "bad value in option '--cache-dir=': expected a value" "$T/err" || fail "bkrfs --cache-dir=: $(cat "$T/err")"
expect_exit 1 "$BKRFS" "" "$T/e-mnt"
grep -qF "bkrfs: REPO is empty" "$T/err" || fail "bkrfs '' MOUNTPOINT: $(cat "$T/err")"
expect_exit 1 "$BKRFS" "$IJ/repo" ""
grep -qF "bkrfs: MOUNTPOINT is empty" "$T/err" || fail "bkrfs REPO '': $(cat "$T/err")"
[ ! -e "$T/e-never" ] || fail "an empty operand or value made $T/e-never"
[ "$("$BKR" -r "$IJ/repo" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = "$nb" ] ||
	fail "an empty operand or value changed the backups of $IJ/repo"
pass "an empty operand or option value (bkr, bkrfs -o) is one line naming it, exit 2 (bkrfs 1), nothing done"

# --- cat writes bytes, not JSON: --json is refused, with the JSON error object (stdout stays valid JSON)
expect_exit 2 "$BKR" -r "$IJ/repo" --json cat latest e/f
json_ok "$T/out"
grep -q "cat writes the file's bytes" "$T/err" || fail "cat --json: $(cat "$T/err")"
pass "cat --json is refused"

# --- mount's help texts and bkr.1.md name every view, and bkr.1.md mount's options
"$BKR" mount --help >"$T/mh"
"$BKRFS" --help >"$T/fh" 2>&1 || true
sed -n '/^\*\*mount\*\*/,/^\*\*pin\*\*/p' "$BKR_SOURCE_ROOT/docs/bkr.1.md" >"$T/mm"
for v in by-id by-date latest versions by-source by-tag recovered; do
	for f in mh fh mm; do grep -q "/$v" "$T/$f" || fail "$f does not name /$v"; done
done
for o in --cache-dir --cache-max; do grep -q -- "$o" "$T/mm" || fail "bkr.1.md mount lacks $o"; done
pass "mount help, bkrfs help and bkr.1.md name every view"

# mount.bkrfs: a bad option is one line naming it, exit 1 (mount(8)'s usage status); a long
# one was named as its first '-' ("unknown option '--'")
for a in --bogus -Z -fZ; do
	expect_exit 1 "$BKR_BUILD_ROOT/fs/mount.bkrfs" "$T/repo" "$T/mnt" "$a"
	want=$a
	[ "$a" != -fZ ] || want=-Z
	[ "$(cat "$T/err")" = "mount.bkrfs: unknown option '$want' (see --help)" ] || fail "mount.bkrfs $a: $(cat "$T/err")"
done
pass "mount.bkrfs names a bad option, long or short"

# bkrfs: a bad option is named even with no REPO or MOUNTPOINT after it (it said "missing REPO
# and MOUNTPOINT"), exit 1; an option FUSE knows still leaves the missing operands to name
for a in --bogus -Z "-obogus"; do
	expect_exit 1 "$BKRFS" "$a"
	want=$a
	[ "$a" != -obogus ] || want="-o bogus"
	[ "$(cat "$T/err")" = "bkrfs: unknown option(s): \`$want' (see --help)" ] || fail "bkrfs $a: $(cat "$T/err")"
	expect_exit 1 "$BKRFS" "$T/repo" "$a"
	[ "$(cat "$T/err")" = "bkrfs: unknown option(s): \`$want' (see --help)" ] || fail "bkrfs REPO $a: $(cat "$T/err")"
done
expect_exit 1 "$BKRFS" -o max_read=4096
[ "$(cat "$T/err")" = "bkrfs: missing REPO and MOUNTPOINT (see --help)" ] || fail "bkrfs -o max_read: $(cat "$T/err")"
pass "bkrfs names a bad option before the missing operands"

# -q hides progress, warnings and summaries, never the reason for a non-zero exit status
# (cli_problem): a damaged manifest is named by 'list -q' (exit 4); the backups that read
# are listed on stdout as without -q
Q=$T/quiet
mkdir -p "$T/qsrc/d"
printf 'a\n' >"$T/qsrc/d/a"
printf 'b\n' >"$T/qsrc/b"
"$BKR" -q init -r "$Q" >/dev/null || fail "init $Q"
"$BKR" -q -r "$Q" create "$T/qsrc" >/dev/null || fail "create in $Q"
"$BKR" -q -r "$Q" create --type full "$T/qsrc" >/dev/null || fail "second create in $Q"
qm=$(ls "$Q/backups" | head -1)
printf 'not a manifest' >"$Q/backups/$qm"
expect_exit 4 "$BKR" -q -r "$Q" list
one_line_error
grep -q "1 manifest(s) are damaged and not listed" "$T/err" || fail "list -q with a damaged manifest: '$(cat "$T/err")'"
[ "$(wc -l <"$T/out")" = 1 ] || fail "list -q: the intact backup is not listed alone: $(cat "$T/out")"
pass "-q never hides why the exit status is not 0 (list: a damaged manifest, exit 4, one line)"

# retention counts: each bad --keep-* value, and each bad keep_* key of the configuration,
# is one line naming it, exit 2 (a leading zero, a sign, a space, a fraction, too large)
for v in 05 00 +5 " 5" "5 " 5.0 5.5 -1 1e3 0x10 1000001 99999999999999999999 x; do # '': the empty values' test
	expect_exit 2 "$BKR" -r "$Q" cleanup --dry-run --keep-daily "$v"
	one_line_error
	grep -q -- "--keep-daily: expected a count 0..1000000" "$T/err" || fail "cleanup --keep-daily '$v': $(cat "$T/err")"
done
expect_exit 0 "$BKR" -q -r "$Q" cleanup --dry-run --keep-daily 0 --keep-last=10
for v in 05 -007 '"5"' 5.0 5.5 -1 1e3 1000001 99999999999 true; do
	printf '{"repository": "%s", "workspace_root": "%s", "retention": {"full": {"keep_weekly": %s}}}\n' "$Q" "$T/qsrc" "$v" >"$T/keep.json"
	expect_exit 2 "$BKR" -c "$T/keep.json" config check
	one_line_error
	grep -q "key 'retention.full.keep_weekly': expected " "$T/err" || fail "keep_weekly $v: $(cat "$T/err")"
done
pass "a bad retention count (--keep-*, keep_*: leading zero, sign, fraction, string, too large) is one line naming it, exit 2"

# numeric options: one strict rule for every one of them (bkr_config_parse_uint), where strtol
# took a sign, a leading space, and (some) trailing text: each bad value is one line naming the
# option and the value, exit 2, and nothing is made or changed
nb=$(ls "$Q/backups" | wc -l)
bad_numbers=("+5" " 5" "5 " "" "05" "-1" "0x10" "5.0" "1e3" "x" "5x" "99999999999999999999")
for v in "${bad_numbers[@]}"; do
	for cmd in "init -r $T/num-never --level" "init -r $T/num-never --chunk-avg" "-r $Q create $T/qsrc --threads" \
		"-r $Q restore latest --target $T/num-never --threads" "-r $Q cleanup --dry-run --keep-last" \
		"-r $Q cleanup --dry-run --max-unused" "-r $Q prune --dry-run --max-unused" "-r $Q mount $T/num-never --cache-max"; do
		opt=${cmd##* }
		# shellcheck disable=SC2086
		expect_exit 2 "$BKR" ${cmd% *} "$opt" "$v"
		one_line_error
		err_has "$opt: expected " && err_has "not '$v'" || fail "bkr $cmd '$v': $(cat "$T/err")"
	done
	# bkrfs's -o options: its usage status (1), one line naming the option
	for o in uid gid umask cache_size watch_ms max_inodes notify_fd cache_max; do
		[ "$o$v" != umask05 ] || continue # octal: a leading zero is its own
		expect_exit 1 "$BKRFS" "$Q" "$T/num-never" -o "$o=$v"
		one_line_error
		err_has "bad value in option '$o=$v'" || fail "bkrfs -o $o='$v': $(cat "$T/err")"
	done
	expect_exit 1 "$BKRFS" "$Q" "$T/num-never" "--cache-max=$v"
	one_line_error
	err_has "bad value in option '--cache-max=$v'" || fail "bkrfs --cache-max='$v': $(cat "$T/err")"
done
[ ! -e "$T/num-never" ] || fail "a bad numeric option made $T/num-never"
[ "$(ls "$Q/backups" | wc -l)" = "$nb" ] || fail "a bad numeric option changed the backups of $Q"
# the good forms still pass: the least and the most of each
expect_exit 0 "$BKR" -q init -r "$T/num-ok" --level 9 --chunk-avg 1048576
# --chunk-avg 2 and 4 MiB made a repository no backup could be made into (its chunks of up
# to 4 times the average do not fit a backup worker's read buffer): 'create: backup:
# chunk_max 8388608 too large', exit 2, for ever.  Refused at init now, one line naming it;
# the most it takes backs up
for v in 2097152 4194304; do
	expect_exit 2 "$BKR" init -r "$T/num-never" --chunk-avg "$v"
	one_line_error
	err_has "--chunk-avg: expected 4096..1048576 " && err_has "not '$v'" || fail "init --chunk-avg $v: $(cat "$T/err")"
done
[ ! -e "$T/num-never" ] || fail "init --chunk-avg 4194304 made $T/num-never"
expect_exit 0 "$BKR" -q -r "$T/num-ok" create "$T/qsrc"
expect_exit 0 "$BKR" -q -r "$Q" cleanup --dry-run --keep-last 0 --max-unused 100
printf '{"repository": "%s", "workspace_root": "%s", "sources": [{"name": "q", "priority": +5}]}\n' "$Q" "$T/qsrc" >"$T/num.json"
expect_exit 2 "$BKR" -c "$T/num.json" config check
one_line_error
pass "numeric options (--level, --chunk-avg, --threads, --keep-*, --max-unused, --cache-max; bkrfs -o uid=...): a sign, a space, a leading zero, trailing text or overflow is one line naming the option, exit 2 (bkrfs 1)"

# bkr mount exits as every bkr command does (bkrfs --bkr-exit-codes): a usage error found by
# bkrfs in -o OPTIONS is 2, as one in mount's own options; bkrfs by hand keeps its 1
mkdir -p "$T/mnt-empty"
for o in bogus uid=+5 tz=No/Such_Zone rw watch_ms=99; do
	expect_exit 2 "$BKR" -r "$Q" mount "$T/mnt-empty" -o "$o"
	one_line_error
	expect_exit 1 "$BKRFS" "$Q" "$T/mnt-empty" -o "$o"
	one_line_error
done
expect_exit 2 "$BKR" -r "$Q" mount "$T/mnt-empty" -f extra
one_line_error
mo=()
for i in $(seq 17); do mo+=(-o ro); done
expect_exit 2 "$BKR" -r "$Q" mount "$T/mnt-empty" "${mo[@]}"
one_line_error
grep -q "more than 16 -o options" "$T/err" || fail "bkr mount with 17 -o: $(cat "$T/err")"
# the repository and the mount point: bkr's codes (3 not found), where bkrfs says 2 and 3
expect_exit 3 "$BKR" -r "$T/no-repo" mount "$T/mnt-empty"
one_line_error
expect_exit 2 "$BKRFS" "$T/no-repo" "$T/mnt-empty"
expect_exit 3 "$BKR" -r "$Q" mount "$T/no-mnt"
one_line_error
mountpoint -q "$T/mnt-empty" && fail "mounted despite a bad option"
# no repository named: init and mount say what every command says (one helper), exit 2;
# a directory that is no repository: one line for bkr mount, bkrfs and any command, exit 3 (bkrfs 2)
for cmd in init "mount $T/mnt-empty" list verify; do
	expect_exit 2 env -u BKR_REPO -u BKR_CONFIG "$BKR" $cmd
	one_line_error
	[ "$(cat "$T/err")" = "bkr ${cmd%% *}: no repository: give -r REPO, set BKR_REPO, or name one in the configuration (-c)" ] ||
		fail "bkr $cmd without a repository: $(cat "$T/err")"
done
mkdir -p "$T/not-a-repo"
for cmd in "mount $T/mnt-empty" list; do
	expect_exit 3 "$BKR" -r "$T/not-a-repo" $cmd
	one_line_error
	grep -qxF -e "bkrfs: $T/not-a-repo: no config.json: not a bkrfs repository (create one with 'bkr init')" \
		-e "bkr list: $T/not-a-repo: no config.json: not a bkrfs repository (create one with 'bkr init')" "$T/err" ||
		fail "bkr $cmd on a directory that is no repository: $(cat "$T/err")"
done
expect_exit 2 "$BKRFS" "$T/not-a-repo" "$T/mnt-empty"
grep -qxF "bkrfs: $T/not-a-repo: no config.json: not a bkrfs repository (create one with 'bkr init')" "$T/err" ||
	fail "bkrfs on a directory that is no repository: $(cat "$T/err")"
pass "bkr mount: a usage error in -o OPTIONS is exit 2 as in bkr (bkrfs by hand: 1); a missing repository or mount point is 3"

# pin, unpin and tag share one file but not their options: another command's option is
# unknown (exit 2, one line naming it), never taken and ignored ('pin --add T' pinned and
# tagged nothing; 'unpin --until' unpinned); the backup's pin and tags stay as they were
P=$T/pins
"$BKR" -q init -r "$P" >/dev/null && "$BKR" -q -r "$P" create "$T/qsrc" >/dev/null && "$BKR" -q -r "$P" pin latest ||
	fail "a pinned backup in $P"
"$BKR" -r "$P" list --json >"$T/before.json"
for a in "pin latest --add t1" "pin latest --remove t1" "unpin latest --until 2099-01-01" "unpin latest --no-wait" \
	"tag latest --add t1 --until 2099-01-01" "tag latest --add t1 --no-wait"; do
	# shellcheck disable=SC2086
	expect_exit 2 "$BKR" -r "$P" $a
	one_line_error
	o=$(echo "$a" | grep -oE -- "--(until|no-wait|add|remove)" | tail -1)
	grep -qF "unknown option '$o'" "$T/err" || fail "bkr $a: $(cat "$T/err")"
done
expect_exit 2 "$BKR" -r "$P" batch --file x
grep -qF "unknown option '--file'" "$T/err" || fail "bkr batch --file: $(cat "$T/err")"
"$BKR" -r "$P" list --json >"$T/after.json"
cmp -s "$T/before.json" "$T/after.json" || fail "a refused pin, unpin or tag changed a backup: $(diff "$T/before.json" "$T/after.json")"
# with -q too, --json prints its object (-q hides summary lines, never the data: stdout was empty)
for a in "pin latest" "unpin latest" "tag latest --add t2"; do
	# shellcheck disable=SC2086
	expect_exit 0 "$BKR" -q --json -r "$P" $a
	python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["done"] is True' "$T/out" || fail "-q --json $a: '$(cat "$T/out")'"
done
pass "pin, unpin, tag and batch refuse each other's options; -q --json prints the result object"

# a repository or target path given with a newline is quoted in the summary lines, as a name
# from a backup is (cli_print_name): 'created repository', 'restored ... into', restore
# --dry-run's last line, tier status's LOCATION, copy's 'already in'; list's 'no backups in' escapes it
NR=$T/$'new\nline'
expect_exit 0 "$BKR" init -r "$NR"
[ "$(cat "$T/out")" = "created repository \"$T/new\\nline\"" ] || fail "init: $(cat -A "$T/out")"
expect_exit 0 "$BKR" -r "$NR" list
grep -qF 'no backups in '"$T"'/new\x0aline' "$T/err" && one_line_error || fail "list: $(cat -A "$T/err")"
"$BKR" -q -r "$NR" create "$T/qsrc" >/dev/null
expect_exit 0 "$BKR" -r "$NR" restore latest --target "$NR-t"
[ "$(wc -l <"$T/out")" = 1 ] && grep -qF "into \"$T/new\\nline-t\": " "$T/out" || fail "restore: $(cat -A "$T/out")"
expect_exit 0 "$BKR" -r "$NR" restore latest --target "$NR-d" --dry-run
! grep -v -e '^new     "' -e '^dry run of backup_' "$T/out" && grep -qF "into \"$T/new\\nline-d\": " "$T/out" ||
	fail "restore --dry-run: $(cat -A "$T/out")"
expect_exit 0 "$BKR" -r "$NR" tier status
[ "$(wc -l <"$T/out")" = 2 ] && grep -qF "\"$T/new\\nline\"" "$T/out" || fail "tier status: $(cat -A "$T/out")"
"$BKR" -q init -r "$NR-copy" && "$BKR" -q copy --from "$NR" --to "$NR-copy" || fail "copy into $NR-copy"
expect_exit 0 "$BKR" copy --from "$NR" --to "$NR-copy"
! grep -v -e '^skipped backup_' -e '^nothing to copy: ' "$T/out" && grep -qF "already in \"$T/new\\nline-copy\"" "$T/out" ||
	fail "copy: $(cat -A "$T/out")"
pass "a repository or target path with a newline is quoted in summary lines, never printed raw"

# an empty --host is a usage error naming it (exit 2), for create as for scan and recover:
# create recorded the backup as made by host "localhost"
nb=$("$BKR" -r "$NR" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
expect_exit 2 "$BKR" -r "$NR" create "$T/qsrc" --host ''
one_line_error
grep -qF -- "--host: expected a value, not ''" "$T/err" || fail "create --host '': $(cat "$T/err")"
[ "$("$BKR" -r "$NR" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = "$nb" ] ||
	fail "create --host '' made a backup"
pass "create --host '' is refused"

# list --type/--tag matching no backup: no header line on stdout, and stderr says which
# backups there are none of (it printed the header and "no backups in REPO" beside backups)
expect_exit 0 "$BKR" -r "$NR" list --tag no-such-tag
[ ! -s "$T/out" ] || fail "list --tag matching none prints: $(cat "$T/out")"
one_line_error
grep -qF "no backups tagged 'no-such-tag' in $T/new\x0aline" "$T/err" || fail "list --tag matching none: $(cat -A "$T/err")"
expect_exit 0 "$BKR" -r "$NR" list --type snapshot
[ ! -s "$T/out" ] && grep -qF "no backups of type snapshot in " "$T/err" || fail "list --type matching none: $(cat -A "$T/out" "$T/err")"
pass "list --type/--tag matching none: no header, and says which backups there are none of"

# colour: each stream's own, only on a terminal, never with NO_COLOR (not empty), TERM=dumb or
# --no-color ('bkr list > FILE' on a terminal wrote the header's bold escapes into FILE: colour
# followed stderr's terminal). tty OUT ERR LOG CMD...: CMD with stdout and stderr each on a
# pseudo-terminal ("tty") or into a file, what the terminal showed in LOG
tty() {
	python3 - "$@" <<'PY'
import os, pty, subprocess, sys
m, s = pty.openpty()
out, err = (s if a == "tty" else open(a, "wb") for a in sys.argv[1:3])
p = subprocess.Popen(sys.argv[4:], stdin=subprocess.DEVNULL, stdout=out, stderr=err)
os.close(s)
shown = b""
while True:
    try:
        b = os.read(m, 65536)
    except OSError:  # EIO: the last holder of the terminal is gone
        break
    if not b:
        break
    shown += b
p.wait()
open(sys.argv[3], "wb").write(shown)
PY
}
has_esc() { grep -q $'\033' "$1"; }
# on a terminal, both streams in colour: the list header bold, the error's "bkr show:" red
tty tty tty "$T/tty" env -u NO_COLOR TERM=xterm "$BKR" -r "$P" list
has_esc "$T/tty" || fail "list on a terminal shows no colour: $(cat -A "$T/tty")"
tty tty tty "$T/tty" env -u NO_COLOR TERM=xterm "$BKR" -r "$P" show no-such-backup
has_esc "$T/tty" || fail "an error on a terminal shows no colour: $(cat -A "$T/tty")"
# stdout into a file, stderr on the terminal (and the other way round): no escape in the file
tty "$T/file" tty "$T/tty" env -u NO_COLOR TERM=xterm "$BKR" -r "$P" list
grep -q "^backup_" "$T/file" || fail "list > FILE: $(cat -A "$T/file")"
! has_esc "$T/file" || fail "list > FILE on a terminal writes escapes into FILE: $(cat -A "$T/file")"
tty tty "$T/file" "$T/tty" env -u NO_COLOR TERM=xterm "$BKR" -r "$P" show no-such-backup
! has_esc "$T/file" || fail "show 2> FILE on a terminal writes escapes into FILE: $(cat -A "$T/file")"
# on a terminal: none with NO_COLOR, TERM=dumb or --no-color
for how in NO_COLOR=1 TERM=dumb --no-color; do
	case $how in --*) how_env=(TERM=xterm) how_opt=("$how") ;; *) how_env=(TERM=xterm "$how") how_opt=() ;; esac
	for cmd in list "show no-such-backup"; do
		# shellcheck disable=SC2086
		tty tty tty "$T/tty" env -u NO_COLOR "${how_env[@]}" "$BKR" -r "$P" $cmd "${how_opt[@]}"
		grep -q "bkr show:\|^backup_" "$T/tty" || fail "$how bkr $cmd: $(cat -A "$T/tty")"
		! has_esc "$T/tty" || fail "$how bkr $cmd: colour on the terminal: $(cat -A "$T/tty")"
	done
done
# progress: on a terminal (its end line is always drawn, then cleared); not with TERM=dumb,
# which cannot redraw a line ('\r\033[K' showed as garbage there)
tty tty tty "$T/tty" env TERM=xterm "$BKR" -r "$P" restore latest --target "$T/tty-r1"
grep -q "restoring: " "$T/tty" || fail "restore on a terminal shows no progress: $(cat -A "$T/tty")"
tty tty tty "$T/tty" env TERM=dumb "$BKR" -r "$P" restore latest --target "$T/tty-r2"
grep -q "^restored backup_" "$T/tty" || fail "restore with TERM=dumb: $(cat -A "$T/tty")"
! grep -q "restoring: " "$T/tty" && ! has_esc "$T/tty" || fail "progress with TERM=dumb: $(cat -A "$T/tty")"
pass "colour only on a terminal, each stream by itself; none with NO_COLOR, TERM=dumb or --no-color; no progress with TERM=dumb"

# --help and bkr(1) agree: every long option a command's --help names is in the man page
# (in bold), and every option of a command's synopsis line there is in its --help (global
# options aside; the texts are matched by bash itself, not by a grep per option)
# long_opts TEXT: in $opts, each long option TEXT names once (what `grep -oE
# -- "--[a-z][a-z-]*[a-z]"` finds), the --keep-* patterns left out (sed 's/--[a-z]*-\*//g');
# in bash, not a pipeline of four processes per text (~25 ms each on the CI's machines)
long_opts() {
	local s=$1 m
	local -A seen=()
	while [[ $s =~ --[a-z]*-\* ]]; do s=${s/"${BASH_REMATCH[0]}"/}; done
	opts=()
	# a match's first occurrence is where it was found: an earlier one would have been found
	while [[ $s =~ --[a-z][a-z-]*[a-z] ]]; do
		m=${BASH_REMATCH[0]}
		s=${s#*"$m"}
		[ -n "${seen[$m]:-}" ] || opts+=("$m")
		seen[$m]=1
	done
}
man=$(<"$BKR_SOURCE_ROOT/docs/bkr.1.md")
# the options in bold on each command's synopsis lines ('**CMD** ...'), once each
declare -A synopsis=()
while IFS= read -r line; do
	[[ $line =~ ^\*\*([a-z]*)\*\*\ (.*) ]] || continue
	c=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]}
	while [[ $rest =~ \*\*--[a-z-]+\*\* ]]; do
		o=${BASH_REMATCH[0]}
		rest=${rest#*"$o"}
		o=${o//\*/}
		[[ ${synopsis[$c]:-} == *" $o "* ]] || synopsis[$c]+=" $o "
	done
done <"$BKR_SOURCE_ROOT/docs/bkr.1.md"
for c in $cmds; do
	h=$(<"$T/help-$c")
	long_opts "$h"
	for o in "${opts[@]}"; do # not --keep-*
		[[ $man == *"**$o**"* ]] || fail "bkr $c --help names $o, bkr.1.md does not"
	done
	for o in ${synopsis[$c]:-}; do
		case $o in --json | --add | --remove) continue ;; esac # global; tag's, on pin's line
		[[ $h == *"$o"* ]] || fail "bkr.1.md's synopsis of $c has $o, its --help does not"
	done
done
pass "every option of each command's --help is in bkr.1.md, and each synopsis option there in --help"

# The parser and the documents agree: every long option a command takes is named in its
# --help and in its section of bkr.1.md (the paragraphs whose header names it: **tier
# status**, **pin** ... **tag**), and every option of its --help's usage lines is taken.
# What a command takes is probed, not read: 'bkr CMD --help --OPT=x ...' exits 0 when CMD
# takes every OPT (--help comes first, so nothing runs) and otherwise names the first
# unknown one; the candidates are the option tables of the file that implements CMD
# (found through bkr.c's dispatch table) and the long options of its usage lines.
sed -n '/^# COMMANDS/,/^# EXIT STATUS/p' "$BKR_SOURCE_ROOT/docs/bkr.1.md" >"$T/mancmds"
# read once, not per command: bkr.c's dispatch table (command -> function), the file that
# defines each cmd_ function, and each file's option tables ("\nOPT\n...")
declare -A cmd_fn=() fn_file=() file_table=()
while IFS= read -r line; do
	if [[ $line =~ \{\ \"([a-z]*)\",\ (cmd_[a-z]*), ]]; then cmd_fn[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}; fi
done <"$BKR_SOURCE_ROOT/tools/bkr.c"
while IFS=: read -r file line; do
	fn=${line#int }
	fn=${fn%(}
	[ -z "${fn_file[$fn]:-}" ] || fail "$fn is defined in ${fn_file[$fn]} and $file"
	fn_file[$fn]=$file
done < <(grep -oH '^int cmd_[a-z]*(' "$BKR_SOURCE_ROOT"/tools/*.c)
while IFS=: read -r file line; do
	[[ $line =~ ^\{\ \"([^\"]*)\" ]] || continue
	[[ ${file_table[$file]:-$'\n'} == *$'\n'"${BASH_REMATCH[1]}"$'\n'* ]] ||
		file_table[$file]=${file_table[$file]:-$'\n'}${BASH_REMATCH[1]}$'\n'
done < <(grep -oHE '\{ "[a-z][a-z-]*", (no|required|optional)_argument' "$BKR_SOURCE_ROOT"/tools/*.c)
for c in $cmds; do
	fn=${cmd_fn[$c]:-}
	file=${fn_file[$fn]:-}
	[ -n "$fn" ] && [ -n "$file" ] || fail "no file defines $fn (bkr $c)"
	# its usage lines: those of the first paragraph from a 'bkr CMD' to the next 'bkr' (pin's help has unpin's too)
	long_opts "$(awk -v c="$c" '/^usage:/ { u = 1 } u && /^$/ { exit } u { if (sub(/^(usage:)? *bkr /, "")) on = $1 == c; if (on) print }' "$T/help-$c")"
	usage=$'\n' table=${file_table[$file]:-$'\n'} want=()
	for o in "${opts[@]}"; do usage+=${o#--}$'\n' want+=("${o#--}"); done
	while IFS= read -r o; do [ -z "$o" ] || want+=("$o"); done <<<"$table"
	taken=()
	for o in "${want[@]}"; do [[ " ${taken[*]} " == *" $o "* ]] || taken+=("$o"); done
	while :; do
		args=()
		for o in "${taken[@]}"; do args+=("--$o=x"); done
		"$BKR" "$c" --help "${args[@]}" >/dev/null 2>"$T/perr" && break
		bad=
		while IFS= read -r line; do
			if [[ $line =~ ^bkr\ $c:\ unknown\ option\ \'--([a-z-]*)\' ]]; then bad+=${BASH_REMATCH[1]}; fi
		done <"$T/perr"
		[ -n "$bad" ] || fail "bkr $c --help ${args[*]}: $(cat "$T/perr")"
		[[ $usage != *$'\n'"$bad"$'\n'* ]] || fail "bkr $c --help names --$bad in its usage, the parser does not take it"
		left=()
		for o in "${taken[@]}"; do [ "$o" = "$bad" ] || left+=("$o"); done
		taken=("${left[@]}")
	done
	awk -v c="$c" '/^\*\*/ { on = index($0, "**" c "**") || index($0, "**" c " ") } on' "$T/mancmds" >"$T/mansec"
	[ -s "$T/mansec" ] || fail "bkr.1.md has no section for $c"
	h=$(<"$T/help-$c") mansec=$(<"$T/mansec")
	for o in "${taken[@]}"; do
		[[ $table == *$'\n'"$o"$'\n'* ]] || continue # a global option (bkr.1.md GLOBAL OPTIONS)
		[[ $h =~ --"$o"([^a-z-]|$) ]] || fail "bkr $c takes --$o, its --help does not name it"
		[[ $mansec == *"**--$o**"* ]] || fail "bkr $c takes --$o, its section in bkr.1.md does not name it"
	done
done
pass "every long option a command takes is in its --help and its section of bkr.1.md; every one of its usage lines is taken"

# The same for short options: every one a command takes is in its --help and its section of
# bkr.1.md ('-n' for --dry-run was in no synopsis there), and every one its --help names is
# taken. The candidates are the short options of the cli_parse calls of the file that
# implements the command and those its --help names; 'bkr CMD -X x --help' is probed (X takes
# 'x' as its value or leaves it an operand, then --help: nothing runs), and a parser that does
# not take X says "unknown option '-X'" (a handler refusing the value 'x' still takes it).
declare -A file_shorts=()
while IFS=: read -r file line; do
	[[ $line =~ \"([a-zA-Z:]*)\"$ ]] || continue
	file_shorts[$file]+=${BASH_REMATCH[1]//:/}
done < <(grep -oHE '(CLI_PARSE|cli_parse)\(c, argc, argv, [a-z_]+, "[a-zA-Z:]*"' "$BKR_SOURCE_ROOT"/tools/*.c)
for c in $cmds; do
	file=${fn_file[${cmd_fn[$c]}]}
	h=$(<"$T/help-$c")
	awk -v c="$c" '/^\*\*/ { on = index($0, "**" c "**") || index($0, "**" c " ") } on' "$T/mancmds" >"$T/mansec"
	mansec=$(<"$T/mansec")
	named=$(grep -oE '^ +-[a-zA-Z],' "$T/help-$c" | tr -dc 'a-zA-Z' || true)
	letters=$(echo "${file_shorts[$file]:-}$named" | grep -o . | sort -u | tr -d '\n' || true)
	for ((k = 0; k < ${#letters}; k++)); do
		x=${letters:k:1}
		case $x in r | c | q | v | h) continue ;; esac # global (bkr.1.md GLOBAL OPTIONS)
		rc=0
		"$BKR" "$c" "-$x" x --help >/dev/null 2>"$T/perr" || rc=$?
		if [ "$rc" != 0 ] && grep -q "unknown option '-$x'" "$T/perr"; then
			[[ $named != *"$x"* ]] || fail "bkr $c --help names -$x, the parser does not take it"
			continue
		fi
		[[ $h =~ (^|[^a-zA-Z0-9-])-"$x"([^a-zA-Z0-9-]|$) ]] || fail "bkr $c takes -$x, its --help does not name it"
		[[ $mansec == *"**-$x**"* ]] || fail "bkr $c takes -$x, its section in bkr.1.md does not name it"
	done
done
pass "every short option a command takes is in its --help and its section of bkr.1.md, and every one its --help names is taken"

# Every member a --json output names (the keys tools/*.c writes through json_out or cJSON)
# is documented: named in docs/*.md as a word of its own (diff's content_modified, ls's
# hardlink_group and repair's config_rewritten were written but named nowhere)
python3 - "$BKR_SOURCE_ROOT" <<'PY' || fail "a --json member is not in docs/"
import glob, re, sys
root = sys.argv[1]
docs = "".join(open(p, encoding="utf-8").read() for p in glob.glob(root + "/docs/*.md"))
key = re.compile(r'(?:json_out_(?:key|member|path)[a-z_]*\([^,()]+|cJSON_Add[A-Za-z]*ToObject\([^,()]+), "([a-z_]+)"')
missing = []
for src in sorted(glob.glob(root + "/tools/*.c")):
    for k in sorted(set(key.findall(open(src, encoding="utf-8").read()))):
        if not re.search(r'(?<![a-z0-9_])' + k + r'(?![a-z0-9_])', docs):
            missing.append("%s: %s" % (src[len(root) + 1:], k))
for m in missing:
    print("FAIL: --json member not named in docs/*.md: " + m, file=sys.stderr)
sys.exit(1 if missing else 0)
PY
pass "every member a --json output writes is named in docs/"

# Every environment variable the code reads is in a man page (bkr.1.md or bkrfs.8.md):
# BKR_MONGODB_MODULE and BKR_TEST_XATTRAT were read but named in neither
man_pages=$(cat "$BKR_SOURCE_ROOT/docs/bkr.1.md" "$BKR_SOURCE_ROOT/docs/bkrfs.8.md")
while IFS= read -r v; do
	[[ $man_pages =~ (^|[^A-Z0-9_])$v([^A-Z0-9_]|$) ]] || fail "getenv(\"$v\") is in neither bkr.1.md nor bkrfs.8.md"
done < <(grep -rhoE 'getenv\("[A-Z][A-Z0-9_]*"\)' --include='*.c' "$BKR_SOURCE_ROOT/tools" "$BKR_SOURCE_ROOT/fs" "$BKR_SOURCE_ROOT/engine" |
	sed 's/getenv("\(.*\)")/\1/' | sort -u)
pass "every environment variable the code reads is in bkr(1) or bkrfs(8)"

# bkr.1.md LOGS names every event a log line can carry and every command by whether it logs
# (docs/operations.md's Logs the ones that log, too):
# copy's copied / damaged-manifest / damaged-destination(-tree) / other-destination and hold's
# released were written but named nowhere, and key, copy, hold were missing from the commands
# that log. Events are the literal event arguments of bkr_log_event and of copy's not_copied;
# the commands and whether they log are tools/bkr.c's table.
python3 - "$BKR_SOURCE_ROOT" <<'PY' || fail "bkr.1.md LOGS misses an event or a command"
import glob, re, sys
root = sys.argv[1]
man = open(root + "/docs/bkr.1.md", encoding="utf-8").read()
logs = " ".join(man[man.index("\n# LOGS\n"):man.index("\n# ENVIRONMENT\n")].split())
events = set()
for src in glob.glob(root + "/tools/*.c") + glob.glob(root + "/engine/**/*.c", recursive=True) + glob.glob(root + "/fs/*.c"):
    text = open(src, encoding="utf-8").read()
    for call in re.findall(r'bkr_log_event\(\s*[^,]+,\s*[^,]+,\s*([^,]+),', text):
        events.update(re.findall(r'"([a-z][a-z-]*)"', call))
    for call in re.findall(r'not_copied\(\s*[^,]+,\s*[^,]+,\s*"([a-z][a-z-]*)"', text):
        events.add(call)
bad = ["event '%s' is not named in bkr.1.md LOGS" % e for e in sorted(events) if "`%s`" % e not in logs]
if len(events) < 10:
    bad.append("found only %d events in the sources: %s" % (len(events), sorted(events)))
table = re.findall(r'\{ "([a-z]+)", cmd_[a-z]+, "[^"]*", (LOGGED|READS) \}', open(root + "/tools/bkr.c", encoding="utf-8").read())
ops = open(root + "/docs/operations.md", encoding="utf-8").read()
ops = " ".join(ops[ops.index("\n## Logs\n"):].split())
ops = ops[:ops.index(") appends one JSON object")]  # docs/operations.md's list of the commands that log
for name, kind in table:
    if kind == "LOGGED" and name != "backup" and not re.search(r'[ (]%s(?:[,;)]|$)' % name, ops):
        bad.append("bkr %s logs, docs/operations.md's Logs does not list it" % name)
writes, reads = logs.index("appends one JSON object"), logs.index("Commands that only read")
for name, kind in table:
    where = logs[:writes] if kind == "LOGGED" else logs[reads:logs.index("write nothing", reads)]
    if "**%s**" % name not in where:
        bad.append("bkr %s %s, bkr.1.md LOGS does not list it there" % (name, "logs" if kind == "LOGGED" else "writes no log"))
if len(table) < 25:
    bad.append("found only %d commands in tools/bkr.c" % len(table))
for b in bad:
    print("FAIL: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
pass "bkr.1.md LOGS names every event the code logs, and each command as logging or not"

# Every file of the source tree that README.md and docs/*.md name (docs/X, tools/X, engine/X,
# fs/X, tests/X, bench/X; a bench program by its source; a glob by one file it matches)
# exists: design.md named tools/exit.h after the exit codes moved to engine/include/bkr/exit.h
while IFS=: read -r doc f; do
	f=${f%.} # the end of a sentence
	compgen -G "$BKR_SOURCE_ROOT/$f" >/dev/null || [ -e "$BKR_SOURCE_ROOT/$f.c" ] ||
		fail "${doc#"$BKR_SOURCE_ROOT"/} names $f, which does not exist"
done < <(grep -oE '(^|[^A-Za-z0-9_./-])(docs|tools|engine|fs|tests|bench)/[A-Za-z0-9_.*/-]*[A-Za-z0-9_*]' \
	"$BKR_SOURCE_ROOT/README.md" "$BKR_SOURCE_ROOT"/docs/*.md | sed -E 's/:[^a-z]?/:/')
pass "every source file README.md and docs/ name exists"

# README.md as a new operator reads it: its Documentation table names every document of
# docs/ (s3.md, security.md and CONTRIBUTING.md were in none), and its tools/test.sh line
# names every pass the script runs (the libFuzzer pass was not said)
readme=$(<"$BKR_SOURCE_ROOT/README.md")
table=$(awk '/^## Documentation/ { on = 1; next } /^## / { on = 0 } on' "$BKR_SOURCE_ROOT/README.md")
for d in "$BKR_SOURCE_ROOT"/docs/*.md; do
	[[ $table == *"](docs/${d##*/})"* ]] || fail "README.md's Documentation table does not name docs/${d##*/}"
done
test_line=$(grep -E '^tools/test\.sh +#' <<<"$readme") || fail "README.md has no 'tools/test.sh  # ...' line"
while IFS= read -r p; do
	[[ $test_line == *"$p"* ]] || fail "tools/test.sh runs a $p pass, README.md's line does not say so: $test_line"
done < <(grep -oE '^[[:space:]]*phase "[A-Za-z+]+:' "$BKR_SOURCE_ROOT/tools/test.sh" | sed -E 's/.*"(.*):/\1/')
pass "README.md names every document of docs/ and every pass of tools/test.sh"

# Every command whose tools/cmd_NAME.c draws a progress line (cli_progress*, or the
# create/verify/tier adapters) is named where bkr.1.md (--no-color) and docs/operations.md
# list what shows progress: diff --live and log drew one that operations.md did not name
progress_files=$(grep -lE 'cli_(progress|backup_progress|verify_progress|tier_progress)' "$BKR_SOURCE_ROOT"/tools/cmd_*.c)
nocolor=$(awk '/^\*\*--no-color\*\*/ { on = 1; next } on && /^\*\*/ { exit } on' "$BKR_SOURCE_ROOT/docs/bkr.1.md" | tr '\n' ' ')
ops=$(awk '/^On a terminal, create/ { on = 1 } on && /^$/ { exit } on' "$BKR_SOURCE_ROOT/docs/operations.md" | tr '\n' ' ')
nocolor=${nocolor#*Progress is shown} ops=${ops%%show one progress line*} # the lists themselves
[ -n "$progress_files" ] && [ -n "$nocolor" ] && [ -n "$ops" ] || fail "found no progress code or no progress paragraph"
for f in $progress_files; do
	n=${f##*/cmd_}
	n=${n%.c}
	[[ $nocolor == *"**$n"* ]] || fail "$n draws a progress line, bkr.1.md --no-color does not name it"
	[[ $ops =~ (^|[^a-z-])$n([^a-z-]|$) ]] || fail "$n draws a progress line, docs/operations.md does not name it"
done
pass "every command that draws a progress line is named in bkr.1.md --no-color and docs/operations.md"
