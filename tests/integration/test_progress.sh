#!/bin/bash
# Progress on a real terminal (a tmux pane): a restore paused halfway
# (BKR_FAULT=restore-rename:N:stop: SIGSTOP at the N-th file, so the test
# sees the screen at a known point, with no timing) shows one line with the
# files and bytes done of the real totals, the rate and the time left; once
# resumed, the line is gone and the summary stands alone.  A create paused at
# its first pack shows its end state with its totals.  With -q, through a
# pipe, and in the log, none of it appears.  repair, scan --deep and batch
# draw their lines (seen in the whole stream a terminal gets) and erase them
# before their results, as the daily routine does its steps'; none with -q,
# --json or through a pipe.
source "$(dirname "$0")/lib.sh"

R=$T/repo
mkdir -p "$T/src/sub"
for i in $(seq -w 1 20); do head -c 200000 /dev/urandom >"$T/src/sub/f$i"; done
"$BKR" -q init -r "$R"
id=$("$BKR" --json create -r "$R" "$T/src" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backup_id"])')
total_bytes=$(python3 -c 'print("%.1f MiB" % (20 * 200000 / 1048576))') # what bkr prints: 3.8 MiB

TM=(tmux -L "bkr-progress-$$" -f /dev/null)
cleanup_hooks+=('"${TM[@]}" kill-server 2>/dev/null; [ -s "$T/pid" ] && kill -CONT "$(cat "$T/pid")" 2>/dev/null')

# in_pane NAME CMD...: run CMD in a new 160x30 tmux pane (stdout and stderr
# the pane's terminal); its pid in $T/pid, its exit status in $T/NAME.rc
in_pane() {
	local name=$1
	shift
	rm -f "$T/pid" "$T/$name.rc"
	{
		printf 'export NO_COLOR=1 XDG_STATE_HOME=%q BKR_FAULT=%q\n' "$XDG_STATE_HOME" "${BKR_FAULT:-}"
		printf '%q ' "$@"
		printf '&\n'
		printf 'echo $! >%q.tmp && mv %q.tmp %q\n' "$T/pid" "$T/pid" "$T/pid"
		printf 'wait $!\n'
		printf 'echo $? >%q.tmp && mv %q.tmp %q\n' "$T/$name.rc" "$T/$name.rc" "$T/$name.rc"
		printf 'sleep 600\n'
	} >"$T/$name.sh"
	"${TM[@]}" new-session -d -s "$name" -x 160 -y 30 "bash $T/$name.sh"
}

stopped() { [ -s "$T/pid" ] && [ "$(cut -d' ' -f3 "/proc/$(cat "$T/pid")/stat" 2>/dev/null)" = T ]; }
screen() { "${TM[@]}" capture-pane -p -t "$1" >"$T/screen"; }

# --- a restore, paused at its 10th file ------------------------------------------
BKR_FAULT=restore-rename:10:stop in_pane restore "$BKR" -r "$R" restore "$id" --target "$T/out" --threads 2
wait_until stopped
screen restore
python3 - "$T/screen" "$total_bytes" <<'PY' || fail "no progress line with the real totals: $(cat "$T/screen")"
import re, sys
text, total = open(sys.argv[1]).read(), sys.argv[2]
lines = [l for l in text.splitlines() if l.startswith("restoring: ")]
assert len(lines) == 1, lines
m = re.fullmatch(r"restoring: (\d+)/20 files, ([\d.]+ (?:B|KiB|MiB))/(.+?) \((\d+)%\), [\d.]+ (?:B|KiB|MiB|GiB)/s, (?:\d+:)?\d+:\d\d left *",
                 lines[0])
assert m, lines[0]
done = int(m.group(1))
# the line held back by the rate limit is drawn as the process stops; two
# threads: the other may finish one more file while the 10th is paused
assert 1 <= done <= 10, lines[0]
assert m.group(3) == total, (m.group(3), total)
# bytes count as chunks are written, files as they are renamed: the paused
# file's bytes are in (all of them: it stopped at its rename), and so may be
# part of the other thread's file -- at most two files (10 % of 20) ahead
assert 0 <= int(m.group(4)) <= 5 * (done + 2) and int(m.group(4)) < 100, lines[0]
PY
pass "restore on a terminal: $(grep '^restoring: ' "$T/screen" | sed 's/ *$//')"
kill -CONT "$(cat "$T/pid")"
wait_until test -s "$T/restore.rc"
[ "$(cat "$T/restore.rc")" = 0 ] || fail "restore exited $(cat "$T/restore.rc")"
screen restore
! grep -q 'restoring: ' "$T/screen" || fail "the progress line was left on the screen: $(cat "$T/screen")"
grep -q "^restored $id into $T/out: 20 files" "$T/screen" || fail "no summary: $(cat "$T/screen")"
diff -r "$T/src" "$T/out/src" || fail "restored files differ"
pass "resumed: the progress line is cleared, the summary stands alone"

# --- -q on a terminal: no progress ---------------------------------------------------
BKR_FAULT=restore-rename:10:stop in_pane quiet "$BKR" -q -r "$R" restore "$id" --target "$T/outq"
wait_until stopped
screen quiet
! grep -q 'restoring' "$T/screen" || fail "-q showed progress: $(cat "$T/screen")"
kill -CONT "$(cat "$T/pid")"
wait_until test -s "$T/quiet.rc"
pass "-q: no progress on a terminal"

# --- a create: its end state with its totals ---------------------------------------
printf 'more\n' >"$T/src/new.txt"
BKR_FAULT=rename:1:stop in_pane create "$BKR" -r "$R" create --type full "$T/src"
wait_until stopped
screen create
grep -Eq "^backing up: 21/21 files, $total_bytes/$total_bytes \(100%\), .*/s, 0:00 left" "$T/screen" ||
	fail "create: no progress line with its totals: $(cat "$T/screen")"
pass "create on a terminal: $(grep '^backing up: ' "$T/screen" | sed 's/ *$//')"
kill -CONT "$(cat "$T/pid")"
wait_until test -s "$T/create.rc"
[ "$(cat "$T/create.rc")" = 0 ] || fail "create exited $(cat "$T/create.rc")"

# paused_line NAME POINT PATTERN CMD...: run CMD in a pane paused at the k-th pass
# through fault POINT, for k = 1, 4, 7, ... until the screen shows a line
# matching PATTERN (a pause between two passes whose first line is drawn);
# the line in $T/line, the command resumed and finished.  $PREP (shell code)
# runs before each attempt.  The passes before
# and in the phase are fixed by the repository, so this is a bounded search,
# not a poll on time.
paused_line() {
	local name=$1 point=$2 pattern=$3 k
	shift 3
	for ((k = 1; k <= 400; k += 3)); do
		eval "${PREP:-}"
		BKR_FAULT=$point:$k:stop in_pane "$name$k" "$@"
		wait_until eval 'stopped || [ -s "$T/$name$k.rc" ]'
		screen "$name$k"
		[ -s "$T/pid" ] && kill -CONT "$(cat "$T/pid")" 2>/dev/null || true
		wait_until test -s "$T/$name$k.rc"
		"${TM[@]}" kill-session -t "$name$k"
		if grep -Eq "$pattern" "$T/screen"; then
			grep -E "$pattern" "$T/screen" | sed 's/ *$//' >"$T/line"
			return 0
		fi
	done
	fail "$name: no line matching $pattern at any pause"
}

# --- verify: bytes of the packs done of their total ---------------------------------
for b in 1 2 3; do
	for i in 1 2 3; do head -c 150000 /dev/urandom >"$T/src/v$b$i"; done
	"$BKR" -q -r "$R" create "$T/src"
done
"$BKR" -r "$R" verify --read-data >"$T/verify.out" 2>&1 || fail "verify: $(cat "$T/verify.out")"
vtotal=$(sed -n 's/.*packs (\(.*\) read).*/\1/p' "$T/verify.out")
[ -n "$vtotal" ] || fail "no bytes read in: $(cat "$T/verify.out")"
# each try starts from the same repository: every verify adds a record, which
# the next one reads (listing backups and runs) before its packs, as many reads
# more as the pause point moves on
cp -a "$R" "$T/vrepo0"
PREP='rm -rf "$R"; cp -a "$T/vrepo0" "$R"'
paused_line verify read "^verifying: [0-9]+/[0-9]+ packs, .*% *\)?" "$BKR" -r "$R" verify --read-data
PREP=
python3 - "$T/line" "$vtotal" <<'PY' || fail "verify: no line with bytes of the total: $(cat "$T/line")"
import re, sys
line, total = open(sys.argv[1]).read().strip(), sys.argv[2]
m = re.fullmatch(r"verifying: (\d+)/(\d+) packs, ([\d.]+ (?:B|KiB|MiB))/(.+?) \((\d+)%\), [\d.]+ (?:B|KiB|MiB|GiB)/s(, (?:\d+:)?\d+:\d\d left)?", line)
assert m, line
assert m.group(4) == total, (m.group(4), total)
assert int(m.group(1)) <= int(m.group(2)), line
PY
pass "verify on a terminal: $(cat "$T/line")"

# --- tier migrate: packs and bytes moved of those to move ---------------------------
cp -a "$R" "$T/mrepo0"
cat >"$T/tiers.json" <<JSON
{"repository": "$T/mrepo", "workspace_root": "$T/src", "tiers": {"warm": {"path": "$T/warm", "after_days": 0}}}
JSON
# each attempt migrates a fresh copy of the repository
PREP='rm -rf "$T/mrepo" "$T/warm"; cp -a "$T/mrepo0" "$T/mrepo"; mkdir "$T/warm"'
paused_line migrate rename "^migrating: [0-9]+/[0-9]+ packs, " "$BKR" -c "$T/tiers.json" tier migrate
PREP=
grep -Eq "^migrating: [0-9]+/[1-9][0-9]* packs, [0-9.]+ (B|KiB|MiB)/[0-9.]+ (KiB|MiB) \([0-9]+%\), [0-9.]+ (B|KiB|MiB|GiB)/s" "$T/line" ||
	fail "migrate: no line with packs and bytes of the total: $(cat "$T/line")"
pass "tier migrate on a terminal: $(cat "$T/line")"

# --- through a pipe: nothing of it --------------------------------------------------
"$BKR" -r "$R" restore "$id" --target "$T/out2" 2>&1 | cat >"$T/piped"
"$BKR" -r "$R" create "$T/src" 2>&1 | cat >>"$T/piped"
"$BKR" -r "$R" verify --read-data 2>&1 | cat >>"$T/piped"
"$BKR" -r "$R" prune --max-unused 0 2>&1 | cat >>"$T/piped"
rm -rf "$T/mrepo" "$T/warm" && cp -a "$T/mrepo0" "$T/mrepo" && mkdir "$T/warm"
"$BKR" -c "$T/tiers.json" tier migrate 2>&1 | cat >>"$T/piped"
grep -q "moved to warm" "$T/piped" || fail "migrate through a pipe: $(cat "$T/piped")"
! grep -Eq 'restoring|backing up|verifying|marking|repacking|migrating' "$T/piped" || fail "progress in a pipe: $(cat "$T/piped")"
! grep -q $'\r\|\e' "$T/piped" || fail "terminal control characters in a pipe: $(cat -A "$T/piped")"
grep -q "^restored $id" "$T/piped" || fail "no summary in the pipe: $(cat "$T/piped")"
# nor in the log
! grep -rEq 'restoring:|backing up:' "$XDG_STATE_HOME/bkr" || fail "progress in the log"
pass "a pipe and the log get the results, never the progress line"

# --- repair, scan --deep, batch: a line on a terminal, cleared before the results ---------
# The whole stream a terminal gets (script(1): stdout and stderr on one), so the
# first line and the end line, which are always drawn, are seen with no pause.
W=$T/ws
RR=$T/rrepo
mkdir -p "$W/conv"
for i in $(seq -w 1 30); do head -c 100000 /dev/urandom >"$W/conv/f$i.bin"; done
printf '{"turn": 1}\n' >"$W/conv/a.json"
cat >"$T/rcfg.json" <<JSON
{"repository": "$RR", "workspace_root": "$W"}
JSON
"$BKR" -q init -r "$RR"
"$BKR" -q -c "$T/rcfg.json" create --all

# on_tty OUT CMD...: CMD with stdout and stderr on a terminal; all it drew into OUT; its status
on_tty() {
	local out=$1
	shift
	script -qec "$(printf '%q ' "$@")" /dev/null </dev/null >"$out"
}
# drawn FILE LINE_RE RESULT: FILE shows a line matching LINE_RE (a whole line as drawn,
# between two "\r\e[K"), and RESULT (text) comes after the last clear, with no progress in it
drawn() {
	python3 - "$@" <<'PY'
import re, sys
text, line_re, result = open(sys.argv[1], encoding="utf-8", errors="replace", newline="").read(), sys.argv[2], sys.argv[3]
segs = text.split("\r\x1b[K")
assert len(segs) > 2, "no progress line drawn: %r" % text
lines = [s for s in segs[1:-1] if re.fullmatch(line_re, s)]
assert lines, "no line matching %r among %r" % (line_re, segs[1:-1])
assert segs[-1].startswith(result), "the results do not follow a cleared line: %r" % segs[-1]
assert not re.search(r"(scanning|recovering|reading|checking): ", segs[-1]), segs[-1]
print(lines[-1])
PY
}

on_tty "$T/tty.scan" "$BKR" -c "$T/rcfg.json" scan --deep || fail "scan --deep: $(cat -A "$T/tty.scan")"
line=$(drawn "$T/tty.scan" "scanning: [0-9]+ files, [0-9.]+ (B|KiB|MiB), [0-9.]+ (B|KiB|MiB|GiB)/s" \
	"0 damaged files among 31 checked") || fail "scan --deep on a terminal: $(cat -A "$T/tty.scan")"
pass "scan --deep on a terminal: $line"

rm "$W/conv/f07.bin"
printf '{"turn": ' >"$W/conv/a.json"
on_tty "$T/tty.batch" "$BKR" -c "$T/rcfg.json" batch --deep --apply || fail "batch: $(cat -A "$T/tty.batch")"
drawn "$T/tty.batch" "scanning: [0-9]+ files, .*" "run " >/dev/null || fail "batch: no scanning line: $(cat -A "$T/tty.batch")"
line=$(drawn "$T/tty.batch" "recovering: 2/2 files \(100%\).*" "run ") || fail "batch on a terminal: $(cat -A "$T/tty.batch")"
grep -q "2 recovered, 2 applied" "$T/tty.batch" || fail "batch did not recover: $(cat -A "$T/tty.batch")"
pass "batch on a terminal: $line"

on_tty "$T/tty.repair" "$BKR" -r "$RR" repair || fail "repair: $(cat -A "$T/tty.repair")"
drawn "$T/tty.repair" "reading: [0-9]+ pack footers.*" "index: " >/dev/null ||
	fail "repair: no reading line: $(cat -A "$T/tty.repair")"
line=$(drawn "$T/tty.repair" "checking: 1/1 backups \(100%\).*" "index: ") || fail "repair on a terminal: $(cat -A "$T/tty.repair")"
pass "repair on a terminal: $line"
# a finding said while the line is up starts a line of its own: an unreadable pack's
cp -a "$RR" "$T/rrepo-bad"
pack=$(find "$T/rrepo-bad/data" -name '*.pack' | sort | tail -1)
truncate -s 100 "$pack"
rc=0
on_tty "$T/tty.repair2" "$BKR" -r "$T/rrepo-bad" repair || rc=$?
[ "$rc" = 1 ] || fail "repair of a truncated pack exited $rc: $(cat -A "$T/tty.repair2")"
python3 - "$T/tty.repair2" "${pack#"$T/rrepo-bad/"}" <<'PY' || fail "repair: a finding glued to the progress line: $(cat -A "$T/tty.repair2")"
import sys
text, pack = open(sys.argv[1], encoding="utf-8", errors="replace", newline="").read(), sys.argv[2]
assert "reading: " in text, text
at = text.index("bkr repair: ")
assert pack in text[at:].split("\r\n")[0], text[at:]
assert text[:at].endswith(("\r\x1b[K", "\n")), text[:at][-80:]
PY
pass "repair: a finding stands on its own line, the progress line erased before it"

# the daily routine: its steps' lines (scan, verify, cleanup's prune), each erased as it
# ends, and its summary after them
on_tty "$T/tty.routine" "$BKR" -c "$T/rcfg.json" routine daily || fail "routine: $(cat -A "$T/tty.routine")"
for re in "scanning: [0-9]+ files.*" "verifying: ([0-9]+)/\1 packs, .*" "marking: 1/1 backups.*"; do
	line=$(drawn "$T/tty.routine" "$re" "routine daily (as of ") || fail "routine: no ${re%%:*} line: $(cat -A "$T/tty.routine")"
done
pass "routine daily on a terminal: its steps' lines, then its summary"

# --json (stdout into a file, stderr on the terminal), -q on a terminal, a pipe: none of it
no_progress() { ! grep -Eq '(scanning|recovering|reading|checking): ' "$@" && ! grep -q $'[\r\e]' "$@"; }
for cmd in "-c $T/rcfg.json scan --deep" "-c $T/rcfg.json batch --deep" "-r $RR repair" "-c $T/rcfg.json routine daily"; do
	# shellcheck disable=SC2086
	on_tty "$T/tty.q" "$BKR" -q $cmd || fail "-q $cmd: $(cat -A "$T/tty.q")"
	! grep -Eq '(scanning|recovering|reading|checking): ' "$T/tty.q" || fail "-q $cmd showed progress: $(cat -A "$T/tty.q")"
	# shellcheck disable=SC2086
	script -qec "$(printf '%q ' "$BKR" $cmd --json) >$(printf %q "$T/out.json")" /dev/null </dev/null >"$T/tty.json" ||
		fail "$cmd --json: $(cat -A "$T/tty.json")"
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out.json" || fail "$cmd --json: $(cat -A "$T/out.json")"
	no_progress "$T/out.json" && ! grep -Eq '(scanning|recovering|reading|checking): ' "$T/tty.json" ||
		fail "$cmd --json: progress: $(cat -A "$T/tty.json" "$T/out.json")"
	# shellcheck disable=SC2086
	"$BKR" $cmd 2>&1 | cat >"$T/piped"
	[ -s "$T/piped" ] || fail "$cmd through a pipe: no output"
	no_progress "$T/piped" || fail "$cmd: progress in a pipe: $(cat -A "$T/piped")"
	pass "${cmd#-[cr] * }: no progress with -q, with --json (stdout a file, stderr a terminal), nor in a pipe"
done

# --- diff --live and log -p: a line on a terminal (stderr), erased before each result and
# the summary; stdout redirected on a terminal holds the results only; none with -q, --json
# or in a pipe
LW=$T/lws
LR=$T/lrepo
mkdir -p "$LW/conv"
for i in $(seq -w 1 40); do head -c 2000 /dev/urandom >"$LW/conv/f$i.bin"; done
printf '{"repository": "%s", "workspace_root": "%s"}\n' "$LR" "$LW" >"$T/lcfg.json"
"$BKR" -q init -r "$LR"
for turn in 1 2 3; do
	printf '{"turn": %s}\n' "$turn" >"$LW/conv/a.json"
	"$BKR" -q -c "$T/lcfg.json" create --all
done
printf '{"turn": 4}\n' >"$LW/conv/a.json"
rm "$LW/conv/f07.bin"
on_tty "$T/tty.diff" "$BKR" -r "$LR" diff latest --live || fail "diff --live: $(cat -A "$T/tty.diff")"
line=$(drawn "$T/tty.diff" "comparing: 41/41 files \(100%\).*" "0 added, 1 removed, 1 modified") ||
	fail "diff --live on a terminal: $(cat -A "$T/tty.diff")"
# each change on a line of its own, after an erased line, never glued to one
python3 - "$T/tty.diff" <<'PY' || fail "diff --live: a change glued to the progress line: $(cat -A "$T/tty.diff")"
import sys
text = open(sys.argv[1], encoding="utf-8", errors="replace", newline="").read()
for change in ("M  lws/conv/a.json", "-  lws/conv/f07.bin"):
    at = text.index(change)
    assert text[:at].endswith(("\r\x1b[K", "\n")), (change, text[:at][-80:])
PY
pass "diff --live on a terminal: $line"
script -qec "$(printf '%q ' "$BKR" -r "$LR" diff latest --live) >$(printf %q "$T/diff.out")" /dev/null </dev/null >"$T/tty.diff2" ||
	fail "diff --live > FILE: $(cat -A "$T/tty.diff2")"
grep -q "comparing: " "$T/tty.diff2" || fail "diff --live > FILE: no progress on the terminal: $(cat -A "$T/tty.diff2")"
[ "$(cat "$T/diff.out")" = "$(printf 'M  lws/conv/a.json\n-  lws/conv/f07.bin')" ] ||
	fail "diff --live > FILE: stdout holds more than the changes: $(cat -A "$T/diff.out")"
pass "diff --live > FILE on a terminal: the line on the terminal, the changes alone in the file"

on_tty "$T/tty.log" "$BKR" -r "$LR" log -p lws/conv/a.json || fail "log -p: $(cat -A "$T/tty.log")"
drawn "$T/tty.log" "reading: 3/3 backups \(100%\).*" "" >/dev/null || fail "log -p: no reading line: $(cat -A "$T/tty.log")"
line=$(drawn "$T/tty.log" "diffing: 2/3 versions \(66%\).*" "") || fail "log -p on a terminal: $(cat -A "$T/tty.log")"
python3 - "$T/tty.log" <<'PY' || fail "log -p: a version glued to the progress line: $(cat -A "$T/tty.log")"
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace", newline="").read()
versions = [m.start() for m in re.finditer(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  backup_", text)]
assert len(versions) == 3, text
for at in versions:
    assert text[:at].endswith("\r\x1b[K"), text[:at][-80:]
assert text.rstrip().endswith("3 version(s) of lws/conv/a.json in 3 backup(s) of its source"), text[-200:]
PY
pass "log -p on a terminal: $line"
script -qec "$(printf '%q ' "$BKR" -r "$LR" log -p lws/conv/a.json) >$(printf %q "$T/log.out")" /dev/null </dev/null >"$T/tty.log2" ||
	fail "log -p > FILE: $(cat -A "$T/tty.log2")"
grep -q "diffing: " "$T/tty.log2" || fail "log -p > FILE: no progress on the terminal: $(cat -A "$T/tty.log2")"
"$BKR" -r "$LR" log -p lws/conv/a.json 2>/dev/null | cmp - "$T/log.out" || fail "log -p > FILE on a terminal differs from a pipe's"
pass "log -p > FILE on a terminal: the line on the terminal, the file as through a pipe"

for cmd in "diff latest --live" "log -p lws/conv/a.json"; do
	# shellcheck disable=SC2086
	on_tty "$T/tty.q" "$BKR" -q -r "$LR" $cmd || fail "-q $cmd: $(cat -A "$T/tty.q")"
	! grep -Eq '(comparing|reading|diffing): ' "$T/tty.q" || fail "-q $cmd showed progress: $(cat -A "$T/tty.q")"
	# shellcheck disable=SC2086
	script -qec "$(printf '%q ' "$BKR" -r "$LR" $cmd --json) >$(printf %q "$T/out.json")" /dev/null </dev/null >"$T/tty.json" ||
		fail "$cmd --json: $(cat -A "$T/tty.json")"
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/out.json" || fail "$cmd --json: $(cat -A "$T/out.json")"
	! grep -Eq '(comparing|reading|diffing): ' "$T/tty.json" "$T/out.json" || fail "$cmd --json: progress: $(cat -A "$T/tty.json")"
	# shellcheck disable=SC2086
	"$BKR" -r "$LR" $cmd 2>&1 | cat >"$T/piped"
	! grep -Eq '(comparing|reading|diffing): ' "$T/piped" && ! grep -q $'[\r\e]' "$T/piped" ||
		fail "$cmd: progress in a pipe: $(cat -A "$T/piped")"
	pass "$cmd: no progress with -q, with --json, nor in a pipe"
done
