#!/usr/bin/env bash
# S3 benchmark: bkr against `restic -r s3:...`, both against the same Ceph
# RADOS Gateway (tools/s3-server.sh, on 127.0.0.1), in one run.
#
#   bench/s3.sh [--work DIR] [--tar-dir SUB] [--noop-runs N] [--no-build]   (root: drops caches)
#
# The corpus of bench/backup.sh (DIR, default /var/tmp/bkr-bench) is backed
# up by each tool into its own bucket: a full backup, then an incremental
# with no change, N times each (default 3, interleaved; the fastest counts,
# every run is logged), each tool keeping its local cache (bkr's disk cache of
# create under DIR/cache/bkr-backup, restic's beside it).  Backups also report
# CPU time (user+sys).  Then each tool's backup is mounted (bkrfs s3://... with a
# fresh --cache-dir, `restic mount` with a fresh cache), the page cache
# dropped, and read cold: `cat` of the 512 MiB file, then, on a new mount
# with an empty cache again, `tar cf - SUB | wc -c` of the tree (SUB
# defaults to include, all of /usr/include; --tar-dir include/linux takes a
# smaller part when restic's cold tar, one request per small blob, is too
# slow for the machine).  Requests and bytes are the gateway's own counters
# (perf dump of its admin socket: requests, PUT/GET counts and bytes) taken
# around each step; a mount's figures include mounting (reading the index).
# Results: a table, ratios, PASS/MISS per target (informational: the exit
# status is 0 unless a tool fails), and a JSON file in DIR/results/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TAR_DIR=include
NOOP_RUNS=3
bench_args --tar-dir=TAR_DIR --noop-runs=NOOP_RUNS -- "$@"
[ "$(id -u)" = 0 ] || die "needs root (drop_caches before every cold read)"
need restic perl openssl meson ninja fusermount3 tar radosgw ceph-mon
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
SERVER=$BENCH_SRC/tools/s3-server.sh
[ -x "$SERVER" ] || die "$SERVER missing"

mkdir -p "$BENCH_WORK"
BENCH_WORK=$(cd "$BENCH_WORK" && pwd)
S3RUN=$BENCH_WORK/s3server
MNT=$BENCH_WORK/mnt
DAEMON_PID=""
SERVER_UP=0

cleanup() {
	local rc=$?
	bench_unmount
	[ $SERVER_UP = 1 ] && "$SERVER" stop "$S3RUN" >/dev/null 2>&1
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_bkr
[ -x "$BKRFS" ] || die "$BKRFS missing"
make_corpus
[ -d "$CORPUS/$TAR_DIR" ] || die "--tar-dir $TAR_DIR: no such directory in $CORPUS"
TAR_FILES=$(find "$CORPUS/$TAR_DIR" -type f | wc -l)
rm -rf "$BENCH_WORK/logs" "$BENCH_WORK/cache" "$S3RUN"
mkdir -p "$MNT" "$BENCH_WORK/logs" "$BENCH_WORK/cache" "$BENCH_WORK/results"
cd "$BENCH_WORK"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log "starting the S3 server (Ceph RGW) under $S3RUN"
"$SERVER" start "$S3RUN" >"$BENCH_WORK/logs/s3-env.sh" 2>"$BENCH_WORK/logs/s3-server.log" ||
	{ tail -5 "$BENCH_WORK/logs/s3-server.log"; die "the S3 server did not start"; }
SERVER_UP=1
. "$BENCH_WORK/logs/s3-env.sh"
"$SERVER" bucket "$S3RUN" bkr >>"$BENCH_WORK/logs/s3-server.log" 2>&1 || die "bucket bkr"
"$SERVER" bucket "$S3RUN" restic >>"$BENCH_WORK/logs/s3-server.log" 2>&1 || die "bucket restic"
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_DEFAULT_REGION=$S3_REGION AWS_REGION=$S3_REGION
export RESTIC_PASSWORD=$RESTIC_PASSWORD_FIXED
ASOK=$(ls "$S3RUN"/run/*rgw*.asok 2>/dev/null | head -1)
[ -S "$ASOK" ] || die "no admin socket of the gateway in $S3RUN/run"
BKR_URL=s3://bkr/repo
RESTIC_URL=s3:$S3_ENDPOINT/restic/repo

# counters: "requests puts put_bytes gets get_bytes" of the gateway so far
counters() {
	ceph --admin-daemon "$ASOK" perf dump 2>/dev/null | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["rgw"]
print(r["req"], r["put"], r["put_b"], r["get"], r["get_b"])'
}
# delta NAME BEFORE: sets NAME_req, NAME_put, NAME_putb, NAME_get, NAME_getb (since BEFORE)
delta() {
	local name=$1 a b k=0 f
	read -r -a a <<<"$2"
	read -r -a b <<<"$(counters)"
	for f in req put putb get getb; do
		printf -v "${name}_$f" '%s' $((b[k] - a[k]))
		k=$((k + 1))
	done
}

log "corpus: $CORPUS_FILES files, $((CORPUS_BYTES / 1048576)) MiB; tar of $TAR_DIR: $TAR_FILES files"
"$BKR" -q init -r "$BKR_URL" >"$BENCH_WORK/logs/init-bkr.log" 2>&1 || die "bkr init failed (logs/init-bkr.log)"
restic init -r "$RESTIC_URL" >"$BENCH_WORK/logs/init-restic.log" 2>&1 || die "restic init failed"

# ---- backups ----------------------------------------------------------------------
backup() { # TOOL PHASE
	local tool=$1 phase=$2 c type=incremental tf=$BENCH_WORK/logs/cpu.$$
	[ "$phase" = full ] && type=full
	log "$tool: $phase backup"
	c=$(counters)
	if [ "$tool" = bkr ]; then
		timed "${tool}_${phase}" /usr/bin/time -f '%U %S' -o "$tf" "$BKR" -q create -r "$BKR_URL" --type "$type" "$CORPUS"
	else
		timed "${tool}_${phase}" /usr/bin/time -f '%U %S' -o "$tf" restic -r "$RESTIC_URL" backup --host bench corpus
	fi
	printf -v "${tool}_${phase}_cpu" '%s' "$(awk '{ printf "%.2f", $1 + $2 }' "$tf")"
	delta "${tool}_${phase}" "$c"
}
# bkr's disk cache of create (docs/s3.md) and restic's cache, both kept between backups
export XDG_CACHE_HOME=$BENCH_WORK/cache/bkr-backup
export RESTIC_CACHE_DIR=$BENCH_WORK/cache/restic-backup
for tool in bkr restic; do backup "$tool" full; done
# the no-change incremental, NOOP_RUNS times each, interleaved: the fastest run counts
# (a shared machine's noise only adds), requests are the same every run
best_s=() best_cpu=()
for ((run = 1; run <= NOOP_RUNS; run++)); do
	for tool in bkr restic; do
		backup "$tool" noop
		v=${tool}_noop_s cv=${tool}_noop_cpu
		log "$tool: no-change incremental $run: ${!v} s (cpu ${!cv} s), $((${tool}_noop_req)) requests"
		eval "${tool}_noop_runs+=\" ${!v}\""
		if [ $run = 1 ]; then eval "${tool}_noop_best=${!v} ${tool}_noop_bcpu=${!cv}"; fi
		b=${tool}_noop_best bc=${tool}_noop_bcpu
		eval "${tool}_noop_best=$(fmin "${!b}" "${!v}") ${tool}_noop_bcpu=$(fmin "${!bc}" "${!cv}")"
	done
done
for tool in bkr restic; do
	b=${tool}_noop_best bc=${tool}_noop_bcpu
	printf -v "${tool}_noop_s" %s "${!b}"
	printf -v "${tool}_noop_cpu" %s "${!bc}"
done

# ---- cold reads through the mounts --------------------------------------------------
# mount_tool TOOL: a fresh mount with an empty cache; sets ROOT and DAEMON_PID
mount_tool() {
	local tool=$1 i
	rm -rf "$BENCH_WORK/cache/mount-$tool"
	if [ "$tool" = bkr ]; then
		"$BKRFS" "$BKR_URL" "$MNT" -f --cache-dir="$BENCH_WORK/cache/mount-bkr" \
			>>"$BENCH_WORK/logs/mount-bkr.log" 2>&1 &
		DAEMON_PID=$!
		ROOT=$MNT/latest/corpus
	else
		RESTIC_CACHE_DIR=$BENCH_WORK/cache/mount-restic restic -r "$RESTIC_URL" mount "$MNT" \
			>>"$BENCH_WORK/logs/mount-restic.log" 2>&1 &
		DAEMON_PID=$!
		ROOT=$MNT/snapshots/latest/corpus
	fi
	for ((i = 0; i < 1200; i++)); do
		[ -e "$ROOT/big.bin" ] && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || die "$tool mount exited (see logs/mount-$tool.log)"
		sleep 0.05
	done
	die "$tool mount not ready after 60 s"
}
umount_tool() {
	local i
	fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" || die "cannot unmount $MNT"
	for ((i = 0; i < 400; i++)); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$DAEMON_PID" 2>/dev/null && { kill "$DAEMON_PID"; sleep 0.5; }
	DAEMON_PID=""
}
cold() { # TOOL OP
	local tool=$1 op=$2 c
	log "$tool: cold $op"
	c=$(counters)
	mount_tool "$tool"
	drop_caches
	if [ "$op" = cat ]; then
		timed "${tool}_$op" cat "$ROOT/big.bin"
	else
		timed "${tool}_$op" bash -c 'tar cf - -C "$1" "$2" | wc -c' _ "$ROOT" "$TAR_DIR"
	fi
	umount_tool
	delta "${tool}_$op" "$c"
}
for op in cat tar; do
	for tool in bkr restic; do cold "$tool" "$op"; done
done
# what the tar read must be the corpus (bytes of the archive, from the source)
src_tar=$(tar cf - -C "$CORPUS" "$TAR_DIR" | wc -c)
bkr_tar_bytes=$(tail -1 "$BENCH_WORK/logs/bkr_tar.log")
[ "$bkr_tar_bytes" = "$src_tar" ] || die "bkrfs tar gave $bkr_tar_bytes bytes, the source $src_tar"

# ---- report ---------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "bench/s3.sh — $(machine_info)"
echo "restic $(restic version | awk '{print $2}'), $(radosgw --version 2>/dev/null | awk '{print $1, $2, $3}'); load $LOAD_START -> $LOAD_END"
echo "corpus $CORPUS_FILES files, $((CORPUS_BYTES / 1048576)) MiB; tar of $TAR_DIR ($TAR_FILES files)"
echo
printf '%-14s %-7s %9s %8s %9s %7s %10s %7s %10s\n' step tool seconds cpu_s rss_MiB req puts put_MiB gets
for step in full noop cat tar; do
	for tool in bkr restic; do
		v=${tool}_${step}
		s=${v}_s kb=${v}_kb r=${v}_req p=${v}_put pb=${v}_putb g=${v}_get gb=${v}_getb cpu=${v}_cpu
		printf '%-14s %-7s %9s %8s %9s %7s %10s %7s %10s\n' "$step" "$tool" "${!s}" "${!cpu:--}" \
			"$(awk -v k="${!kb}" 'BEGIN { printf "%.0f", k / 1024 }')" "${!r}" "${!p}" "$(mib "${!pb}")" \
			"${!g} ($(mib "${!gb}") MiB)"
	done
done
echo
r_full=$(ratio "$bkr_full_s" "$restic_full_s")
r_noop=$(ratio "$bkr_noop_s" "$restic_noop_s")
r_cat=$(ratio "$bkr_cat_s" "$restic_cat_s")
r_tar=$(ratio "$bkr_tar_s" "$restic_tar_s")
r_req=$(ratio "$bkr_full_req" "$restic_full_req")
r_req_noop=$(ratio "$bkr_noop_req" "$restic_noop_req")
printf '%-44s %6s  target %-6s %s\n' \
	"full backup time (bkr/restic)" "$r_full" "<=0.5" "$(verdict "$r_full" 0.5)" \
	"no-change incremental time (bkr/restic)" "$r_noop" "<=0.5" "$(verdict "$r_noop" 0.5)" \
	"cold cat of big.bin through the mount" "$r_cat" "<=0.5" "$(verdict "$r_cat" 0.5)" \
	"cold tar of $TAR_DIR through the mount" "$r_tar" "<=0.1" "$(verdict "$r_tar" 0.1)" \
	"requests per full backup" "$r_req" "<=1" "$(verdict "$r_req" 1)" \
	"requests per no-change incremental" "$r_req_noop" "<=1" "$(verdict "$r_req_noop" 1)"

out=$BENCH_WORK/results/s3-$(date -u +%Y%m%dT%H%M%SZ).json
{
	printf '{"machine": "%s", "load_start": "%s", "load_end": "%s", "tar_dir": "%s", "tar_files": %s,\n' \
		"$(machine_info)" "$LOAD_START" "$LOAD_END" "$TAR_DIR" "$TAR_FILES"
	sep=""
	printf ' "steps": {'
	for step in full noop cat tar; do
		for tool in bkr restic; do
			v=${tool}_${step}
			s=${v}_s kb=${v}_kb r=${v}_req p=${v}_put pb=${v}_putb g=${v}_get gb=${v}_getb cpu=${v}_cpu
			printf '%s\n  "%s_%s": {"seconds": %s, "cpu_seconds": %s, "rss_kb": %s, "requests": %s, "puts": %s, "put_bytes": %s, "gets": %s, "get_bytes": %s}' \
				"$sep" "$tool" "$step" "${!s}" "${!cpu:-null}" "${!kb}" "${!r}" "${!p}" "${!pb}" "${!g}" "${!gb}"
			sep=","
		done
	done
	printf '},\n "ratios": {"full": "%s", "noop": "%s", "cat": "%s", "tar": "%s", "requests_full": "%s", "requests_noop": "%s"}}\n' \
		"$r_full" "$r_noop" "$r_cat" "$r_tar" "$r_req" "$r_req_noop"
} >"$out"
echo
echo "figures: $out"
