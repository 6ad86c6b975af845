#!/usr/bin/env bash
# bkr prune and damaged blobs, on plain and encrypted repositories:
# - a damaged blob stored once, in a pack prune wants to repack: prune leaves
#   that pack as it is (every intact blob in it stays), frees the rest, names
#   the blob and the pack in one line pointing to 'bkr repair', records the
#   damage, exits 6; then repair, a backup (the live file still has the bytes)
#   and a second prune leave a repository that verifies, every backup
#   restoring byte for byte; health reports the damage until a verify since;
# - a damaged copy of a blob stored twice, not the one readers use: verify
#   records it, so that repair takes that copy's index entry out; and prune,
#   passing over a damaged copy, records it too;
# - an I/O error (not damage) reading a blob to repack, or a copy of a blob
#   stored twice, still stops prune before it changes anything.
source "$(dirname "$0")/lib.sh"

export BKR_TEST_KDF_N=1024 # cheap keys (fault-injection builds only)
export BKR_PASSWORD='prune-damage test'
unset BKR_NEW_PASSWORD

# flip_largest_blob PACK: flip one byte inside the payload of the pack's largest
# blob (walking the plain 16-byte blob headers up to the footer: stored length
# at +4; an encrypted blob's is padded, coarsely, so the largest file's blob
# is still the largest); prints the blob's offset
flip_largest_blob() {
	python3 - "$1" <<'PY'
import struct, sys
p = sys.argv[1]
with open(p, "r+b") as f:
    data = f.read()
    foot = struct.unpack_from("<Q", data, len(data) - 64 + 16)[0]
    off, best, size = 0, None, -1
    while off < foot:
        stored = struct.unpack_from("<I", data, off + 4)[0]
        if stored > size:
            best, size = off, stored
        off += 16 + stored
    f.seek(best + 16 + 100)
    b = f.read(1)
    f.seek(best + 16 + 100)
    f.write(bytes([b[0] ^ 0x5a]))
    print(best)
PY
}

pack_hex() { basename "$1" .pack; }
ids() { "$BKR" -r "$1" list --json | python3 -c 'import json,sys; print(" ".join(b["backup_id"] for b in json.load(sys.stdin)))'; }

# restore_same REPO ID WS: backup ID restores every file of WS byte for byte
restore_same() {
	local f
	rm -rf "$T/r"
	expect_exit 0 "$BKR" -r "$1" restore "$2" --target "$T/r"
	for f in "$3"/*; do
		cmp "$f" "$T/r/$(basename "$3")/$(basename "$f")" || fail "backup $2: $(basename "$f") does not restore exactly"
	done
}

# --- a damaged blob stored once, in a pack to repack ------------------------------
once_stored() {
	local mode=$1 R=$T/repo-$1 ws=$T/ws-$1 junk=$T/junk-$1 enc=()
	[ "$mode" = encrypted ] && enc=(--encryption aes-256-gcm)
	mkdir -p "$ws" "$junk"
	expect_exit 0 "$BKR" init -r "$R" "${enc[@]}"
	# below the chunker's minimum (256 KiB): one blob each; bad.bin the largest
	head -c 100000 /dev/urandom >"$ws/keep.bin"
	head -c 130000 /dev/urandom >"$ws/gone.bin"
	head -c 180000 /dev/urandom >"$ws/bad.bin"
	expect_exit 0 "$BKR" -q -r "$R" create --type full "$ws"
	local a=$(ids "$R")
	mapfile -t dpacks < <(find "$R/data" -name '*.pack')
	[ "${#dpacks[@]}" = 1 ] || fail "$mode: the first backup should store one data pack: ${#dpacks[@]}"
	local da=${dpacks[0]}
	# the second backup keeps keep.bin and bad.bin: the first pack is a third unused
	rm "$ws/gone.bin"
	head -c 120000 /dev/urandom >"$ws/other.bin"
	expect_exit 0 "$BKR" -q -r "$R" create --type full "$ws"
	local b=$(ids "$R") && b=${b#"$a "}
	# a backup of other data, deleted: its packs are wholly unused
	head -c 140000 /dev/urandom >"$junk/junk.bin"
	find "$R/data" -name '*.pack' | sort >"$T/before"
	expect_exit 0 "$BKR" -q -r "$R" create --type full "$junk"
	local c=$(ids "$R") && c=${c##* }
	local dc=$(find "$R/data" -name '*.pack' | sort | comm -13 "$T/before" -)
	[ -n "$dc" ] && [ -e "$dc" ] || fail "$mode: no data pack of the junk backup"
	expect_exit 0 "$BKR" -q -r "$R" delete "$a" "$c"
	cp -a "$R" "$T/repo-$mode-clean"
	flip_largest_blob "$da" >/dev/null

	# the dry run reads the blobs a repack would copy: it said all was well
	# (exit 0) where the real run leaves the pack and exits 6
	(cd "$R" && find . -type f -exec sha256sum {} + | sort) >"$T/files-before"
	expect_exit 6 "$BKR" -r "$R" prune --grace 0 --dry-run --json
	[ "$(grep -c 'cannot be read intact' "$T/err")" = 1 ] && grep -q "pack $(pack_hex "$da")" "$T/err" &&
		grep -q "a real run records the damage" "$T/err" || { cat "$T/err"; fail "$mode: prune --dry-run does not name the damaged blob"; }
	json_assert "$T/out" 'r["dry_run"] and r["damaged_blobs"] == 1 and r["damaged_packs"] == 1 and not r["damage_recorded"]' ||
		fail "$mode: prune --dry-run report: $(cat "$T/out")"
	(cd "$R" && find . -type f -exec sha256sum {} + | sort) | cmp -s - "$T/files-before" || fail "$mode: prune --dry-run changed the repository"

	expect_exit 6 "$BKR" -r "$R" prune --grace 0
	# one line naming the blob and the pack, pointing to repair
	[ "$(grep -c 'cannot be read intact' "$T/err")" = 1 ] && grep -q "pack $(pack_hex "$da")" "$T/err" &&
		grep -q "bkr repair" "$T/err" && grep -q "left as it is\|leaves that pack as it is" "$T/err" ||
		{ cat "$T/err"; fail "$mode: prune does not name the damaged blob and its pack in one line"; }
	[ "$(wc -l <"$T/err")" = 1 ] || { cat "$T/err"; fail "$mode: prune said more than one line on stderr"; }
	grep -q "left as it was, not repacked" "$T/out" || fail "$mode: the report does not say a pack was left: $(cat "$T/out")"
	# the damaged pack stays where it was; the other garbage is gone
	[ -e "$da" ] || fail "$mode: prune moved the pack holding the damaged blob"
	[ ! -e "$dc" ] || fail "$mode: prune did not free the unused pack of the deleted backup"
	ls "$R/trash" | grep -q . && fail "$mode: --grace 0 left something in the trash: $(ls -R "$R/trash")"
	# the damage is recorded where repair reads it (records are sealed in an
	# encrypted repository: there repair's dry run tells)
	local blob=$(grep -o 'blob [0-9a-f]\{64\}' "$T/err" | head -1) && blob=${blob#blob }
	[ -n "$blob" ] || fail "$mode: the line names no blob: $(cat "$T/err")"
	if [ "$mode" = plain ]; then
		python3 - "$R/records" "$blob" "$(pack_hex "$da")" <<'PY' || fail "$mode: prune left no damage record naming the blob"
import glob, json, sys
recs = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/*.json"))]
d = [r for r in recs if r.get("kind") == "damage"]
assert len(d) == 1 and d[0]["by"] == "prune" and d[0]["damaged_blobs"] == [sys.argv[2]] and d[0]["packs"] == [sys.argv[3]], recs
PY
	fi
	expect_exit 1 "$BKR" -r "$R" repair --dry-run --json
	python3 - "$T/out" "$blob" <<'PY' || fail "$mode: repair does not find the damage prune recorded: $(cat "$T/out")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["damaged_recorded"] == 1 and [p for p in r["problems"] if p["kind"] == "damaged-blob" and p["object"] == sys.argv[2]], r
assert r["damage_records_resolved"] == 0, r  # the damaged copy is still in its pack
PY
	# the health report says so until a verify has judged the repository since
	printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s"}\n' "$R" "$ws" "$T/logs" >"$T/health-$mode.json"
	expect_exit 1 "$BKR" -c "$T/health-$mode.json" health
	grep -q "prune found damage in 1 blob at .*, after the last verify --read-data: run 'bkr repair'" "$T/out" ||
		fail "$mode: health does not report the damage prune met: $(cat "$T/out")"
	# every intact file still restores, from the pack left in place
	rm -rf "$T/r"
	expect_exit 6 "$BKR" -r "$R" restore "$b" --target "$T/r"
	cmp "$ws/keep.bin" "$T/r/ws-$mode/keep.bin" && cmp "$ws/other.bin" "$T/r/ws-$mode/other.bin" ||
		fail "$mode: an intact file does not restore after prune met the damage"
	# a second prune meets it again, the same way (--json, -q: the line stays)
	expect_exit 6 "$BKR" -q -r "$R" prune --grace 0 --json
	json_assert "$T/out" 'r["damaged_blobs"] == 1 and r["damaged_packs"] == 1 and r["repacked_packs"] == 0 and r["damage_recorded"] is True' ||
		fail "$mode: prune --json does not report the damaged blob and pack: $(cat "$T/out")"
	[ "$(grep -c 'cannot be read intact' "$T/err")" = 1 ] || fail "$mode: -q hid why prune exits 6: $(cat "$T/err")"
	[ -e "$da" ] || fail "$mode: the second prune moved the pack holding the damaged blob"

	# repair takes the damaged blob out (the live file has its bytes: healable) ...
	expect_exit 1 "$BKR" -r "$R" repair --json
	json_assert "$T/out" 'r["damaged_dropped"] == 1 and r["healable_files"] == 1 and r["damage_records_resolved"] == 0' ||
		fail "$mode: repair did not take the recorded damaged blob out: $(cat "$T/out")"
	# the damaged copy is still in its pack: the records stay (without them a
	# repair would index it again from the pack's footer)
	expect_exit 1 "$BKR" -r "$R" repair --json
	json_assert "$T/out" 'r["damaged_recorded"] == 1 and r["damage_records_resolved"] == 0 and not r["rewritten"]' ||
		fail "$mode: a second repair before the pack is repacked: $(cat "$T/out")"
	# ... a backup stores it again, and prune now repacks the pack
	expect_exit 0 "$BKR" -q -r "$R" create --type incremental "$ws"
	expect_exit 0 "$BKR" -r "$R" prune --grace 0 --json
	json_assert "$T/out" 'r["damaged_blobs"] == 0 and r["repacked_packs"] >= 1' ||
		fail "$mode: prune after repair: $(cat "$T/out")"
	[ ! -e "$da" ] || fail "$mode: the damaged pack was not repacked once repair took its damaged blob out"
	# the two damage records (one per prune) have said all they had to: the
	# blob reads (its new copy), the damaged one is gone.  Repair moves them
	# into trash, so no later repair reads them again and health stops
	# reporting them (they stayed in records/ for ever)
	expect_exit 0 "$BKR" -r "$R" repair --json
	json_assert "$T/out" 'r["damaged_recorded"] == 1 and r["damaged_healed"] == 1 and r["damage_records_resolved"] == 2' ||
		fail "$mode: repair after the repack did not resolve the damage records: $(cat "$T/out")"
	expect_exit 0 "$BKR" -r "$R" repair --json
	json_assert "$T/out" 'r["damaged_recorded"] == 0 and r["damage_records_resolved"] == 0' ||
		fail "$mode: a repair still reads the resolved damage records: $(cat "$T/out")"
	"$BKR" -c "$T/health-$mode.json" health >"$T/out" 2>&1 || true
	grep -q "prune found damage" "$T/out" && fail "$mode: health still reports the damage repair resolved: $(cat "$T/out")"
	expect_exit 0 "$BKR" -r "$R" verify --read-data
	for id in $(ids "$R"); do restore_same "$R" "$id" "$ws"; done
	expect_exit 0 "$BKR" -c "$T/health-$mode.json" health
	pass "$mode: a damaged blob stored once in a pack to repack: prune leaves the pack, frees the rest, says so (exit 6), records it; repair, a backup and prune leave a verified repository"
}

once_stored plain
once_stored encrypted

# --- cleanup and the daily routine: the same (exit 6; the step has problems) -----
R=$T/repo-cleanup
rm -rf "$R" && cp -a "$T/repo-plain-clean" "$R"
da=$(find "$R/data" -name '*.pack' | sort | head -1)
for p in $(find "$R/data" -name '*.pack'); do
	# the pack the first backup wrote: three blobs, one of them unused now
	[ "$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); print(struct.unpack_from("<I", d, len(d)-64+12)[0])' "$p")" = 3 ] && da=$p
done
flip_largest_blob "$da" >/dev/null
expect_exit 6 "$BKR" -r "$R" cleanup --keep-last 10
grep -q "cannot be read intact.*bkr repair" "$T/err" || fail "cleanup's prune does not name the damaged blob: $(cat "$T/err")"
[ -e "$da" ] || fail "cleanup's prune moved the pack holding the damaged blob"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s"}\n' "$R" "$T/ws-plain" "$T/logs" >"$T/cfg.json"
expect_exit 1 "$BKR" -c "$T/cfg.json" routine daily --json
python3 - "$T/out" <<'PY' || fail "the daily routine does not report prune's damage: $(cat "$T/out")"
import json, sys
o = json.load(open(sys.argv[1]))
st = {s["step"]: s for s in o["steps"]}
assert st["cleanup"]["status"] == "problems" and "cannot be read intact" in st["cleanup"]["message"], st["cleanup"]
assert [a for a in o["alerts"] if a["kind"] == "damage" and "bkr repair" in a["action"]], o["alerts"]
PY
[ -e "$da" ] || fail "the routine's prune moved the pack holding the damaged blob"
pass "cleanup exits 6 and the daily routine's cleanup step has problems (a damage alert) when prune leaves a damaged blob"

# --- damage that is no longer there: a whole verify --read-data resolves its record ---
# A damage record (prune's) stayed until a repair found it resolved, also when
# the damage went (a pack put back from a copy, a read that fails no more) and
# verify --read-data read every copy whole since.  Now that verify moves it into
# the trash (as repair does), once every copy any pack holds of its blobs reads:
# not while the damage is there, nor while a damaged copy repair took out of
# the index is still in a pack (without the record a repair would index it
# again from the pack's footer).  Verify records stay (history); health stops
# reporting the damage.
three_blob_pack() {
	local p
	for p in $(find "$1/data" -name '*.pack'); do
		[ "$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); print(struct.unpack_from("<I", d, len(d)-64+12)[0])' "$p")" = 3 ] &&
			echo "$p"
	done
	return 0
}
resolved_count() { python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); print(o["damage_records_resolved"], o["ok"])' "$T/out"; }
damage_records() { grep -l '"kind":"damage"' "$1"/records/*.json 2>/dev/null | wc -l; }
R=$T/repo-undo
rm -rf "$R" && cp -a "$T/repo-plain-clean" "$R"
da=$(three_blob_pack "$R")
[ -n "$da" ] || fail "no pack of three blobs in $R"
cp "$da" "$T/undo.pack"
flip_largest_blob "$da" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s"}\n' "$R" "$T/ws-plain" "$T/logs-undo" >"$T/undo.json"
expect_exit 1 "$BKR" -r "$R" verify --read-data
expect_exit 6 "$BKR" -r "$R" prune --grace 0
[ "$(damage_records "$R")" = 1 ] || fail "prune recorded no damage"
# a verify of the structure alone reads no blob: health still reports the
# damage prune met (a newer verify of any kind hid it)
expect_exit 0 "$BKR" -r "$R" verify
expect_exit 1 "$BKR" -c "$T/undo.json" health
grep -q "prune found damage in 1 blob at .*, after the last verify --read-data: run 'bkr repair'" "$T/out" ||
	fail "a verify that read no blob hid the damage prune met: $(cat "$T/out")"
# the damage is there: a verify finds it again and resolves nothing
expect_exit 1 "$BKR" -r "$R" verify --read-data --json
[ "$(resolved_count)" = "0 False" ] && [ "$(damage_records "$R")" = 1 ] ||
	fail "a verify that found the damage resolved its record: $(cat "$T/out")"
expect_exit 1 "$BKR" -c "$T/undo.json" health
# the damage goes: the pack put back from a copy
cp "$T/undo.pack" "$da"
expect_exit 0 "$BKR" -r "$R" verify --read-data
grep -q "^1 damage record (by prune) resolved: every copy of its blobs reads; moved it into trash$" "$T/err" ||
	fail "verify does not say it resolved the damage record: $(cat "$T/err")"
[ "$(damage_records "$R")" = 0 ] && grep -rlq '"kind":"damage"' "$R/trash" ||
	fail "the resolved damage record is not in the trash: $(ls -R "$R/records" "$R/trash")"
[ "$(grep -l '"kind":"verify"' "$R"/records/*.json | wc -l)" = 4 ] || fail "a verify record was moved: $(ls "$R/records")"
expect_exit 0 "$BKR" -c "$T/undo.json" health
grep -q "prune found damage" "$T/out" && fail "health still reports damage: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" repair --dry-run --json
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["damage_records_resolved"] == 0 and r["damaged_dropped"] == 0 and r["damaged_files"] == 0, r' "$T/out" ||
	fail "repair after the resolving verify: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" verify --read-data --json
[ "$(resolved_count)" = "0 True" ] || fail "a second verify: $(cat "$T/out")"
pass "damage that went (the pack put back): verify --read-data resolves prune's record (trash), health is healthy; not while it is there"

# the damaged copy out of the index but still in its pack, the file stored
# again: every file reads, and the record stays until prune repacks the pack
R=$T/repo-outside
rm -rf "$R" && cp -a "$T/repo-plain-clean" "$R"
da=$(three_blob_pack "$R")
flip_largest_blob "$da" >/dev/null
expect_exit 6 "$BKR" -r "$R" prune --grace 0
expect_exit 1 "$BKR" -r "$R" repair
expect_exit 0 "$BKR" -q -r "$R" create --type incremental "$T/ws-plain"
expect_exit 0 "$BKR" -r "$R" verify --read-data --json
[ "$(resolved_count)" = "0 True" ] && [ "$(damage_records "$R")" = 1 ] ||
	fail "verify resolved a damage record while the damaged copy is still in its pack: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" repair --dry-run --json
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["damaged_recorded"] == 1 and r["added"] == 0, r' "$T/out" ||
	fail "repair would index the damaged copy again: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R" prune --grace 0
[ ! -e "$da" ] || fail "prune did not repack the damaged pack"
expect_exit 0 "$BKR" -r "$R" verify --read-data --json
[ "$(resolved_count)" = "1 True" ] && [ "$(damage_records "$R")" = 0 ] ||
	fail "verify after the repack did not resolve the damage record: $(cat "$T/out")"
pass "a damaged copy out of the index but in its pack keeps the record through verify; once repacked, verify resolves it"

# eio_stops CLEAN PATTERN WHAT: the N-th read fails with EIO (BKR_FAULT), for
# the first N whose error says PATTERN (a read of WHAT): prune exits 7 with one
# line saying it stops before changing anything, the repository unchanged and
# no damage recorded (an error that says nothing about the bytes is no damage)
eio_stops() {
	local R=$T/repo-eio n got before
	# the files of each fresh copy (cp -a of CLEAN): summed once, not once a round
	before=$(cd "$1" && find . -type f ! -path './locks/*' | sort | xargs sha256sum)
	for n in $(seq 1 200); do
		rm -rf "$R" && cp -a "$1" "$R"
		got=0
		BKR_FAULT=read:$n "$BKR" -r "$R" prune --grace 0 >"$T/out" 2>"$T/err" || got=$?
		grep -q "$2" "$T/err" || continue
		[ "$got" = 7 ] || fail "an I/O error reading $3: exit $got, not 7: $(cat "$T/err")"
		one_line_error
		grep -q "stops before changing anything" "$T/err" || fail "prune does not say it changed nothing: $(cat "$T/err")"
		[ "$(cd "$R" && find . -type f ! -path './locks/*' | sort | xargs sha256sum)" = "$before" ] ||
			fail "prune changed the repository after an I/O error reading $3"
		grep -rlq '"kind":"damage"' "$R/records" 2>/dev/null && fail "an I/O error reading $3 was recorded as damage"
		return 0
	done
	fail "no read of $3 was found to fail"
}

# --- a read error that says nothing about the bytes still stops prune first -------
# (4cb1381's rule)
eio_stops "$T/repo-plain-clean" "cannot be read to repack it" "a blob to repack"
pass "an I/O error reading a blob to repack stops prune before it changes anything (exit 7), recording no damage"

# --- a damaged copy readers do not use: verify records it, repair takes it out ----
dup_copy() {
	local mode=$1 R=$T/dup-$1 ws=$T/dupws-$1 enc=()
	[ "$mode" = encrypted ] && enc=(--encryption aes-256-gcm)
	mkdir -p "$ws"
	head -c 200000 /dev/urandom >"$ws/one.bin"
	expect_exit 0 "$BKR" init -r "$R" "${enc[@]}"
	# two backups store the same blob at once (test_race's recipe): two copies
	BKR_FAULT=write:1:stop "$BKR" -q -r "$R" create --type full "$ws" >/dev/null 2>"$T/dup1.err" &
	local pid=$!
	wait_stopped "$pid" || fail "$mode: the first backup did not stop at its first write: $(cat "$T/dup1.err")"
	expect_exit 0 "$BKR" -q -r "$R" create --type full "$ws"
	kill -CONT "$pid"
	wait "$pid" || fail "$mode: the first backup failed: $(cat "$T/dup1.err")"
	mapfile -t dpk < <(find "$R/data" -name '*.pack')
	[ "${#dpk[@]}" = 2 ] || fail "$mode: the two backups did not each store the blob: ${#dpk[@]} data packs"
	cp -a "$R" "$T/dup-$mode-clean"
	# damage the copy readers do not use: cat reads the one they use
	local unused=
	for p in "${dpk[@]}"; do
		rm -rf "$R" && cp -a "$T/dup-$mode-clean" "$R"
		flip_largest_blob "$p" >/dev/null
		if "$BKR" -r "$R" cat latest "dupws-$mode/one.bin" >/dev/null 2>&1; then
			unused=$p
			break
		fi
	done
	[ -n "$unused" ] || fail "$mode: no copy of the blob is the one readers pass over"
	expect_exit 1 "$BKR" -r "$R" verify --read-data --json
	python3 - "$T/out" <<'PY' || fail "$mode: verify should find the damaged copy and no damaged file: $(cat "$T/out")"
import json, sys
o = json.load(open(sys.argv[1]))
assert [p for p in o["problems"] if p["kind"] == "blob"], o
assert not [p for p in o["problems"] if p["kind"] in ("damaged-file", "missing")], o  # every file reads
PY
	if [ "$mode" = plain ]; then
		python3 - "$R/records" <<'PY' || fail "$mode: verify did not record the damaged copy"
import glob, json, sys
recs = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/*.json"))]
v = [r for r in recs if r.get("kind") == "verify"]
assert len(v) == 1 and len(v[0]["damaged_blobs"]) == 1, v
PY
	fi
	expect_exit 0 "$BKR" -r "$R" repair --json
	json_assert "$T/out" 'r["damaged_dropped"] == 1 and r["damaged_files"] == 0' ||
		fail "$mode: repair did not take the damaged copy's entry out: $(cat "$T/out")"
	expect_exit 0 "$BKR" -r "$R" verify --read-data
	for id in $(ids "$R"); do restore_same "$R" "$id" "$ws"; done
	# prune, when the copy it prefers is the damaged one, records it as well
	local other= met=
	for p in "${dpk[@]}"; do [ "$p" = "$unused" ] || other=$p; done
	for p in "$unused" "$other"; do
		rm -rf "$R" && cp -a "$T/dup-$mode-clean" "$R"
		flip_largest_blob "$p" >/dev/null
		expect_exit 0 "$BKR" -r "$R" prune --json
		python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["damaged_copies"] == 1 else 3)' "$T/out" || continue
		json_assert "$T/out" 'r["damaged_blobs"] == 0 and r["damage_recorded"] is True' ||
			fail "$mode: prune passed over a damaged copy without recording it: $(cat "$T/out")"
		expect_exit 0 "$BKR" -r "$R" repair --dry-run --json
		json_assert "$T/out" 'r["damaged_recorded"] == 1' ||
			fail "$mode: prune's damage record does not name the damaged copy: $(cat "$T/out")"
		expect_exit 0 "$BKR" -r "$R" verify --read-data
		met=1
		break
	done
	[ -n "$met" ] || fail "$mode: prune passed over neither damaged copy"
	pass "$mode: a damaged copy readers do not use: verify records it, repair takes it out; prune records one it passes over"
}

dup_copy plain
dup_copy encrypted

# --- an I/O error reading a copy of a blob stored twice stops prune too -----------
# (it used to pass the copy over as damaged and drop it)
eio_stops "$T/dup-plain-clean" "stored more than once and a copy cannot be checked" "a copy of a blob stored twice"
pass "an I/O error reading a copy of a blob stored twice stops prune before it changes anything (exit 7)"

# --- health names a damaged manifest ---------------------------------------------
# It was left out without a word: a repository whose newest backup's manifest
# is damaged (prune and the daily cleanup stop on it; list exits 4) was
# "healthy" while an older backup was fresh enough.
mkdir -p "$T/hws"
printf 'one\n' >"$T/hws/a"
"$BKR" init -r "$T/hrepo" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "hws", "paths": ["%s"], "schedule": "daily"}]}\n' \
	"$T/hrepo" "$T/hws" "$T/hlogs" "$T/hws" >"$T/h.json"
expect_exit 0 "$BKR" -q -c "$T/h.json" create --all
printf 'two\n' >"$T/hws/a"
expect_exit 0 "$BKR" -q -c "$T/h.json" create --all
expect_exit 0 "$BKR" -c "$T/h.json" health
newest=$("$BKR" -r "$T/hrepo" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
printf 'garbage' >"$T/hrepo/backups/$newest.json"
expect_exit 1 "$BKR" -c "$T/h.json" health --json
python3 - "$T/out" "$T/hrepo/backups/$newest.json" <<'PY' || fail "health --json with a damaged manifest: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
assert not h["healthy"] and h["backups"] == 1, h
assert [r for r in h["reasons"] if r.startswith("1 backup manifest is damaged (last: %s: " % sys.argv[2])], h["reasons"]
PY
expect_exit 1 "$BKR" -c "$T/h.json" health --prometheus -
grep -q '^bkr_healthy 0$' "$T/out" || fail "the metrics with a damaged manifest: $(cat "$T/out")"
pass "health names a damaged manifest as a reason (not healthy)"

# --- health names a damaged record ------------------------------------------------
# A record that is garbage, empty or fails its checksum was one warning on
# stderr: --json and the metrics said healthy while a pin, tag, hold or verify
# result in it was not applied (verify calls it an error)
mv "$T/hrepo/backups/$newest.json" "$T/hrepo-damaged-manifest.json"
expect_exit 0 "$BKR" -q -c "$T/h.json" create --all
expect_exit 0 "$BKR" -c "$T/h.json" health
mkdir -p "$T/hrepo/records"
printf 'garbage' >"$T/hrepo/records/00000000000000000001-0badf00d.json"
expect_exit 1 "$BKR" -c "$T/h.json" health --json
python3 - "$T/out" "$T/hrepo/records/00000000000000000001-0badf00d.json" <<'PY' || fail "health --json with a damaged record: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
assert not h["healthy"] and len(h["reasons"]) == 1, h
assert h["reasons"][0].startswith("1 record is damaged (last: %s): every command skips it" % sys.argv[2]), h["reasons"]
PY
expect_exit 1 "$BKR" -c "$T/h.json" health --prometheus -
grep -q '^bkr_healthy 0$' "$T/out" || fail "the metrics with a damaged record: $(cat "$T/out")"
: >"$T/hrepo/records/00000000000000000002-0badf00d.json"
expect_exit 1 "$BKR" -c "$T/h.json" health
grep -q "^  - 2 records are damaged (last: $T/hrepo/records/00000000000000000002-0badf00d.json)" "$T/out" ||
	fail "health with two damaged records: $(cat "$T/out")"
rm "$T/hrepo/records/"*-0badf00d.json
expect_exit 0 "$BKR" -c "$T/h.json" health
# ... and one too large to be read at all (more than 1 MiB)
head -c 2000000 /dev/zero | tr '\0' x >"$T/hrepo/records/00000000000000000003-0badf00d.json"
expect_exit 1 "$BKR" -c "$T/h.json" health
grep -q "^  - 1 record is damaged (last: $T/hrepo/records/00000000000000000003-0badf00d.json)" "$T/out" ||
	fail "health with a record too large to read: $(cat "$T/out")"
rm "$T/hrepo/records/"*-0badf00d.json
pass "health names damaged records as a reason (not healthy), as verify calls them errors"

# --- a record that passes its checksum but does not decode is damaged too -------
# (a verify record whose count is out of range, a tag that is a number, a pin
# whose until is no date): every reader skips it, and verify and health passed
# over it in silence; now verify names it (an error, kind record) and health
# gives it as a reason, as for a record that fails its checksum; cleanup (the
# holds' readers) warns of it.  So for a pin whose until is a string but no
# date (it was applied as a pin forever) and a hold whose size is a string
# (verify and health passed over it; the holds' reader took it without a
# word): the hold stays in force, with one warning naming its record
hid=$("$BKR" -r "$T/hrepo" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
seal() { # seal FILE JSON: FILE holds JSON sealed with its checksum, as bkr writes records
	python3 - "$@" <<'PY'
import hashlib, sys
t = sys.argv[2][:-1] + ',"sha256":"' + "0" * 64 + '"}'
open(sys.argv[1], "w").write(t[:-66] + hashlib.sha256(t.encode()).hexdigest() + '"}')
PY
}
undecodable=(
	'{"kind":"verify","time":"2001-09-09T01:46:40.000000Z","read_data":false,"result":"ok","errors":1e300}'
	'{"kind":"tag","backup_id":"'"$hid"'","time":"2001-09-09T01:46:40.000000Z","tag":5}'
	'{"kind":"pin","backup_id":"'"$hid"'","time":"2001-09-09T01:46:40.000000Z","until":7}'
	'{"kind":"pin","backup_id":"'"$hid"'","time":"2001-09-09T01:46:40.000000Z","until":"next week"}'
	'{"kind":"hold","backup_id":"'"$hid"'","time":"2001-09-09T01:46:40.000000Z","path":"s/x","damage":"missing","size":"big"}'
)
whys=('"errors" is not a count' "the tag record's \"tag\" is not a string" "the pin record's \"until\" is not a date"
	"the pin record's \"until\" is not a date" "the hold record's \"size\" is not a count")
for k in 0 1 2 3 4; do
	rec=$T/hrepo/records/0000000000000000000$((k + 4))-0badf00d.json
	seal "$rec" "${undecodable[$k]}"
	expect_exit 1 "$BKR" -c "$T/h.json" health
	grep -qF -- "  - 1 record is damaged (last: $rec): every command skips it" "$T/out" ||
		fail "health with an undecodable record ($k): $(cat "$T/out")"
	expect_exit 0 "$BKR" -r "$T/hrepo" --json list
	python3 -c 'import json,sys; b = json.load(open(sys.argv[1]))[-1]; assert not b.get("pinned_until") and not b.get("tags"), b' "$T/out" ||
		fail "list applied an undecodable record ($k): $(cat "$T/out")"
	# the commands that read the holds warn of it, as of a record whose checksum fails
	expect_exit 0 "$BKR" -r "$T/hrepo" cleanup --dry-run
	if [ $k = 4 ]; then
		grep -qF "warning: $rec: a hold record that does not decode (${whys[$k]}): taken as it reads, backup $hid is kept" "$T/err" &&
			grep -q "^KEEP *$hid .*held" "$T/out" || fail "cleanup with an undecodable hold: $(cat "$T/out" "$T/err")"
	else
		grep -qF "warning: $rec: a record that does not decode (${whys[$k]}): every command skips it" "$T/err" ||
			fail "cleanup with an undecodable record ($k): $(cat "$T/err")"
	fi
	[ "$(grep -c "warning: $rec" "$T/err")" = 1 ] || fail "cleanup warns of an undecodable record ($k) more than once: $(cat "$T/err")"
	rm "$rec"
done
for k in 0 1 2 3 4; do seal "$T/hrepo/records/0000000000000000000$((k + 4))-0badf00d.json" "${undecodable[$k]}"; done
expect_exit 1 "$BKR" -r "$T/hrepo" --json verify
python3 - "$T/out" "$T/hrepo/records" "${whys[@]}" <<'PY' || fail "verify of undecodable records: $(cat "$T/out")"
import json, sys
r = json.load(open(sys.argv[1]))
recs = [p for p in r["problems"] if p["kind"] == "record"]
assert r["errors"] == 5 and len(recs) == 5, r
for k, why in enumerate(sys.argv[3:]):
    p = recs[k]
    name = "0000000000000000000%d-0badf00d.json" % (k + 4)
    assert p["error"] and p["object"] == "records/" + name, p
    assert p["message"].startswith("%s/%s: %s; every command skips this record" % (sys.argv[2], name, why)), p
PY
rm "$T/hrepo/records/"*-0badf00d.json
pass "a record that passes its checksum but does not decode: verify names it, health gives it as a reason, no command applies it"
