#!/bin/bash
# What `bkr batch --apply` leaves in the workspace when it is killed
# (docs/recovery.md, "Applying"):
# - a run killed while it writes a recovered copy leaves nothing of it where
#   the filesystem has O_TMPFILE (the copy has no name until it is complete);
# - where a named temporary is left (a filesystem without O_TMPFILE, or the
#   instant a copy has a name to be exchanged with the file it replaces), the
#   next run that applies removes it and says so, but never while another run
#   is writing into the workspace.
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
