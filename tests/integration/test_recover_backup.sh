#!/bin/bash
# The backup strategy when the newest backup's copy of a file cannot be had
# (docs/recovery.md, "Strategies"):
# - a copy proven damaged (its blob fails its hash) is rejected and the next
#   older backup's copy taken; the report names the backup used, and the one
#   skipped and why (a warning without --json);
# - a copy that cannot be read for want of its source (an I/O error, a tier
#   out of reach) proves nothing: the attempt fails naming the backup, no
#   older copy is put in its place (it was: an older version over the newer
#   one the repository still holds), and the next strategy runs, as the git
#   strategy does with an object it cannot read; git failing too, the file
#   goes to the next one (manual here).
. "$(dirname "$0")/lib.sh"

W=$T/ws
CFG=$T/bkr.json
mkdir -p "$W/c"
# cfg STRATEGIES: the configuration with c/{id}.json recovered by STRATEGIES (JSON)
cfg() {
	cat > "$CFG" <<JSON
{"repository": "$T/repo", "workspace_root": "$W",
 "recovery": {"staging_dir": "$T/staged", "rules": [{"pattern": "c/{id}.json", "strategies": $1}]}}
JSON
}
cfg '["backup"]'
expect_exit 0 "$BKR" init -r "$T/repo"
# two versions of c/a.json (large enough for a data pack of their own, its blob
# longer than flip_byte_in_blob's offset once compressed), one backup each
python3 -c 'import json, os; print(json.dumps({"v": 1, "pad": os.urandom(2000).hex()}))' > "$T/v1"
python3 -c 'import json, os; print(json.dumps({"v": 2, "pad": os.urandom(2000).hex()}))' > "$T/v2"
cp "$T/v1" "$W/c/a.json"
expect_exit 0 "$BKR" create -c "$CFG" --all --type full
b1=$(ls "$T/repo/backups")
first_pack=$(find "$T/repo/data" -name '*.pack')
cp "$T/v2" "$W/c/a.json"
expect_exit 0 "$BKR" create -c "$CFG" --all --type full
b2=$(ls "$T/repo/backups" | grep -v "^$b1\$")
b1=${b1%.json} b2=${b2%.json}
pack2=$(find "$T/repo/data" -name '*.pack' ! -path "$first_pack")
[ -n "$pack2" ] && [ "$(echo "$pack2" | wc -l)" = 1 ] || fail "expected one data pack for the second backup: $pack2"
cp "$pack2" "$T/pack2.good"

# --- the newest copy damaged: the older one, said
flip_byte_in_blob "$pack2"
printf '{"br' > "$W/c/a.json"
expect_exit 0 "$BKR" batch -c "$CFG" --apply
cmp "$W/c/a.json" "$T/v1" || fail "not recovered from the older backup"
err_has "warning: c/a.json: recovered from an older copy ($b1); 1 newer copy skipped, the newest $b2: " ||
	fail "the older copy is not said: $(cat "$T/err")"
expect_exit 0 "$BKR" recovered -c "$CFG" latest
python3 - "$T/out" "$b1" "$b2" <<'PY' || fail "the report does not say which backup and why: $(cat "$T/out")"
import json, sys
r = json.load(open(sys.argv[1]))
a = r["files"][0]["attempts"][0]
assert a["result"] == "recovered" and a["source"]["backup_id"] == sys.argv[2], a
rej = a["source"]["rejected"]
assert len(rej) == 1 and rej[0]["backup_id"] == sys.argv[3] and "chunk 0" in rej[0]["reason"], rej
PY
pass "a damaged newest copy: the older backup's, named with the skipped one"

# --- the newest copy unreadable (its pack gives an I/O error): no older copy.
# The error comes from the "read" fault point (BKR_FAULT, EIO as a failing disk
# gives) failing every read from the n-th pass on, the first n that reaches
# the copy found by trying each in turn:
# the passes are the same in every run; an earlier one fails a read the batch
# needs before it (the index, a manifest) and names no copy, or one that is
# tried again, and the newest copy is recovered.  (A
# directory in the pack's place no longer serves: what is no regular file is
# damage, and a damaged copy is rightly passed over for an older one.)
cp "$T/pack2.good" "$pack2"
printf '{"br' > "$W/c/a.json"
unread=
for n in $(seq 1 60); do
	rc=0
	faults=$(seq -f "read:%g:eio" "$n" $((n + 60)) | paste -sd,) # every read from the n-th on
	BKR_FAULT=$faults "$BKR" batch -c "$CFG" --apply >"$T/out" 2>"$T/err" || rc=$?
	if grep -q "^failed    c/a.json: the copy of c/a.json in backup $b2 cannot be read: " "$T/out"; then
		unread=$n
		break
	fi
	# a pass whose read is not the copy's (or is tried again) may still
	# recover the newest copy; never the older one
	! cmp -s "$W/c/a.json" "$T/v1" || fail "read fault at pass $n: the older copy was taken: $(cat "$T/out")"
	printf '{"br' > "$W/c/a.json"
done
[ -n "$unread" ] || fail "no read fault made the newest copy unreadable: $(cat "$T/out")"
[ "$rc" = 6 ] || fail "expected exit 6 with the newest copy unreadable, got $rc: $(cat "$T/out")"
grep -q "^failed    c/a.json: the copy of c/a.json in backup $b2 cannot be read: .*Input/output error.*; older backups are not used in its place" "$T/out" ||
	fail "the unreadable copy is not named: $(cat "$T/out")"
[ "$(cat "$W/c/a.json")" = '{"br' ] || fail "an older copy was put in place of the unreadable newest"
! grep -q "older copy" "$T/err" || fail "an older copy was taken: $(cat "$T/err")"

# and the strategies after it run: git (no repository there) fails too, then manual
cfg "[\"backup\", {\"type\": \"git\", \"repository\": \"$T/no-such-repo\"}, \"manual\"]"
BKR_FAULT=$faults expect_exit 6 "$BKR" batch -c "$CFG" --apply --json
python3 - "$T/out" "$b2" <<'PY' || fail "the strategies after backup: $(cat "$T/out")"
import json, sys
f = json.load(open(sys.argv[1]))["files"][0]
res = [a["result"] for a in f["attempts"]]
assert [a["strategy"] for a in f["attempts"]] == ["backup", "git", "manual"], f["attempts"]
assert res[0] == "failed" and res[1] != "recovered" and res[2] == "manual", res
assert sys.argv[2] in f["attempts"][0]["error"], f["attempts"][0]
assert f["status"] == "manual" and not f["applied"], f
PY
[ "$(cat "$W/c/a.json")" = '{"br' ] || fail "the file was written with git and the backup failing"

# readable again (no fault): the newest copy
cfg '["backup"]'
expect_exit 0 "$BKR" batch -c "$CFG" --apply
cmp "$W/c/a.json" "$T/v2" || fail "not recovered from the newest backup once readable"
pass "an unreadable newest copy fails the attempt, no older copy; the next strategies run"
