#!/usr/bin/env bash
# Scale benchmark of bkrfs: a repository of many backups of a workspace of
# many small files, mounted and walked with find.
#
#   bench/scale.sh [--work DIR] [--backups N] [--files F] [--no-build]
#                  [--no-find] [--no-borg] [--borg-backups N] [--vs-runs R]
#                  [--create-only]   (root)
#
# Builds (or reuses, with --no-build) DIR/scale/repo: N backups (default
# 1000) of a workspace of F files (default 10000; 100 per directory, about
# 200 bytes each), 1 % of the files changed before every backup, and
# config/app.json rewritten before every 10th, then `bkr prune` (one index).  The
# repository is kept between runs with the same N and F.  Then, with the page
# cache dropped: the time from starting bkrfs until /latest is visible
# (target: under a second), and `find MNT/by-id | wc -l` over every backup
# (N x (F + F/100 + 2) entries) while the daemon's RSS is sampled every
# 0.5 s.  Printed: mount seconds, find seconds and entries per second, peak
# RSS, and RSS at each tenth of the walk — flat means bounded caches and an
# inode table the kernel keeps pruned (--no-find skips this walk).
#
# History (issue 15): the listing of /versions/ws/config/app.json/ (101
# versions), timed inside one process (bench/lsversions.py: os.listdir and
# os.lstat of every entry, as `ls -l`), cold (caches dropped, nothing of
# /versions loaded yet) and warm (median of 50), `bkr log` of it cold and
# warm (targets: under 1 s each), and on a fresh mount the time and the
# daemon's peak RSS of `find /versions/ws/d0005` (100 files, their versions).
# Then, unless --no-borg, one history side by side with `borg mount -o
# versions`: the bench corpus's include/ (a copy of /usr/include) plus
# config/app.json, --borg-backups (default 100) backups of the same states by
# each tool, one include file appended to before each and app.json rewritten
# before every 10th (11 versions).  100, because borg is slow per archive:
# about 2.5 CPU seconds for each `borg create` of include/ (made once, kept
# for later runs) and 0.3 for each archive `borg mount -o versions` reads
# before it serves anything (every cold run).  --vs-runs (default 3) rounds,
# bkrfs then borg, each: caches dropped, the mount started (in the
# foreground) and app.json's versions listed by lsversions.py (cold), then
# listed 50 times more (warm).  Medians of the rounds: cold = from starting
# the mount until the first listing is done, and warm, with their ratio;
# target: bkrfs <= 0.5x borg.  The first listing alone (after the mount is
# up) is printed beside it: borg has read every archive by then, bkrfs reads
# the path's trees now.  The load average is printed before and after.
# JSON in DIR/results/scale-<time>.json.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NB=1000
NF=10000
NBB=100
VS_RUNS=3
bench_args --backups=NB --files=NF --create-only:CREATE_ONLY --no-find:NO_FIND --no-borg:NO_BORG \
	--borg-backups=NBB --vs-runs=VS_RUNS -- "$@"
[ "$(id -u)" = 0 ] || die "needs root (drop_caches)"
need meson ninja fusermount3 find
mkdir -p "$BENCH_WORK"
BENCH_WORK=$(cd "$BENCH_WORK" && pwd)
SD=$BENCH_WORK/scale
WS=$SD/ws
REPO=$SD/repo
MNT=$SD/mnt
DAEMON_PID=""

cleanup() {
	local rc=$?
	bench_unmount
	[ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_bkr
mkdir -p "$SD" "$MNT" "$BENCH_WORK/results"

# ---- the repository (kept when N and F match) ----------------------------------------
# v2: config/app.json, rewritten before every 10th backup (bkr log, /versions)
PARAMS="$NB $NF v2"
if [ "$(cat "$SD/params" 2>/dev/null)" != "$PARAMS" ]; then
	log "creating $NB backups of $NF files (kept for later runs)"
	rm -rf "$WS" "$REPO" "$SD/params"
	python3 - "$WS" "$NF" <<'PY'
import os, sys
ws, nf = sys.argv[1], int(sys.argv[2])
for i in range(nf):
    d = os.path.join(ws, "d%04d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d.json" % i), "w") as f:
        f.write('{"id": %d, "text": "%s"}\n' % (i, ("entry %d " % i) * 12))
os.makedirs(os.path.join(ws, "config"), exist_ok=True)
with open(os.path.join(ws, "config", "app.json"), "w") as f:
    f.write('{"generation": 0}\n')
PY
	"$BKR" -q init -r "$REPO"
	t0=$EPOCHREALTIME
	# one python for the whole loop (its start-up costs more than a backup)
	python3 - "$WS" "$NF" "$NB" "$BKR" "$REPO" <<'PY' || die "creating the backups failed"
import os, subprocess, sys, time
ws, nf, nb, bkr, repo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
for b in range(1, nb + 1):
    # 1 % of the files change before each backup (a different 1 % each time)
    for i in range(b % 100, nf, 100):
        with open(os.path.join(ws, "d%04d" % (i // 100), "f%06d.json" % i), "a") as f:
            f.write('{"backup": %d}\n' % b)
    if b % 10 == 0:
        with open(os.path.join(ws, "config", "app.json"), "w") as f:
            f.write('{"generation": %d, "workers": %d}\n' % (b // 10, b % 7 + 1))
    t = "full" if b == 1 else "incremental"
    subprocess.run([bkr, "-q", "create", "-r", repo, "--type", t, ws], check=True)
    if b % 100 == 0:
        print("[%s]   %d backups" % (time.strftime("%H:%M:%S"), b), file=sys.stderr)
PY
	# the index files merged into one, as `bkr cleanup` (prune) keeps a repository: without
	# it every blob lookup searches 1,000 index files (two thirds of a cold /versions listing)
	"$BKR" -q -r "$REPO" prune || die "prune failed"
	create_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	echo "$PARAMS" >"$SD/params"
	echo "$create_s" >"$SD/create_s"
fi
create_s=$(cat "$SD/create_s")
[ "${CREATE_ONLY:-0}" = 1 ] && { log "repository ready: $REPO"; exit 0; }
repo_mib=$(du -sm "$REPO" | cut -f1)

# ---- mount -----------------------------------------------------------------------------
drop_caches
t0=$EPOCHREALTIME
"$BKRFS" "$REPO" "$MNT" || die "bkrfs failed"
for ((i = 0; i < 400; i++)); do
	[ -e "$MNT/latest/ws" ] && break
	sleep 0.01
done
[ -e "$MNT/latest/ws" ] || die "mount not ready after 4 s"
mount_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
DAEMON_PID=$(pgrep -f -x "$BKRFS $REPO $MNT" | head -1)
[ -n "$DAEMON_PID" ] || die "daemon pid not found"
nids=$(ls "$MNT/by-id" | wc -l)

# seconds since $1 (an $EPOCHREALTIME)
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
# CPU seconds (user + system) the daemon has used
daemon_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$DAEMON_PID/stat"; }
cpu_since() { awk -v a="$1" -v b="$(daemon_cpu)" 'BEGIN { printf "%.2f", b - a }'; }
# seconds $1 in milliseconds
ms() { awk -v s="$1" 'BEGIN { n = "^[0-9]+([.][0-9]*)?$"; if (s !~ n) print s; else printf "%.2f", s * 1000 }'; }

# ---- history: /versions and bkr log (issue 15) -----------------------------------------------
VF=ws/config/app.json
LSV=$BENCH_SRC/bench/lsversions.py
# listed in one process: cold (caches dropped by lsversions.py), then the median of 50 warm
c0=$(daemon_cpu)
read -r _ nver _ vcold_s _ vwarm_s _ < <(python3 "$LSV" "$MNT" "versions/$VF") || die "listing /versions/$VF failed"
vcold_cpu=$(cpu_since "$c0")
drop_caches
t0=$EPOCHREALTIME
nlog=$(/usr/bin/time -f '%U %S' -o "$SD/log.time" "$BKR" -q -r "$REPO" log "$VF" | wc -l)
lcold_s=$(since "$t0")
lcold_cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$SD/log.time")
t0=$EPOCHREALTIME
"$BKR" -q -r "$REPO" log "$VF" >/dev/null
lwarm_s=$(since "$t0")
# find over /versions of one directory, on a fresh mount: time and peak RSS
fusermount3 -u "$MNT"
drop_caches
"$BKRFS" "$REPO" "$MNT" || die "bkrfs failed"
DAEMON_PID=$(pgrep -f -x "$BKRFS $REPO $MNT" | head -1)
[ -n "$DAEMON_PID" ] || die "daemon pid not found"
rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status")
t0=$EPOCHREALTIME
c0=$(daemon_cpu)
vfind_n=$(find "$MNT/versions/ws/d0005" | wc -l)
vfind_s=$(since "$t0")
vfind_cpu=$(cpu_since "$c0")
vfind_hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$DAEMON_PID/status")
log "history: $nver versions of $VF listed in $vcold_s s cold, $(ms "$vwarm_s") ms warm; bkr log $lcold_s / $lwarm_s s"

# ---- the same history, side by side with borg mount -o versions ---------------------------------
vs_load0=- vs_load1=- borg_cold=- borg_warm=- bk_cold=- bk_warm=- borg_nver=- bk_nver=-
bk_mount=- bk_list=- bk_cpu=- borg_mount=- borg_list=- borg_cpu=-
if [ "${NO_BORG:-0}" != 1 ]; then
	need borg
	BD=$SD/vs
	if [ "$(cat "$BD/params" 2>/dev/null)" != "$NBB v1" ]; then
		log "creating $NBB backups of include/ + config/app.json with bkr and borg (kept for later runs)"
		rm -rf "$BD"
		mkdir -p "$BD/ws/config"
		cp -a /usr/include "$BD/ws/include"
		echo '{"generation": 0}' >"$BD/ws/config/app.json"
		"$BKR" -q init -r "$BD/bkr"
		borg init --encryption none "$BD/borg"
		mapfile -t vfiles < <(cd "$BD/ws" && find include -type f | sort | awk 'NR % 50 == 1')
		for ((b = 1; b <= NBB; b++)); do
			echo "/* history $b */" >>"$BD/ws/${vfiles[$(((b - 1) % ${#vfiles[@]}))]}"
			[ $((b % 10)) = 0 ] && echo "{\"generation\": $((b / 10))}" >"$BD/ws/config/app.json"
			(cd "$BD" && borg create "$BD/borg::b$b" ws) || die "borg create failed"
			"$BKR" -q create -r "$BD/bkr" "$BD/ws" || die "bkr create failed"
			[ $((b % 20)) = 0 ] && log "  $b backups"
		done
		echo "$NBB v1" >"$BD/params"
	fi
	fusermount3 -u "$MNT"
	DAEMON_PID=""
	# rounds: each tool's mount started fresh with the caches dropped, app.json's versions
	# listed cold then warm by one process; a line per round and tool:
	#   TOOL ENTRIES FILES MOUNT_S COLD_LIST_S COLD_S WARM_S CPU_S
	vs_load0=$(cut -d' ' -f1 /proc/loadavg)
	: >"$SD/vs.txt"
	for ((r = 1; r <= VS_RUNS; r++)); do
		line=$(python3 "$LSV" "$MNT" "versions/$VF" -- "$BKRFS" -f "$BD/bkr" "$MNT" \
			2>>"$BENCH_WORK/bkrfs-versions.log") || die "bkrfs round $r failed (see $BENCH_WORK/bkrfs-versions.log)"
		echo "bkrfs $line" >>"$SD/vs.txt"
		line=$(python3 "$LSV" "$MNT" "$VF" -- borg mount -f -o versions "$BD/borg" "$MNT" \
			2>>"$BENCH_WORK/borg-versions.log") || die "borg round $r failed (see $BENCH_WORK/borg-versions.log)"
		echo "borg $line" >>"$SD/vs.txt"
	done
	vs_load1=$(cut -d' ' -f1 /proc/loadavg)
	# TOOL COLUMN: the median of that column over the rounds
	vs_median() {
		awk -v t="$1" -v c="$2" '$1 == t { v[n++] = $c } END {
			for (i = 1; i < n; i++) for (j = i; j > 0 && v[j - 1] + 0 > v[j] + 0; j--) { x = v[j]; v[j] = v[j - 1]; v[j - 1] = x }
			print n ? (n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2) : "-" }' "$SD/vs.txt"
	}
	for t in bk:bkrfs borg:borg; do
		p=${t%%:*} t=${t#*:}
		printf -v "${p}_nver" %s "$(vs_median "$t" 3)"
		printf -v "${p}_mount" %s "$(vs_median "$t" 4)"
		printf -v "${p}_list" %s "$(vs_median "$t" 5)"
		printf -v "${p}_cold" %s "$(vs_median "$t" 6)"
		printf -v "${p}_warm" %s "$(vs_median "$t" 7)"
		printf -v "${p}_cpu" %s "$(vs_median "$t" 8)"
	done
	"$BKRFS" "$REPO" "$MNT" || die "bkrfs failed"
	DAEMON_PID=$(pgrep -f -x "$BKRFS $REPO $MNT" | head -1)
fi

# ---- find over every backup, RSS sampled ---------------------------------------------------
entries=0 find_s=0 hwm=0
if [ "${NO_FIND:-0}" != 1 ]; then
drop_caches
: >"$SD/rss.txt"
(
	while kill -0 "$DAEMON_PID" 2>/dev/null; do
		awk '/^VmRSS/ { print $2 }' "/proc/$DAEMON_PID/status" >>"$SD/rss.txt" 2>/dev/null || true
		sleep 0.5
	done
) &
SAMPLER=$!
t0=$EPOCHREALTIME
entries=$(find "$MNT/by-id" | wc -l)
find_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
SAMPLER=""
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$DAEMON_PID/status")
fi
fusermount3 -u "$MNT"

tenths=-
[ "${NO_FIND:-0}" = 1 ] || tenths=$(awk '{ v[NR] = $1 } END { for (k = 1; k <= 10; k++) { i = int(NR * k / 10); if (i < 1) i = 1;
	printf "%s%.0f", (k > 1 ? " " : ""), v[i] / 1024 } }' "$SD/rss.txt")
rate=$(awk -v n="$entries" -v s="$find_s" 'BEGIN { printf "%.0f", n / (s > 0 ? s : 1) }')
under1() { awk -v m="$1" 'BEGIN { print (m < 1 ? "PASS" : "MISS") }'; }
# ratio A/B with two significant digits (these can be far below 0.01)
ratio2() { awk -v a="$1" -v b="$2" 'BEGIN { n = "^[0-9]+([.][0-9]*)?$"
	if (a !~ n || b !~ n || b + 0 == 0) print "-"; else printf "%.2g", a / b }'; }
rc=$(ratio2 "$bk_cold" "$borg_cold")
rl=$(ratio2 "$bk_list" "$borg_list")
rw=$(ratio2 "$bk_warm" "$borg_warm")
printf '\nbkrfs scale: %d backups x %d files (repository %d MiB, created in %s s)\n' "$NB" "$NF" "$repo_mib" "$create_s"
printf '  mount until /latest is visible: %s s (target < 1 s: %s)\n' "$mount_s" "$(under1 "$mount_s")"
printf '  /by-id lists %d backups\n' "$nids"
if [ "${NO_FIND:-0}" != 1 ]; then
	printf '  find over every backup: %d entries in %s s (%s entries/s)\n' "$entries" "$find_s" "$rate"
	printf '  daemon RSS MiB at each tenth of the walk: %s; peak %d MiB\n' "$tenths" "$((hwm / 1024))"
fi
printf '  load average at the end: %s (wall times on a shared machine; CPU seconds beside them)\n' \
	"$(cut -d' ' -f1-3 /proc/loadavg)"
printf '  /versions/%s/ (%d versions), listed in one process: cold %s s (daemon CPU %s s; target < 1 s: %s), warm %s ms\n' \
	"$VF" "$nver" "$vcold_s" "$vcold_cpu" "$(under1 "$vcold_s")" "$(ms "$vwarm_s")"
printf '  bkr log %s (%d versions): cold %s s (CPU %s s; target < 1 s: %s), warm %s s\n' "$VF" "$nlog" "$lcold_s" \
	"$lcold_cpu" "$(under1 "$lcold_s")" "$lwarm_s"
printf '  find /versions/ws/d0005 on a fresh mount: %d entries in %s s (daemon CPU %s s); daemon RSS %d MiB before, peak %d MiB\n' \
	"$vfind_n" "$vfind_s" "$vfind_cpu" "$((rss0 / 1024))" "$((vfind_hwm / 1024))"
if [ "${NO_BORG:-0}" != 1 ]; then
	printf '  the same history in both, %d backups of include/ + config/app.json (bkrfs %s, borg %s versions),\n' \
		"$NBB" "$bk_nver" "$borg_nver"
	printf '  median of %d rounds, load average %s before and %s after:\n' "$VS_RUNS" "$vs_load0" "$vs_load1"
	printf '    cold, mount + first listing: bkrfs %s s (mount %s, listing %s; daemon CPU %s s), borg mount -o versions %s s\n' \
		"$bk_cold" "$bk_mount" "$bk_list" "$bk_cpu" "$borg_cold"
	printf '      (mount %s, listing %s; CPU %s s), ratio %s (target <= 0.5: %s)\n' "$borg_mount" "$borg_list" "$borg_cpu" \
		"$rc" "$(verdict "$rc" 0.5)"
	printf '    the first listing alone: ratio %s (borg read every archive before mounting)\n' "$rl"
	printf '    warm listing: bkrfs %s ms, borg %s ms, ratio %s (target <= 0.5: %s)\n' "$(ms "$bk_warm")" \
		"$(ms "$borg_warm")" "$rw" "$(verdict "$rw" 0.5)"
fi
out=$BENCH_WORK/results/scale-$(date -u +%Y%m%d-%H%M%S).json
printf '{"backups":%d,"files":%d,"repo_mib":%d,"create_s":%s,"mount_s":%s,"entries":%d,"find_s":%s,"rss_tenths_mib":"%s","peak_rss_mib":%d,' \
	"$NB" "$NF" "$repo_mib" "$create_s" "$mount_s" "$entries" "$find_s" "$tenths" "$((hwm / 1024))" >"$out"
printf '"versions":{"file":"%s","n":%d,"cold_s":%s,"cold_cpu_s":%s,"warm_s":%s,"log_n":%d,"log_cold_s":%s,"log_cold_cpu_s":%s,"log_warm_s":%s,' \
	"$VF" "$nver" "$vcold_s" "$vcold_cpu" "$vwarm_s" "$nlog" "$lcold_s" "$lcold_cpu" "$lwarm_s" >>"$out"
printf '"find_dir_entries":%d,"find_dir_s":%s,"find_dir_cpu_s":%s,"find_dir_peak_rss_mib":%d},' "$vfind_n" "$vfind_s" \
	"$vfind_cpu" "$((vfind_hwm / 1024))" >>"$out"
printf '"vs_borg":{"backups":%d,"rounds":%d,"load_before":"%s","load_after":"%s","bkrfs_versions":"%s","borg_versions":"%s",' \
	"$NBB" "$VS_RUNS" "$vs_load0" "$vs_load1" "$bk_nver" "$borg_nver" >>"$out"
printf '"bkrfs_mount_s":"%s","bkrfs_list_s":"%s","bkrfs_cold_s":"%s","bkrfs_cold_cpu_s":"%s","bkrfs_warm_s":"%s",' \
	"$bk_mount" "$bk_list" "$bk_cold" "$bk_cpu" "$bk_warm" >>"$out"
printf '"borg_mount_s":"%s","borg_list_s":"%s","borg_cold_s":"%s","borg_cold_cpu_s":"%s","borg_warm_s":"%s"}}\n' \
	"$borg_mount" "$borg_list" "$borg_cold" "$borg_cpu" "$borg_warm" >>"$out"
echo "results: $out"
