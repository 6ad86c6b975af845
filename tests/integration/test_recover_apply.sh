#!/bin/bash
# What `bkr batch --apply` leaves in the workspace when it is killed, and what
# it does with something else in a file's place (docs/recovery.md, "Applying"):
# - a run killed while it writes a recovered copy leaves nothing of it where
#   the filesystem has O_TMPFILE (the copy has no name until it is complete);
# - where a named temporary is left (a filesystem without O_TMPFILE, or the
#   instant a copy has a name to be exchanged with the file it replaces), the
#   next run that applies removes it and says so, but never while another run
#   is writing into the workspace;
# - a file of the backup replaced by a directory with content or by a symlink
#   pointing out of the workspace is reported by scan, and apply refuses it
#   with one line (exit 6): nothing removed, nothing written through the link.
. "$(dirname "$0")/lib.sh"

W=$T/ws
CFG=$T/bkr.json
mkdir -p "$W/c"
echo '{"n":1}' > "$W/c/a.json"
echo '{"n":2}' > "$W/c/b.json"
cat > "$CFG" <<JSON
{"repository": "$T/repo", "workspace_root": "$W",
 "recovery": {"staging_dir": "$T/staged", "rules": [{"pattern": "c/{id}.json", "strategies": ["backup"]}]}}
JSON
expect_exit 0 "$BKR" init -r "$T/repo"
expect_exit 0 "$BKR" create -c "$CFG" --type full

# temps: the apply temporaries anywhere in the workspace, one per line
temps() { find "$W" -name '.bkr-recover-*'; }

# --- killed while writing a new file and a replacement: nothing is left
rm "$W/c/a.json"
expect_exit 137 env BKR_FAULT=write:1:crash "$BKR" batch -c "$CFG" --apply
[ -z "$(temps)" ] || fail "a killed apply (a missing file) left $(temps)"
[ ! -e "$W/c/a.json" ] || fail "a killed apply left c/a.json: $(cat "$W/c/a.json")"
printf '{"br' > "$W/c/b.json"
expect_exit 137 env BKR_FAULT=write:2:crash "$BKR" batch -c "$CFG" --apply
[ -z "$(temps)" ] || fail "a killed apply (an invalid file) left $(temps)"
[ "$(cat "$W/c/b.json")" = '{"br' ] || fail "a killed apply changed c/b.json: $(cat "$W/c/b.json")"
[ "$(cat "$W/c/a.json")" = '{"n":1}' ] || fail "the first file, written before the kill, is not whole"
pass "a killed apply leaves no temporary where the filesystem has O_TMPFILE"

# --- without O_TMPFILE (recover-tmpfile: the first attempt fails, as there) the
# copy being written when the run is killed is under a temporary name; a run
# applying meanwhile leaves it (it may be the other run's), the next one alone
# removes it and says so
rm "$W/c/a.json"
BKR_FAULT=recover-tmpfile:1,write:1:stop "$BKR" batch -c "$CFG" --apply > "$T/a.out" 2> "$T/a.err" &
pid=$!
wait_stopped "$pid" || fail "batch did not stop at its first write: $(cat "$T/a.out" "$T/a.err")"
left=$(temps)
[ -n "$left" ] && [ "$(echo "$left" | wc -l)" = 1 ] || fail "expected one named temporary, found: $left"
expect_exit 0 "$BKR" batch -c "$CFG" --apply # a.json, and b.json still invalid: both recovered
err_has "warning: temporaries of a recover run that died: not looked for: another recover run is writing into this workspace" ||
	fail "a run beside another does not say why it left the temporaries: $(cat "$T/err")"
[ -e "$left" ] || fail "a run removed the temporary of another run still writing"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
[ -e "$left" ] || fail "the killed run's temporary is gone by itself"
rm "$W/c/a.json"
expect_exit 0 "$BKR" batch -c "$CFG" --apply
err_has "warning: ${left#"$W/"}: removed: a temporary left by a recover run that died" ||
	fail "the removed temporary is not named: $(cat "$T/err")"
[ -z "$(temps)" ] || fail "the stale temporary is still there: $(temps)"
[ "$(cat "$W/c/a.json")" = '{"n":1}' ] || fail "c/a.json was not recovered"
pass "a dead run's named temporary is removed by the next run alone, and said"

# --- killed in the instant a replacement has a name (just before it is
# exchanged with the file it replaces): the next run removes that name
printf '{"br' > "$W/c/b.json"
expect_exit 137 env BKR_FAULT=recover-replace:1:crash "$BKR" batch -c "$CFG" --apply
[ -n "$(temps)" ] || fail "no temporary left by a kill before the exchange (the fault point moved?)"
[ "$(cat "$W/c/b.json")" = '{"br' ] || fail "a kill before the exchange changed c/b.json"
expect_exit 0 "$BKR" batch -c "$CFG" --apply --json
python3 - "$T/out" <<'PY' || fail "the report does not name the removed temporary: $(cat "$T/out")"
import json, sys
r = json.load(open(sys.argv[1]))
removed = r["stale_temporaries"]["removed"]
assert len(removed) == 1 and removed[0].startswith("c/.bkr-recover-"), r["stale_temporaries"]
assert "error" not in r["stale_temporaries"], r["stale_temporaries"]
PY
[ -z "$(temps)" ] && [ "$(cat "$W/c/b.json")" = '{"n":2}' ] || fail "after the next run: $(temps), $(cat "$W/c/b.json")"
pass "a replacement killed once named leaves a temporary the next run removes"

# --- a recovered symlink is made under a temporary name (there is no
# O_TMPFILE for a symlink) and renamed into place: a run killed in between
# leaves that symlink, and the next run removes it (not followed) and says so
ln -s a.json "$W/c/link"
expect_exit 0 "$BKR" create -c "$CFG" --all --type incremental
rm "$W/c/link"
expect_exit 137 env BKR_FAULT=recover-link:1:crash "$BKR" batch -c "$CFG" --apply
left=$(find "$W" -name '.bkr-recover-*' -type l)
[ -n "$left" ] && [ "$(readlink "$left")" = a.json ] || fail "no temporary symlink left by a kill before its rename: $(temps)"
[ ! -L "$W/c/link" ] || fail "a kill before the rename put c/link in place"
expect_exit 0 "$BKR" batch -c "$CFG" --apply --json
python3 - "$T/out" "${left#"$W/"}" <<'PY' || fail "the report does not name the removed temporary symlink: $(cat "$T/out")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["stale_temporaries"]["removed"] == [sys.argv[2]], r["stale_temporaries"]
assert "error" not in r["stale_temporaries"], r["stale_temporaries"]
PY
[ -z "$(temps)" ] || fail "the stale temporary symlink is still there: $(temps)"
[ "$(readlink "$W/c/link")" = a.json ] && [ "$(cat "$W/c/a.json")" = '{"n":1}' ] ||
	fail "c/link not recovered, or what it points to changed"
pass "a recovered symlink killed before its rename leaves a temporary the next run removes"

# --- two runs recovering the same files at once: the one that finds the
# other's copy in place when it puts its own there (a missing file linked,
# a symlink renamed: neither replaces; an invalid file exchanged) is done,
# not failed - the file holds the recovered copy (before: "appeared while
# writing" or "changed while the recovered copy was written", exit 6)
for what in "write c/a.json missing" "write c/b.json invalid" "recover-link c/link missing"; do
	set -- $what
	if [ "$3" = missing ]; then rm "$W/$2"; else printf '{"br' >"$W/$2"; fi
	BKR_FAULT=$1:1:stop "$BKR" batch -c "$CFG" --apply --json >"$T/a.out" 2>"$T/a.err" &
	pid=$!
	wait_stopped "$pid" || fail "batch did not stop at $1: $(cat "$T/a.out" "$T/a.err")"
	expect_exit 0 "$BKR" batch -c "$CFG" --apply
	kill -CONT "$pid"
	code=0
	wait "$pid" || code=$?
	[ "$code" = 0 ] || fail "the run that found $2 recovered by another exits $code: $(cat "$T/a.out" "$T/a.err")"
	python3 - "$T/a.out" "$2" <<'PY' || fail "the second run's report for $2: $(cat "$T/a.out")"
import json, sys
r = json.load(open(sys.argv[1]))
f = [f for f in r["files"] if f["path"] == sys.argv[2]][0]
assert f["status"] == "recovered" and f["applied"] is False and f["apply_failed"] is False, f
assert f["apply_result"] == "already identical to the recovered copy", f
PY
	[ -z "$(temps)" ] || fail "two runs at once left $(temps)"
done
[ "$(cat "$W/c/a.json")" = '{"n":1}' ] && [ "$(cat "$W/c/b.json")" = '{"n":2}' ] && [ "$(readlink "$W/c/link")" = a.json ] ||
	fail "not recovered by the two runs"
pass "two runs recovering the same missing file, invalid file and symlink at once: the later one finds the copy in place and is done"

# --- a directory with content and a symlink out of the workspace in the place
# of backed-up files: reported, refused (exit 6), nothing lost or followed
rm "$W/c/a.json" "$W/c/b.json"
mkdir -p "$W/c/a.json/sub"
echo keep > "$W/c/a.json/sub/data"
echo '{"outside":1}' > "$T/outside.json"
ln -s "$T/outside.json" "$W/c/b.json"
expect_exit 1 "$BKR" scan -c "$CFG"
grep -q "^missing   c/a.json: is a directory, expected a regular file (as in backup backup_" "$T/out" &&
	grep -q "^missing   c/b.json: is a symlink, expected a regular file (as in backup backup_" "$T/out" ||
	fail "scan does not report a file replaced by a directory or a symlink: $(cat "$T/out")"
expect_exit 6 "$BKR" batch -c "$CFG" --apply
grep -qx "failed    c/a.json: recovered, not written: c/a.json: is a directory, expected a regular file; not replaced (move it aside, then recover the file again)" "$T/out" &&
	grep -qx "failed    c/b.json: recovered, not written: c/b.json: is a symlink, expected a regular file; not replaced (move it aside, then recover the file again)" "$T/out" ||
	fail "apply does not refuse them with one line each: $(cat "$T/out")"
[ "$(cat "$W/c/a.json/sub/data")" = keep ] || fail "the directory's content was touched"
[ "$(readlink "$W/c/b.json")" = "$T/outside.json" ] && [ "$(cat "$T/outside.json")" = '{"outside":1}' ] ||
	fail "the symlink or what it points to was touched"
[ -z "$(temps)" ] || fail "a refused apply left $(temps)"
# moved aside, as the line says: recovered
mv "$W/c/a.json" "$T/a.aside"
rm "$W/c/b.json"
expect_exit 0 "$BKR" batch -c "$CFG" --apply
[ "$(cat "$W/c/a.json")" = '{"n":1}' ] && [ "$(cat "$W/c/b.json")" = '{"n":2}' ] || fail "not recovered once moved aside"
pass "a directory or a symlink in a file's place is reported and refused, nothing lost"
