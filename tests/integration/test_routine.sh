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
