#!/usr/bin/env bash
# Scale benchmark of bkrfs: a repository of many backups of a workspace of
# many small files, mounted and walked with find.
#
#   bench/scale.sh [--work DIR] [--backups N] [--files F] [--no-build]   (root)
#
# Builds (or reuses, with --no-build) DIR/scale/repo: N backups (default
# 1000) of a workspace of F files (default 10000; 100 per directory, about
# 200 bytes each), 1 % of the files changed before every backup.  The
# repository is kept between runs with the same N and F.  Then, with the page
# cache dropped: the time from starting bkrfs until /latest is visible
# (target: under a second), and `find MNT/by-id | wc -l` over every backup
# (N x (F + F/100 + 2) entries) while the daemon's RSS is sampled every
# 0.5 s.  Printed: mount seconds, find seconds and entries per second, peak
# RSS, and RSS at each tenth of the walk — flat means bounded caches and an
# inode table the kernel keeps pruned.  JSON in DIR/results/scale-<time>.json.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NB=1000
NF=10000
while [ $# -gt 0 ]; do
	case $1 in
	--work) BENCH_WORK=$2; shift ;;
	--backups) NB=$2; shift ;;
	--files) NF=$2; shift ;;
	--no-build) BENCH_NOBUILD=1 ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
	shift
done
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
	grep -q " $MNT " /proc/mounts && { fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" || true; }
	[ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_bkr
mkdir -p "$SD" "$MNT" "$BENCH_WORK/results"

# ---- the repository (kept when N and F match) ----------------------------------------
if [ "$(cat "$SD/params" 2>/dev/null)" != "$NB $NF" ]; then
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
    t = "full" if b == 1 else "incremental"
    subprocess.run([bkr, "-q", "create", "-r", repo, "--type", t, ws], check=True)
    if b % 100 == 0:
        print("[%s]   %d backups" % (time.strftime("%H:%M:%S"), b), file=sys.stderr)
PY
	create_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	echo "$NB $NF" >"$SD/params"
	echo "$create_s" >"$SD/create_s"
fi
create_s=$(cat "$SD/create_s")
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

# ---- find over every backup, RSS sampled ---------------------------------------------------
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
fusermount3 -u "$MNT"

tenths=$(awk '{ v[NR] = $1 } END { for (k = 1; k <= 10; k++) { i = int(NR * k / 10); if (i < 1) i = 1;
	printf "%s%.0f", (k > 1 ? " " : ""), v[i] / 1024 } }' "$SD/rss.txt")
rate=$(awk -v n="$entries" -v s="$find_s" 'BEGIN { printf "%.0f", n / (s > 0 ? s : 1) }')
printf '\nbkrfs scale: %d backups x %d files (repository %d MiB, created in %s s)\n' "$NB" "$NF" "$repo_mib" "$create_s"
printf '  mount until /latest is visible: %s s (target < 1 s: %s)\n' "$mount_s" \
	"$(awk -v m="$mount_s" 'BEGIN { print (m < 1 ? "PASS" : "MISS") }')"
printf '  /by-id lists %d backups\n' "$nids"
printf '  find over every backup: %d entries in %s s (%s entries/s)\n' "$entries" "$find_s" "$rate"
printf '  daemon RSS MiB at each tenth of the walk: %s; peak %d MiB\n' "$tenths" "$((hwm / 1024))"
out=$BENCH_WORK/results/scale-$(date -u +%Y%m%d-%H%M%S).json
printf '{"backups":%d,"files":%d,"repo_mib":%d,"create_s":%s,"mount_s":%s,"entries":%d,"find_s":%s,"rss_tenths_mib":[%s],"peak_rss_mib":%d}\n' \
	"$NB" "$NF" "$repo_mib" "$create_s" "$mount_s" "$entries" "$find_s" "${tenths// /,}" "$((hwm / 1024))" >"$out"
echo "results: $out"
