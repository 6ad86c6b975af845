#!/usr/bin/env bash
# bkr repair: the index rebuilt from the packs' footers when index files are
# lost or damaged (every backup then verifies and restores exactly, a second
# repair has nothing to do); hostile packs (garbage, truncated) get one line
# naming them and nothing else is lost; --dry-run changes nothing; --no-wait;
# a blob stored twice keeps the copy the index had (a damaged leftover's never
# replaces it).
source "$(dirname "$0")/lib.sh"

R=$T/repo
ws=$T/ws
mkdir -p "$ws/docs/sub" "$T/gold"
new_repo

# Three backups, each adding data, so that there are several data and tree packs.
for i in 1 2 3; do
	head -c $((200000 * i)) /dev/urandom >"$ws/docs/blob-$i.bin"
	seq 1 $((20000 * i)) >"$ws/docs/sub/text-$i.txt"
	echo "round $i" >"$ws/counter.txt"
	expect_exit 0 "$BKR" -q -r "$R" create "$ws"
	id=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
	cp -a "$ws" "$T/gold/$id"
done
cp -a "$R" "$T/repo-clean"

# restore_all LABEL: every backup restores exactly its golden copy
restore_all() {
	local id
	for id in $(ls "$T/gold"); do
		rm -rf "$T/restore"
		expect_exit 0 "$BKR" -r "$R" restore "$id" --target "$T/restore"
		python3 "$HERE/treecmp.py" "$T/gold/$id" "$T/restore/ws" --no-dir-mtime >/dev/null ||
			fail "$1: backup $id does not restore exactly"
	done
}

# one_line_error_in FILE LABEL: FILE holds one line saying a fault was injected
one_line_error_in() {
	[ "$(wc -l <"$1")" = 1 ] && grep -q "injected fault" "$1" || { cat "$1"; fail "$2: not a one-line error"; }
}

# json_field FILE KEY: one value of the top-level object
json_field() {
	python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$1" "$2"
}

# --- every index file lost ---------------------------------------------------------
rm -f "$R"/index/*.idx
expect_exit 1 "$BKR" -r "$R" verify
cp -a "$R" "$T/repo-noindex"
expect_exit 0 "$BKR" -r "$R" repair --dry-run --json
json_ok "$T/out"
[ "$(json_field "$T/out" rewritten)" = true ] || fail "the dry run does not say it would rewrite the index"
diff -r "$T/repo-noindex" "$R" >/dev/null || fail "repair --dry-run changed the repository"
expect_exit 0 "$BKR" -r "$R" repair
grep -q "rewritten as one index file" "$T/out" || fail "repair does not say it rewrote the index: $(cat "$T/out")"
[ ! -s "$T/err" ] || fail "repair of a lost index wrote to stderr: $(cat "$T/err")"
[ "$(find "$R/index" -name '*.idx' | wc -l)" = 1 ] || fail "repair did not write one index file"
expect_exit 0 "$BKR" -r "$R" verify --read-data
restore_all "index rebuilt"
expect_exit 0 "$BKR" -r "$R" repair --json
json_ok "$T/out"
[ "$(json_field "$T/out" rewritten)" = false ] || fail "a second repair rewrote the index again"
[ "$(json_field "$T/out" added)" = 0 ] || fail "a second repair found blobs to add"
pass "every index file lost: repair rebuilds the index from the packs; verify --read-data and every restore are exact; a rerun has nothing to do"

# --- one index file lost, another damaged ------------------------------------------
rm -rf "$R" && cp -a "$T/repo-clean" "$R"
mapfile -t idx < <(find "$R/index" -name '*.idx' | sort)
[ "${#idx[@]}" -ge 3 ] || fail "the fixture should have one index file per backup"
rm -f "${idx[0]}"
python3 - "${idx[1]}" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(40)
    b = f.read(1)
    f.seek(40)
    f.write(bytes([b[0] ^ 0xff]))
PY
damaged=$(basename "${idx[1]}")
expect_exit 0 "$BKR" -r "$R" repair --json
json_ok "$T/out"
[ "$(json_field "$T/out" damaged_index_files)" = 1 ] || fail "repair did not count the damaged index file"
[ -e "$R/trash/$damaged" ] || fail "the damaged index file did not go into trash"
[ ! -e "${idx[1]}" ] || fail "the damaged index file is still in index/"
expect_exit 0 "$BKR" -r "$R" verify --read-data
grep -q "damaged\|left out" "$T/err" && fail "a command still warns about a damaged index file: $(cat "$T/err")"
restore_all "lost and damaged index files"
pass "a lost and a damaged index file: rebuilt, the damaged one moved into trash, every backup exact"

# --- hostile packs during a rebuild --------------------------------------------------
# A garbage file named like a pack, and the index lost: one line naming it; the
# rest is rebuilt and every backup restores.
rm -rf "$R" && cp -a "$T/repo-noindex" "$R"
garbage=$R/data/ee/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.pack
mkdir -p "$(dirname "$garbage")"
head -c 5000 /dev/urandom >"$garbage"
expect_exit 1 "$BKR" -r "$R" repair
one_line_error
grep -q "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.pack" "$T/err" || fail "the error does not name the garbage pack: $(cat "$T/err")"
[ -e "$garbage" ] || fail "repair removed the garbage pack (it must leave what it cannot read in place)"
restore_all "garbage pack"
expect_exit 1 "$BKR" -r "$R" verify --read-data --json
python3 - "$T/out" <<'PY' || fail "verify reports more than the garbage pack"
import json, sys
probs = [p for p in json.load(open(sys.argv[1]))["problems"] if p["error"]]
assert len(probs) == 1 and "eeeeeeee" in probs[0]["object"], probs
PY
pass "a garbage pack during a rebuild: one line naming it, left in place, nothing else lost"

# A truncated pack while the index still names it: its entries are kept (the
# index may be right about the blobs before the cut); one line naming it.
rm -rf "$R" && cp -a "$T/repo-clean" "$R"
victim=$(find "$R/data" -name '*.pack' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
truncate -s -100 "$victim"
expect_exit 1 "$BKR" -r "$R" repair --dry-run --json
before=$(json_field "$T/out" entries_before)
expect_exit 1 "$BKR" -r "$R" repair --json
json_ok "$T/out"
[ "$(json_field "$T/out" entries_after)" = "$before" ] || fail "repair dropped entries of a truncated pack the index named"
[ "$(json_field "$T/out" bad_packs)" = 1 ] || fail "repair does not count the truncated pack"
expect_exit 1 "$BKR" -r "$R" repair
one_line_error
grep -q "$(basename "$victim")" "$T/err" || fail "the error does not name the truncated pack: $(cat "$T/err")"
grep -q "every blob the backups use is in the index" "$T/out" || fail "repair does not summarise what stays damaged: $(cat "$T/out")"
pass "a truncated pack the index names: one line, its entries kept"

# The same pack truncated and the index lost: the files that used it are
# named as damaged (with backup and path); every other file restores.
rm -rf "$R" && cp -a "$T/repo-noindex" "$R"
victim=$R/${victim#"$T/repo/"}
truncate -s -100 "$victim"
expect_exit 1 "$BKR" -r "$R" repair
one_line_error
grep -q "stay damaged" "$T/out" || fail "repair does not say files stay damaged: $(cat "$T/out")"
expect_exit 1 "$BKR" -r "$R" repair --json
json_ok "$T/out"
python3 - "$T/out" >"$T/lost" <<'PY' || fail "repair does not name the damaged files"
import json, sys
o = json.load(open(sys.argv[1]))
files = [p for p in o["problems"] if p["kind"] == "damaged-file"]
assert files and o["damaged_files"] == len(files), o
for p in files:
    assert p["backup_id"] and p["path"].startswith("ws/"), p
    print(p["backup_id"], p["path"])
PY
while read -r id path; do
	rm -rf "$T/restore"
	got=0
	"$BKR" -q -r "$R" restore "$id" --target "$T/restore" >/dev/null 2>&1 || got=$?
	[ "$got" = 0 ] || [ "$got" = 6 ] || fail "restore of $id failed (exit $got), not only its damaged files"
	# restore skips exactly the damaged files; the others are exact
	find "$T/gold/$id" -type f -printf '%P\n' | while read -r f; do
		grep -qx "$id ws/$f" "$T/lost" && continue
		cmp -s "$T/gold/$id/$f" "$T/restore/ws/$f" || fail "$id: ws/$f (not damaged) does not restore exactly"
	done
done < <(sort -u "$T/lost")
pass "a truncated pack and no index: repair names the damaged files; every other file restores"

# --- an index that lost its data entries, then prune ------------------------------
# Every index file rewritten without the data blobs' entries (the trees stay
# named): the data packs look like leftovers of a killed writer.  Prune must
# not take them for that: it stops, naming 'bkr repair', and changes nothing;
# after repair, prune has nothing of the backups to free.
# drop_data_entries REPO: every index file rewritten without its data entries
drop_data_entries() {
	python3 - "$1" <<'PY'
import glob, hashlib, os, struct, sys
repo = sys.argv[1]
trees = {os.path.basename(p)[:-5] for p in glob.glob(repo + "/tree/*/*.pack")}
for f in glob.glob(repo + "/index/*.idx"):
    b = open(f, "rb").read()
    n, nsup = struct.unpack_from("<QI", b, 16)
    start = 32 + 32 * nsup
    ents = [b[start + 64 * i:start + 64 * (i + 1)] for i in range(n)]
    keep = [e for e in ents if e[32:48].hex() in trees]
    body = b[:16] + struct.pack("<QI", len(keep), nsup) + b[28:start] + b"".join(keep)
    body += hashlib.sha256(body).digest()
    os.unlink(f)
    open("%s/index/%s.idx" % (repo, hashlib.sha256(body).hexdigest()), "wb").write(body)
PY
	find "$1" -type f -exec touch -d '3 days ago' {} +
}
rm -rf "$R" && cp -a "$T/repo-clean" "$R"
drop_data_entries "$R"
cp -a "$R" "$T/repo-lostdata"
expect_exit 4 "$BKR" -r "$R" prune
one_line_error
grep -q "prune stops before changing anything (run 'bkr repair')" "$T/err" || fail "prune does not stop for a used blob missing from the index: $(cat "$T/err")"
expect_exit 4 "$BKR" -r "$R" prune --grace 0 --dry-run
diff -r "$T/repo-lostdata" "$R" >/dev/null || fail "prune changed the repository although the index lacked used blobs"
expect_exit 0 "$BKR" -r "$R" repair
expect_exit 0 "$BKR" -r "$R" prune --grace 0 --json
python3 - "$T/out" <<'PY' || fail "prune after repair freed something the backups use"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["leftover_packs"] == 0 and o["unused_packs"] == 0, o
PY
expect_exit 0 "$BKR" -r "$R" verify --read-data
restore_all "index without data entries, repaired, pruned"
pass "an index without its data entries: prune stops and changes nothing; after repair it frees nothing a backup uses"

# One data pack only (one worker): a read of it failing (I/O, not damage) must
# stop prune too, not make the pack look damaged and movable
O=$T/onepack
"$BKR" -q init -r "$O"
expect_exit 0 "$BKR" -q -r "$O" create --threads 1 "$ws"
[ "$(find "$O/data" -name '*.pack' | wc -l)" = 1 ] || fail "the one-pack fixture has $(find "$O/data" -name '*.pack' | wc -l) data packs"
drop_data_entries "$O"
cp -a "$O" "$T/onepack-gold"
for k in $(seq 1 40); do
	BKR_FAULT=read:$k:eio "$BKR" -q -r "$O" prune --grace 0 >/dev/null 2>&1 && fail "prune with read:$k:eio succeeded"
	diff -r "$T/onepack-gold" "$O" >/dev/null || fail "prune with a failing read ($k) changed the repository"
done
pass "a leftover whose reads fail (I/O): prune stops and changes nothing"

# --- a delete undone after prune: repair takes the packs back out of the trash ------
rm -rf "$R" && cp -a "$T/repo-clean" "$R"
newest=$(ls "$T/gold" | tail -1)
expect_exit 0 "$BKR" -q -r "$R" delete "$newest"
expect_exit 0 "$BKR" -q -r "$R" prune
[ -n "$(find "$R/trash" -name '*.pack')" ] || fail "prune moved no pack of the deleted backup into the trash"
mv "$R/trash/$newest.json" "$R/backups/"
expect_exit 1 "$BKR" -r "$R" verify
cp -a "$R" "$T/repo-undelete"
expect_exit 0 "$BKR" -r "$R" repair --dry-run
diff -r "$T/repo-undelete" "$R" >/dev/null || fail "repair --dry-run changed the repository"
grep -q "^trash-pack: trash/.*would be moved back to" "$T/out" || fail "the dry run does not name the packs in the trash: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" repair --json
python3 - "$T/out" <<'PY' || fail "repair did not take the packs back"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["ok"] and o["rescued_packs"] >= 1 and o["damaged_files"] == 0, o
assert len([p for p in o["problems"] if p["kind"] == "trash-pack"]) == o["rescued_packs"], o
PY
[ -z "$(find "$R/trash" -name '*.pack')" ] || fail "packs the undeleted backup uses are still in the trash"
expect_exit 0 "$BKR" -r "$R" verify --read-data
restore_all "a delete undone after prune"
expect_exit 0 "$BKR" -r "$R" repair --json
[ "$(json_field "$T/out" rewritten)" = false ] && [ "$(json_field "$T/out" rescued_packs)" = 0 ] ||
	fail "a second repair after the rescue was not a no-op: $(cat "$T/out")"
# deleted and pruned again: the packs are in the trash for their new batch; the
# older batch that named them expiring must not delete them.  The second delete and
# prune run on a fixed clock (BKR_TEST_NOW) an hour on, the expiring prune a second
# after them: on the real clock their batches had to be younger than the grace when
# the expiring prune looked, and a loaded machine took longer than that.
later=$(($(date +%s) + 3600))
expect_exit 0 env BKR_TEST_NOW="$(date -u -d "@$later" +%FT%TZ)" "$BKR" -q -r "$R" delete "$newest"
expect_exit 0 env BKR_TEST_NOW="$(date -u -d "@$later" +%FT%TZ)" "$BKR" -q -r "$R" prune
find "$R/trash" -name '*.pack' | sort >"$T/again"
[ -s "$T/again" ] || fail "the second prune moved no pack into the trash"
batches() { ls "$R/trash" | grep -c "^batch-0*${1:-}"; } # [SECOND]: of that second
[ "$(batches)" = 4 ] && [ "$(batches "$later")" = 2 ] || fail "not two trash batches of each delete and prune: $(ls "$R/trash")"
# the first batches (an hour old) expire, the second ones (a second old) stay
expect_exit 0 env BKR_TEST_NOW="$(date -u -d "@$((later + 1))" +%FT%TZ)" "$BKR" -q -r "$R" prune --grace 30min
[ "$(batches)" = 2 ] && [ "$(batches "$later")" = 2 ] || fail "not the first trash batches alone expired: $(ls "$R/trash")"
find "$R/trash" -name '*.pack' | sort | cmp -s - "$T/again" ||
	fail "an older trash batch deleted packs a younger batch holds: $(find "$R/trash" -name '*.pack')"
mv "$R/trash/$newest.json" "$R/backups/"
expect_exit 0 "$BKR" -q -r "$R" repair
expect_exit 0 "$BKR" -r "$R" verify --read-data
expect_exit 0 "$BKR" -q -r "$R" prune --grace 0
expect_exit 0 "$BKR" -r "$R" verify --read-data
restore_all "a delete undone after prune, then pruned"
pass "a delete undone after prune: repair moves the packs the backup uses back from the trash; nothing is lost"

# --- the trash grace and the wall clock --------------------------------------------
# The grace ran from the time in a batch's name: a delete stamped by a clock ten
# days behind was emptied by the next prune (after the clock was corrected), and
# one stamped ten days ahead waited ten days and the grace.  It runs from the
# first prune that saw the batch now, whatever its name says.
C=$T/clock
rm -rf "$C" && cp -a "$T/repo-clean" "$C"
at() { date -u -d "@$1" +%FT%TZ; }
now=$(date +%s)
mapfile -t ids < <(ls "$C/backups" | sed 's/\.json$//' | sort)
expect_exit 0 env BKR_TEST_NOW="$(at $((now - 864000)))" "$BKR" -q -r "$C" delete "${ids[0]}"
expect_exit 0 env BKR_TEST_NOW="$(at $((now + 864000)))" "$BKR" -q -r "$C" delete "${ids[1]}"
expect_exit 0 env BKR_TEST_NOW="$(at "$now")" "$BKR" -r "$C" prune --json
json_assert "$T/out" 'r["trash_future_batches"] == 1 and r["trash_freed_bytes"] == 0' ||
	fail "the first prune after the deletes: $(cat "$T/out")"
[ -e "$C/trash/${ids[0]}.json" ] || fail "a batch stamped by a clock ten days behind expired at the first prune"
expect_exit 0 env BKR_TEST_NOW="$(at $((now + 86340)))" "$BKR" -q -r "$C" prune
[ -e "$C/trash/${ids[0]}.json" ] && [ -e "$C/trash/${ids[1]}.json" ] ||
	fail "a trash batch expired within the grace after the first prune saw it: $(ls "$C/trash")"
expect_exit 0 env BKR_TEST_NOW="$(at $((now + 86400)))" "$BKR" -q -r "$C" prune
[ -z "$(ls "$C/trash")" ] || fail "the trash (and the prunes' marks) not empty a grace after the first prune saw it: $(ls "$C/trash")"
expect_exit 0 "$BKR" -r "$C" verify --read-data
pass "trash expires a grace after the first prune saw it: a delete stamped by a clock behind waits, one ahead does not wait for its date"

# killed while it moves packs back (the first move, the last one) and before
# the index naming them is written (its first write): a rerun completes.  How
# many packs the backup had depends on its workers, so the last is counted.
nmoved=$(find "$T/repo-undelete/trash" -name '*.pack' | wc -l)
for fault in rename:1:crash rename:$nmoved:crash write:1:crash; do
	rm -rf "$R" && cp -a "$T/repo-undelete" "$R"
	got=0
	BKR_FAULT=$fault "$BKR" -q -r "$R" repair >/dev/null 2>&1 || got=$?
	[ "$got" != 0 ] || fail "repair with $fault: the fault point was not reached"
	expect_exit 4 "$BKR" -r "$R" prune --grace 0 --dry-run # stops: the backup's trees or blobs are not indexed yet
	expect_exit 0 "$BKR" -q -r "$R" repair
	expect_exit 0 "$BKR" -r "$R" verify --read-data
	restore_all "repair of an undelete, $fault, then a rerun"
done
pass "repair killed while it moves packs back from the trash: the rerun completes, nothing lost"

# --- a damaged manifest: repair names it (exit 1); delete --force takes it out -------
rm -rf "$R" && cp -a "$T/repo-clean" "$R"
victim=$(ls "$R/backups" | sort | head -1)
sed -i 's/"backup_type":"[a-z]*"/"backup_type":"fulx"/' "$R/backups/$victim"
expect_exit 1 "$BKR" -r "$R" repair --json
python3 - "$T/out" "$victim" <<'PY' || fail "repair --json does not name the damaged manifest"
import json, sys
o = json.load(open(sys.argv[1]))
m = [p for p in o["problems"] if p["kind"] == "manifest"]
assert not o["ok"] and o["damaged_manifests"] == 1 and len(m) == 1 and sys.argv[2] in m[0]["object"], o
PY
expect_exit 1 "$BKR" -r "$R" repair
grep -q "^bkr repair: .*$victim" "$T/err" || fail "repair does not name the damaged manifest on stderr: $(cat "$T/err")"
expect_exit 4 "$BKR" -r "$R" prune
expect_exit 2 "$BKR" -r "$R" delete "${victim%.json}"
grep -q "manifest is damaged.*--force" "$T/err" || fail "delete of a damaged manifest without --force: $(cat "$T/err")"
expect_exit 0 "$BKR" -q -r "$R" delete --force "${victim%.json}"
[ -e "$R/trash/$victim" ] || fail "the damaged manifest did not go into the trash"
expect_exit 0 "$BKR" -q -r "$R" prune
expect_exit 0 "$BKR" -q -r "$R" repair
expect_exit 0 "$BKR" -r "$R" verify --read-data
pass "a damaged manifest: repair names it (exit 1), prune stops, delete --force moves it out, then all is clean"

# --- crash safety: repair killed at random instants or failing at its writes ---------
# Fixture: one index file lost, another damaged (so repair publishes an index,
# removes what it supersedes and moves the damaged file into trash).
rm -rf "$R" && cp -a "$T/repo-clean" "$R"
mapfile -t idx < <(find "$R/index" -name '*.idx' | sort)
rm -f "${idx[0]}"
printf 'garbage' | dd of="${idx[1]}" bs=1 seek=40 conv=notrunc status=none
cp -a "$R" "$T/repo-crash"
# check_rerun LABEL: a rerun completes; every backup verifies and restores exactly
check_rerun() {
	expect_exit 0 "$BKR" -r "$R" repair
	expect_exit 0 "$BKR" -r "$R" repair --json
	[ "$(json_field "$T/out" rewritten)" = false ] || fail "$1: the rerun did not complete the repair"
	[ "$(find "$R/index" -name '*.idx' | wc -l)" = 1 ] || fail "$1: more than one index file after the rerun"
	expect_exit 0 "$BKR" -r "$R" verify --read-data # every blob of every backup, re-hashed
	id=$(ls "$T/gold" | tail -1)
	rm -rf "$T/restore"
	expect_exit 0 "$BKR" -r "$R" restore "$id" --target "$T/restore"
	python3 "$HERE/treecmp.py" "$T/gold/$id" "$T/restore/ws" --no-dir-mtime >/dev/null || fail "$1: $id does not restore exactly"
	echo "  $1: rerun completed, every backup verifies"
}
rounds=$(crash_rounds 2)
for i in $(seq 1 "$rounds"); do
	rm -rf "$R" && cp -a "$T/repo-crash" "$R"
	delay=$(python3 -c "import random; print(random.uniform(0.0, 0.15))")
	"$BKR" -q -r "$R" repair >/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	check_rerun "repair killed after ${delay}s"
done
for fault in write:1:crash fsync:1:crash rename:2:crash rename:3:crash write:1:eio rename:3:eio; do
	rm -rf "$R" && cp -a "$T/repo-crash" "$R"
	got=0
	BKR_FAULT=$fault "$BKR" -q -r "$R" repair >/dev/null 2>"$T/fault.err" || got=$?
	[ "$got" != 0 ] || fail "repair with $fault: the fault point was not reached"
	case $fault in *eio) one_line_error_in "$T/fault.err" "$fault" ;; esac
	check_rerun "repair $fault"
done
pass "repair killed at random instants or failing at writes, fsyncs and renames lost nothing; reruns completed"

# --- the lock ---------------------------------------------------------------------
rm -rf "$R" && cp -a "$T/repo-clean" "$R"
exec 9>"$R/locks/repo.lock"
flock -s 9
expect_exit 5 "$BKR" -r "$R" repair --no-wait
one_line_error
exec 9>&-
expect_exit 2 "$BKR" -r "$R" repair extra
expect_exit 0 "$BKR" repair --help
pass "repair --no-wait fails clearly while a backup holds the lock"

# --- heal: damaged blobs recorded by verify, taken out, stored again ---------------
# Two data blobs of one pack damaged; one of the files they belong to is then
# changed in the workspace (its old bytes exist nowhere any more).
rm -rf "$R" "$ws" && mkdir -p "$ws/docs"
new_repo
# each file below the chunker's minimum (256 KiB), so one chunk: a 300000-byte
# file could end a chunk before its last bytes, and the damaged chunk could be
# one the changed file keeps, which the next backup would store again
for i in 1 2 3 4; do head -c 200000 /dev/urandom >"$ws/docs/f$i.bin"; done
expect_exit 0 "$BKR" -q -r "$R" create "$ws"
first=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
cp -a "$ws" "$T/gold-heal"
pack=$(find "$R/data" -name '*.pack' | head -1)
python3 - "$pack" <<'PY'
import struct, sys
p = sys.argv[1]
with open(p, "r+b") as f:
    data = f.read()
    count, foot = struct.unpack_from("<IQ", data, len(data) - 64 + 12)
    for k in (0, 2):  # flip one payload byte of blobs 0 and 2
        off = struct.unpack_from("<Q", data, foot + 56 * k + 32)[0]
        f.seek(off + 16 + 10)
        b = f.read(1)
        f.seek(off + 16 + 10)
        f.write(bytes([b[0] ^ 0x5a]))
PY
expect_exit 1 "$BKR" -r "$R" verify --read-data --json
python3 - "$T/out" >"$T/damaged" <<'PY'
import json, sys
for p in json.load(open(sys.argv[1]))["problems"]:
    if p["kind"] == "damaged-file":
        print(p["path"])
PY
[ "$(wc -l <"$T/damaged")" = 2 ] || fail "verify should name two damaged files: $(cat "$T/damaged")"
# the record: when, what, the result and the damaged blobs
python3 - "$R/records" <<'PY' || fail "verify --read-data left no usable record"
import glob, json, sys
recs = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/*.json"))]
v = [r for r in recs if r["kind"] == "verify"]
assert len(v) == 1, recs
r = v[-1]
assert r["read_data"] is True and r["result"] == "problems" and r["time"].endswith("Z"), r
assert len(r["damaged_blobs"]) == 2 and r["damaged_files"] == 2 and r["errors"] > 0, r
PY
changed=$(sed -n 2p "$T/damaged")
kept=$(sed -n 1p "$T/damaged")
echo "changed since the backup" >>"$ws/${changed#ws/}"
expect_exit 1 "$BKR" -r "$R" repair --json
json_ok "$T/out"
python3 - "$T/out" "$kept" "$changed" <<'PY' || fail "repair does not say which damaged files a backup can heal"
import json, sys
o, kept, changed = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
assert o["damaged_dropped"] == 2 and o["damaged_files"] == 2 and o["healable_files"] == 1, o
files = {p["path"]: p for p in o["problems"] if p["kind"] == "damaged-file"}
assert files[kept]["healable"] is True and files[changed]["healable"] is False, files
PY
expect_exit 1 "$BKR" -r "$R" repair
grep -q "no intact copy" "$T/out" || fail "repair does not say the changed file has no intact copy: $(cat "$T/out")"
# until then verify names them as damaged, taken out by repair (not as a lost index)
expect_exit 1 "$BKR" -r "$R" verify --read-data
grep -q "bkr repair took it out of the index" "$T/out" || fail "verify does not say repair took the blob out: $(cat "$T/out")"
grep -q "keep this pack\|index file was lost" "$T/out" && fail "verify takes a repaired blob for a lost index file: $(cat "$T/out")"
# the next backup (incremental: the unchanged file must be read again) stores the bytes again
expect_exit 0 "$BKR" -q -r "$R" create "$ws"
second=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
[ "$second" != "$first" ] || fail "no second backup"
expect_exit 0 "$BKR" -r "$R" verify "$second" --read-data
expect_exit 1 "$BKR" -r "$R" verify "$first" --read-data --json
python3 - "$T/out" "$changed" <<'PY' || fail "after the heal, the first backup should miss only the changed file"
import json, sys
probs = [p for p in json.load(open(sys.argv[1]))["problems"] if p["error"]]
assert probs and all(p.get("path") == sys.argv[2] for p in probs), probs
PY
pass "verify records the damage; repair takes it out and names what a backup can heal; the next backup stores it again"

# The healed file reads byte-exact through a real mount, in both backups; the
# one with no live copy answers EIO rather than wrong bytes.
bkrfs_fg "$R" "$T/mnt" "$T/bkrfs.log"
cmp "$T/mnt/by-id/$first/$kept" "$T/gold-heal/${kept#ws/}" || fail "the healed file does not read exactly through the mount (first backup)"
cmp "$T/mnt/by-id/$second/$kept" "$T/gold-heal/${kept#ws/}" || fail "the healed file does not read exactly through the mount (second backup)"
cmp "$T/mnt/by-id/$second/$changed" "$ws/${changed#ws/}" || fail "the changed file does not read exactly through the mount"
cat "$T/mnt/by-id/$first/$changed" >/dev/null 2>&1 && fail "the file with no intact copy read without an error"
fusermount3 -u "$T/mnt"
wait "$DAEMON" || fail "bkrfs exited with an error: $(cat "$T/bkrfs.log")"
pass "after the heal the file reads byte-exact through bkrfs"

# Another repair changes nothing: the damaged entries stay out (their packs'
# footers still name them), and the healed blob reads fine.
expect_exit 1 "$BKR" -r "$R" repair --json
python3 - "$T/out" <<'PY' || fail "a repair after the heal is not a no-op"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["rewritten"] is False and o["added"] == 0 and o["damaged_dropped"] == 0 and o["damaged_healed"] == 1, o
assert o["damaged_files"] == 1 and o["healable_files"] == 0, o
PY
pass "repair after a heal has nothing to do"

# A blob stored twice: a killed backup's pack (never indexed, a leftover) and
# the next backup's, which the index names and the backups read.  The leftover
# copy is damaged, and no verify reads it (verify --read-data reads what the
# index names).  Repair indexes both packs' footers; the index file holds one
# entry a blob, and it must stay the intact copy the index had: taking the
# leftover's instead made a repository that restored exactly fail to restore
# (and prune would then remove the intact pack as a leftover).  A second
# repair has nothing to do.
R2=$T/repo-twice
ws2=$T/ws-twice
mkdir -p "$ws2"
head -c 3000000 /dev/urandom >"$ws2/big.bin"
"$BKR" init -r "$R2" >/dev/null
cp -a "$R2" "$T/repo-twice.empty"
# killed at its N-th rename: the first N after which the data pack is published
# and neither the index file nor the manifest is (the renames' order varies)
leftover=
for n in 1 2 3 4 5 6; do
	rm -rf "$R2" && cp -a "$T/repo-twice.empty" "$R2"
	expect_exit 137 env BKR_FAULT=rename:$n:crash "$BKR" -r "$R2" create "$ws2"
	leftover=$(find "$R2/data" -name '*.pack')
	[ -z "$leftover" ] || break
done
[ "$(echo "$leftover" | wc -w)" = 1 ] && [ -z "$(find "$R2/index" "$R2/backups" -name '*.idx' -o -name '*.json')" ] ||
	fail "no killed backup left one data pack and no index file nor backup: $(find "$R2" -type f)"
# the next backup's pack sorting after the leftover, so that the leftover is
# the first copy of each blob by pack (the one kept before).  Pack ids are
# random and a plain pack does not hold its own id: the leftover is renamed to
# the lowest id instead of retrying backups until one sorts after it (with 20
# tries that failed whenever the leftover's random id sorted high, 1 run in 21).
mkdir -p "$R2/data/00"
mv "$leftover" "$R2/data/00/00000000000000000000000000000000.pack"
rmdir "${leftover%/*}" 2>/dev/null || true
leftover=$R2/data/00/00000000000000000000000000000000.pack
cp -a "$R2" "$T/repo-twice.killed"
expect_exit 0 "$BKR" -q -r "$R2" create "$ws2"
good=$(find "$R2/data" -name '*.pack' ! -path "$leftover")
[ "$(echo "$good" | wc -w)" = 1 ] || fail "the second backup did not store the blobs again in one pack"
[[ ${good##*/} > ${leftover##*/} ]] || fail "the second backup's pack does not sort after the leftover"
python3 - "$leftover" "$ws2/big.bin" <<'PY' || fail "the leftover pack does not hold the file's bytes"
import sys
pack, f = sys.argv[1], sys.argv[2]
pat = open(f, "rb").read()[1000:1064]
b = open(pack, "rb").read()
i = b.find(pat)
assert i >= 0
with open(pack, "r+b") as w:
    w.seek(i + 10)
    w.write(bytes([b[i + 10] ^ 0x40]))
PY
expect_exit 0 "$BKR" -r "$R2" verify --read-data
expect_exit 0 "$BKR" -r "$R2" repair --json
cp "$T/out" "$T/repair.json"
rm -rf "$T/restore"
expect_exit 0 "$BKR" -r "$R2" restore latest --target "$T/restore"
cmp "$ws2/big.bin" "$T/restore/ws-twice/big.bin" || fail "the file stored twice does not restore exactly after repair"
json_assert "$T/repair.json" 'r["added"] == 0 and r["entries_after"] == r["entries_before"] and r["rewritten"] is False'
expect_exit 0 "$BKR" -r "$R2" verify --read-data
# index files lost: the rebuilt index says what it holds, and the next repair has nothing to do
rm -f "$R2"/index/*.idx
expect_exit 0 "$BKR" -r "$R2" repair --json
json_assert "$T/out" 'r["entries_before"] == 0 and r["added"] == r["entries_after"] and r["rewritten"] is True'
after=$(json_field "$T/out" entries_after)
python3 - "$R2" "$after" <<'PY' || fail "the rebuilt index file does not hold the entries repair reported"
import glob, os, sys
(idx,) = glob.glob(sys.argv[1] + "/index/*.idx")
n = int(sys.argv[2])
# header 32 bytes, no superseded ids, 64 bytes an entry, 32 bytes of trailer
assert os.path.getsize(idx) == 32 + 64 * n + 32, (os.path.getsize(idx), n)
PY
expect_exit 0 "$BKR" -r "$R2" repair --json
json_assert "$T/out" 'r["added"] == 0 and r["rewritten"] is False'
pass "repair keeps the intact copy of a blob stored twice, and says what the index file holds"

# The other way round: the indexed pack is truncated (its footer and the end of
# its last blob gone), the leftover intact.  Of a blob's entries repair keeps
# one in a pack whose footer reads, the leftover's: the file restores exactly.
rm -rf "$R2" && cp -a "$T/repo-twice.killed" "$R2"
expect_exit 0 "$BKR" -q -r "$R2" create "$ws2"
good=$(find "$R2/data" -name '*.pack' ! -path "$leftover")
truncate -s -5000 "$good"
expect_exit 1 "$BKR" -r "$R2" repair
rm -rf "$T/restore"
expect_exit 0 "$BKR" -r "$R2" restore latest --target "$T/restore"
cmp "$ws2/big.bin" "$T/restore/ws-twice/big.bin" || fail "the file stored twice does not restore from the intact pack after repair"
pass "repair keeps a blob's copy in a pack whose footer reads over one in a truncated pack"

# config.json damaged: the repository opens from its copy (with a warning) and
# repair rewrites config.json from it; a repair then finds nothing to do.
cp "$R/config.json" "$T/config.good"
printf 'x' | dd of="$R/config.json" bs=1 seek=30 conv=notrunc status=none
expect_exit 0 "$BKR" -r "$R" list
grep -q "config.copy.json" "$T/err" || fail "no warning that config.json is damaged: $(cat "$T/err")"
"$BKR" -r "$R" repair --json >"$T/out" 2>"$T/err" || true
grep -q '"config_rewritten":"config.json"' "$T/out" || fail "repair did not rewrite config.json: $(cat "$T/out" "$T/err")"
cmp "$R/config.json" "$T/config.good" || fail "the rewritten config.json differs from the original"
expect_exit 0 "$BKR" -r "$R" list
[ ! -s "$T/err" ] || fail "a warning after the repair: $(cat "$T/err")"
pass "repair rewrites a damaged config.json from its copy"

# A recorded tier that is not mounted: repair refuses before changing anything.
mkdir -p "$T/warm"
printf '{"repository":"%s","workspace_root":"%s","tiers":{"warm":{"path":"%s","after_days":0}}}\n' "$R" "$ws" "$T/warm" >"$T/tier.json"
if "$BKR" -c "$T/tier.json" tier migrate >/dev/null 2>&1 && [ -n "$(ls "$T/warm")" ]; then
	mv "$T/warm" "$T/warm.away"
	cp -a "$R/index" "$T/index.before"
	expect_exit 3 "$BKR" -r "$R" repair
	one_line_error
	grep -q "not mounted" "$T/err" || fail "repair did not name the unmounted tier: $(cat "$T/err")"
	diff -r "$R/index" "$T/index.before" >/dev/null || fail "repair changed the index with a tier not mounted"
	mv "$T/warm.away" "$T/warm"
	pass "repair refuses while a recorded tier is not mounted"
else
	fail "tier migrate did not set up a warm tier for the test"
fi

# Messages kept whole: a repository and a workspace under ~1000-byte paths.
# verify names the damaged blob's pack and ends with what repair does; repair
# names the live file whole and ends with its verdict (both were cut at a
# fixed 700 / 1200 bytes).
deep=$T/$(printf 'a%.0s' {1..240})/$(printf 'b%.0s' {1..240})/$(printf 'c%.0s' {1..240})/$(printf 'd%.0s' {1..240})
R=$deep/repo
ws=$deep/ws-$(printf 'e%.0s' {1..100})
mkdir -p "$ws"
head -c 100000 /dev/urandom >"$ws/only.bin"
expect_exit 0 "$BKR" -q init -r "$R"
expect_exit 0 "$BKR" -q -r "$R" create "$ws"
pack=$(find "$R/data" -name '*.pack' | head -1)
python3 - "$pack" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    data = f.read()
    count, foot = struct.unpack_from("<IQ", data, len(data) - 64 + 12)
    off = struct.unpack_from("<Q", data, foot + 32)[0]
    f.seek(off + 16 + 10)
    b = f.read(1)
    f.seek(off + 16 + 10)
    f.write(bytes([b[0] ^ 0x5a]))
PY
expect_exit 1 "$BKR" -r "$R" verify --read-data
grep -qF "$pack" "$T/out" || fail "verify cut the damaged pack's path: $(cat "$T/out")"
grep -q "takes it out of the index, writing one that replaces that file)$" "$T/out" ||
	fail "verify cut the end of the damaged blob's message: $(cat "$T/out")"
echo "changed since the backup" >>"$ws/only.bin"
expect_exit 1 "$BKR" -r "$R" repair
grep -qF "the live file $ws/only.bin differs or is gone: no intact copy exists" "$T/out" ||
	fail "repair cut the damaged file's message: $(cat "$T/out")"
pass "verify and repair keep messages naming ~1000-byte paths whole"

# A pack missing from a repository and a tier both under ~1000-byte paths:
# verify's "searched ..." and the file's "missing: its pack is in none of
# ..." and repair's "in none of ..." name every place whole (cut at a fixed
# 400 / 600 / 600 bytes before).
R=$deep/repo-tiered
W=$deep/warm-$(printf 'w%.0s' {1..100})
mkdir -p "$W"
expect_exit 0 "$BKR" -q init -r "$R"
expect_exit 0 "$BKR" -q -r "$R" create "$ws"
printf '{"repository":"%s","workspace_root":"%s","tiers":{"warm":{"path":"%s","after_days":0}}}\n' "$R" "$ws" "$W" >"$T/tier-deep.json"
expect_exit 0 "$BKR" -c "$T/tier-deep.json" tier migrate
pack=$(find "$W/data" -name '*.pack' | head -1)
[ -n "$pack" ] || fail "tier migrate moved no data pack to the deep tier"
rm -f "$pack"
places="$R, tier warm at $W"
expect_exit 1 "$BKR" -r "$R" verify
grep -qF "(searched $places: is the right disk mounted at each tier?)" "$T/out" ||
	fail "verify cut where the missing pack was searched: $(cat "$T/out")"
grep -qF "missing: its pack is in none of $places (is the right disk mounted at each tier?)" "$T/out" ||
	fail "verify cut where the missing file's pack was searched: $(cat "$T/out")"
expect_exit 1 "$BKR" -r "$R" repair --dry-run
grep -qF "named by the index is in none of $places: is the right disk mounted at each tier? Their" "$T/out" ||
	fail "repair cut where the missing pack was searched: $(cat "$T/out")"
pass "verify and repair name every place a missing pack was searched whole, under ~1000-byte paths"

# config.json and its copy both damaged, in a repository under a ~1000-byte
# path: the first one's error was kept in a fixed 600 bytes (its end, and
# which file it was, lost)
Rc=$deep/repo-config
expect_exit 0 "$BKR" -q init -r "$Rc"
printf 'garbage' >"$Rc/config.json"
printf 'junk' >"$Rc/config.copy.json"
expect_exit 4 "$BKR" -r "$Rc" list
one_line_error
grep -qF "$Rc/config.json: not a JSON object; and its copy: $Rc/config.copy.json: not a JSON object" "$T/err" ||
	fail "the damaged config.json's error was cut: $(cat "$T/err")"
pass "config.json and its copy damaged under a ~1000-byte path: both errors named whole"

# delete's lookup error, kept across its check of the trash and backups/,
# names the repository whole (cut at a fixed 1024 bytes before)
expect_exit 3 "$BKR" -r "$R" delete 20990101-000000-nope
grep -qF "no such backup in $R" "$T/err" || fail "delete cut its lookup error: $(cat "$T/err")"
pass "delete keeps its lookup error naming a ~1000-byte repository path whole"

# --- an index file damaged in place (a flipped bit) whose entries the packs' footers give
# again exactly: the rebuilt index file has the damaged one's name (the name is the hash of
# its bytes), and its publish found the name taken ('same name, same bytes'), so repair
# moved the damaged file into the trash and left index/ empty while saying 'rewritten as
# one index file' (exit 0): nothing restored after the repair.  The damaged file now goes
# into the trash first, then the new one is published.  Plain and encrypted.
ws=$T/ws
for enc in none aes-256-gcm; do
	R=$T/same-name-$enc
	export BKR_TEST_KDF_N=1024 BKR_PASSWORD='same name: correct horse'
	expect_exit 0 "$BKR" -q init -r "$R" --encryption "$enc"
	expect_exit 0 "$BKR" -q -r "$R" create "$ws"
	mapfile -t idx < <(find "$R/index" -name '*.idx')
	[ "${#idx[@]}" = 1 ] || fail "$enc: one backup should have one index file"
	size=$(stat -c %s "${idx[0]}")
	printf '\x01' | dd of="${idx[0]}" bs=1 seek=$((size - 40)) conv=notrunc status=none
	expect_exit 0 "$BKR" -r "$R" repair
	grep -qF "index/$(basename "${idx[0]}"): damaged or unknown index file: moved into trash" "$T/out" ||
		fail "$enc: repair did not name the damaged index file: $(cat "$T/out" "$T/err")"
	cmp -s "${idx[0]}" "$R/trash/$(basename "${idx[0]}")" && fail "$enc: the rebuilt index file is the damaged one"
	[ "$(find "$R/index" -name '*.idx' | wc -l)" = 1 ] ||
		fail "$enc: repair left $(find "$R/index" -name '*.idx' | wc -l) index files (1 expected)"
	expect_exit 0 "$BKR" -r "$R" verify --read-data
	rm -rf "$T/restore"
	expect_exit 0 "$BKR" -r "$R" restore latest --target "$T/restore"
	diff -r "$ws" "$T/restore/ws" >/dev/null || fail "$enc: the repaired repository does not restore exactly"
	unset BKR_TEST_KDF_N BKR_PASSWORD
done
pass "an index file damaged in place whose rebuilt copy takes its name: moved into the trash before the new one is published (plain and encrypted)"
