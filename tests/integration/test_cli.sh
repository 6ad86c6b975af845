#!/usr/bin/env bash
# bkr end to end: every backup type round-trips an edge-case tree exactly;
# list/show/ls/cat/diff; a real tree; damage is found and contained; bad input
# gets one-line errors and the documented exit codes.
source "$(dirname "$0")/lib.sh"

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
pass "--help on every command"

# --- full backup and exact restore
expect_exit 0 "$BKR" -r "$R" create --type full "$src"
grep -q "full backup" "$T/out" || fail "create prints no summary"
expect_exit 0 "$BKR" -r "$R" restore latest --target "$T/r1"
python3 "$HERE/treecmp.py" "$src" "$T/r1/src" || fail "full backup does not restore exactly"
pass "full backup restores every field"

# --- incremental after changes, differential, snapshot
sleep 1.1
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
pass "diff between backups and against live files"

# --- verify clean, then damage one data blob
expect_exit 0 "$BKR" -r "$R" verify --read-data
pack=$(python3 - "$R" <<'PY'
import os, sys
# the pack holding random.bin's first chunk is the largest data pack
best = max((os.path.getsize(os.path.join(d, f)), os.path.join(d, f))
           for d, _, fs in os.walk(os.path.join(sys.argv[1], "data")) for f in fs if f.endswith(".pack"))
print(best[1])
PY
)
flip_byte_in_blob "$pack"
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
cp -r "$R" "$T/badrepo"
sed -i 's/"version":1/"version":9/' "$T/badrepo/config.json"
expect_exit 4 "$BKR" -r "$T/badrepo" list
one_line_error
grep -q "config.json" "$T/err" || fail "error does not name config.json"
echo '{"repository": "'"$R"'", "workspace_root": 42}' >"$T/bad.json"
expect_exit 2 "$BKR" config check -c "$T/bad.json"
one_line_error
grep -q "workspace_root" "$T/err" || fail "config check does not name the key"
expect_exit 2 "$BKR" config check -c "$T/bad.json" --json
json_ok "$T/out"
echo 'not json' >"$R/backups/backup_20990101_000000_full_deadbeef.json"
expect_exit 4 "$BKR" -r "$R" list
grep -q "backup_20990101_000000_full_deadbeef.json" "$T/err" || fail "damaged manifest not named"
rm "$R/backups/backup_20990101_000000_full_deadbeef.json"
pass "bad input gets one-line errors and documented exit codes"

# --- a real tree
real=/usr/include
expect_exit 0 "$BKR" -r "$T/repo2" init
expect_exit 0 "$BKR" -r "$T/repo2" create --type full "$real"
expect_exit 0 "$BKR" -r "$T/repo2" restore latest --target "$T/real"
python3 "$HERE/treecmp.py" "$real" "$T/real/include" || fail "/usr/include does not round-trip"
expect_exit 0 "$BKR" -r "$T/repo2" create --type incremental "$real" --json
python3 -c '
import json,sys
m=json.load(open(sys.argv[1]))
assert m["stats"]["new_bytes"] == 0, m["stats"]' "$T/out" || fail "no-change incremental stored new data"
expect_exit 0 "$BKR" -r "$T/repo2" verify --read-data
pass "/usr/include round-trips; a no-change incremental stores nothing"
