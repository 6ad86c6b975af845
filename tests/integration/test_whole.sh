#!/usr/bin/env bash
# Messages kept whole: repositories under ~2000-byte paths.  A message naming
# a path, or carrying another error's text, was cut where it was built into a
# fixed buffer (verify's unrecorded[1024]; copy's what[1400], src[1200],
# line[4096] and, on a damaged manifest, line[1024]; the catalog's last[1024];
# the holds' warnings' f[512]; restore's what[2048]): the end, which says why,
# was lost.  So was the end of a list of many source names (the routine's dry
# run, list[512]; its emergency's damaged sources, skipped[256]).  Each check
# asserts the whole message, or its end, is there.
source "$(dirname "$0")/lib.sh"

seg() { printf "$1%.0s" {1..240}; }
# a path of ~1950 bytes under $T
long_path() { local p=$T/$1 c; for c in a b c d e f g h; do p=$p/$(seg "$c"); done; echo "$p"; }
backup_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$1"; }

mkdir -p "$T/src/d" && printf 'one\n' >"$T/src/d/f"

# --- verify: a result that cannot be recorded names why, whole ------------------------
A=$(long_path A)/repo
mkdir -p "${A%/repo}"
expect_exit 0 "$BKR" init -r "$A"
expect_exit 0 "$BKR" -r "$A" create --type full "$T/src" --json
id1=$(backup_id "$T/out")
# the first write of a verify is its record's
BKR_FAULT=write:1:enospc expect_exit 0 "$BKR" -r "$A" verify
grep -q "^bkr verify: warning: the result could not be recorded in the repository: write $A/records/.*: injected fault at write: No space left on device$" "$T/err" ||
	fail "verify cut why its record was not written: $(cat "$T/err")"
# the daily routine's verify likewise, in its log (nothing due: its record is the first write)
mkdir -p "$T/wsd/d" && printf 'd\n' >"$T/wsd/d/f"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "d", "paths": ["d"], "schedule": "daily"}]}\n' \
	"$A" "$T/wsd" "$T/logsd" >"$T/d.json"
expect_exit 0 "$BKR" -c "$T/d.json" routine daily
BKR_FAULT=write:1:enospc expect_exit 0 "$BKR" -c "$T/d.json" routine daily
grep -q "\"message\":\"verify: the result could not be recorded in the repository: write $A/records/[^\"]*: injected fault at write: No space left on device\"" "$T"/logsd/bkr-*.log ||
	fail "the routine's verify cut why its record was not written: $(grep -h 'could not be recorded' "$T"/logsd/bkr-*.log)"
pass "verify and the daily routine's name why the record was not written whole, under a ~2000-byte repository path"

# --- copy: another backup under the same id, both repositories under long paths -------
O=$(long_path O)/repo
mkdir -p "${O%/repo}" "$T/other-src" && printf 'other\n' >"$T/other-src/f"
expect_exit 0 "$BKR" init -r "$O"
expect_exit 0 "$BKR" -r "$O" create --type full "$T/other-src" --json
oid=$(backup_id "$T/out")
# O's backup under A's id, its manifest sealed again
manifest_as_id "$O/backups/$oid.json" "$O/backups/$id1.json" "$id1"
rm "$O/backups/$oid.json"
expect_exit 7 "$BKR" copy --from "$A" --to "$O"
grep -q "^bkr copy: warning: backup $id1: not copied: $O has another backup under that id (root tree [0-9a-f]\{64\} there, [0-9a-f]\{64\} in $A)$" "$T/err" ||
	fail "copy cut the line naming another backup under the same id: $(cat "$T/err")"
pass "copy names another backup under the same id whole, both repositories under ~2000-byte paths"

# --- list, copy: a damaged manifest named, and why, whole -----------------------------------
cp "$A/backups/$id1.json" "$T/manifest"
printf 'garbage\n' >"$A/backups/$id1.json"
expect_exit 4 "$BKR" -r "$A" list
grep -q "^bkr list: warning: 1 manifest(s) are damaged and not listed; last: $A/backups/$id1.json: not a JSON object$" "$T/err" ||
	fail "list cut why a manifest is damaged: $(cat "$T/err")"
expect_exit 0 "$BKR" init -r "$T/copied"
expect_exit 4 "$BKR" copy --from "$A" --to "$T/copied"
grep -q "^bkr copy: warning: $id1.json: not copied: $A/backups/$id1.json: not a JSON object$" "$T/err" ||
	fail "copy cut why a manifest is damaged: $(cat "$T/err")"
cp "$T/manifest" "$A/backups/$id1.json"
pass "list and copy name a damaged manifest and why whole, under a ~2000-byte repository path"

# --- hold: a damaged record named whole, and what becomes of it ----------------------
expect_exit 0 "$BKR" -r "$A" verify
rec=$(cd "$A/records" && ls | head -1)
printf 'garbage\n' >"$A/records/$rec"
expect_exit 0 "$BKR" -r "$A" hold
grep -q "^bkr hold: warning: $A/records/$rec: a damaged record (not JSON): every command skips it, so a pin, tag or hold in it is not applied (retention may remove the backup it kept)$" "$T/err" ||
	fail "hold cut the line naming a damaged record: $(cat "$T/err")"
rm "$A/records/$rec"
pass "hold names a damaged record and what becomes of it whole, under a ~2000-byte repository path"

# --- restore: a file at a ~2200-byte path in the backup whose chunk is damaged -------
rel=rs/$(for c in a b c d e f g h i; do seg "$c"; printf /; done)f.bin
mkdir -p "$T/${rel%/f.bin}"
head -c 65536 /dev/urandom >"$T/$rel"
R=$T/rrepo
expect_exit 0 "$BKR" init -r "$R"
expect_exit 0 "$BKR" -r "$R" create --type full "$T/rs" --json
rid=$(backup_id "$T/out")
damage_stored "$R" "$T/$rel" 100
expect_exit 6 "$BKR" -r "$R" restore latest --target "$T/restored"
grep -q "^bkr restore: $rel: backup $rid: $rel: chunk 0 ([0-9a-f]\{64\}): $R/data/.*\.pack: blob [0-9a-f]\{64\}: content hash mismatch$" "$T/err" ||
	fail "restore cut the message on a damaged chunk of a file at a long path: $(cat "$T/err")"
pass "restore names a damaged chunk of a file at a ~2200-byte path in the backup whole"

# --- routine --dry-run: every source it would back up named, 60 of them --------------
mkdir -p "$T/ws60"
want=
for i in $(seq -w 0 59); do
	mkdir "$T/ws60/source-with-a-long-name-$i"
	want+=${want:+, }source-with-a-long-name-$i
done
python3 - "$T/c60.json" "$T/r60" "$T/ws60" "$T/logs60" <<'PY'
import json, sys
out, repo, ws, logs = sys.argv[1:]
srcs = [{"name": "source-with-a-long-name-%02d" % i, "paths": ["source-with-a-long-name-%02d" % i],
         "schedule": "hourly"} for i in range(60)]
json.dump({"repository": repo, "workspace_root": ws, "log_dir": logs, "sources": srcs}, open(out, "w"))
PY
expect_exit 0 "$BKR" init -r "$T/r60"
expect_exit 0 "$BKR" -c "$T/c60.json" routine hourly --dry-run
grep -qF "would back up $want" "$T/out" || fail "routine --dry-run cut the list of the sources it would back up: $(cat "$T/out")"
pass "routine --dry-run names all 60 sources it would back up"
for i in $(seq -w 0 59); do printf '{"n": 1, broken' >"$T/ws60/source-with-a-long-name-$i/a.json"; done
expect_exit 1 "$BKR" -c "$T/c60.json" routine emergency
grep -qF "not backed up (damaged): $want" "$T/out" ||
	fail "routine emergency cut the list of the damaged sources it left out: $(cat "$T/out")"
pass "routine emergency names all 60 damaged sources it does not back up"
