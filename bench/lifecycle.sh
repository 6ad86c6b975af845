#!/usr/bin/env bash
# Lifecycle benchmark: many backups, then retention and prune, by bkr, restic
# and borg, in one run, on the same data.
#
#   bench/lifecycle.sh [--work DIR] [--backups N] [--keep K] [--no-build]
#
# Workspace (in DIR, default /var/tmp/bkr-bench): a fresh copy of
# /usr/include.  N backups (default 200), before each of which 1 % of the
# files get one line appended (a different 1 % each time: every 100th file
# counted from a moving start), made by each tool in turn; then each tool
# keeps the last K (default 20) and frees the rest: `bkr cleanup --keep-last K`
# (retention + prune), `restic forget --keep-last K --prune`, `borg prune
# --keep-last K && borg compact`.  Measured for that step: wall time and peak
# RSS (/usr/bin/time), and the repository size after it (du -sb; bkr's trash,
# emptied after the grace period, is shown apart).  The backups themselves are
# timed in total.  Results: a table, ratios, PASS/MISS per target
# (informational: exit 0 unless a tool fails), JSON in DIR/results/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NBACKUPS=200
KEEP=20
bench_args --backups=NBACKUPS --keep=KEEP -- "$@"
[[ $NBACKUPS =~ ^[0-9]+$ && $KEEP =~ ^[0-9]+$ && $KEEP -ge 1 && $NBACKUPS -gt $KEEP ]] ||
	die "--backups N and --keep K: whole numbers with N > K >= 1"
need restic borg meson ninja
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"

mkdir -p "$BENCH_WORK"
BENCH_WORK=$(cd "$BENCH_WORK" && pwd)
build_bkr
WS=$BENCH_WORK/lifecycle/ws
REPOS=$BENCH_WORK/lifecycle/repos
rm -rf "$BENCH_WORK/lifecycle" "$BENCH_WORK/logs" "$BENCH_WORK/cache"
mkdir -p "$WS" "$REPOS" "$BENCH_WORK/logs" "$BENCH_WORK/cache" "$BENCH_WORK/results"
log "copying /usr/include to $WS/include"
cp -a /usr/include "$WS/include"
mapfile -t FILES < <(cd "$WS" && find include -type f | sort)
WS_FILES=${#FILES[@]}
WS_BYTES=$(du -sb --apparent-size "$WS" | cut -f1)

export RESTIC_PASSWORD=$RESTIC_PASSWORD_FIXED RESTIC_CACHE_DIR=$BENCH_WORK/cache/restic
export BORG_BASE_DIR=$BENCH_WORK/cache/borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
cd "$BENCH_WORK/lifecycle"

TOOLS="bkr restic borg"
"$BKR" -q init -r "$REPOS/bkr" >"$BENCH_WORK/logs/init-bkr.log" 2>&1 || die "bkr init failed"
restic init -r "$REPOS/restic" >"$BENCH_WORK/logs/init-restic.log" 2>&1 || die "restic init failed"
borg init --encryption none "$REPOS/borg" >"$BENCH_WORK/logs/init-borg.log" 2>&1 || die "borg init failed"

# change round R: append a line to every 100th file, starting at file R mod 100
change() {
	local r=$1 i
	for ((i = r % 100; i < WS_FILES; i += 100)); do
		printf '/* bkr-bench lifecycle %d */\n' "$r" >>"$WS/${FILES[$i]}"
	done
}

# one backup by each tool; their seconds are summed
declare -A backup_s=([bkr]=0 [restic]=0 [borg]=0)
backup_all() {
	local r=$1 tool s tf=$BENCH_WORK/logs/time.$$
	for tool in $TOOLS; do
		case $tool in
		bkr) set -- "$BKR" -q create -r "$REPOS/bkr" --type incremental ws ;;
		restic) set -- restic -q -r "$REPOS/restic" backup --host bench ws ;;
		borg) set -- borg create "$REPOS/borg::b$r" ws ;;
		esac
		/usr/bin/time -f '%e' -o "$tf" "$@" >>"$BENCH_WORK/logs/backups-$tool.log" 2>&1 ||
			die "$tool backup $r failed (log: $BENCH_WORK/logs/backups-$tool.log)"
		s=$(cat "$tf")
		backup_s[$tool]=$(awk -v a="${backup_s[$tool]}" -v b="$s" 'BEGIN { printf "%.2f", a + b }')
	done
}

log "workspace: $WS_FILES files, $((WS_BYTES / 1048576)) MiB; $NBACKUPS backups by each tool, 1 % changed before each"
for r in $(seq 1 "$NBACKUPS"); do
	[ "$r" = 1 ] || change "$r"
	backup_all "$r"
	[ $((r % 20)) != 0 ] || log "$r backups (seconds so far: bkr ${backup_s[bkr]}, restic ${backup_s[restic]}, borg ${backup_s[borg]})"
done
for tool in $TOOLS; do
	printf -v "${tool}_before" '%s' "$(du -sb "$REPOS/$tool" | cut -f1)"
done

log "keep the last $KEEP and free the rest"
timed bkr "$BKR" cleanup -r "$REPOS/bkr" --keep-last "$KEEP"
timed restic restic -r "$REPOS/restic" forget --keep-last "$KEEP" --prune
timed borg sh -c 'borg prune --keep-last "$1" "$2" && borg compact "$2"' sh "$KEEP" "$REPOS/borg"
bkr_trash=$(du -sb "$REPOS/bkr/trash" 2>/dev/null | cut -f1 || echo 0)
for tool in $TOOLS; do
	all=$(du -sb "$REPOS/$tool" | cut -f1)
	[ "$tool" = bkr ] && all=$((all - bkr_trash))
	printf -v "${tool}_after" '%s' "$all"
done
kept=$("$BKR" -r "$REPOS/bkr" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$kept" = "$KEEP" ] || die "bkr kept $kept backups, not $KEEP"

get() { local v="${1}_${2}"; printf '%s' "${!v}"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

echo
echo "bkr benchmark: lifecycle  ($(date -u +%Y-%m-%dT%H:%MZ), $(machine_info))"
echo "$(tool_versions)"
echo "workspace: $WS_FILES files, $(mib "$WS_BYTES") MiB (/usr/include); $NBACKUPS backups, 1 % of the files changed before each;" \
	"then keep the last $KEEP and prune"
echo
printf '%-7s %12s %14s %10s %12s %14s %10s\n' tool "backups s" "repo MiB before" "prune s" "peak RSS MiB" "repo MiB after" "trash MiB"
for tool in $TOOLS; do
	printf '%-7s %12s %14s %10s %12s %14s %10s\n' "$tool" "${backup_s[$tool]}" "$(mib "$(get "$tool" before)")" \
		"$(get "$tool" s)" "$(mib $(($(get "$tool" kb) * 1024)))" "$(mib "$(get "$tool" after)")" \
		"$([ "$tool" = bkr ] && mib "$bkr_trash" || echo -)"
done
echo
f=$(fmin "$restic_s" "$borg_s")
rt=$(ratio "$bkr_s" "$f")
rs=$(ratio "$bkr_after" "$restic_after")
printf '%-22s %10s %10s %12s %8s %6s\n' metric bkr/restic bkr/borg bkr/fastest target result
printf '%-22s %10s %10s %12s %8s %6s\n' "keep-last+prune time" "$(ratio "$bkr_s" "$restic_s")" "$(ratio "$bkr_s" "$borg_s")" "$rt" "≤0.5" "$(verdict "$rt" 0.5)"
printf '%-22s %10s %10s %12s %8s %6s\n' "peak RSS" "$(ratio "$bkr_kb" "$restic_kb")" "$(ratio "$bkr_kb" "$borg_kb")" "" "" ""
printf '%-22s %10s %10s %12s %8s %6s\n' "repo size after" "$rs" "$(ratio "$bkr_after" "$borg_after")" "" "≤1.1" "$(verdict "$rs" 1.1)"
printf '%-22s %10s %10s %12s %8s %6s\n' "backups time (total)" "$(ratio "${backup_s[bkr]}" "${backup_s[restic]}")" \
	"$(ratio "${backup_s[bkr]}" "${backup_s[borg]}")" "" "" ""
echo "targets: keep-last + prune time ≤ 0.5× the faster peer; repository size after ≤ 1.1× restic's" \
	"(bkr without its trash, which the grace period keeps a day)"

out=$BENCH_WORK/results/lifecycle-$(date -u +%Y%m%d-%H%M%S).json
{
	printf '{"benchmark":"lifecycle","date":"%s","machine":"%s","versions":"%s",' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(machine_info)" "$(tool_versions)"
	printf '"workspace":{"files":%s,"bytes":%s},"backups":%s,"keep":%s,"results":[' "$WS_FILES" "$WS_BYTES" "$NBACKUPS" "$KEEP"
	sep=""
	for tool in $TOOLS; do
		printf '%s{"tool":"%s","backups_seconds":%s,"repo_bytes_before":%s,"prune_seconds":%s,"peak_rss_kib":%s,"repo_bytes_after":%s}' \
			"$sep" "$tool" "${backup_s[$tool]}" "$(get "$tool" before)" "$(get "$tool" s)" "$(get "$tool" kb)" "$(get "$tool" after)"
		sep=,
	done
	printf '],"bkr_trash_bytes":%s,"ratios":{"time_vs_fastest":"%s","repo_vs_restic":"%s"}}\n' "$bkr_trash" "$rt" "$rs"
} >"$out"
echo
echo "results: $out"
