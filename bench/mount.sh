#!/usr/bin/env bash
# Mount benchmark: reading a backup through bkrfs, `restic mount` and
# `borg mount`, against reading the source itself (the physical limit).
#
#   bench/mount.sh [--work DIR] [--reads N] [--runs N] [--bkrfs-opts "OPTS"] [--no-build]
#                  [--encryption [--rounds N]]         (root: drops caches)
#
# The corpus of bench/backup.sh (DIR, default /var/tmp/bkr-bench) is backed up
# once by each tool, then for each tool and each operation
#   ls     ls -lR of the backup
#   tar    tar cf - include | wc -c
#   cat    cat of the 512 MiB file > /dev/null
#   rand   N (default 2000) random 4 KiB preads of that file (bench/randread)
# the backup is mounted afresh, the page cache dropped, the operation run
# (cold), then run again on the same mount (warm); all of it --runs times
# (default 3) and the median reported.  "mount" is the time from
# starting the daemon (after dropping the cache) until the backup is visible.
# The peak RSS of each daemon is its VmHWM just before unmounting (the maximum
# over its mounts).  randread's checksums must equal the source's.  An
# operation whose mount fails or crashes is reported as "FAIL" (the run goes
# on); --bkrfs-opts passes options to bkrfs (e.g. "-s", "-o cache_size=512").
# Results: a table, ratios, PASS/MISS per target (informational; exit status 0
# unless a tool fails), and a JSON file in DIR/results/.  --encryption adds
# "bkrenc", bkrfs on an encrypted copy of the backup (aes-256-gcm), in the same
# run: plain and encrypted bkrfs are measured interleaved, --rounds N rounds
# (default 6) of each operation, the two taking turns at going first (A B,
# B A, A B, ...), each measurement on a fresh mount with the page cache
# dropped before it; reported per figure: each side's median and spread
# (min-max), and the median and spread of the per-round ratio enc/plain
# (target ≤ 1.1×, PASS/MISS per cold and warm read).  Plain bkrfs's figures
# against restic and borg are then the interleaved ones.  See bench/README.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

READS=2000
RUNS=3
ROUNDS=6
BKRFS_OPTS=""
ENC=0
bench_args --reads=READS --runs=RUNS --rounds=ROUNDS --bkrfs-opts=BKRFS_OPTS --encryption:ENC -- "$@"
case $RUNS$ROUNDS in *[!0-9]*) die "--runs and --rounds take a whole number" ;; esac
if [ "$RUNS" -lt 1 ] || [ "$ROUNDS" -lt 1 ]; then die "--runs and --rounds take a whole number from 1"; fi
[ "$(id -u)" = 0 ] || die "needs root (drop_caches between cold runs)"
need restic borg perl openssl meson ninja fusermount3 tar
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"

mkdir -p "$BENCH_WORK"
BENCH_WORK=$(cd "$BENCH_WORK" && pwd)
MREPOS=$BENCH_WORK/mrepos
MNT=$BENCH_WORK/mnt
DAEMON_PID=""

cleanup() {
	local rc=$?
	bench_unmount
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_bkr
[ -x "$RANDREAD" ] || die "$RANDREAD missing"
[ -x "$BKRFS" ] || die "$BKRFS missing"
make_corpus
rm -rf "$MREPOS" "$BENCH_WORK/logs" "$BENCH_WORK/cache"
mkdir -p "$MREPOS" "$MNT" "$BENCH_WORK/logs" "$BENCH_WORK/cache" "$BENCH_WORK/results"
export RESTIC_PASSWORD=$RESTIC_PASSWORD_FIXED RESTIC_CACHE_DIR=$BENCH_WORK/cache/restic
export BORG_BASE_DIR=$BENCH_WORK/cache/borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
cd "$BENCH_WORK"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log "backing up the corpus with bkr, restic, borg"
"$BKR" -q init -r "$MREPOS/bkr" >"$BENCH_WORK/logs/init-bkr.log" 2>&1 || die "bkr init failed"
"$BKR" -q create -r "$MREPOS/bkr" --type full "$CORPUS" >"$BENCH_WORK/logs/create-bkr.log" 2>&1 ||
	die "bkr create failed"
export BKR_PASSWORD=bench-passphrase
if [ $ENC = 1 ]; then
	"$BKR" -q init -r "$MREPOS/bkrenc" --encryption aes-256-gcm >"$BENCH_WORK/logs/init-bkrenc.log" 2>&1 ||
		die "bkr init --encryption failed"
	"$BKR" -q create -r "$MREPOS/bkrenc" --type full "$CORPUS" >"$BENCH_WORK/logs/create-bkrenc.log" 2>&1 ||
		die "bkr create (encrypted) failed"
fi
restic init -r "$MREPOS/restic" >"$BENCH_WORK/logs/init-restic.log" 2>&1 || die "restic init failed"
restic -r "$MREPOS/restic" backup --host bench corpus >"$BENCH_WORK/logs/create-restic.log" 2>&1 ||
	die "restic backup failed"
borg init --encryption none "$MREPOS/borg" >"$BENCH_WORK/logs/init-borg.log" 2>&1 || die "borg init failed"
borg create "$MREPOS/borg::full" corpus >"$BENCH_WORK/logs/create-borg.log" 2>&1 || die "borg create failed"

# mount_tool TOOL: mounts TOOL's backup at $MNT; sets ROOT (the corpus dir
# inside the mount), DAEMON_PID, and mount_s (seconds until ROOT is visible).
mount_tool() {
	local tool=$1 t0 i
	t0=$EPOCHREALTIME
	case $tool in
	bkr | bkrenc)
		# shellcheck disable=SC2086
		"$BKRFS" "$MREPOS/$tool" "$MNT" $BKRFS_OPTS >>"$BENCH_WORK/logs/mount-$tool.log" 2>&1 ||
			die "bkrfs failed"
		ROOT=$MNT/latest/corpus
		DAEMON_PID=$(pgrep -f -x "$BKRFS $MREPOS/$tool $MNT${BKRFS_OPTS:+ $BKRFS_OPTS}" | head -1 || true)
		;;
	restic)
		restic -r "$MREPOS/restic" mount "$MNT" >>"$BENCH_WORK/logs/mount-restic.log" 2>&1 &
		DAEMON_PID=$!
		ROOT=$MNT/snapshots/latest/corpus
		;;
	borg)
		borg mount -f "$MREPOS/borg::full" "$MNT" >>"$BENCH_WORK/logs/mount-borg.log" 2>&1 &
		DAEMON_PID=$!
		ROOT=$MNT/corpus
		;;
	esac
	for ((i = 0; i < 600; i++)); do
		[ -e "$ROOT/big.bin" ] && break
		[ -n "$DAEMON_PID" ] && ! kill -0 "$DAEMON_PID" 2>/dev/null && die "$tool mount exited (see logs/mount-$tool.log)"
		sleep 0.05
	done
	[ -e "$ROOT/big.bin" ] || die "$tool mount not ready after 30 s"
	[ -n "$DAEMON_PID" ] || die "$tool: daemon pid not found"
	mount_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
}

# umount_tool TOOL: records VmHWM, unmounts, waits for the daemon to exit.
umount_tool() {
	local tool=$1 hwm i v
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$DAEMON_PID/status" 2>/dev/null || echo 0)
	v=${tool}_hwm
	[ "${hwm:-0}" -gt "${!v:-0}" ] && printf -v "$v" '%s' "$hwm"
	if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
		log "$tool: the daemon (pid $DAEMON_PID) died before the unmount"
		printf -v "${tool}_died" '%s' 1
	fi
	fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" || die "cannot unmount $MNT"
	for ((i = 0; i < 200; i++)); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$DAEMON_PID" 2>/dev/null && { kill "$DAEMON_PID"; sleep 0.5; }
	DAEMON_PID=""
}

# cpu_now: CPU seconds so far of the mount's daemon (utime+stime, /proc) plus this
# shell's waited-for children (bash's times), in CPU_NOW
cpu_now() {
	local d=0 t
	[ -n "${DAEMON_PID:-}" ] && [ -r "/proc/$DAEMON_PID/stat" ] &&
		d=$(awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$DAEMON_PID/stat")
	times >"$BENCH_WORK/times" # in this shell: a subshell's times counts none of its children
	t=$(tail -1 "$BENCH_WORK/times")
	CPU_NOW=$(awk -v d="$d" -v t="$t" 'BEGIN { split(t, f, " "); s = d
		for (i = 1; i <= 2; i++) { split(f[i], m, "m"); sub(/s$/, "", m[2]); s += m[1] * 60 + m[2] }
		printf "%.3f", s }')
}
CLK_TCK=$(getconf CLK_TCK)

# run_op OP DIR: runs OP on the corpus at DIR; sets OP_S (seconds, or FAIL),
# OP_CPU (CPU seconds of the reader and the mount's daemon: cpu_now) and, for
# rand, RAND_SUM (randread's checksum of the bytes read).
run_op() {
	local c0
	cpu_now
	c0=$CPU_NOW
	run_op_timed "$@"
	cpu_now
	OP_CPU=$(awk -v a="$c0" -v b="$CPU_NOW" 'BEGIN { printf "%.3f", b - a }')
}
run_op_timed() {
	local op=$1 dir=$2 t0 out ok=1 el=$BENCH_WORK/logs/op-errors.log
	t0=$EPOCHREALTIME
	case $op in
	ls) ls -lR "$dir" >/dev/null 2>>"$el" || ok=0 ;;
	tar)
		# pipefail (set above): the pipeline fails when tar does
		tar cf - -C "$dir" include 2>>"$el" | wc -c >/dev/null || ok=0
		;;
	cat) cat "$dir/big.bin" >/dev/null 2>>"$el" || ok=0 ;;
	rand)
		if out=$("$RANDREAD" "$dir/big.bin" "$READS" 2>>"$el"); then
			read -r OP_S _ _ RAND_SUM <<<"$out"
			return
		fi
		ok=0 RAND_SUM=""
		;;
	esac
	if [ $ok = 0 ]; then
		log "FAILED: $op on $dir (errors in $el)"
		OP_S=FAIL
		return
	fi
	OP_S=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
}

# folios TOOL DIR: after a warm cat, the share of big.bin's page cache held
# in large folios (bench/folios) and the time of a second re-read (the first
# re-read also pays the kernel's move of every folio to its active list);
# kept as FOLIOS_<TOOL> and CAT2_<TOOL> (the last run's)
folios() {
	local out
	out=$("$FOLIOS" "$2/big.bin" 2>>"$BENCH_WORK/logs/op-errors.log") || out="- - -"
	printf -v "FOLIOS_$1" '%s' "${out##* }"
	run_op cat "$2"
	printf -v "CAT2_$1" '%s' "$OP_S"
}

OPS="ls tar cat rand"
TOOLS="bkr restic borg"
[ $ENC = 1 ] && TOOLS="bkr bkrenc restic borg"
set_res() { printf -v "r_${1}_${2}_${3}" '%s' "$4"; }
res() { local v="r_${1}_${2}_${3}"; printf '%s' "${!v:-}"; }
BAD_SUM=""

# median MEASUREMENTS...: the middle one, or the mean of the middle two (FAIL when any failed)
median() {
	case " $* " in *" FAIL "*) echo FAIL; return ;; esac
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
		END { if (NR % 2) print a[(NR + 1) / 2]; else if (NR) printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

log "source ($RUNS runs of each operation)"
for op in $OPS; do
	cold=() warm=()
	for ((run = 0; run < RUNS; run++)); do
		drop_caches
		run_op "$op" "$CORPUS"
		cold+=("$OP_S")
		run_op "$op" "$CORPUS"
		warm+=("$OP_S")
		[ "$op" = cat ] && folios source "$CORPUS"
	done
	set_res source "$op" cold "$(median "${cold[@]}")"
	set_res source "$op" warm "$(median "${warm[@]}")"
	[ "$op" = rand ] && SRC_SUM=$RAND_SUM
done

# Samples: s_TOOL_OP_CACHE holds every measurement in order (space-separated),
# so that the k-th of bkr and of bkrenc come from the same round.
add_sample() { local v="s_${1}_${2}_${3}"; printf -v "$v" '%s' "${!v:+${!v} }$4"; }
samples() { local v="s_${1}_${2}_${3}"; printf '%s' "${!v:-}"; }

# measure TOOL OP: one cold and one warm OP on a fresh mount of TOOL's backup,
# the page cache dropped before mounting and again before the cold run.
measure() {
	local tool=$1 op=$2
	drop_caches
	mount_tool "$tool"
	add_sample "$tool" mount cold "$mount_s"
	drop_caches
	run_op "$op" "$ROOT"
	add_sample "$tool" "$op" cold "$OP_S"
	add_sample "$tool" "${op}cpu" cold "$OP_CPU"
	[ "$op" = rand ] && [ "$OP_S" != FAIL ] && [ "$RAND_SUM" != "$SRC_SUM" ] && BAD_SUM+=" $tool(cold)"
	if [ "$OP_S" = FAIL ]; then
		add_sample "$tool" "$op" warm FAIL
	else
		run_op "$op" "$ROOT"
		add_sample "$tool" "$op" warm "$OP_S"
		add_sample "$tool" "${op}cpu" warm "$OP_CPU"
		[ "$op" = rand ] && [ "$RAND_SUM" != "$SRC_SUM" ] && BAD_SUM+=" $tool(warm)"
		[ "$op" = cat ] && folios "$tool" "$ROOT"
	fi
	umount_tool "$tool"
}

PEERS=$TOOLS
if [ $ENC = 1 ]; then
	PEERS="restic borg"
	for op in $OPS; do
		log "bkr and bkrenc $op, interleaved ($ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg))"
		for ((round = 0; round < ROUNDS; round++)); do
			order="bkr bkrenc"
			[ $((round % 2)) = 1 ] && order="bkrenc bkr"
			for tool in $order; do
				measure "$tool" "$op"
			done
		done
	done
fi
for tool in $PEERS; do
	for op in $OPS; do
		log "$tool $op ($RUNS runs)"
		for ((run = 0; run < RUNS; run++)); do
			measure "$tool" "$op"
		done
	done
done
for tool in $TOOLS; do
	for op in mount $OPS; do
		for c in cold warm; do
			[ "$op" = mount ] && [ $c = warm ] && continue
			# shellcheck disable=SC2046
			set_res "$tool" "$op" $c "$(median $(samples "$tool" "$op" $c))"
		done
	done
done

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "bkr benchmark: mount  ($(date -u +%Y-%m-%dT%H:%MZ), $(machine_info))"
echo "$(tool_versions); load average at start $LOAD_START, at end $LOAD_END"
echo "corpus: $CORPUS_FILES files, $(awk -v b="$CORPUS_BYTES" 'BEGIN { printf "%.1f", b / 1048576 }') MiB;" \
	"rand = $READS × 4 KiB pread of big.bin (fixed seed); seconds, median of $RUNS runs" \
	"$([ $ENC = 0 ] || echo "(bkr: of $ROUNDS rounds, interleaved with bkrenc)")"
echo
printf '%-6s %-6s %9s %9s %9s %9s\n' op cache source bkr restic borg
for op in mount $OPS; do
	for c in cold warm; do
		[ "$op" = mount ] && [ $c = warm ] && continue
		printf '%-6s %-6s %9s %9s %9s %9s\n' "$op" "$c" "$(res source "$op" $c)" \
			"$(res bkr "$op" $c)" "$(res restic "$op" $c)" "$(res borg "$op" $c)"
	done
done
printf '%-13s %9s %9s %9s %9s\n' "peak RSS MiB" - "$(mib "${bkr_hwm:-0}")" "$(mib "${restic_hwm:-0}")" "$(mib "${borg_hwm:-0}")"

echo
printf '%-6s %-6s %10s %10s %12s %10s %8s %6s\n' op cache bkr/restic bkr/borg bkr/fastest bkr/source target result
json_ratios="" sep=""
for op in mount $OPS; do
	for c in cold warm; do
		[ "$op" = mount ] && [ $c = warm ] && continue
		b=$(res bkr "$op" $c) r=$(res restic "$op" $c) g=$(res borg "$op" $c) s=$(res source "$op" $c)
		rf=$(ratio "$b" "$(fmin "$r" "$g")")
		rs=$(ratio "$b" "$s")
		if [ $c = cold ]; then tgt=0.5 v=$(verdict "$rf" 0.5); else tgt=1.5 v=$(verdict "$rs" 1.5); fi
		[ "$op" = mount ] && tgt="" v="-"
		[ "$b" = FAIL ] && v=FAIL
		printf '%-6s %-6s %10s %10s %12s %10s %8s %6s\n' "$op" $c "$(ratio "$b" "$r")" "$(ratio "$b" "$g")" \
			"$rf" "$rs" "${tgt:+≤$tgt}" "$v"
		json_ratios+="$sep\"${op}_$c\":{\"vs_restic\":\"$(ratio "$b" "$r")\",\"vs_borg\":\"$(ratio "$b" "$g")\",\"vs_fastest\":\"$rf\",\"vs_source\":\"$rs\",\"result\":\"$v\"}"
		sep=,
	done
done
rr=$(ratio "${bkr_hwm:-0}" "${restic_hwm:-0}")
printf '%-13s %10s %10s %12s %10s %8s %6s\n' "peak RSS" "$rr" "$(ratio "${bkr_hwm:-0}" "${borg_hwm:-0}")" "" "" "≤1" "$(verdict "$rr" 1)"
echo "targets: every cold figure ≤ 0.5× the faster of restic and borg (bkr/fastest); every warm figure ≤ 1.5× the source;"
echo "         bkrfs peak RSS ≤ restic mount's"
echo "page cache of big.bin after a warm cat, % in large folios: source ${FOLIOS_source:--}," \
	"bkr ${FOLIOS_bkr:--}, restic ${FOLIOS_restic:--}, borg ${FOLIOS_borg:--}"
echo "         (a FUSE file's page cache is 4 KiB folios on this kernel: warm reads pay per 4 KiB; see bench/README.md)"
echo "cat, second re-read (last run): source ${CAT2_source:--}, bkr ${CAT2_bkr:--} ($(ratio "${CAT2_bkr:-0}" "${CAT2_source:-0}")× the source)," \
	"restic ${CAT2_restic:--}, borg ${CAT2_borg:--} (informational)"
[ -z "$BAD_SUM" ] || echo "WARNING: random-read checksum differs from the source for:$BAD_SUM"
for t in $TOOLS; do
	v=${t}_died
	[ -z "${!v:-}" ] || echo "WARNING: the $t daemon crashed or exited during the run (dmesg; logs/mount-$t.log)"
done
[ -z "$BKRFS_OPTS" ] || echo "bkrfs options: $BKRFS_OPTS"
# spread VALUES...: "min-max" ("-" when any failed)
spread() {
	case " $* " in *" FAIL "*) echo -; return ;; esac
	printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }'
}
# paired "A..." "B...": the ratios B_k/A_k of the k-th samples, one a line
paired() {
	awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
		for (k = 1; k <= n; k++) print (x[k] ~ /^[0-9.]+$/ && y[k] ~ /^[0-9.]+$/ && x[k] + 0 > 0) ? sprintf("%.3f", y[k] / x[k]) : "FAIL" }'
}
if [ $ENC = 1 ]; then
	echo
	echo "encrypted (bkrenc) against plain (bkr) bkrfs, interleaved, $ROUNDS rounds: seconds, median (min-max);"
	echo "enc/plain = the median (min-max) of the $ROUNDS per-round ratios"
	printf '%-6s %-6s %21s %21s %19s %6s %6s %12s\n' op cache bkr bkrenc enc/plain target result enc/fastest
	npass=0 nread=0
	for op in mount $OPS; do
		for c in cold warm; do
			[ "$op" = mount ] && [ $c = warm ] && continue
			pl=$(samples bkr "$op" $c) en=$(samples bkrenc "$op" $c)
			# shellcheck disable=SC2046
			ep=$(median $(paired "$pl" "$en"))
			# shellcheck disable=SC2046
			er=$(spread $(paired "$pl" "$en"))
			if [ "$op" = mount ]; then
				tgt="" v="-" # not a read: includes scrypt on the passphrase
			else
				tgt="≤1.1" v=$(verdict "$ep" 1.1) nread=$((nread + 1))
				[ "$ep" = FAIL ] && v=FAIL
				[ "$v" = PASS ] && npass=$((npass + 1))
			fi
			# shellcheck disable=SC2086
			printf '%-6s %-6s %21s %21s %19s %6s %6s %12s\n' "$op" $c \
				"$(res bkr "$op" $c) ($(spread $pl))" "$(res bkrenc "$op" $c) ($(spread $en))" "$ep ($er)" \
				"$tgt" "$v" "$(ratio "$(res bkrenc "$op" $c)" "$(fmin "$(res restic "$op" $c)" "$(res borg "$op" $c)")")"
			json_ratios+=",\"${op}_${c}_encrypted\":{\"vs_plain\":\"$ep\",\"vs_plain_spread\":\"$er\",\"result\":\"$v\",\"plain\":\"$pl\",\"encrypted\":\"$en\"}"
		done
	done
	echo "encryption: reads of bkrfs on an encrypted repository (aes-256-gcm) within 1.1× of plain: $npass of $nread PASS"
	echo "            (mount is informational: it includes scrypt, N=2^15, on the passphrase)"
	echo
	echo "the same rounds in CPU seconds (the reader and the mount's daemon; informational: wall time above"
	echo "is the target's figure, CPU tells the work each side did, where warm reads of 0.1 s are noise in wall)"
	printf '%-6s %-6s %21s %21s %19s\n' op cache bkr bkrenc enc/plain
	for op in $OPS; do
		for c in cold warm; do
			pl=$(samples bkr "${op}cpu" $c) en=$(samples bkrenc "${op}cpu" $c)
			# shellcheck disable=SC2086,SC2046
			printf '%-6s %-6s %21s %21s %19s\n' "$op" $c "$(median $pl) ($(spread $pl))" "$(median $en) ($(spread $en))" \
				"$(median $(paired "$pl" "$en")) ($(spread $(paired "$pl" "$en")))"
			# shellcheck disable=SC2046
			json_ratios+=",\"${op}_${c}_encrypted_cpu\":{\"vs_plain\":\"$(median $(paired "$pl" "$en"))\",\"plain\":\"$pl\",\"encrypted\":\"$en\"}"
		done
	done
fi

out=$BENCH_WORK/results/mount-$(date -u +%Y%m%d-%H%M%S).json
{
	printf '{"benchmark":"mount","date":"%s","machine":"%s","versions":"%s","loadavg_start":"%s","loadavg_end":"%s","bkrfs_opts":"%s",' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(machine_info)" "$(tool_versions)" "$LOAD_START" "$LOAD_END" "$BKRFS_OPTS"
	printf '"corpus":{"files":%s,"bytes":%s},"reads":%s,"runs":%s,"rounds":%s,"seconds":{' "$CORPUS_FILES" "$CORPUS_BYTES" "$READS" "$RUNS" \
		"$([ $ENC = 1 ] && echo "$ROUNDS" || echo 0)"
	sep=""
	for t in source $TOOLS; do
		for op in mount $OPS; do
			for c in cold warm; do
				v=$(res "$t" "$op" $c)
				[ -n "$v" ] || continue
				[ "$v" = FAIL ] && v='"FAIL"'
				printf '%s"%s_%s_%s":%s' "$sep" "$t" "$op" $c "$v"
				sep=,
			done
		done
	done
	printf '},"peak_rss_kib":{"bkr":%s,"restic":%s,"borg":%s},' "${bkr_hwm:-0}" "${restic_hwm:-0}" "${borg_hwm:-0}"
	printf '"large_folio_pct":{"source":"%s","bkr":"%s","restic":"%s","borg":"%s"},' \
		"${FOLIOS_source:--}" "${FOLIOS_bkr:--}" "${FOLIOS_restic:--}" "${FOLIOS_borg:--}"
	printf '"cat_second_reread":{"source":"%s","bkr":"%s","restic":"%s","borg":"%s"},' \
		"${CAT2_source:--}" "${CAT2_bkr:--}" "${CAT2_restic:--}" "${CAT2_borg:--}"
	printf '"checksum_mismatch":"%s","ratios":{%s}}\n' "${BAD_SUM# }" "$json_ratios"
} >"$out"
echo
echo "results: $out"
