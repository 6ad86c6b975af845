#!/bin/bash
# Logs: every command that changes or checks the repository writes one JSON
# line per event into the day's file of the log directory - the
# configuration's log_dir, or without a configuration the default
# ($XDG_STATE_HOME/bkr) - with a "start" and an "end" (exit status) around
# its own events.  Nothing of it reaches stdout or stderr (-v shows the info
# lines on stderr, -q silences warnings); a FIFO in the day file's place is
# never written and never blocks a command; an unusable log directory is a
# warning, never a failure.
source "$(dirname "$0")/lib.sh"

export BKR_TEST_NOW=2026-11-30T10:00:00Z
DAY=bkr-2026-11-30.log
DEF=$XDG_STATE_HOME/bkr   # the default log directory (lib.sh sets XDG_STATE_HOME)
R=$T/repo
mkdir -p "$T/ws/data"
printf 'one\n' >"$T/ws/data/a.txt"
printf '{"k": 1}\n' >"$T/ws/data/b.json"

# run CMD...: stdout and stderr must hold no log line
run() {
	"$@" >"$T/out" 2>"$T/err" || { cat "$T/err"; fail "failed: $*"; }
	! grep -q '"event"' "$T/out" "$T/err" || fail "a log line reached the terminal: $*"
}

# check_log FILE COMMAND EVENT...: FILE's lines are JSON objects; the last
# run of COMMAND has a start, the EVENTs in order, and an end with exit 0
check_log() {
	python3 - "$@" <<'PY' || fail "log $1: ${*:2}"
import json, sys
path, command, events = sys.argv[1], sys.argv[2], sys.argv[3:]
lines = [json.loads(l) for l in open(path)]
for l in lines:
    for k in ("time", "level", "component", "pid", "message"):
        assert k in l, (k, l)
runs, cur = [], None
for l in lines:
    if l.get("command") != command:
        continue
    if l.get("event") == "start":
        cur = [l]
        runs.append(cur)
    elif cur is not None:
        cur.append(l)
assert runs, "no start of " + command
run = runs[-1]
got = [l.get("event") for l in run]
assert got[0] == "start" and got[-1] == "end", got
assert run[-1]["exit"] == "0", run[-1]
assert len({l["pid"] for l in run}) == 1, run
want = list(events)
it = iter(got[1:-1])
assert all(e in it for e in want), (want, got)
PY
}

# --- without a configuration: the default directory --------------------------
run "$BKR" init -r "$R"
run "$BKR" create -r "$R" --type full "$T/ws/data"
run "$BKR" create -r "$R" "$T/ws/data"
run "$BKR" verify -r "$R" --read-data
run "$BKR" restore -r "$R" latest --target "$T/restored"
run "$BKR" pin -r "$R" latest
run "$BKR" unpin -r "$R" latest
first=$("$BKR" list -r "$R" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
run "$BKR" delete -r "$R" "$first"
run "$BKR" prune -r "$R" --grace 0
run "$BKR" cleanup -r "$R" --keep-last 5
L=$DEF/$DAY
[ -f "$L" ] || fail "no log file $L"
check_log "$L" init
check_log "$L" create created
check_log "$L" verify verified
check_log "$L" restore restored
check_log "$L" pin pin
check_log "$L" unpin unpin
check_log "$L" delete deleted
check_log "$L" prune pruned
check_log "$L" cleanup pruned
grep -q "\"backup_id\":\"$first\"" <(grep '"event":"deleted"' "$L") || fail "the deleted backup is not named"
# commands that only read are not logged
"$BKR" list -r "$R" >/dev/null
"$BKR" ls -r "$R" latest >/dev/null
! grep -q '"command":"list"\|"command":"ls"' "$L" || fail "list or ls was logged"
pass "without a configuration: every command logged in $DEF"

# a failing command: an error event and an end with its exit status
expect_exit 3 "$BKR" restore -r "$R" nosuchbackup --target "$T/x"
python3 - "$L" <<'PY' || fail "failed restore not logged"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
last = [l for l in lines if l.get("command") == "restore"][-2:]
assert last[0]["event"] == "error" and last[0]["level"] == "error" and "nosuchbackup" in last[0]["message"], last
assert last[1]["event"] == "end" and last[1]["exit"] == "3", last
PY
pass "a failure: error event, end with exit 3"

# a usage error found after the options (an operand, copy's missing --from): the run that
# began says why too (start and an end with exit 2 alone, before)
expect_exit 2 "$BKR" copy --to "$R" latest
python3 - "$L" <<'PY' || fail "copy's usage error not logged"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
run = [l for l in lines if l.get("command") == "copy"][-3:]
assert [l["event"] for l in run] == ["start", "error", "end"], run
assert run[1]["level"] == "error" and "--from REPO" in run[1]["message"] and run[1]["code"] == "invalid", run[1]
assert run[2]["exit"] == "2", run[2]
PY
pass "a usage error after the options: error event, end with exit 2"

# verify finding damage: one problem event per damaged object
cp -a "$R" "$T/bad"
pack=$(find "$T/bad/data" -type f -name '*.pack' -print -quit)
printf 'XXXXXXXX' | dd of="$pack" bs=1 seek=40 conv=notrunc status=none
expect_exit 1 "$BKR" verify -r "$T/bad" --read-data
python3 - "$L" <<'PY' || fail "verify problems not logged"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
run = [l for l in lines if l.get("command") == "verify"]
i = max(k for k, l in enumerate(run) if l["event"] == "start")
run = run[i:]
probs = [l for l in run if l["event"] == "problem"]
assert probs and all(l["level"] == "error" and l["kind"] for l in probs), run
assert run[-2]["event"] == "verified" and run[-2]["ok"] == "false", run[-2]
assert run[-1]["exit"] == "1" and run[-1]["level"] == "warn", run[-1]
PY
pass "verify: a problem event per damaged object"

# --- with a configuration: its log_dir -----------------------------------------
cat >"$T/bkr.json" <<JSON
{"repository": "$R", "workspace_root": "$T/ws", "log_dir": "$T/ws/logs"}
JSON
run "$BKR" -c "$T/bkr.json" --json create
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/out")
run "$BKR" -c "$T/bkr.json" batch
check_log "$T/ws/logs/$DAY" create created
check_log "$T/ws/logs/$DAY" batch run
# the log directory inside the source is not backed up
"$BKR" -r "$R" ls "$id" ws >"$T/ls"
! grep -q logs "$T/ls" || fail "the log directory was backed up: $(cat "$T/ls")"
pass "with a configuration: its log_dir, left out of the backup"

# --- -v and -q ----------------------------------------------------------------------
"$BKR" -v -r "$R" verify >/dev/null 2>"$T/err"
grep -q "verify started" "$T/err" || fail "-v did not show the log: $(cat "$T/err")"
! grep -q '"event"' "$T/err" || fail "-v printed JSON"
"$BKR" -q -r "$R" verify >"$T/out" 2>"$T/err"
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] || fail "-q printed: $(cat "$T/out" "$T/err")"
pass "-v shows the log's lines, -q prints nothing on success"

# --- never a pipe by surprise --------------------------------------------------------
mkdir -p "$T/fifolog"
mkfifo "$T/fifolog/$DAY"
cat >"$T/fifo.json" <<JSON
{"repository": "$R", "workspace_root": "$T/ws", "log_dir": "$T/fifolog"}
JSON
# no reader: the command must not block (timeout would say so) and says once why
expect_exit 0 timeout 30 "$BKR" -c "$T/fifo.json" verify
[ "$(grep -c "not a regular file" "$T/err")" = 1 ] || fail "FIFO log: $(cat "$T/err")"
# a reader waiting on the FIFO gets nothing
exec 7<>"$T/fifolog/$DAY"
expect_exit 0 timeout 30 "$BKR" -c "$T/fifo.json" verify
read -r -t 1 -u 7 line && fail "a log line went into the FIFO: $line"
exec 7>&-
# an unusable log directory is a warning; the command does its work
printf 'x' >"$T/notadir"
cat >"$T/bad.json" <<JSON
{"repository": "$R", "workspace_root": "$T/ws", "log_dir": "$T/notadir/logs"}
JSON
expect_exit 0 "$BKR" -c "$T/bad.json" verify
grep -q "notadir.*not logging" "$T/err" || fail "no warning: $(cat "$T/err")"
pass "a FIFO is never written or waited for; an unusable log dir warns"
