#!/usr/bin/env bash
# Schedules, routines, health, alerts and Prometheus metrics on a real
# workspace with a fixed clock (BKR_TEST_NOW for the times backups get,
# --as-of for the routines' and health's "now").
. "$(dirname "$0")/lib.sh"

W=$T/ws
R=$T/repo
CFG=$T/bkr.json
mkdir -p "$W/hot" "$W/day" "$W/week" "$W/man" "$T/logs"
printf '{"n": 1}\n' >"$W/hot/a.json"
printf 'daily\n' >"$W/day/d.txt"
printf 'weekly\n' >"$W/week/w.txt"
printf 'manual\n' >"$W/man/m.txt"
"$BKR" init -r "$R" >/dev/null
cat >"$CFG" <<JSON
{"repository": "$R", "workspace_root": "$W", "log_dir": "$T/logs",
 "sources": [
   {"name": "hot", "paths": ["hot"], "schedule": "hourly", "priority": 10},
   {"name": "day", "paths": ["day"], "schedule": "daily"},
   {"name": "week", "paths": ["week"], "schedule": "weekly"},
   {"name": "man", "paths": ["man"], "schedule": "manual"}]}
JSON

# sources of the newest backup, sorted, comma-separated
newest_sources() {
	"$BKR" -r "$R" show latest --json |
		python3 -c 'import json,sys; print(",".join(sorted(s["source"] for s in json.load(sys.stdin)["sources"])))'
}
nbackups() { "$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# --- schedule selection of bkr create -c
export BKR_TEST_NOW=2026-11-30T10:00:00Z
expect_exit 0 "$BKR" -c "$CFG" create
[ "$(newest_sources)" = "day,hot,week" ] || fail "first create: every scheduled source, not manual: $(newest_sources)"
export BKR_TEST_NOW=2026-11-30T10:30:00Z
expect_exit 0 "$BKR" -c "$CFG" create
grep -q "no source is due" "$T/out" || fail "nothing due after 30 min: $(cat "$T/out")"
[ "$(nbackups)" = 1 ] || fail "a backup was made although nothing was due"
expect_exit 0 "$BKR" -c "$CFG" create --json
json_ok "$T/out"
grep -q '"created":null' "$T/out" || fail "--json of nothing due: $(cat "$T/out")"
export BKR_TEST_NOW=2026-11-30T10:55:00Z
expect_exit 0 "$BKR" -c "$CFG" create
[ "$(newest_sources)" = "hot" ] || fail "55 min later only the hourly source is due: $(newest_sources)"
export BKR_TEST_NOW=2026-12-01T10:00:00Z
expect_exit 0 "$BKR" -c "$CFG" create
[ "$(newest_sources)" = "day,hot" ] || fail "a day later hourly and daily are due: $(newest_sources)"
export BKR_TEST_NOW=2026-12-07T09:00:00Z
expect_exit 0 "$BKR" -c "$CFG" create
[ "$(newest_sources)" = "day,hot,week" ] || fail "a week later everything scheduled is due: $(newest_sources)"
export BKR_TEST_NOW=2026-12-07T09:01:00Z
expect_exit 0 "$BKR" -c "$CFG" create --source man
[ "$(newest_sources)" = "man" ] || fail "--source backs up exactly that source: $(newest_sources)"
export BKR_TEST_NOW=2026-12-07T09:02:00Z
expect_exit 0 "$BKR" -c "$CFG" create --all
[ "$(newest_sources)" = "day,hot,man,week" ] || fail "--all backs up every source: $(newest_sources)"
export BKR_TEST_NOW=2026-12-07T09:03:00Z
expect_exit 0 "$BKR" -c "$CFG" create "$W/man"
[ "$(newest_sources)" = "man" ] || fail "an explicit PATH backs up exactly it: $(newest_sources)"
expect_exit 2 "$BKR" -c "$CFG" create --all --source hot
one_line_error
pass "create -c backs up what is due by schedule; --source, --all and PATHs back up exactly those"

# --- the routines, end to end
mkdir -p "$T/bin"
cat >"$T/bin/alert.sh" <<'SH'
#!/bin/sh
# one event a line
{ cat; echo; } >>"$1"
SH
chmod +x "$T/bin/alert.sh"
python3 - "$CFG" "$T" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["alert_command"] = [sys.argv[2] + "/bin/alert.sh", sys.argv[2] + "/alerts.log"]
json.dump(c, open(sys.argv[1], "w"))
PY
: >"$T/alerts.log"
# step STATUS of routine JSON output $T/out: "backup=ok,scan=ok"
steps() { python3 -c 'import json,sys; print(",".join(s["step"] + "=" + s["status"] for s in json.load(open(sys.argv[1]))["steps"]))' "$T/out"; }
records() { wc -l <"$T/logs/routines.jsonl"; }
routine() { # routine TIME ARGS...: the routine as of TIME, the backups it makes at TIME
	local t=$1
	shift
	BKR_TEST_NOW=$t "$BKR" -c "$CFG" --json routine --as-of "$t" "$@"
}

expect_exit 0 routine 2026-12-07T10:00:00Z hourly
json_ok "$T/out"
[ "$(steps)" = "scan=ok,backup=ok" ] || fail "hourly steps: $(steps)"
export BKR_TEST_NOW=2026-12-07T10:00:00Z
[ "$(newest_sources)" = "hot" ] || fail "the hourly routine backs up the hourly source: $(newest_sources)"
grep -q '"routine:hourly"' <("$BKR" -r "$R" show latest --json) || fail "the routine's backup is not tagged"
expect_exit 0 routine 2026-12-07T10:20:00Z hourly
grep -q '"message":"no source is due"' "$T/out" || fail "a second hourly routine backs up again: $(cat "$T/out")"
n=$(nbackups)
expect_exit 0 "$BKR" -c "$CFG" routine daily --dry-run --as-of 2026-12-08T10:00:00Z
grep -q "would back up hot, day" "$T/out" || fail "dry run: $(cat "$T/out")"
[ "$(nbackups)" = "$n" ] || fail "a dry run made a backup"
[ "$(records)" = 2 ] || fail "a dry run was recorded ($(records) records)"
expect_exit 0 routine 2026-12-08T10:00:00Z daily
[ "$(steps)" = "scan=ok,backup=ok,verify=ok,cleanup=ok,tier-migrate=skipped" ] || fail "daily steps: $(steps)"
export BKR_TEST_NOW=2026-12-08T10:00:00Z
[ "$(newest_sources)" = "day,hot" ] || fail "the daily routine backs up hourly and daily sources: $(newest_sources)"
expect_exit 0 routine 2026-12-14T10:00:00Z weekly
grep -q '"step":"verify","status":"ok"' "$T/out" || fail "weekly verify: $(cat "$T/out")"
grep -q '"read_data":true' "$T/out" || fail "the weekly verify does not read the data: $(cat "$T/out")"
export BKR_TEST_NOW=2026-12-14T10:00:00Z
[ "$(newest_sources)" = "day,hot,week" ] || fail "the weekly routine backs up every scheduled source: $(newest_sources)"
grep -q '"backup_type":"full"' <("$BKR" -r "$R" show latest --json | tr -d ' \n\t') || fail "the weekly backup is not full"
[ ! -s "$T/alerts.log" ] || fail "alerts without a problem: $(cat "$T/alerts.log")"
grep -q '"component":"routine".*"step":"verify"' "$T/logs"/bkr-2026-12-14.log 2>/dev/null ||
	grep -q '"step":"verify"' "$T/logs"/bkr-*.log || fail "the steps are not logged"
pass "hourly, daily and weekly routines back up what they cover, verify, clean up; dry run changes nothing"

# --- emergency: a damaged file is recovered (into a run, or applied), the healthy sources backed up
printf '{"n": 1, broken' >"$W/hot/a.json"
expect_exit 1 routine 2026-12-14T11:00:00Z emergency
[ "$(steps)" = "scan=ok,recover=ok,backup=problems" ] || fail "emergency steps: $(steps)"
grep -q 'not backed up (damaged): hot' "$T/out" || fail "the damaged source was backed up: $(cat "$T/out")"
grep -q broken "$W/hot/a.json" || fail "the workspace was changed without --apply"
expect_exit 0 routine 2026-12-14T11:10:00Z emergency --apply
[ "$(steps)" = "scan=ok,recover=ok,backup=ok" ] || fail "emergency --apply steps: $(steps) $(cat "$T/out")"
[ "$(cat "$W/hot/a.json")" = '{"n": 1}' ] || fail "not recovered: $(cat "$W/hot/a.json")"
export BKR_TEST_NOW=2026-12-14T11:10:00Z
[ "$(newest_sources)" = "day,hot,week" ] || fail "after recovery every source is backed up: $(newest_sources)"
pass "emergency: scan, recovery run (applied with --apply), backup of the healthy sources"

# --- a step failing in the middle: the independent steps still run, exit 6, one alert
# per problem (the source's files gone, the scan finds them missing: retention is held)
mv "$W/day" "$W/day.away"
expect_exit 6 routine 2026-12-15T11:00:00Z daily
[ "$(steps)" = "scan=problems,backup=failed,verify=ok,cleanup=failed,tier-migrate=skipped" ] || fail "daily with a missing source: $(steps)"
mv "$W/day.away" "$W/day"
# four problems, four events: the files missing, the failed step, retention
# held, and the hourly source now older than 2 h
python3 - "$T/alerts.log" "$W/day" <<'PY' || fail "alerts: $(cat "$T/alerts.log")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert sorted(e["kind"] for e in ev) == ["retention_skipped", "stale_source", "step_failed", "workspace_damage"], ev
e = [e for e in ev if e["kind"] == "step_failed"][0]
assert e["event"] == "bkr.alert" and e["routine"] == "daily" and e["step"] == "backup", e
assert sys.argv[2] in e["message"], e
assert e["action"] and e["host"] and e["time"], e
e = [e for e in ev if e["kind"] == "stale_source"][0]
assert e["source"] == "hot" and "twice" in e["message"] and e["action"], e
PY
: >"$T/alerts.log"
# a fault in verify: cleanup depends on it and is skipped, tier migration still runs
BKR_FAULT=routine-verify:1:eio expect_exit 6 routine 2026-12-15T12:00:00Z daily
[ "$(steps)" = "scan=ok,backup=ok,verify=failed,cleanup=skipped,tier-migrate=skipped" ] || fail "daily with verify failing: $(steps)"
grep -q '"step":"verify"' "$T/alerts.log" || fail "no alert for the failed verify: $(cat "$T/alerts.log")"
: >"$T/alerts.log"
pass "a failed step: the steps not depending on it run, exit 6, one alert event with kind, step and action"

# --- two routines at once: the second waits, or with --no-wait exits 5
BKR_FAULT=routine-backup:1:stop BKR_TEST_NOW=2026-12-15T13:00:00Z "$BKR" -c "$CFG" routine hourly --as-of 2026-12-15T13:00:00Z >"$T/a.out" 2>&1 &
a=$!
until [ "$(awk '{print $3}' /proc/$a/stat 2>/dev/null)" = T ]; do sleep 0.05; done
expect_exit 5 "$BKR" -c "$CFG" routine hourly --no-wait
one_line_error
grep -q "another routine is running" "$T/err" || fail "--no-wait: $(cat "$T/err")"
BKR_TEST_NOW=2026-12-15T13:00:00Z "$BKR" -c "$CFG" routine hourly --as-of 2026-12-15T13:00:00Z >"$T/b.out" 2>"$T/b.err" &
b=$!
wait_line "$T/b.err" "waiting" "$b" || fail "the second routine does not say it waits: $(cat "$T/b.out" "$T/b.err")"
kill -CONT $a
wait $a || fail "the first routine failed: $(cat "$T/a.out")"
wait $b || fail "the waiting routine failed: $(cat "$T/b.out" "$T/b.err")"
grep -q "no source is due" "$T/b.out" || fail "the second routine did not see the first one's backup: $(cat "$T/b.out")"
pass "two routines never run at once: --no-wait exits 5, the other waits"

# --- health: healthy, its Prometheus metrics (promtool), written by every routine
python3 - "$CFG" "$T" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["metrics_file"] = sys.argv[2] + "/metrics/bkr.prom"
json.dump(c, open(sys.argv[1], "w"))
PY
mkdir -p "$T/metrics"
: >"$T/alerts.log"
expect_exit 0 routine 2026-12-16T12:00:00Z daily
[ -s "$T/metrics/bkr.prom" ] || fail "the routine did not write the metrics file"
grep -q '^bkr_routine_last_run_timestamp_seconds{routine="daily"} 1797422400$' "$T/metrics/bkr.prom" ||
	fail "metrics file: $(grep routine_last_run "$T/metrics/bkr.prom")"
promtool check metrics <"$T/metrics/bkr.prom" >"$T/promtool.out" 2>&1 || fail "promtool: $(cat "$T/promtool.out")"
! ls -a "$T/metrics" | grep -q '^\.tmp' || fail "a temporary file was left: $(ls -a "$T/metrics")"
expect_exit 0 "$BKR" -c "$CFG" health --as-of 2026-12-16T12:10:00Z
grep -q '^healthy' "$T/out" || fail "health: $(cat "$T/out")"
# a metrics file that cannot be written is an output that failed (exit 7, as
# for a restore target), not "not found" (3): one line naming it, no report
expect_exit 7 "$BKR" -c "$CFG" health --as-of 2026-12-16T12:10:00Z --prometheus "$T/no/such/dir/h.prom"
one_line_error
grep -q "metrics file $T/no/such/dir/h.prom: cannot be written: $T/no/such/dir: No such file or directory" "$T/err" ||
	fail "health --prometheus into a missing directory: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "a report after the metrics file failed: $(cat "$T/out")"
: >"$T/plain"
expect_exit 7 "$BKR" -c "$CFG" health --as-of 2026-12-16T12:10:00Z --json --prometheus "$T/plain/h.prom"
one_line_error
python3 -c 'import json,sys; e = json.load(open(sys.argv[1]))["error"]; assert e["exit"] == 7 and sys.argv[2] in e["message"], e' \
	"$T/out" "metrics file $T/plain/h.prom: cannot be written: $T/plain: Not a directory" || fail "health --json: $(cat "$T/out")"
# --json and --prometheus - would both write to stdout: refused, one line, nothing on stdout but the JSON error
expect_exit 2 "$BKR" -c "$CFG" health --as-of 2026-12-16T12:10:00Z --json --prometheus -
one_line_error
err_has "bkr health: --json and --prometheus - both write to stdout: give --prometheus a FILE" ||
	fail "health --json --prometheus -: $(cat "$T/err")"
python3 -c 'import json,sys; e = json.load(open(sys.argv[1]))["error"]; assert e["exit"] == 2, e' "$T/out" ||
	fail "health --json --prometheus - stdout: $(cat "$T/out")"
expect_exit 0 "$BKR" -c "$CFG" health --as-of 2026-12-16T12:10:00Z --json --prometheus "$T/h.prom"
json_ok "$T/out"
python3 - "$T/out" <<'PY' || fail "health --json: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
assert h["healthy"] is True and h["reasons"] == [], h
src = {s["source"]: s for s in h["sources"]}
assert src["hot"]["status"] == "ok" and src["hot"]["age_seconds"] == 600, src["hot"]
assert src["week"]["status"] == "ok" and src["man"]["status"] == "manual", src
assert h["verify"]["ok"] is True and h["verify"]["read_data"] is False, h["verify"]
assert h["storage"]["hot"]["bytes"] > 0 and h["repository_bytes"] == h["storage"]["hot"]["bytes"], h["storage"]
assert h["routines"]["daily"]["last_ok"] is True and h["routines"]["daily"]["recent_failures"] == 2, h["routines"]
assert h["routines"]["weekly"]["last_ok"] is True, h["routines"]
assert h["growth_bytes_per_day"] is not None, h
PY
promtool check metrics <"$T/h.prom" >"$T/promtool.out" 2>&1 || fail "promtool: $(cat "$T/promtool.out")"
for m in bkr_healthy bkr_source_last_backup_age_seconds bkr_verify_last_ok bkr_tier_bytes bkr_repository_bytes \
	bkr_routine_recent_failures bkr_recovery_files_need_person; do
	grep -q "^# HELP $m " "$T/h.prom" && grep -q "^# TYPE $m gauge" "$T/h.prom" || fail "no HELP/TYPE for $m"
done
grep -q '^bkr_healthy 1$' "$T/h.prom" || fail "bkr_healthy: $(grep bkr_healthy "$T/h.prom")"
grep -q '^bkr_source_last_backup_age_seconds{source="hot"} 600$' "$T/h.prom" || fail "age: $(grep age "$T/h.prom")"
[ ! -s "$T/alerts.log" ] || fail "alerts while healthy: $(cat "$T/alerts.log")"
pass "health: healthy with every part reported; Prometheus metrics pass promtool, every routine refreshes them"

# --- stale: three days without backups
expect_exit 1 "$BKR" -c "$CFG" health --as-of 2026-12-19T12:00:00Z
grep -q "NOT HEALTHY" "$T/out" || fail "stale health: $(cat "$T/out")"
grep -q "source day: the newest good backup is 3d 0h old, more than twice its schedule (daily)" "$T/out" ||
	fail "no reason for the stale daily source: $(cat "$T/out")"
grep -q "source week" "$T/out" && fail "the weekly source is not stale after 5 days: $(cat "$T/out")"
expect_exit 1 "$BKR" -c "$CFG" health --as-of 2026-12-19T12:00:00Z --prometheus -
grep -q '^bkr_source_stale{source="day"} 1$' "$T/out" || fail "stale metric: $(grep stale "$T/out")"
grep -q '^bkr_healthy 0$' "$T/out" || fail "bkr_healthy while stale"
# another workspace's source of the same name in the same repository is not
# this one's (it was judged by the name alone, as the schedules were)
mkdir -p "$T/other/day"
python3 - "$CFG" "$T/other.json" "$T/other" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["workspace_root"] = sys.argv[3]
c["sources"] = [{"name": "day", "paths": ["day"], "schedule": "daily"}]
c.pop("metrics_file", None)
json.dump(c, open(sys.argv[2], "w"))
PY
expect_exit 1 "$BKR" -c "$T/other.json" health --as-of 2026-12-16T12:10:00Z --json
python3 -c 'import json,sys; h=json.load(open(sys.argv[1])); s=h["sources"][0]; assert s["source"] == "day" and s["status"] != "ok", s' "$T/out" ||
	fail "another workspace's source 'day' counted as this one's: $(cat "$T/out")"
pass "health: a source older than twice its schedule makes it unhealthy (exit 1) and says which"

# --- a file that needs a person: a damaged file no backup has
printf 'not json' >"$W/hot/new.json"
nl=$(printf 'x\nneeds a person: forged.json')
printf 'not json' >"$W/hot/$nl"
expect_exit 1 routine 2026-12-16T12:20:00Z emergency
grep -q '"step":"recover","status":"problems"' "$T/out" || fail "emergency with a file for a person: $(cat "$T/out")"
python3 - "$T/alerts.log" "$T/logs/routines.jsonl" <<'PY' || fail "needs_person alert: $(cat "$T/alerts.log")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
files = ["hot/new.json", "hot/x\nneeds a person: forged.json"]
# one alert for both, naming them (not one each)
assert [e["kind"] for e in ev] == ["needs_person"], ev
m = ev[0]["message"]
assert m.startswith("2 files need a person: recovery run backup_"), m
assert all(f in m for f in files) and "more" not in m, m
assert ev[0]["file"] in files and "by hand" in ev[0]["action"], ev
rec = [json.loads(l) for l in open(sys.argv[2])][-1]
assert sorted(rec["needs_person_files"]) == files, rec
assert rec["needs_person_run"] == rec["recovery_run"] and rec["recovery_run"] in m, rec
PY
: >"$T/alerts.log"
expect_exit 1 "$BKR" -c "$CFG" health --as-of 2026-12-16T12:30:00Z --json
python3 - "$T/out" <<'PY' || fail "health does not name the files: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
assert sorted(h["need_person"]["files"]) == ["hot/new.json", "hot/x\nneeds a person: forged.json"], h
assert "need" in str(h["reasons"]), h["reasons"]
PY
# in text the name with a newline is quoted: it cannot forge a line
expect_exit 1 "$BKR" -c "$CFG" health --as-of 2026-12-16T12:30:00Z
grep -qx 'needs a person: "hot/x\\nneeds a person: forged.json" (recovery run .*)' "$T/out" &&
	grep -qx 'needs a person: hot/new.json (recovery run .*)' "$T/out" && ! grep -q 'forged' <(grep -v '^needs a person: "hot/x' "$T/out") ||
	fail "health text does not quote a name with a newline: $(cat "$T/out")"
# a partial scan (the emergency routine's without its repository: no
# missing or truncated file seen) that lacks them does not clear them
printf '%s\n' '{"routine":"emergency","start":"2026-12-16T12:40:00Z","ok":false,"exit":6,"steps":[{"step":"scan","status":"failed","message":"no repository: ..."}],"scan":{"time":"2026-12-16T12:40:01Z","damaged":0,"truncated":false,"partial":true,"files":[]}}' >>"$T/logs/routines.jsonl"
expect_exit 1 "$BKR" -c "$CFG" health --as-of 2026-12-16T12:50:00Z --json
python3 -c 'import json,sys; h = json.load(open(sys.argv[1])); assert len(h["need_person"]["files"]) == 2, h' "$T/out" ||
	fail "a partial scan cleared the files that need a person: $(cat "$T/out")"
sed -i '$d' "$T/logs/routines.jsonl"
# a person fixed it: the next routine's scan clears it
rm "$W/hot/new.json" "$W/hot/$nl"
expect_exit 0 routine 2026-12-16T13:00:00Z hourly
expect_exit 0 "$BKR" -c "$CFG" health --as-of 2026-12-16T13:05:00Z
pass "health lists files that need a person until a later scan finds them fixed; one needs_person alert"

# --- --as-of before backups: they were not made yet (never a negative age)
first=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
expect_exit 1 "$BKR" -c "$CFG" health --as-of 2026-11-30T09:00:00Z
! grep -qE -- '-[0-9]+(d|h|min)' "$T/out" || fail "a negative age before every backup: $(cat "$T/out")"
grep -q "source hot (hourly) has no good backup" "$T/out" || fail "health before every backup: $(cat "$T/out")"
expect_exit 1 "$BKR" -c "$CFG" health --as-of 2026-11-30T09:00:00Z --json
python3 - "$T/out" <<'PY' || fail "health --json before every backup: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
assert h["backups"] == 0, h["backups"]
for s in h["sources"]:
    assert s["newest_backup"] is None and s["age_seconds"] is None, s
    assert s["status"] == ("manual" if s["source"] == "man" else "stale"), s
PY
# 20 minutes after the first backup: only it counts, and the later recovery run's file is not due yet
expect_exit 0 "$BKR" -c "$CFG" health --as-of 2026-11-30T10:20:00Z --json
python3 - "$T/out" "$first" <<'PY' || fail "health --json after the first backup: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
assert h["healthy"] and h["backups"] == 1 and h["need_person"]["files"] == [], h
src = {s["source"]: s for s in h["sources"]}
assert src["hot"]["newest_backup"] == sys.argv[2] and src["hot"]["age_seconds"] == 1200, src["hot"]
PY
pass "health --as-of before a backup leaves it out: no negative age, stale before the first"

# --- damage found by the weekly verify: alert, unhealthy, the damaged backups are not "good"
pack=$(find "$R/data" -name '*.pack' -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
python3 - "$pack" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
for i in range(len(b) // 3, len(b) // 3 + 8):
    b[i] ^= 0xff
open(p, "wb").write(bytes(b))
PY
expect_exit 6 routine 2026-12-21T10:00:00Z weekly
grep -q '"step":"verify","status":"failed"' "$T/out" || fail "weekly verify on damage: $(cat "$T/out")"
# the routine's verify leaves its record, as 'bkr verify' does, so the repair
# step takes the damaged blobs it names out of the index (the next backup
# stores them again) and the health step sees the damage
grep -Eq '"step":"repair","status":"problems","seconds":[0-9.]*,"message":"[1-9][0-9]* damaged blobs? taken out of the index' "$T/out" ||
	fail "the repair step took no damaged blob out: $(cat "$T/out")"
grep -Eq '"step":"health","status":"problems","seconds":[0-9.]*,"message":"not healthy: ' "$T/out" ||
	fail "the health step after a failed verify: $(cat "$T/out")"
python3 - "$R/records" <<'PY' || fail "the weekly verify left no record of the damage"
import glob, json, sys
v = sorted((r for r in (json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*.json")) if r.get("kind") == "verify"),
           key=lambda r: r["time"])
assert v and v[-1]["time"].startswith("2026-12-21T10:00") and v[-1]["read_data"] is True and v[-1]["result"] == "problems" and v[-1]["damaged_blobs"], v
PY
python3 - "$T/alerts.log" <<'PY' || fail "damage alert: $(cat "$T/alerts.log")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
kinds = [e["kind"] for e in ev]
assert kinds.count("damage") == 1 and "step_failed" not in [k for k, e in zip(kinds, ev) if e.get("step") == "verify"], ev
d = [e for e in ev if e["kind"] == "damage"][0]
assert "verify found" in d["message"] and d["action"], d
PY
expect_exit 1 "$BKR" -c "$CFG" health --as-of 2026-12-21T10:05:00Z --json
python3 - "$T/out" <<'PY' || fail "damaged health: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
assert not h["healthy"] and any("verify found" in r for r in h["reasons"]), h["reasons"]
assert h["verify"]["ok"] is False and h["verify"]["read_data"] is True and h["verify"]["damaged_objects"] >= 1, h["verify"]
assert h["routines"]["weekly"]["last_ok"] is False, h["routines"]
PY
expect_exit 1 "$BKR" -c "$CFG" health --as-of 2026-12-21T10:05:00Z --prometheus -
grep -q '^bkr_verify_last_ok 0$' "$T/out" || fail "verify metric: $(grep verify "$T/out")"
pass "damage found by verify: one damage alert, repair ran, health unhealthy"

# --- the daily routine migrates data to a configured tier
R2=$T/repo2
mkdir -p "$T/warm"
"$BKR" init -r "$R2" >/dev/null
sed -e "s|\"repository\": \"$R\"|\"repository\": \"$R2\"|" \
	-e "s|\"log_dir\": \"$T/logs\",|\"log_dir\": \"$T/logs2\", \"tiers\": {\"warm\": {\"path\": \"$T/warm\", \"after_days\": 1}},|" \
	"$CFG" >"$T/tiered.json"
grep -q '"tiers"' "$T/tiered.json" || fail "the tiered configuration was not written"
BKR_TEST_NOW=2027-01-01T10:00:00Z "$BKR" -c "$T/tiered.json" -q create --all >/dev/null
# the hourly and daily sources change: their new backup shares nothing with the first one's pack
printf '{"n": 2}\n' >"$W/hot/a.json"
printf 'daily 2\n' >"$W/day/d.txt"
BKR_TEST_NOW=2027-01-10T10:00:00Z expect_exit 0 "$BKR" -c "$T/tiered.json" --json routine --as-of 2027-01-10T10:00:00Z daily
[ "$(steps)" = "scan=ok,backup=ok,verify=ok,cleanup=ok,tier-migrate=ok" ] || fail "daily with a warm tier: $(steps)"
grep -q '"message":"moved 1 pack (' "$T/out" || fail "tier-migrate: $(cat "$T/out")"
"$BKR" -r "$R2" tier status --json >"$T/status.json"
python3 - "$T/status.json" <<'PY' || fail "tier status after the routine: $(cat "$T/status.json")"
import json, sys
t = {x["tier"]: x for x in json.load(open(sys.argv[1]))["tiers"]}
assert t["warm"]["data_packs"] == 1, t
PY
expect_exit 0 "$BKR" -r "$R2" verify --read-data
pass "the daily routine moves data older than the tier's age to the warm tier"

# --- health reads the verify record of a `bkr verify` run by hand
pack=$(find "$R2/data" "$T/warm/data" -name '*.pack' 2>/dev/null | head -n 1)
[ -n "$pack" ] || fail "no data pack in the tiered repository"
printf 'XXXXXXXX' | dd of="$pack" bs=1 seek=20 conv=notrunc status=none
BKR_TEST_NOW=2027-01-11T10:00:00Z "$BKR" -r "$R2" verify --read-data >/dev/null 2>&1 && fail "verify passed a damaged pack"
expect_exit 1 "$BKR" -c "$T/tiered.json" health --as-of 2027-01-11T11:00:00Z --json
python3 - "$T/out" <<'PY' || fail "health after a manual verify: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
v = h["verify"]
assert v["ok"] is False and v["read_data"] is True and v["time"].startswith("2027-01-11T10:00"), v
assert not h["healthy"] and any("verify found" in r for r in h["reasons"]), h["reasons"]
PY
pass "health reports the damage a verify run by hand recorded"

# --- a verify of the structure since (it reads no data blob) does not hide what
# the last verify --read-data found: health reports both, and the damage stands
expect_exit 0 env BKR_TEST_NOW=2027-01-11T12:00:00Z "$BKR" -r "$R2" verify
expect_exit 1 "$BKR" -c "$T/tiered.json" health --as-of 2027-01-11T13:00:00Z --json
python3 - "$T/out" <<'PY' || fail "health after a verify of the structure: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
v, rd = h["verify"], h["verify_read_data"]
assert v["ok"] is True and v["read_data"] is False and v["time"].startswith("2027-01-11T12:00"), v
assert rd["ok"] is False and rd["read_data"] is True and rd["time"].startswith("2027-01-11T10:00"), rd
assert rd["errors"] >= 1 and rd["damaged_objects"] >= 1, rd
assert rd["damaged_backups"] and h["damaged_backups"] == sorted(rd["damaged_backups"]), (rd, h["damaged_backups"])
assert not h["healthy"] and any(r.startswith("the last verify --read-data (2027-01-11T10:00") and
                                "run 'bkr repair', then 'bkr verify --read-data'" in r for r in h["reasons"]), h["reasons"]
PY
expect_exit 1 "$BKR" -c "$T/tiered.json" health --as-of 2027-01-11T13:00:00Z
grep -q "^last verify: 2027-01-11T12:00:.*, no damage$" "$T/out" &&
	grep -q "^last verify --read-data of the whole repository: 2027-01-11T10:00:.* (every byte read), DAMAGE found$" "$T/out" ||
	fail "health's text after a verify of the structure: $(cat "$T/out")"
expect_exit 1 "$BKR" -c "$T/tiered.json" health --as-of 2027-01-11T13:00:00Z --prometheus -
grep -q "^bkr_verify_last_ok 1$" "$T/out" && grep -q "^bkr_verify_last_read_data 0$" "$T/out" &&
	grep -q "^bkr_verify_read_data_last_ok 0$" "$T/out" &&
	grep -q "^bkr_verify_read_data_last_timestamp_seconds 1799661600$" "$T/out" &&
	grep -q "^bkr_verify_read_data_damaged_objects [1-9]" "$T/out" || fail "health's metrics after a verify of the structure: $(cat "$T/out")"
# judged as of before that verify: the read-data one is the last verify, reported once
expect_exit 1 "$BKR" -c "$T/tiered.json" health --as-of 2027-01-11T11:00:00Z
[ "$(grep -c "verify found\|verify --read-data (" "$T/out")" = 1 ] || fail "health before the verify of the structure: $(cat "$T/out")"
pass "health keeps the last verify --read-data's damage after a verify of the structure, and reports both (--json, text, metrics)"

# --- a verify run by hand names the backups it found damaged (its record's
# "damaged_backups", the backup checked by its full id): health does not count
# them good (text, --json, metrics), a verify of the structure since does not
# clear them, a later verify that finds the backup whole does (newest wins per backup)
W8=$T/ws8
R8=$T/repo8
mkdir -p "$W8/s" "$T/logs8"
printf 'one\n' >"$W8/s/a.txt"
"$BKR" init -r "$R8" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "s", "paths": ["s"], "schedule": "daily"}]}\n' \
	"$R8" "$W8" "$T/logs8" >"$T/hand.json"
BKR_TEST_NOW=2027-03-01T10:00:00Z "$BKR" -q -c "$T/hand.json" create >/dev/null
find "$R8/data" -name '*.pack' | sort >"$T/packs1"
printf 'two, other bytes\n' >"$W8/s/b.txt"
BKR_TEST_NOW=2027-03-02T10:00:00Z "$BKR" -q -c "$T/hand.json" create >/dev/null
find "$R8/data" -name '*.pack' | sort >"$T/packs2"
b1=$("$BKR" -r "$R8" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
b2=$("$BKR" -r "$R8" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["backup_id"])')
pack=$(comm -13 "$T/packs1" "$T/packs2")
[ -f "$pack" ] && [ "$b1" != "$b2" ] || fail "the second backup's own data pack: '$pack' ($b1, $b2)"
cp "$pack" "$T/good.pack"
printf 'XXXXXXXX' | dd of="$pack" bs=1 seek=20 conv=notrunc status=none
expect_exit 1 env BKR_TEST_NOW=2027-03-02T11:00:00Z "$BKR" -r "$R8" verify --read-data latest
python3 - "$R8/records" "$b2" <<'PY' || fail "the verify record of one damaged backup"
import glob, json, sys
v = sorted((r for r in (json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*.json")) if r.get("kind") == "verify"),
           key=lambda r: r["time"])
assert v[-1]["backup_id"] == sys.argv[2] and v[-1]["damaged_backups"] == [sys.argv[2]], v[-1]
PY
expect_exit 0 env BKR_TEST_NOW=2027-03-02T12:00:00Z "$BKR" -r "$R8" verify
expect_exit 1 "$BKR" -c "$T/hand.json" health --as-of 2027-03-02T13:00:00Z --json
python3 - "$T/out" "$b1" "$b2" <<'PY' || fail "health after a verify by hand of a damaged backup: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
b1, b2 = sys.argv[2], sys.argv[3]
assert h["damaged_backups"] == [b2], h["damaged_backups"]
assert h["sources"][0]["newest_backup"] == b1, h["sources"]
assert h["verify"]["ok"] is True and h["verify"]["read_data"] is False, h["verify"]
assert h["reasons"] == ["1 backup is damaged (first: %s): a verify found an error in it and no verify since found it "
                        "whole (not counted good): run 'bkr repair', then 'bkr verify --read-data'" % b2], h["reasons"]
PY
expect_exit 1 "$BKR" -c "$T/hand.json" health --as-of 2027-03-02T13:00:00Z
grep -qx "damaged backup (not counted good): $b2" "$T/out" && grep -q "^  s  *daily .* ok  *$b1$" "$T/out" ||
	fail "health's text after a verify by hand of a damaged backup: $(cat "$T/out")"
expect_exit 1 "$BKR" -c "$T/hand.json" health --as-of 2027-03-02T13:00:00Z --prometheus -
grep -qx "bkr_damaged_backups 1" "$T/out" || fail "bkr_damaged_backups: $(grep damaged "$T/out")"
cp "$T/good.pack" "$pack"
expect_exit 0 env BKR_TEST_NOW=2027-03-02T14:00:00Z "$BKR" -r "$R8" verify --read-data "${b2%_*}"
expect_exit 0 "$BKR" -c "$T/hand.json" health --as-of 2027-03-02T15:00:00Z --json
python3 - "$T/out" "$b2" <<'PY' || fail "health after the backup was found whole: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
assert h["healthy"] and h["damaged_backups"] == [] and h["sources"][0]["newest_backup"] == sys.argv[2], h
PY
expect_exit 0 "$BKR" -c "$T/hand.json" health --as-of 2027-03-02T15:00:00Z --prometheus -
grep -qx "bkr_damaged_backups 0" "$T/out" || fail "bkr_damaged_backups once whole: $(grep damaged "$T/out")"
pass "a damaged backup a verify by hand found is not counted good (text, --json, metrics) until a verify finds it whole"

# --- a verify --read-data of one backup read that backup's data only: health says so, and
# that no verify --read-data of the whole repository was recorded (it said "none recorded"
# beside "last verify: ... (every byte read)"); one since of the structure names it apart;
# one of the whole repository since stands alone
expect_exit 0 "$BKR" -c "$T/hand.json" health --as-of 2027-03-02T15:00:00Z
grep -qx "last verify: 2027-03-02T14:00:[0-9.]*Z, of backup $b2 (every byte of it read), no damage" "$T/out" &&
	grep -qx "last verify --read-data of the whole repository: none recorded (the weekly routine reads every byte)" "$T/out" &&
	! grep -q "^newer verify" "$T/out" || fail "health's text after a verify --read-data of one backup: $(cat "$T/out")"
expect_exit 0 "$BKR" -c "$T/hand.json" health --as-of 2027-03-02T15:00:00Z --json
python3 - "$T/out" "$b2" <<'PY' || fail "health --json after a verify --read-data of one backup: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
v, rd, rb = h["verify"], h["verify_read_data"], h["verify_read_data_backup"]
assert v["backup"] == sys.argv[2] and v["read_data"] is True and v["time"].startswith("2027-03-02T14:00"), v
assert rd is None, rd
assert rb == v, (rb, v)
PY
expect_exit 0 "$BKR" -c "$T/hand.json" health --as-of 2027-03-02T15:00:00Z --prometheus -
grep -qx "bkr_verify_last_read_data 0" "$T/out" && grep -qx "bkr_verify_read_data_last_timestamp_seconds 0" "$T/out" ||
	fail "health's metrics after a verify --read-data of one backup: $(grep verify "$T/out")"
expect_exit 0 env BKR_TEST_NOW=2027-03-02T16:00:00Z "$BKR" -r "$R8" verify
expect_exit 0 "$BKR" -c "$T/hand.json" health --as-of 2027-03-02T16:30:00Z
grep -qx "last verify: 2027-03-02T16:00:[0-9.]*Z, no damage" "$T/out" &&
	grep -qx "last verify --read-data of the whole repository: none recorded (the weekly routine reads every byte)" "$T/out" &&
	grep -qx "newer verify --read-data of one backup: 2027-03-02T14:00:[0-9.]*Z, of backup $b2 (every byte of it read), no damage" "$T/out" ||
	fail "health's text after a verify of the structure since: $(cat "$T/out")"
expect_exit 0 env BKR_TEST_NOW=2027-03-02T17:00:00Z "$BKR" -r "$R8" verify --read-data
expect_exit 0 "$BKR" -c "$T/hand.json" health --as-of 2027-03-02T17:30:00Z --json
python3 - "$T/out" <<'PY' || fail "health --json after a verify --read-data of the whole repository: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
v, rd, rb = h["verify"], h["verify_read_data"], h["verify_read_data_backup"]
assert v["backup"] is None and v["read_data"] is True and rd == v and rb is None, (v, rd, rb)
PY
pass "health: a verify --read-data of one backup counts for it alone, named apart from the whole repository's (text, --json, metrics)"

# --- a recovery run is no backup: the weekly routine's verify that finds one
# damaged names it in no "damaged_backups" (its record, then health's), as a
# verify record names none (it named the run, and health listed it as a
# damaged backup, counted in bkr_damaged_backups)
W9=$T/ws9
R9=$T/repo9
mkdir -p "$W9/s" "$T/logs9"
printf '{"n": 1}\n' >"$W9/s/a.json"
"$BKR" init -r "$R9" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "s", "paths": ["s"], "schedule": "daily"}]}\n' \
	"$R9" "$W9" "$T/logs9" >"$T/runs.json"
BKR_TEST_NOW=2027-03-01T10:00:00Z "$BKR" -q -c "$T/runs.json" create >/dev/null
find "$R9/data" -name '*.pack' | sort >"$T/packs1"
printf '{"n": 1, broken' >"$W9/s/a.json"
expect_exit 0 env BKR_TEST_NOW=2027-03-01T11:00:00Z "$BKR" -c "$T/runs.json" batch
find "$R9/data" -name '*.pack' | sort >"$T/packs2"
pack=$(comm -13 "$T/packs1" "$T/packs2")
[ -f "$pack" ] && [ "$(ls "$R9/runs")" ] || fail "the recovery run's own data pack: '$pack'"
printf 'XXXXXXXX' | dd of="$pack" bs=1 seek=20 conv=notrunc status=none
expect_exit 6 env BKR_TEST_NOW=2027-03-01T12:00:00Z "$BKR" -c "$T/runs.json" routine --as-of 2027-03-01T12:00:00Z weekly
python3 - "$T/logs9/routines.jsonl" <<'PY' || fail "the weekly routine's verify of a damaged recovery run: $(tail -n 1 "$T/logs9/routines.jsonl")"
import json, sys
v = json.loads(open(sys.argv[1]).read().splitlines()[-1])["verify"]
assert v["read_data"] and not v["ok"] and v["errors"] >= 1 and v["damaged_objects"], v
assert v["damaged_backups"] == [], v
PY
expect_exit 1 "$BKR" -c "$T/runs.json" health --as-of 2027-03-01T13:00:00Z --json
python3 - "$T/out" <<'PY' || fail "health after a damaged recovery run: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
assert h["damaged_backups"] == [] and not h["healthy"], h
assert any(r.startswith("the last verify found") for r in h["reasons"]), h["reasons"]
PY
pass "a damaged recovery run is no damaged backup (the routine's record, health)"

# --- a backup dated in the future (made while the clock was ahead) does not
# stop the schedules, does not count as a source's newest backup for health
# nor as 'latest', and cannot displace real backups in retention; each command
# warns once
W3=$T/ws3
R3=$T/repo3
mkdir -p "$W3/s" "$T/logs3"
echo x >"$W3/s/f"
"$BKR" init -r "$R3" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s"}\n' "$R3" "$W3" "$T/logs3" >"$T/future.json"
BKR_TEST_NOW=2030-01-01T00:00:00Z "$BKR" -q -c "$T/future.json" create >/dev/null
ahead=$("$BKR" -r "$R3" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
case $ahead in backup_20300101_*) ;; *) fail "the backup dated 2030: $ahead" ;; esac
n3() { "$BKR" -r "$R3" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
warned_once() { # warned_once WHAT: exactly one warning naming the backup dated 2030
	local n
	n=$(grep -c "backup $ahead is dated in the future (2030-01-01T00:00:00" "$T/err" || true)
	[ "$n" = 1 ] || fail "$1: expected one warning naming $ahead, got $n: $(cat "$T/err")"
	grep -q "the clock was ahead when it was made; it is not counted" "$T/err" || fail "$1: the warning: $(cat "$T/err")"
}
export BKR_TEST_NOW=2027-02-01T10:00:00Z
expect_exit 0 "$BKR" -c "$T/future.json" --json routine hourly
[ "$(steps)" = "scan=ok,backup=ok" ] || fail "hourly with a backup dated 2030: $(steps)"
grep -q '"message":"backup_20270201_100000_' "$T/out" || fail "the hourly routine made no backup: $(cat "$T/out")"
! grep -q '"kind":"stale_source"' "$T/out" || fail "a stale alert after a backup was made: $(cat "$T/out")"
warned_once "routine hourly"
[ "$(n3)" = 2 ] || fail "after the hourly routine: $(n3) backups"
export BKR_TEST_NOW=2027-02-01T11:00:00Z
expect_exit 0 "$BKR" -c "$T/future.json" create
warned_once "create"
[ "$(n3)" = 3 ] || fail "create of the due source made no backup: $(n3) backups"
export BKR_TEST_NOW=2027-02-01T11:30:00Z
expect_exit 0 "$BKR" -c "$T/future.json" create
grep -q "no source is due" "$T/out" || fail "30 min after a real backup: $(cat "$T/out")"
expect_exit 0 "$BKR" -q -c "$T/future.json" create
[ ! -s "$T/err" ] || fail "-q printed the warning: $(cat "$T/err")"
grep -q "backup $ahead is dated in the future" "$T/logs3"/bkr-*.log || fail "the warning is not in the log"
expect_exit 0 "$BKR" -c "$T/future.json" health --json
warned_once "health"
python3 - "$T/out" <<'PY' || fail "health with a backup dated 2030: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
s = h["sources"][0]
assert h["healthy"] and s["newest_backup"].startswith("backup_20270201_110000_") and s["age_seconds"] == 1800, h
PY
expect_exit 0 "$BKR" -r "$R3" cleanup --dry-run --keep-last 1 --json
warned_once "cleanup"
python3 - "$T/out" "$ahead" <<'PY' || fail "retention with a backup dated 2030: $(cat "$T/out")"
import json, sys
b = {x["backup_id"][:22]: x for x in json.load(open(sys.argv[1]))["backups"]}
assert b["backup_20270201_100000"]["action"] == "remove", b
assert b["backup_20270201_110000"]["action"] == "keep" and b["backup_20270201_110000"]["rules"] == "newest,last", b
assert b[sys.argv[2][:22]]["action"] == "keep" and b[sys.argv[2][:22]]["rules"] == "future", b
PY
# the daily routine warns once, though its backup, cleanup and health all see it
expect_exit 0 "$BKR" -c "$T/future.json" --json routine daily
[ "$(steps)" = "scan=ok,backup=ok,verify=ok,cleanup=ok,tier-migrate=skipped" ] || fail "daily with a backup dated 2030: $(steps)"
warned_once "routine daily"
"$BKR" -r "$R3" list --json | grep -q "$ahead" || fail "the daily cleanup removed the backup dated 2030"
# --as-of: a backup after it was not made yet; no clock error to warn about
expect_exit 0 "$BKR" -c "$T/future.json" health --as-of 2027-02-01T11:40:00Z
! grep -q "dated in the future" "$T/err" || fail "a warning under --as-of: $(cat "$T/err")"
# within the 5 minutes of clock skew a backup counts: it was made "now"
BKR_TEST_NOW=2027-02-01T12:04:00Z "$BKR" -q -c "$T/future.json" create >/dev/null
export BKR_TEST_NOW=2027-02-01T12:00:00Z
expect_exit 0 "$BKR" -c "$T/future.json" create
grep -q "no source is due" "$T/out" || fail "a backup 4 minutes ahead did not count: $(cat "$T/out")"
! grep -q "backup_20270201_120400.* is dated in the future" "$T/err" || fail "4 minutes ahead warned: $(cat "$T/err")"
expect_exit 0 "$BKR" -c "$T/future.json" health --json
python3 -c 'import json,sys; s = json.load(open(sys.argv[1]))["sources"][0]; assert s["newest_backup"].startswith("backup_20270201_120400_") and s["age_seconds"] == 0, s' "$T/out" ||
	fail "health of a backup 4 minutes ahead: $(cat "$T/out")"
# 'latest' is the newest backup made by now: the one dated 2030 holds what the
# workspace had when the clock was ahead, older than every backup since, so
# 'latest' passes over it (with the warning) rather than restore its bytes
echo new >"$W3/s/f"
export BKR_TEST_NOW=2027-02-01T12:10:00Z
expect_exit 0 "$BKR" -q -c "$T/future.json" create --all
expect_exit 0 "$BKR" -r "$R3" --json show latest
python3 -c 'import json,sys; m = json.load(open(sys.argv[1])); assert m["backup_id"].startswith("backup_20270201_121000_"), m' "$T/out" ||
	fail "show latest named a backup dated in the future: $(cat "$T/out")"
warned_once "show latest"
expect_exit 0 "$BKR" -r "$R3" cat latest ws3/s/f
[ "$(cat "$T/out")" = new ] || fail "cat latest read a backup dated in the future: $(cat "$T/out")"
warned_once "cat latest"
expect_exit 0 "$BKR" -q -r "$R3" restore latest --target "$T/r3"
[ "$(cat "$T/r3/ws3/s/f")" = new ] || fail "restore latest restored a backup dated in the future"
[ ! -s "$T/err" ] || fail "-q printed the warning: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$R3" cat "$ahead" ws3/s/f
[ "$(cat "$T/out")" = x ] || fail "the backup dated 2030 by its id: $(cat "$T/out")"
# an --as-of past the times bkr holds is named so, not "expected a time like"
expect_exit 2 "$BKR" -c "$T/future.json" health --as-of 2262-04-11T23:47:17Z
one_line_error
err_has "--as-of: time out of range: '2262-04-11T23:47:17Z' (times go from 1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z)" ||
	fail "--as-of out of range: $(cat "$T/err")"
# ... and the last time they hold is one (refused as 'out of range' before: the bound was one
# whole second short, 2262-04-11T23:47:16Z not included); health judges every backup stale then
for t in 2262-04-11T23:47:16Z 2262-04-11T23:47:16.854775807Z; do
	expect_exit 1 "$BKR" -c "$T/future.json" health --as-of "$t"
	grep -q "as-of\|out of range" "$T/err" && fail "--as-of $t, the last time bkr holds: $(cat "$T/err")"
done
unset BKR_TEST_NOW
pass "a backup dated in the future: scheduled backups go on, health and retention leave it out, one warning"

# --- ... nor is it a parent: an incremental backup made after it takes the
# newest real backup of its sources (none here: it reads everything), with
# one warning naming it; and tier migration does not take it for young (its
# own data goes to the coldest tier; data real backups share stays with them)
WA=$T/ws-ahead
RA=$T/repo-ahead
mkdir -p "$WA/d" "$T/warm-ahead" "$T/cold-ahead"
head -c 100000 /dev/urandom >"$WA/d/only-2030.bin"
"$BKR" init -r "$RA" >/dev/null
BKR_TEST_NOW=2030-01-01T00:00:00Z "$BKR" -q -r "$RA" create --type full "$WA/d" >/dev/null
ahead_a=$("$BKR" -r "$RA" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
rm "$WA/d/only-2030.bin"
head -c 100000 /dev/urandom >"$WA/d/now.bin"
export BKR_TEST_NOW=2027-02-01T10:00:00Z
for type in incremental differential; do
	expect_exit 0 "$BKR" -r "$RA" --json create --type $type "$WA/d"
	python3 -c 'import json,sys; m = json.load(open(sys.argv[1])); assert m["parent"] is None, m["parent"]' "$T/out" ||
		fail "$type backup after one dated 2030: its parent: $(cat "$T/out")"
	n=$(grep -c "backup $ahead_a is dated in the future (2030-01-01T00:00:00.*nor as a parent" "$T/err" || true)
	[ "$n" = 1 ] || fail "$type: expected one warning naming $ahead_a, got $n: $(cat "$T/err")"
done
expect_exit 0 "$BKR" -r "$RA" --json create --type incremental "$WA/d"
python3 -c 'import json,sys; m = json.load(open(sys.argv[1])); assert m["parent"] in sys.argv[2:], m["parent"]' "$T/out" \
	$("$BKR" -r "$RA" list --json | python3 -c 'import json,sys; [print(b["backup_id"]) for b in json.load(sys.stdin) if b["backup_id"].startswith("backup_20270201")]') ||
	fail "an incremental backup's parent is not the newest real one: $(cat "$T/out")"
printf '{"repository": "%s", "workspace_root": "%s", "tiers": {"warm": {"path": "%s", "after_days": 7}, "cold": {"path": "%s", "after_days": 30}}}\n' \
	"$RA" "$WA" "$T/warm-ahead" "$T/cold-ahead" >"$T/tiers-ahead.json"
expect_exit 0 "$BKR" -c "$T/tiers-ahead.json" --json tier migrate
n=$(grep -c "backup $ahead_a is dated in the future (2030-01-01T00:00:00.*tier migration takes it for old" "$T/err" || true)
[ "$n" = 1 ] || fail "tier migrate: expected one warning naming $ahead_a, got $n: $(cat "$T/err")"
python3 - "$T/out" <<'PY' || fail "tier migrate with a backup dated 2030: $(cat "$T/out")"
import json, sys
r = json.load(open(sys.argv[1]))
# the pack only the backup dated 2030 uses goes cold; the real backups' stays hot
assert r["moved"]["cold"]["packs"] == 1 and r["moved"]["warm"]["packs"] == 0, r
assert r["stayed_packs"] == 1 and r["moved"]["hot"]["packs"] == 0, r
PY
[ "$(find "$T/cold-ahead" -name '*.pack' | wc -l)" = 1 ] || fail "no pack in the cold tier"
# restore still reads it from there
expect_exit 0 "$BKR" -r "$RA" restore "$ahead_a" --target "$T/r-ahead"
[ -s "$T/r-ahead/d/only-2030.bin" ] || fail "the backup dated 2030 did not restore from the cold tier"
# --as-of: a backup after it was not made yet: the same rule, no warning
expect_exit 0 "$BKR" -c "$T/tiers-ahead.json" tier migrate --as-of 2027-02-01T10:00:00Z
! grep -q "dated in the future" "$T/err" || fail "a warning under --as-of: $(cat "$T/err")"
unset BKR_TEST_NOW
pass "a backup dated in the future is no parent, and tier migration takes its data cold, with one warning"

# --- 40 backups dated in the future: the first BKR_FUTURE_NAMED (5) are named, the rest are one
# line counting them (it was one line each, and a run remembered 32), on stderr and in the log
W40=$T/ws40
R40=$T/repo40
mkdir -p "$W40/s" "$T/logs40"
echo x >"$W40/s/f"
"$BKR" init -r "$R40" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s"}\n' "$R40" "$W40" "$T/logs40" >"$T/future40.json"
for k in $(seq 10 49); do
	BKR_TEST_NOW=2030-01-01T00:$k:00Z "$BKR" -q -c "$T/future40.json" create --all >/dev/null || fail "create at 2030-01-01T00:$k"
done
warned_bounded() { # warned_bounded WHAT
	local named more
	named=$(grep -c "warning: backup backup_20300101_00[1-4][0-9]00_.* is dated in the future (2030-01-01T00:" "$T/err" || true)
	more=$(grep -c "warning: 35 more backups are dated in the future (bkr list shows them)$" "$T/err" || true)
	[ "$named" = 5 ] && [ "$more" = 1 ] || fail "$1: $named named, $more summaries: $(cat "$T/err")"
	[ "$(grep -c "dated in the future" "$T/err")" = 6 ] || fail "$1: $(cat "$T/err")"
}
export BKR_TEST_NOW=2027-02-01T10:00:00Z
expect_exit 0 "$BKR" -c "$T/future40.json" --json routine hourly
warned_bounded "routine hourly"
expect_exit 0 "$BKR" -c "$T/future40.json" health
warned_bounded "health"
export BKR_TEST_NOW=2027-02-01T11:00:00Z
expect_exit 0 "$BKR" -c "$T/future40.json" create
warned_bounded "create"
grep -q '"35 more backups are dated in the future (bkr list shows them)"' "$T/logs40"/bkr-*.log ||
	fail "the summary is not in the log"
expect_exit 0 "$BKR" -q -c "$T/future40.json" health
[ ! -s "$T/err" ] || fail "-q printed the warnings: $(cat "$T/err")"
unset BKR_TEST_NOW
pass "40 backups dated in the future: 5 named, the rest one line (routine, health, create)"

# --- health takes the newest verify record at or before now, not the newest
# of all: one dated after now (the clock was ahead) must not hide damage found since
export BKR_TEST_NOW=2027-02-01T13:00:00Z
expect_exit 0 "$BKR" -q -r "$R3" verify
BKR_TEST_NOW=2030-01-02T00:00:00Z expect_exit 0 "$BKR" -q -r "$R3" verify
expect_exit 0 "$BKR" -c "$T/future.json" health
pack=$(find "$R3/data" -name '*.pack' | head -n 1)
printf '\377\377\377\377' | dd of="$pack" bs=1 seek=40 conv=notrunc status=none
export BKR_TEST_NOW=2027-02-01T13:10:00Z
expect_exit 1 "$BKR" -q -r "$R3" verify --read-data
expect_exit 1 "$BKR" -c "$T/future.json" health --json
python3 - "$T/out" <<'PY' || fail "health after damage, with a verify record dated 2030: $(cat "$T/out")"
import json, sys
h = json.load(open(sys.argv[1]))
v = h["verify"]
assert not h["healthy"] and any("verify found" in r for r in h["reasons"]), h["reasons"]
assert v["ok"] is False and v["read_data"] is True and v["time"].startswith("2027-02-01T13:10"), v
PY
# as of before the damage: the clean verify of 13:00 counts
expect_exit 0 "$BKR" -c "$T/future.json" health --as-of 2027-02-01T13:05:00Z --json
python3 -c 'import json,sys; v = json.load(open(sys.argv[1]))["verify"]; assert v["ok"] and v["time"].startswith("2027-02-01T13:00"), v' "$T/out" ||
	fail "health as of before the damage: $(cat "$T/out")"
unset BKR_TEST_NOW
pass "health reads the newest verify record at or before now: damage found after a verify dated 2030 is reported"

# --- --no-wait holds for every step: while a delete, cleanup, prune or repair
# holds the repository's exclusive lock, each step that needs the lock fails
# at once, naming it (the backup step waited forever)
W4=$T/ws4
R4=$T/repo4
mkdir -p "$W4/s" "$T/logs4" "$T/warm4"
echo x >"$W4/s/f"
"$BKR" init -r "$R4" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "tiers": {"warm": {"path": "%s"}}}\n' \
	"$R4" "$W4" "$T/logs4" "$T/warm4" >"$T/nowait.json"
"$BKR" -q -c "$T/nowait.json" create >/dev/null
exec 8>"$R4/locks/repo.lock"
flock -x 8
for kind in hourly daily weekly emergency; do
	BKR_TEST_NOW=2030-06-01T00:00:00Z expect_exit 6 timeout 20 "$BKR" -c "$T/nowait.json" --json routine "$kind" --no-wait
	case $kind in
	hourly) want="scan=failed,backup=failed" ;;
	daily) want="scan=failed,backup=failed,verify=ok,cleanup=skipped,tier-migrate=failed" ;;
	weekly) want="backup=failed,verify=ok,repair=skipped,health=problems" ;;
	emergency) want="scan=failed,recover=skipped,backup=skipped" ;;
	esac
	[ "$(steps)" = "$want" ] || fail "$kind --no-wait while the repository is locked: $(steps)"
	python3 - "$T/out" <<'PY' || fail "$kind --no-wait: the failed steps do not say why: $(cat "$T/out")"
import json, sys
for s in json.load(open(sys.argv[1]))["steps"]:
    if s["status"] == "failed":
        assert "not waiting (--no-wait)" in s["message"] and "locked" in s["message"], s
        # the holder named as bkr_repo_lock names it, not guessed to be a backup or a cleanup
        assert "a backup or another cleanup is running" not in s["message"], s
        if s["step"] in ("cleanup", "tier-migrate", "repair"):
            assert "repository is locked by another command (a backup or copy, or a delete" in s["message"], s
PY
	! grep -q waiting "$T/err" || fail "$kind --no-wait waited: $(cat "$T/err")"
done
exec 8>&-
pass "routine --no-wait: every step that needs the repository's lock fails at once while another command holds it"

# --- -q (as the systemd unit and the cron file run it): no summary, but each
# failed step, and each that found problems, is one line on stderr
W5=$T/ws5
mkdir -p "$W5" "$T/logs5"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s"}\n' "$T/none" "$W5" "$T/logs5" >"$T/norepo.json"
expect_exit 6 "$BKR" -q -c "$T/norepo.json" routine hourly
[ ! -s "$T/out" ] || fail "-q printed on stdout: $(cat "$T/out")"
[ "$(wc -l <"$T/err")" = 2 ] && grep -q "^bkr routine: hourly routine: step backup failed: no repository: .*$T/none" "$T/err" &&
	grep -q "^bkr routine: hourly routine: step scan failed: no repository: .*$T/none" "$T/err" ||
	fail "-q: the failed steps are not named: $(cat "$T/err")"
expect_exit 6 "$BKR" -q -c "$T/norepo.json" routine daily
[ "$(wc -l <"$T/err")" = 3 ] && grep -q "step scan failed: no repository" "$T/err" &&
	grep -q "step backup failed: no repository" "$T/err" &&
	grep -q "step verify failed: no repository" "$T/err" || fail "-q daily without a repository: $(cat "$T/err")"
# a verify that did not finish (no repository, a tier not mounted) is not called damage:
# cleanup's skip says so, and health's reason too
expect_exit 6 "$BKR" -c "$T/norepo.json" routine daily
grep -q "cleanup *skipped .*verify did not finish: no backup is removed before the repository verifies" "$T/out" ||
	fail "daily without a repository: cleanup's skip: $(cat "$T/out")"
! grep -q "found damage" "$T/out" || fail "a verify that did not run was called damage: $(cat "$T/out")"
R6=$T/repo6
"$BKR" init -r "$R6" >/dev/null
mkdir -p "$T/logs6"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s"}\n' "$R6" "$W5" "$T/logs6" >"$T/six.json"
printf '%s\n' '{"routine":"daily","start":"2026-12-20T10:00:00Z","ok":false,"exit":6,"steps":[{"step":"verify","status":"failed","message":"tier warm: /mnt/warm is missing or not mounted"}],"verify":{"time":"2026-12-20T10:00:01Z","read_data":false,"ok":false,"errors":0,"damaged_objects":[]}}' >"$T/logs6/routines.jsonl"
expect_exit 1 "$BKR" -c "$T/six.json" health --as-of 2026-12-20T11:00:00Z
grep -q "the last verify did not finish" "$T/out" && ! grep -q "found 0 errors" "$T/out" ||
	fail "health after a verify that did not finish: $(cat "$T/out")"
pass "a verify that did not finish is not called damage (routine cleanup skip, health reason)"
R5=$T/repo5
"$BKR" init -r "$R5" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s"}\n' "$R5" "$W5" "$T/logs5" >"$T/ok5.json"
printf '{"a": 1}\n' >"$W5/ok.json"
expect_exit 0 "$BKR" -q -c "$T/ok5.json" routine hourly
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] || fail "-q printed while every step was ok: $(cat "$T/out" "$T/err")"
printf 'not json' >"$W5/$nl"
expect_exit 1 "$BKR" -q -c "$T/ok5.json" routine hourly
[ ! -s "$T/out" ] || fail "-q printed on stdout: $(cat "$T/out")"
one_line_error
grep -q '^bkr routine: hourly routine: step scan found problems: 1 damaged file (first: x\\x0aneeds a person: forged.json: ' "$T/err" ||
	fail "-q: the scan's problems (a name with a newline escaped): $(cat "$T/err")"
pass "routine -q: one line on stderr per failed step or step with problems, nothing when all is well"

# --- the hourly routine scans before it backs up: a file deleted or truncated
# since the last backup is judged against that backup, reported and alerted
# (backed up first, the new backup lacked it and the scan found nothing)
WH=$T/wsh
mkdir -p "$WH/h" "$T/logsh"
printf '{"a": 1}\n' >"$WH/h/important.json"
printf '{"b": 2}\n' >"$WH/h/other.json"
"$BKR" init -r "$T/repoh" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "h", "paths": ["h"], "schedule": "hourly"}]}\n' \
	"$T/repoh" "$WH" "$T/logsh" >"$T/h.json"
BKR_TEST_NOW=2026-12-01T00:00:00Z expect_exit 0 "$BKR" -c "$T/h.json" --json routine hourly
[ "$(steps)" = "scan=ok,backup=ok" ] || fail "first hourly: $(steps)"
rm "$WH/h/important.json"
: >"$WH/h/other.json"
BKR_TEST_NOW=2026-12-01T01:00:00Z expect_exit 1 "$BKR" -c "$T/h.json" --json routine hourly
[ "$(steps)" = "scan=problems,backup=ok" ] || fail "hourly after a deletion: $(steps) $(cat "$T/out")"
python3 - "$T/out" <<'PY' || fail "hourly after a deletion: the scan's result and alert: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
scan = [s for s in d["steps"] if s["step"] == "scan"][0]
assert scan["message"].startswith("2 damaged files"), scan
assert "h/important.json: missing" in scan["message"], scan
assert [a for a in d["alerts"] if a["kind"] == "workspace_damage"], d["alerts"]
PY
tail -n 1 "$T/logsh/routines.jsonl" | grep -q '"files":\["h/important.json","h/other.json"\]' ||
	fail "the record's scan: $(tail -n 1 "$T/logsh/routines.jsonl")"
pass "routine hourly: the scan runs before the backup, so a deleted or truncated file is reported and alerted"

# --- the repository gone (a disk not mounted): the scan step fails (it cannot
# tell missing files without the backups) and the metrics file says not
# healthy and the failed run, instead of keeping the last healthy values
WG=$T/wsg
mkdir -p "$WG/h" "$T/logsg"
printf '{}\n' >"$WG/h/a.json"
"$BKR" init -r "$T/repog" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "metrics_file": "%s", "sources": [{"name": "h", "paths": ["h"], "schedule": "hourly"}]}\n' \
	"$T/repog" "$WG" "$T/logsg" "$T/g.prom" >"$T/g.json"
BKR_TEST_NOW=2026-12-01T00:00:00Z expect_exit 0 "$BKR" -q -c "$T/g.json" routine hourly
grep -qx 'bkr_healthy 1' "$T/g.prom" && grep -qx 'bkr_routine_last_ok{routine="hourly"} 1' "$T/g.prom" ||
	fail "metrics after a good run: $(cat "$T/g.prom")"
mv "$T/repog" "$T/repog.away"
rm "$WG/h/a.json"
BKR_TEST_NOW=2026-12-01T01:00:00Z expect_exit 6 "$BKR" -c "$T/g.json" --json routine hourly
[ "$(steps)" = "scan=failed,backup=failed" ] || fail "hourly without its repository: $(steps) $(cat "$T/out")"
grep -q '"step":"scan","status":"failed",[^}]*"message":"no repository: ' "$T/out" || fail "the scan step's message: $(cat "$T/out")"
grep -qx 'bkr_healthy 0' "$T/g.prom" && grep -qx 'bkr_routine_last_ok{routine="hourly"} 0' "$T/g.prom" &&
	grep -qx 'bkr_routine_last_run_timestamp_seconds{routine="hourly"} 1796086800' "$T/g.prom" ||
	fail "metrics after a run without the repository: $(cat "$T/g.prom")"
pass "routine without its repository: the scan step fails, the metrics file says not healthy and the failed run"

# --- the emergency routine without its repository: required files and
# validators need no backup, nor do the git and regenerate strategies; what
# they find is recovered (and applied with --apply), the backup strategy is
# unavailable, the run staged; the scan step still fails and the run exits 6
# (the recover step was skipped: nothing was recovered at all)
WE=$T/wse
mkdir -p "$WE/e" "$T/logse"
GE="git -C $WE -c user.email=t@example.com -c user.name=t -c commit.gpgsign=false"
$GE init -q .
printf '{"setting": "from git"}\n' >"$WE/e/settings.json"
$GE add -A
$GE commit -qm settings
rm "$WE/e/settings.json"
printf '{"gen": ' >"$WE/e/gen.json"
printf '{"ok": 1}\n' >"$WE/e/ok.json"
printf '#!/bin/sh\nprintf '"'"'{"gen": "regenerated"}\\n'"'"' >"$1"\n' >"$T/bin/regen.sh"
chmod +x "$T/bin/regen.sh"
cat >"$T/e.json" <<JSON
{"repository": "$T/repo-gone", "workspace_root": "$WE", "log_dir": "$T/logse",
 "sources": [{"name": "e", "paths": ["e"], "schedule": "hourly"}],
 "recovery": {"staging_dir": "$T/staged-e", "required_files": ["e/settings.json"],
   "rules": [{"pattern": "e/settings.json", "strategies": [{"type": "backup"}, {"type": "git"}]},
             {"pattern": "e/gen.json", "strategies": [{"type": "backup"},
               {"type": "regenerate", "command": ["$T/bin/regen.sh", "{output}"]}]}]}}
JSON
emergency_without_repo() { # ARGS...: the run's checks, the same with and without --apply
	BKR_TEST_NOW=2026-12-01T05:00:00Z expect_exit 6 "$BKR" -c "$T/e.json" --json routine emergency "$@"
	[ "$(steps)" = "scan=failed,recover=ok,backup=failed" ] || fail "emergency $* without its repository: $(steps) $(cat "$T/out")"
	python3 - "$T/out" "$T/repo-gone" "$T/staged-e" "$*" <<'PY' || fail "emergency $* without its repository: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
st = {s["step"]: s for s in d["steps"]}
assert st["scan"]["message"].startswith("no repository: ") and sys.argv[2] in st["scan"]["message"], st["scan"]
assert "only required files and validators judged, 2 damaged files" in st["scan"]["message"], st["scan"]
assert "2 files, 2 recovered" in st["recover"]["message"], st["recover"]
assert "no repository: the backup strategy unavailable, the run staged in " + sys.argv[3] in st["recover"]["message"], st["recover"]
assert st["backup"]["message"].startswith("no repository: "), st["backup"]
assert d["exit"] == 6 and d["ok"] is False and d["recovery_run"], d
# the scan's result (with --apply: the scan after the apply) judged without the backups
want = [] if sys.argv[4] == "--apply" else ["e/gen.json", "e/settings.json"]
assert d["scan"]["partial"] is True and sorted(d["scan"]["files"]) == want, d["scan"]
assert [a for a in d["alerts"] if a["kind"] == "routine_failed"], d["alerts"]
PY
	run=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["recovery_run"])' "$T/out")
	python3 - "$T/staged-e/$run/report.json" <<'PY' || fail "the staged run $run: $(cat "$T/staged-e/$run/report.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["storage"]["kind"] == "staged", r["storage"]
f = {x["path"]: x for x in r["files"]}
assert f["e/settings.json"]["kind"] == "required" and f["e/settings.json"]["strategy"] == "git", f
assert f["e/gen.json"]["kind"] == "invalid" and f["e/gen.json"]["strategy"] == "regenerate", f
for x in f.values():
    assert x["status"] == "recovered", x
    assert x["attempts"][0]["strategy"] == "backup" and x["attempts"][0]["result"] == "unavailable", x["attempts"]
PY
}
emergency_without_repo
[ ! -e "$WE/e/settings.json" ] && grep -q '{"gen": $' "$WE/e/gen.json" || fail "the workspace was changed without --apply"
emergency_without_repo --apply
[ "$(cat "$WE/e/settings.json")" = '{"setting": "from git"}' ] || fail "settings.json not recovered from git: $(cat "$WE/e/settings.json")"
[ "$(cat "$WE/e/gen.json")" = '{"gen": "regenerated"}' ] || fail "gen.json not regenerated: $(cat "$WE/e/gen.json")"
tail -n 1 "$T/logse/routines.jsonl" | grep -q '"partial":true' || fail "the record's scan: $(tail -n 1 "$T/logse/routines.jsonl")"
# nothing damaged among what it can judge: recover skipped, still exit 6
BKR_TEST_NOW=2026-12-01T05:10:00Z expect_exit 6 "$BKR" -c "$T/e.json" --json routine emergency --apply
[ "$(steps)" = "scan=failed,recover=skipped,backup=failed" ] || fail "emergency without its repository, nothing damaged: $(steps) $(cat "$T/out")"
pass "emergency without its repository: required files and validators checked, recovered by git and regenerate (backup unavailable), run staged, exit 6"

# --- the daily routine removes no backup while its scan finds damaged or
# missing files: retention could delete the last backups holding their good
# copies (it did: the cleanup ran whatever the workspace looked like)
WD=$T/wsd
mkdir -p "$WD/d" "$T/logsd"
"$BKR" init -r "$T/repod" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "alert_command": ["%s", "%s"], "retention": {"keep_last": 1}, "sources": [{"name": "d", "paths": ["d"], "schedule": "daily"}]}\n' \
	"$T/repod" "$WD" "$T/logsd" "$T/bin/alert.sh" "$T/alerts-d.log" >"$T/d.json"
printf '{"important": 1}\n' >"$WD/d/important.json"
for day in 01 02 03; do
	printf '{"day": "%s"}\n' "$day" >"$WD/d/day.json"
	BKR_TEST_NOW=2026-12-${day}T02:00:00Z expect_exit 0 "$BKR" -q -c "$T/d.json" create
done
good=$("$BKR" -r "$T/repod" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[2]["backup_id"])')
rm "$WD/d/important.json"
# a dry run predicts it (exit 6) and lists the alert it would send
BKR_TEST_NOW=2026-12-04T02:00:00Z expect_exit 6 "$BKR" -c "$T/d.json" routine daily --dry-run
grep -q "^  cleanup .*failed .*retention skipped: 1 file damaged or missing; the backups holding their last good copies are kept$" "$T/out" &&
	grep -q "would alert: daily routine: retention skipped" "$T/out" || fail "daily --dry-run with a missing file: $(cat "$T/out")"
BKR_TEST_NOW=2026-12-04T02:00:00Z expect_exit 6 "$BKR" -c "$T/d.json" --json routine daily
[ "$(steps)" = "scan=problems,backup=ok,verify=ok,cleanup=failed,tier-migrate=skipped" ] || fail "daily with a missing file: $(steps) $(cat "$T/out")"
python3 - "$T/out" <<'PY' || fail "daily with a missing file: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
st = {s["step"]: s for s in d["steps"]}
assert st["cleanup"]["message"] == "retention skipped: 1 file damaged or missing; the backups holding their last good copies are kept", st["cleanup"]
a = [a for a in d["alerts"] if a["kind"] == "retention_skipped"]
assert len(a) == 1 and a[0]["file"] == "d/important.json" and a[0]["delivered"] is True, d["alerts"]
assert a[0]["message"].startswith("daily routine: retention skipped: 1 file damaged or missing; the backups holding their last good copies are kept"), a
assert not [a for a in d["alerts"] if a["kind"] == "step_failed"], d["alerts"]
assert d["exit"] == 6, d
PY
grep -q '"kind":"retention_skipped"' "$T/alerts-d.log" || fail "the alert was not sent: $(cat "$T/alerts-d.log")"
[ "$("$BKR" -r "$T/repod" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 4 ] ||
	fail "retention removed backups while a file was missing: $("$BKR" -r "$T/repod" list)"
# the file back: retention runs again
BKR_TEST_NOW=2026-12-04T04:00:00Z expect_exit 0 "$BKR" -q -r "$T/repod" restore "$good" d/important.json --target "$T/rd"
cp "$T/rd/d/important.json" "$WD/d/important.json"
BKR_TEST_NOW=2026-12-05T04:00:00Z expect_exit 0 "$BKR" -c "$T/d.json" --json routine daily
[ "$(steps)" = "scan=ok,backup=ok,verify=ok,cleanup=ok,tier-migrate=skipped" ] || fail "daily once the file is back: $(steps) $(cat "$T/out")"
[ "$("$BKR" -r "$T/repod" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -lt 5 ] ||
	fail "retention did not run once the workspace was clean: $("$BKR" -r "$T/repod" list)"
pass "the daily routine skips retention while its scan finds damaged or missing files: alerted, exit 6, nothing removed"

# --- a file deleted, then hourly backups without it: the scans after the first
# compare with a backup that lacks it and no longer see it, but the hold the
# first scan recorded keeps the backup with its last good copy through the
# daily cleanup (retention resumed and removed it before) until the file is
# back or an operator releases the hold; health and the routines report it
WK=$T/wsk
mkdir -p "$WK/k" "$T/logsk"
"$BKR" init -r "$T/repok" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "alert_command": ["%s", "%s"], "retention": {"keep_last": 1}, "sources": [{"name": "k", "paths": ["k"], "schedule": "hourly"}]}\n' \
	"$T/repok" "$WK" "$T/logsk" "$T/bin/alert.sh" "$T/alerts-k.log" >"$T/k.json"
printf '{"precious": 1}\n' >"$WK/k/precious.json"
printf '{"n": 0}\n' >"$WK/k/counter.json"
BKR_TEST_NOW=2026-12-10T00:00:00Z expect_exit 0 "$BKR" -c "$T/k.json" --json routine hourly
kgood=$("$BKR" -r "$T/repok" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["backup_id"])')
rm "$WK/k/precious.json"
BKR_TEST_NOW=2026-12-10T01:00:00Z expect_exit 1 "$BKR" -c "$T/k.json" --json routine hourly
[ "$(steps)" = "scan=problems,backup=ok" ] || fail "hourly after the deletion: $(steps) $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$T/repok" hold --json
python3 -c 'import json,sys; h=json.load(open(sys.argv[1])); assert len(h) == 1 and h[0]["path"] == "k/precious.json" and h[0]["backup_id"] == sys.argv[2] and h[0]["damage"] == "missing", h' "$T/out" "$kgood" ||
	fail "the hold of the missing file: $(cat "$T/out")"
printf '{"n": 2}\n' >"$WK/k/counter.json"
# the scan compares with the backup of 01:00, which lacks the file: the hold still names it
BKR_TEST_NOW=2026-12-10T02:00:00Z expect_exit 1 "$BKR" -c "$T/k.json" --json routine hourly
[ "$(steps)" = "scan=problems,backup=ok" ] || fail "hourly with a held file: $(steps) $(cat "$T/out")"
python3 - "$T/out" "$kgood" <<'PY' || fail "hourly with a held file: $(cat "$T/out")"
import json, sys
d = json.load(open(sys.argv[1]))
scan = [s for s in d["steps"] if s["step"] == "scan"][0]
assert "none damaged; 1 file held" in scan["message"] and "k/precious.json, missing, in " + sys.argv[2] in scan["message"], scan
a = [a for a in d["alerts"] if a["kind"] == "held_file"]
assert len(a) == 1 and a[0]["file"] == "k/precious.json" and sys.argv[2] in a[0]["message"], d["alerts"]
PY
printf '{"n": 3}\n' >"$WK/k/counter.json"
# the daily cleanup (keep_last 1) keeps the held backup and removes the others
BKR_TEST_NOW=2026-12-10T03:00:00Z expect_exit 1 "$BKR" -c "$T/k.json" --json routine daily
[ "$(steps)" = "scan=problems,backup=ok,verify=ok,cleanup=ok,tier-migrate=skipped" ] || fail "daily with a held file: $(steps) $(cat "$T/out")"
grep -q '"step":"cleanup","status":"ok",[^}]*"message":"removed 2 of 4 backups (1 kept for the last good copies of 1 held file)' "$T/out" ||
	fail "daily cleanup with a held file: $(cat "$T/out")"
"$BKR" -r "$T/repok" list --json | python3 -c 'import json,sys; ids=[b["backup_id"] for b in json.load(sys.stdin)]; assert sys.argv[1] in ids and len(ids) == 2, ids' "$kgood" ||
	fail "retention removed the backup with the last good copy: $("$BKR" -r "$T/repok" list)"
BKR_TEST_NOW=2026-12-10T03:05:00Z expect_exit 0 "$BKR" -r "$T/repok" cleanup --dry-run --keep-last 1
grep -q "^KEEP *$kgood .* held$" "$T/out" || fail "cleanup --dry-run does not say the held backup is kept for a hold: $(cat "$T/out")"
BKR_TEST_NOW=2026-12-10T03:10:00Z expect_exit 1 "$BKR" -c "$T/k.json" health --as-of 2026-12-10T03:10:00Z
grep -q "1 workspace file damaged or missing and not recovered" "$T/out" && grep -q "^held (missing, not recovered): k/precious.json (its last good copy in $kgood" "$T/out" ||
	fail "health with a held file: $(cat "$T/out")"
BKR_TEST_NOW=2026-12-10T03:10:00Z expect_exit 1 "$BKR" -c "$T/k.json" --json health --as-of 2026-12-10T03:10:00Z
python3 -c 'import json,sys; h=json.load(open(sys.argv[1]))["held"]; assert [x["path"] for x in h] == ["k/precious.json"] and h[0]["backup_id"] == sys.argv[2], h' "$T/out" "$kgood" ||
	fail "health --json with a held file: $(cat "$T/out")"
# as of before the scan that found it, there was no hold
BKR_TEST_NOW=2026-12-10T03:10:00Z "$BKR" -c "$T/k.json" --json health --as-of 2026-12-10T00:30:00Z >"$T/out" 2>"$T/err" || true
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["held"] == []' "$T/out" || fail "health --as-of before the hold: $(cat "$T/out")"
# recovered: the next scan finds it back and ends the hold; the next cleanup may remove that backup
expect_exit 0 "$BKR" -q -r "$T/repok" restore "$kgood" k/precious.json --target "$T/rk"
cp "$T/rk/k/precious.json" "$WK/k/precious.json"
BKR_TEST_NOW=2026-12-10T04:00:00Z expect_exit 0 "$BKR" -c "$T/k.json" --json routine hourly
[ "$(steps)" = "scan=ok,backup=ok" ] || fail "hourly once the held file is back: $(steps) $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$T/repok" hold
grep -q "^no holds" "$T/out" || fail "the hold of a recovered file stays: $(cat "$T/out")"
BKR_TEST_NOW=2026-12-11T03:00:00Z expect_exit 0 "$BKR" -c "$T/k.json" --json routine daily
"$BKR" -r "$T/repok" list --json | python3 -c 'import json,sys; ids=[b["backup_id"] for b in json.load(sys.stdin)]; assert sys.argv[1] not in ids and len(ids) == 1, ids' "$kgood" ||
	fail "retention kept the backup once its file was recovered: $("$BKR" -r "$T/repok" list)"
# deleted on purpose: an operator releases the hold
rm "$WK/k/precious.json"
BKR_TEST_NOW=2026-12-11T04:00:00Z expect_exit 1 "$BKR" -c "$T/k.json" --json routine hourly
expect_exit 3 "$BKR" -r "$T/repok" hold release k/other.json
one_line_error
grep -q "k/other.json: no hold of that path" "$T/err" || fail "release of a path not held: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$T/repok" hold release k/precious.json
grep -q "^1 hold released" "$T/out" || fail "hold release: $(cat "$T/out")"
BKR_TEST_NOW=2026-12-11T05:00:00Z expect_exit 0 "$BKR" -c "$T/k.json" --json routine hourly
[ "$(steps)" = "scan=ok,backup=ok" ] || fail "hourly after the operator released the hold: $(steps) $(cat "$T/out")"
pass "a missing file's hold outlives the scans that no longer see it: the backup with its last good copy survives cleanup (health, hold list, alerts say so) until the file is back or an operator releases it"

# --- many held files the scan no longer sees: one held_file alert a run, not
# one each (200 deleted files made 200 alert commands every hourly routine);
# it names the first 10 and counts the rest, the record lists every one
WM=$T/wsm
mkdir -p "$WM/m" "$T/logsm"
"$BKR" init -r "$T/repom" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "alert_command": ["%s", "%s"], "sources": [{"name": "m", "paths": ["m"], "schedule": "hourly"}]}\n' \
	"$T/repom" "$WM" "$T/logsm" "$T/bin/alert.sh" "$T/alerts-m.log" >"$T/m.json"
for i in $(seq -w 1 25); do printf '{"f": "%s"}\n' "$i" >"$WM/m/f$i.json"; done
printf '{"n": 0}\n' >"$WM/m/counter.json"
BKR_TEST_NOW=2026-12-13T00:00:00Z expect_exit 0 "$BKR" -c "$T/m.json" --json routine hourly
rm "$WM"/m/f*.json
BKR_TEST_NOW=2026-12-13T01:00:00Z expect_exit 1 "$BKR" -c "$T/m.json" --json routine hourly
[ "$(steps)" = "scan=problems,backup=ok" ] || fail "hourly after deleting 25 files: $(steps) $(cat "$T/out")"
: >"$T/alerts-m.log"
printf '{"n": 1}\n' >"$WM/m/counter.json"
BKR_TEST_NOW=2026-12-13T02:00:00Z expect_exit 1 "$BKR" -c "$T/m.json" --json routine hourly
[ "$(steps)" = "scan=problems,backup=ok" ] || fail "hourly with 25 held files: $(steps) $(cat "$T/out")"
[ "$(grep -c . "$T/alerts-m.log")" = 1 ] || fail "25 held files: not one alert command run: $(cat "$T/alerts-m.log")"
python3 - "$T/alerts-m.log" "$T/out" "$T/logsm/routines.jsonl" <<'PY' || fail "the held_file alert of 25 files: $(cat "$T/alerts-m.log") $(cat "$T/out")"
import json, sys
a = json.loads(open(sys.argv[1]).read())
assert a["kind"] == "held_file" and a["file"] == "m/f01.json", a
m = a["message"]
assert m.startswith("25 held files damaged or missing and not recovered"), m
named = ["m/f%02d.json" % i for i in range(1, 26) if "m/f%02d.json (missing)" % i in m]
assert named == ["m/f%02d.json" % i for i in range(1, 11)], named
assert m.endswith(" and 15 more (every one in the routine's record, held_files, and in 'bkr hold')"), m
d = json.load(open(sys.argv[2]))
assert [x["kind"] for x in d["alerts"]] == ["held_file"] and d["alerts"][0]["delivered"] is True, d["alerts"]
held = ["m/f%02d.json" % i for i in range(1, 26)]
assert sorted(h["path"] for h in d["held_files"]) == held, d["held_files"]
assert all(h["damage"] == "missing" and h["backup_id"] for h in d["held_files"]), d["held_files"]
rec = [json.loads(l) for l in open(sys.argv[3])][-1]
assert sorted(h["path"] for h in rec["held_files"]) == held, rec
PY
pass "25 held files the scan no longer sees make one held_file alert a run (the first 10 named, the rest counted) and the record lists every one"

# --- many files that need a person: one needs_person alert a run, not one
# each (200 files no strategy could recover made 200 alert commands every
# hourly routine until a person fixed them); it names the first 10 and
# counts the rest, the record lists every one, 'bkr recovered' each
WP=$T/wsp
mkdir -p "$WP/p" "$T/logsp"
"$BKR" init -r "$T/repop" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "alert_command": ["%s", "%s"], "sources": [{"name": "p", "paths": ["p"], "schedule": "hourly"}]}\n' \
	"$T/repop" "$WP" "$T/logsp" "$T/bin/alert.sh" "$T/alerts-p.log" >"$T/p.json"
printf '{"n": 0}\n' >"$WP/p/ok.json"
BKR_TEST_NOW=2026-12-13T00:00:00Z expect_exit 0 "$BKR" -c "$T/p.json" --json routine hourly
for i in $(seq -w 1 25); do printf 'not json %s' "$i" >"$WP/p/n$i.json"; done # no backup has them
: >"$T/alerts-p.log"
BKR_TEST_NOW=2026-12-13T01:00:00Z expect_exit 1 "$BKR" -c "$T/p.json" --json routine emergency
grep -q '"step":"recover","status":"problems"' "$T/out" || fail "emergency with 25 files for a person: $(cat "$T/out")"
[ "$(grep -c . "$T/alerts-p.log")" = 1 ] || fail "25 files that need a person: not one alert command run: $(cat "$T/alerts-p.log")"
python3 - "$T/alerts-p.log" "$T/out" "$T/logsp/routines.jsonl" <<'PY' || fail "the needs_person alert of 25 files: $(cat "$T/alerts-p.log") $(cat "$T/out")"
import json, re, sys
a = json.loads(open(sys.argv[1]).read())
files = ["p/n%02d.json" % i for i in range(1, 26)]
assert a["kind"] == "needs_person" and a["file"] in files, a
m = a["message"]
assert m.startswith("25 files need a person: recovery run backup_"), m
named = [f for f in files if f in m]
assert len(named) == 10, named
run = re.match(r"25 files need a person: recovery run (\S+) could not recover them: ", m).group(1)
assert m.endswith(" and 15 more (every one in the routine's record, needs_person_files, and in 'bkr recovered %s')" % run), m
d = json.load(open(sys.argv[2]))
assert [x["kind"] for x in d["alerts"]] == ["needs_person"] and d["alerts"][0]["delivered"] is True, d["alerts"]
assert sorted(d["needs_person_files"]) == files and d["needs_person_run"] == d["recovery_run"], d
rec = [json.loads(l) for l in open(sys.argv[3])][-1]
assert sorted(rec["needs_person_files"]) == files, rec
PY
# the next hourly routine: still one needs_person alert (beside its
# workspace_damage alert), not 25
: >"$T/alerts-p.log"
BKR_TEST_NOW=2026-12-13T02:00:00Z expect_exit 1 "$BKR" -c "$T/p.json" --json routine hourly
python3 - "$T/alerts-p.log" <<'PY' || fail "hourly with 25 files that need a person: $(cat "$T/alerts-p.log")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert sorted(e["kind"] for e in ev) == ["needs_person", "workspace_damage"], [e["kind"] for e in ev]
PY
# per file, each with its attempts: the recovery run's report
expect_exit 0 "$BKR" -c "$T/p.json" recovered latest --json
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert sorted(f["path"] for f in r["files"] if f["status"] == "manual") == ["p/n%02d.json" % i for i in range(1, 26)], r' "$T/out" ||
	fail "the recovery run does not list every file: $(cat "$T/out")"
pass "25 files that need a person make one needs_person alert a run (the first 10 named, the rest counted) and the record lists every one"

# --- one JSON object for a hold: `bkr hold --json` and `bkr health --json`'s
# held[] carry the same members with the same values (health had no host and
# wrote a time that is no time as null where hold wrote 1970; neither gave the
# exact bytes of a name that is not UTF-8)
WJ=$T/wsj
mkdir -p "$WJ/j" "$T/logsj"
"$BKR" init -r "$T/repoj" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "j", "paths": ["j"], "schedule": "hourly"}]}\n' \
	"$T/repoj" "$WJ" "$T/logsj" >"$T/j.json"
odd=$(printf 'j/odd\nname\377.json')
printf '{"odd": 1}\n' >"$WJ/$odd"
printf '{"n": 0}\n' >"$WJ/j/n.json"
BKR_TEST_NOW=2026-12-12T00:00:00Z expect_exit 0 "$BKR" -c "$T/j.json" --json routine hourly
rm "$WJ/$odd"
BKR_TEST_NOW=2026-12-12T01:00:00Z expect_exit 1 "$BKR" -c "$T/j.json" --json routine hourly
# and a hold whose record's time is no time (an older or foreign writer)
python3 - "$T/repoj" <<'PY'
import hashlib, os, sys
text = b'{"kind":"hold","time":"not a time","path":"j/forged.json","backup_id":"backup_x","damage":"missing","sha256":"' + b"0" * 64 + b'"}'
open(os.path.join(sys.argv[1], "records", "00000000000000000001-00000000.json"), "wb").write(
    text[:-66] + hashlib.sha256(text).hexdigest().encode() + b'"}')
PY
expect_exit 0 "$BKR" -r "$T/repoj" --json hold
cp "$T/out" "$T/hold.json"
expect_exit 1 "$BKR" -c "$T/j.json" --json health --as-of 2026-12-12T01:10:00Z
python3 - "$T/hold.json" "$T/out" <<'PY' || fail "hold --json and health --json's held[] differ: $(cat "$T/hold.json" "$T/out")"
import json, sys
hold = json.load(open(sys.argv[1]))
held = json.load(open(sys.argv[2]))["held"]
assert hold == held, (hold, held)
assert len(hold) == 2, hold
keys = ["backup_id", "damage", "host", "path", "since"]
odd = [x for x in hold if "path_hex" in x]
assert len(odd) == 1 and sorted(odd[0]) == sorted(keys + ["path_hex"]), hold
assert bytes.fromhex(odd[0]["path_hex"]) == b"j/odd\nname\xff.json", odd
assert odd[0]["since"] == "2026-12-12T01:00:00.000000Z" and odd[0]["host"] and odd[0]["damage"] == "missing", odd
forged = [x for x in hold if x["path"] == "j/forged.json"]
assert len(forged) == 1 and sorted(forged[0]) == keys, hold
assert forged[0]["since"] is None and forged[0]["host"] is None and forged[0]["backup_id"] == "backup_x", forged
PY
pass "bkr hold --json and health --json write a hold alike: the same members and values (host, a time that is no time as null, path_hex)"

# --- bad hold records: each is one line of warning naming the record, and a
# hold that names a path and a backup keeps that backup whatever else is
# wrong with it (a hold without a time was ignored, and retention removed
# the backup it named); it is released as any other
BKR_TEST_NOW=2026-12-12T02:00:00Z expect_exit 1 "$BKR" -c "$T/j.json" --json routine hourly
jids=$("$BKR" -r "$T/repoj" list --json | python3 -c 'import json,sys; print(" ".join(b["backup_id"] for b in json.load(sys.stdin)))')
read -r j0 j1 j2 <<<"$jids"
[ -n "$j2" ] || fail "three backups expected: $jids"
python3 - "$T/repoj" "$j1" <<'PY'
import hashlib, os, sys
text = ('{"kind":"hold","path":"j/timeless.json","backup_id":"%s","damage":"missing","sha256":"' % sys.argv[2]).encode() + b"0" * 64 + b'"}'
open(os.path.join(sys.argv[1], "records", "00000000000000000002-00000000.json"), "wb").write(
    text[:-66] + hashlib.sha256(text).hexdigest().encode() + b'"}')
PY
BKR_TEST_NOW=2026-12-12T03:00:00Z expect_exit 0 "$BKR" -r "$T/repoj" cleanup --dry-run --keep-last 1
grep -q "^KEEP *$j0 .* held$" "$T/out" && grep -q "^KEEP *$j1 .* held$" "$T/out" && grep -q "^KEEP *$j2 .* newest" "$T/out" ||
	fail "cleanup does not keep the backup of a hold without a time: $(cat "$T/out")"
grep -q "^bkr cleanup: warning: .*/records/00000000000000000002-00000000.json: the hold of j/timeless.json has no time: in force since an unknown time (backup $j1 is kept)$" "$T/err" &&
	grep -q "^bkr cleanup: warning: .*/records/00000000000000000001-00000000.json: the hold of j/forged.json has a time that is no time (not a time): in force since an unknown time$" "$T/err" &&
	[ "$(wc -l <"$T/err")" = 2 ] || fail "cleanup's warnings of bad hold records: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$T/repoj" hold
grep -q "^j/timeless.json  missing since an unknown time; last good copy in $j1$" "$T/out" && [ "$(wc -l <"$T/err")" = 2 ] ||
	fail "hold with bad records: $(cat "$T/out" "$T/err")"
expect_exit 0 "$BKR" -r "$T/repoj" hold release j/timeless.json
grep -q "^1 hold released" "$T/out" || fail "release of a hold without a time: $(cat "$T/out" "$T/err")"
expect_exit 0 "$BKR" -r "$T/repoj" --json hold
python3 -c 'import json,sys; assert sorted(x["path"] for x in json.load(open(sys.argv[1]))) == ["j/forged.json", "j/odd\nname\ufffd.json"]' "$T/out" ||
	fail "the hold without a time is not released: $(cat "$T/out")"
pass "bad hold records: one line of warning each, naming the record; a hold without a time keeps its backup from retention until released"

# --- with -q (cron, systemd) a metrics file that cannot be written or an
# alert that cannot be delivered is one line on stderr and exit 6; the text
# summary does not call an undelivered alert sent
WQ=$T/wsq
mkdir -p "$WQ/h" "$T/logsq"
printf '{}\n' >"$WQ/h/a.json"
"$BKR" init -r "$T/repoq" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "metrics_file": "%s", "sources": [{"name": "h", "paths": ["h"], "schedule": "hourly"}]}\n' \
	"$T/repoq" "$WQ" "$T/logsq" "$T/no/such/dir/bkr.prom" >"$T/mq.json"
BKR_TEST_NOW=2026-12-01T02:00:00Z expect_exit 6 "$BKR" -q -c "$T/mq.json" routine hourly
one_line_error
grep -q "^bkr routine: hourly routine: metrics file $T/no/such/dir/bkr.prom: cannot be written: " "$T/err" ||
	fail "-q, metrics file not written: $(cat "$T/err")"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "alert_command": ["%s"], "sources": [{"name": "h", "paths": ["h"], "schedule": "hourly"}, {"name": "w", "paths": ["h"], "schedule": "weekly"}]}\n' \
	"$T/repoq" "$WQ" "$T/logsq" "$T/no/notify" >"$T/aq.json"
BKR_TEST_NOW=2026-12-01T03:00:00Z expect_exit 6 "$BKR" -q -c "$T/aq.json" routine hourly
one_line_error
grep -q "^bkr routine: hourly routine: alert not delivered: .*(alert: source w (weekly) has no good backup)" "$T/err" ||
	fail "-q, alert not delivered: $(cat "$T/err")"
BKR_TEST_NOW=2026-12-01T04:00:00Z expect_exit 6 "$BKR" -c "$T/aq.json" routine hourly
grep -q "alert NOT delivered: source w (weekly) has no good backup" "$T/out" && ! grep -q "alert sent" "$T/out" ||
	fail "the summary of an undelivered alert: $(cat "$T/out")"
# --json says per alert whether it was delivered: false when alert_command
# failed, true when it took the event
BKR_TEST_NOW=2026-12-01T04:30:00Z expect_exit 6 "$BKR" -c "$T/aq.json" --json routine hourly
python3 -c 'import json,sys; a = json.load(open(sys.argv[1]))["alerts"]; assert a and all(x["delivered"] is False for x in a), a' "$T/out" ||
	fail "--json of an undelivered alert: $(cat "$T/out")"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "alert_command": ["/bin/sh", "-c", "cat >/dev/null"], "sources": [{"name": "h", "paths": ["h"], "schedule": "hourly"}, {"name": "w", "paths": ["h"], "schedule": "weekly"}]}\n' \
	"$T/repoq" "$WQ" "$T/logsq" >"$T/aqok.json"
BKR_TEST_NOW=2026-12-01T04:40:00Z "$BKR" -c "$T/aqok.json" --json routine hourly >"$T/out" 2>"$T/err" || true
python3 -c 'import json,sys; a = json.load(open(sys.argv[1]))["alerts"]; assert a and all(x["delivered"] is True for x in a), a' "$T/out" ||
	fail "--json of a delivered alert: $(cat "$T/out") $(cat "$T/err")"
pass "routine -q: a metrics file not written or an alert not delivered is one line on stderr, exit 6"

# --- routines.jsonl a FIFO (never waited for), a directory, or ending in a
# line that is not a record: the routine says it cannot record (exit 6), and
# health does not call the repository healthy
WF=$T/wsf
mkdir -p "$WF/h" "$T/logsf"
printf '{}\n' >"$WF/h/a.json"
"$BKR" init -r "$T/repof" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "h", "paths": ["h"], "schedule": "hourly"}]}\n' \
	"$T/repof" "$WF" "$T/logsf" >"$T/f.json"
export BKR_TEST_NOW=2026-12-01T00:00:00Z
mkfifo "$T/logsf/routines.jsonl"
expect_exit 6 timeout 20 "$BKR" -q -c "$T/f.json" routine hourly
one_line_error
grep -q "^bkr routine: hourly routine: cannot record the routine: .*routines.jsonl: not a regular file" "$T/err" ||
	fail "routine with a FIFO for its records: $(cat "$T/err")"
expect_exit 1 timeout 20 "$BKR" -c "$T/f.json" health
grep -q "routines.jsonl cannot be read (a FIFO)" "$T/out" || fail "health with a FIFO for the records: $(cat "$T/out")"
rm "$T/logsf/routines.jsonl"
expect_exit 0 "$BKR" -q -c "$T/f.json" routine hourly --as-of 2026-12-01T00:00:00Z
expect_exit 0 "$BKR" -c "$T/f.json" health
python3 -c 'import sys; open(sys.argv[1], "a").write("x" * (5 << 20) + "\n")' "$T/logsf/routines.jsonl"
expect_exit 1 "$BKR" -c "$T/f.json" health
grep -q "the last line of the routine records .*routines.jsonl is not a routine record (a line longer than 4 MiB)" "$T/out" ||
	fail "health with a last record over 4 MiB: $(cat "$T/out")"
printf 'garbage\n' >>"$T/logsf/routines.jsonl"
expect_exit 1 "$BKR" -c "$T/f.json" health
grep -q "is not a routine record (it does not parse)" "$T/out" || fail "health with a garbage last line: $(cat "$T/out")"
rm "$T/logsf/routines.jsonl"
mkdir "$T/logsf/routines.jsonl"
expect_exit 1 "$BKR" -c "$T/f.json" health
grep -q "routines.jsonl cannot be read (a directory)" "$T/out" || fail "health with a directory for the records: $(cat "$T/out")"
rmdir "$T/logsf/routines.jsonl"
unset BKR_TEST_NOW
pass "routine records that cannot be read: a FIFO is not waited for, health is not healthy and says why"

# --- --as-of after now changes nothing unless --dry-run: the routine would
# call its own backup stale and cleanup would remove what today's policy keeps
WA=$T/wsa
mkdir -p "$WA/h" "$T/logsa"
"$BKR" init -r "$T/repoa" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "h", "paths": ["h"], "schedule": "hourly"}]}\n' \
	"$T/repoa" "$WA" "$T/logsa" >"$T/a.json"
for h in 00 02 04 06; do
	printf '{"v": "%s"}\n' "$h" >"$WA/h/a.json"
	BKR_TEST_NOW=2026-12-01T$h:00:00Z expect_exit 0 "$BKR" -q -c "$T/a.json" routine daily
done
export BKR_TEST_NOW=2026-12-01T08:00:00Z
n=$("$BKR" -r "$T/repoa" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
expect_exit 2 "$BKR" -c "$T/a.json" routine daily --as-of 2027-06-01T00:00:00Z
one_line_error
grep -q "^bkr routine: --as-of 2027-06-01T00:00:00.000000Z is after now" "$T/err" || fail "routine --as-of later: $(cat "$T/err")"
expect_exit 2 "$BKR" -c "$T/a.json" cleanup --as-of 2027-06-01T00:00:00Z
one_line_error
grep -q "^bkr cleanup: --as-of 2027-06-01T00:00:00.000000Z is after now" "$T/err" || fail "cleanup --as-of later: $(cat "$T/err")"
[ "$("$BKR" -r "$T/repoa" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = "$n" ] ||
	fail "a refused --as-of removed backups"
expect_exit 0 "$BKR" -c "$T/a.json" routine daily --as-of 2027-06-01T00:00:00Z --dry-run
expect_exit 0 "$BKR" -c "$T/a.json" cleanup --as-of 2027-06-01T00:00:00Z --dry-run
# tier migration by the same rule: as of a later time it would move data
# colder than today's policy keeps it (it was accepted, and moved it)
mkdir -p "$T/warma"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "tiers": {"warm": {"path": "%s", "after_days": 7}}, "sources": [{"name": "h", "paths": ["h"], "schedule": "hourly"}]}\n' \
	"$T/repoa" "$WA" "$T/logsa" "$T/warma" >"$T/atier.json"
expect_exit 2 "$BKR" -c "$T/atier.json" tier migrate --as-of 2027-06-01T00:00:00Z
one_line_error
grep -q "^bkr tier: --as-of 2027-06-01T00:00:00.000000Z is after now: .*move data to a colder tier.*--dry-run" "$T/err" ||
	fail "tier migrate --as-of later: $(cat "$T/err")"
[ -z "$(find "$T/warma" -name '*.pack')" ] || fail "a refused tier migrate --as-of moved packs"
expect_exit 0 "$BKR" -c "$T/atier.json" --json tier migrate --as-of 2027-06-01T00:00:00Z --dry-run
python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); assert r["moved"]["warm"]["packs"] > 0, r' "$T/out" ||
	fail "tier migrate --as-of later --dry-run: $(cat "$T/out")"
[ -z "$(find "$T/warma" -name '*.pack')" ] || fail "tier migrate --dry-run moved packs"
# within the 5 minutes of clock skew, and in the past: allowed
expect_exit 0 "$BKR" -q -c "$T/a.json" routine hourly --as-of 2026-12-01T08:04:00Z
expect_exit 0 "$BKR" -q -c "$T/atier.json" tier migrate --as-of 2026-12-01T08:04:00Z
expect_exit 0 "$BKR" -q -c "$T/atier.json" tier migrate --as-of 2026-11-01T00:00:00Z
# --as-of 1970-01-01T00:00:00Z is that time, not "now" (it was read as not given)
expect_exit 0 "$BKR" -c "$T/atier.json" --json tier migrate --as-of 1970-01-01T00:00:00Z --dry-run
grep -q '"as_of":"1970-01-01T00:00:00.000000Z"' "$T/out" || fail "tier migrate --as-of 1970: $(cat "$T/out")"
unset BKR_TEST_NOW
pass "routine, cleanup and tier migrate refuse an --as-of after now unless --dry-run"

# --- a dry run predicts the real run: the weekly health step does not count
# a stale source that the backup step would back up
WW=$T/wsw
mkdir -p "$WW/h" "$T/logsw"
printf '{}\n' >"$WW/h/a.json"
"$BKR" init -r "$T/repow" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "h", "paths": ["h"]}]}\n' \
	"$T/repow" "$WW" "$T/logsw" >"$T/w.json"
BKR_TEST_NOW=2026-12-01T00:00:00Z expect_exit 0 "$BKR" -q -c "$T/w.json" routine hourly
BKR_TEST_NOW=2026-12-09T00:00:00Z expect_exit 0 "$BKR" -c "$T/w.json" --json routine weekly --dry-run
[ "$(steps)" = "backup=ok,verify=ok,repair=skipped,health=ok" ] || fail "weekly --dry-run: $(steps) $(cat "$T/out")"
BKR_TEST_NOW=2026-12-09T00:00:00Z expect_exit 0 "$BKR" -c "$T/w.json" --json routine weekly
[ "$(steps)" = "backup=ok,verify=ok,repair=skipped,health=ok" ] || fail "weekly: $(steps) $(cat "$T/out")"
pass "routine weekly --dry-run exits as the real run does"

# --- exit statuses before any step: a log_dir that is a regular file is 7
: >"$T/logfile"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s"}\n' "$T/repolf" "$T" "$T/logfile" >"$T/lf.json"
expect_exit 7 "$BKR" -q -c "$T/lf.json" routine hourly
one_line_error
pass "routine with a log_dir that is not a directory: exit 7, one line"

# --- the scan and the holds it records are under the shared lock: a delete at
# work is waited for, so the hold names a backup that stays (the scan compared
# with the newest backup while the delete, stopped before its moves, was
# removing it: the hold named a backup that was gone)
WDL=$T/wsdl
mkdir -p "$WDL/d" "$T/logsdl"
"$BKR" init -r "$T/repodl" >/dev/null
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "d", "paths": ["d"], "schedule": "hourly"}]}\n' \
	"$T/repodl" "$WDL" "$T/logsdl" >"$T/dl.json"
printf '{"precious": 1}\n' >"$WDL/d/precious.json"
BKR_TEST_NOW=2026-12-10T00:00:00Z expect_exit 0 "$BKR" -q -c "$T/dl.json" routine hourly
printf '{"precious": 2}\n' >"$WDL/d/precious.json"
BKR_TEST_NOW=2026-12-10T01:00:00Z expect_exit 0 "$BKR" -q -c "$T/dl.json" routine hourly
dids=($("$BKR" -r "$T/repodl" list --json | python3 -c 'import json,sys; print(" ".join(b["backup_id"] for b in json.load(sys.stdin)))'))
[ "${#dids[@]}" = 2 ] || fail "two backups expected: ${dids[*]}"
rm "$WDL/d/precious.json"
BKR_FAULT=trash-move:1:stop "$BKR" -q -r "$T/repodl" delete "${dids[1]}" >/dev/null 2>"$T/dl-del.err" &
dpid=$!
cleanup_hooks+=("kill -9 $dpid 2>/dev/null")
wait_stopped "$dpid" || fail "delete did not stop before its moves: $(cat "$T/dl-del.err")"
BKR_TEST_NOW=2026-12-10T02:00:00Z "$BKR" -c "$T/dl.json" routine hourly >"$T/out" 2>"$T/dl-rd.err" &
rpid=$!
cleanup_hooks+=("kill -9 $rpid 2>/dev/null")
wait_line "$T/dl-rd.err" "waiting for a running prune, cleanup, delete or repair" "$rpid" ||
	fail "the routine's scan did not wait for the delete: $(cat "$T/out" "$T/dl-rd.err")"
kill -CONT "$dpid"
wait "$dpid" || fail "delete failed: $(cat "$T/dl-del.err")"
rc=0
wait "$rpid" || rc=$?
[ "$rc" = 1 ] || fail "hourly after the deletion: exit $rc: $(cat "$T/out" "$T/dl-rd.err")"
expect_exit 0 "$BKR" -r "$T/repodl" hold --json
python3 -c 'import json,sys; h=json.load(open(sys.argv[1])); assert len(h) == 1 and h[0]["backup_id"] == sys.argv[2], h' "$T/out" "${dids[0]}" ||
	fail "the hold does not name the backup left after the delete (${dids[0]}): $(cat "$T/out")"
pass "the routine's scan waits for a delete at work; its hold names a backup that stays"

# --- hold release --json with -q: the JSON stays ----------------------------------
# -q left stdout empty (not JSON) for `hold release --json`, as it must not
# (bkr.1.md: --json output stays with -q, as for pin)
"$BKR" init -r "$T/repohq" >/dev/null
python3 - "$T/repohq" <<'PY'
import hashlib, os, sys
text = (b'{"kind":"hold","time":"2026-12-10T01:00:00.000000Z","path":"q/x.json",'
        b'"backup_id":"backup_20261210_000000_full_0000abcd","damage":"missing","size":3,"host":"h","sha256":"' + b"0" * 64 + b'"}')
open(os.path.join(sys.argv[1], "records", "01796000000000000000-0000abcd.json"), "wb").write(
    text[:-66] + hashlib.sha256(text).hexdigest().encode() + b'"}')
PY
expect_exit 0 "$BKR" -q -r "$T/repohq" hold --json
python3 -c 'import json,sys; h=json.load(open(sys.argv[1])); assert [x["path"] for x in h] == ["q/x.json"], h' "$T/out" ||
	fail "the hand-made hold is not listed: $(cat "$T/out" "$T/err")"
expect_exit 0 "$BKR" -q -r "$T/repohq" hold release --json q/x.json
[ "$(cat "$T/out")" = '{"released":1}' ] && [ ! -s "$T/err" ] || fail "hold release --json -q: '$(cat "$T/out" "$T/err")'"
expect_exit 0 "$BKR" -q -r "$T/repohq" hold --json
[ "$(cat "$T/out")" = "[]" ] || fail "the hold was not released: $(cat "$T/out")"
pass "hold release --json -q prints its JSON"

# --- an alert command that hangs is waited for once a run ---------------------------
# Each alert waited its own 30 s: one a held file or stale source, a hung
# command kept the routine (and its lock) for 30 s times the alerts.  Without
# its repository this run has three alerts; the command is run once, killed
# after alert_timeout (2 s here; 30 s by default).
mkdir -p "$T/wsh/h"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "alert_command": ["/bin/sh", "-c", "echo sent >>%s; exec sleep 300"], "alert_timeout": "2s", "sources": [{"name": "h", "paths": ["h"], "schedule": "hourly"}]}\n' \
	"$T/no-repo" "$T/wsh" "$T/logsh" "$T/sent.log" >"$T/hang.json"
expect_exit 6 "$BKR" -q -c "$T/hang.json" routine hourly
[ "$(cat "$T/sent.log")" = sent ] || fail "the hung alert command was run again: $(cat "$T/sent.log")"
grep -q "^bkr routine: hourly routine: alert not delivered: alert command timed out after 2.0s (process group killed) (alert: hourly routine: cannot open the repository" "$T/err" &&
	[ "$(grep -c "^bkr routine: hourly routine: alert not delivered: not tried, the alert command timed out on an earlier alert (alert: hourly routine: step .* failed" "$T/err")" = 2 ] ||
	fail "the alerts after a hung alert command: $(cat "$T/err")"
pass "an alert command that hangs is killed once a run; the other alerts are named as not delivered"

# --- messages kept whole: a repository under a ~1000-byte path -----------------------
# The steps' messages (512 bytes), why the repository did not open (256),
# the alerts (1024) and the -q lines (1200) were cut at fixed sizes: the
# repository's path, and the error after it, lost their ends.
deep=$T/$(printf 'a%.0s' {1..240})/$(printf 'b%.0s' {1..240})/$(printf 'c%.0s' {1..240})/$(printf 'd%.0s' {1..240})
mkdir -p "$T/wsdeep/h"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "h", "paths": ["h"], "schedule": "hourly"}]}\n' \
	"$deep/repo" "$T/wsdeep" "$T/logsdeep" >"$T/deep.json"
expect_exit 6 "$BKR" -c "$T/deep.json" routine hourly --json
json_ok "$T/out"
python3 - "$T/out" "$deep/repo" <<'PY' || fail "a routine message cut the ~1000-byte repository path: $(cat "$T/out")"
import json, sys
d, path = json.load(open(sys.argv[1])), sys.argv[2]
whole = "repository: " + path + ": No such file or directory"
msgs = [s["message"] for s in d["steps"]] + [a["message"] for a in d["alerts"]]
assert len(d["steps"]) >= 2 and len(d["alerts"]) >= 2, d
for m in msgs:
    assert whole in m, m
PY
expect_exit 6 "$BKR" -q -c "$T/deep.json" routine hourly
[ "$(grep -cF "repository: $deep/repo: No such file or directory" "$T/err")" -ge 2 ] ||
	fail "routine -q cut its lines naming the ~1000-byte repository path: $(cat "$T/err")"
pass "routine steps, alerts and -q lines name a ~1000-byte repository path whole"
