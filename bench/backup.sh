#!/usr/bin/env bash
# Backup benchmark: bkr against restic and borg, in one run, on the same data.
#
#   bench/backup.sh [--work DIR] [--cold] [--no-build] [--encryption] [--no-restore]
#                   [--compression zlib|zstd]
#
# Corpus (in DIR, default /var/tmp/bkr-bench): a copy of /usr/include and a
# 512 MiB file (half generated log text, half random).  For each tool: init a
# repository, full backup, incremental with no change, then incremental after
# appending a line to every 100th file.  The phases run phase by phase (every
# tool's full, then every tool's no-change incremental, then the change, then
# every tool's incremental), so each tool sees exactly the same data.
# Measured: wall time and peak RSS (/usr/bin/time), repository size (du -sb);
# each run starts after a sync, so no run pays for the one before's writeback.
# --cold drops the page cache before every timed run (root only); the default
# is a warm cache for every tool.  Results: a table, ratios, PASS/MISS per
# target (informational: the exit status is 0 unless a tool fails), and a JSON
# file in DIR/results/.  --encryption adds "bkrenc", bkr on an encrypted
# repository (aes-256-gcm, default scrypt parameters: every run opens the key),
# and "bkrenc+cache", bkr on another encrypted repository whose key
# 'bkr key unlock' put in the key cache before the timed runs (they run without
# BKR_PASSWORD, so the cache opens the key: no scrypt; docs/security.md "Key
# cache"), in the same run: the times of both against plain bkr (target ≤ 1.1×,
# each with its PASS/MISS) and the peers'.
# Restore phase (unless --no-restore; root: it drops the page cache before
# each run): the latest backup restored by bkr restore, restic restore and
# borg extract, and `cp -a` of the corpus as the floor, each into an empty
# directory and timed up to a final sync (bkr restore syncs before it says
# done); each restored tree must equal the corpus (type, mode, owner, size, mtime,
# symlink target and SHA-256 of every entry) or the run fails.  Targets:
# ≤ 0.5× the faster peer, ≤ 1.1× cp -a.
# Then a second corpus, DIR/words (256 MiB of random dictionary words with
# random blocks, bench/lib.sh make_words): a full backup by each tool into a
# fresh repository, the page cache dropped before each (as root; warm and said
# so otherwise); time ≤ 0.35× the faster peer, repository ≤ 1.05× restic's.
# --compression gives plain bkr's codec (bkr init --compression; default zstd,
# bkr init's own default).
# See bench/README.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

COLD=0
ENC=0
NO_RESTORE=0
COMP=zstd
bench_args --cold:COLD --encryption:ENC --no-restore:NO_RESTORE --compression=COMP -- "$@"
RESTORE=$((1 - NO_RESTORE))
[ $COLD = 0 ] || [ "$(id -u)" = 0 ] || die "--cold needs root (drop_caches)"
[ $RESTORE = 0 ] || [ "$(id -u)" = 0 ] || die "the restore phase needs root (drop_caches; --no-restore skips it)"
need restic borg perl openssl meson ninja
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"

mkdir -p "$BENCH_WORK"
BENCH_WORK=$(cd "$BENCH_WORK" && pwd)
build_bkr
make_corpus
make_words
REPOS=$BENCH_WORK/repos
rm -rf "$REPOS" "$BENCH_WORK/logs" "$BENCH_WORK/cache"
mkdir -p "$REPOS" "$BENCH_WORK/logs" "$BENCH_WORK/cache" "$BENCH_WORK/results"

export RESTIC_PASSWORD=$RESTIC_PASSWORD_FIXED RESTIC_CACHE_DIR=$BENCH_WORK/cache/restic
export BORG_BASE_DIR=$BENCH_WORK/cache/borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
cd "$BENCH_WORK"

TOOLS="bkr restic borg"
[ $ENC = 1 ] && TOOLS="bkr bkrenc bkrencc restic borg"
export BKR_PASSWORD=bench-passphrase
# what the tables and the JSON call a tool (bkrencc: a shell name for "bkrenc+cache")
label() { [ "$1" = bkrencc ] && echo "bkrenc+cache" || echo "$1"; }

# unlock_cached REPO: its key into the key cache (the session keyring) for the
# runs that follow, checked: 'bkr key list' (given the passphrase) names the
# cached key only when it opens the repository.  A run with the cache is then
# started without BKR_PASSWORD (a given passphrase wins over the cache), so it
# derives nothing; the entry is removed at the end ('bkr key lock'), and
# expires after an hour whatever happens.
CACHED_REPOS=()
unlock_cached() {
	"$BKR" -q key unlock -r "$1" --for 1h || return 1
	CACHED_REPOS+=("$1")
	"$BKR" key list -r "$1" | grep -q "^key cache: key " || { echo "the key cache does not open $1" >&2; return 1; }
}
lock_cached() {
	local r
	for r in "${CACHED_REPOS[@]}"; do "$BKR" -q key lock -r "$r" || true; done
}
PHASES="full noop change1"
log "corpus: $CORPUS_FILES files, $((CORPUS_BYTES / 1048576)) MiB; warm cache: $([ $COLD = 1 ] && echo no || echo yes)"

# Warm means warm for every tool: the first one to run must not pay for
# reading a corpus that an earlier cold phase (or anything else) evicted.
[ $COLD = 1 ] || warm_tree "$CORPUS"

log "init repositories"
"$BKR" -q init -r "$REPOS/bkr" --compression "$COMP" >"$BENCH_WORK/logs/init-bkr.log" 2>&1 || die "bkr init failed"
restic init -r "$REPOS/restic" >"$BENCH_WORK/logs/init-restic.log" 2>&1 || die "restic init failed"
borg init --encryption none "$REPOS/borg" >"$BENCH_WORK/logs/init-borg.log" 2>&1 || die "borg init failed"
if [ $ENC = 1 ]; then
	for tool in bkrenc bkrencc; do
		"$BKR" -q init -r "$REPOS/$tool" --encryption aes-256-gcm >"$BENCH_WORK/logs/init-$tool.log" 2>&1 ||
			die "bkr init --encryption failed"
	done
	unlock_cached "$REPOS/bkrencc" >"$BENCH_WORK/logs/unlock-bkrencc.log" 2>&1 ||
		die "bkr key unlock failed (is the kernel's keyring usable here?): $(cat "$BENCH_WORK/logs/unlock-bkrencc.log")"
fi

run_phase() {
	local tool=$1 phase=$2 type=incremental
	[ "$phase" = full ] && type=full
	# the previous run's dirty pages written back first (untimed): otherwise
	# their writeback lands in this run's time, and the third full backup in a
	# row pays for two others' 350 MB (2026-12-03: bkrenc+cache full 2.22 s
	# right after bkr's and bkrenc's, 1.61 s in the run before)
	sync
	[ $COLD = 1 ] && drop_caches
	log "$tool $phase"
	case $tool in
	bkr | bkrenc) timed "${tool}_${phase}" "$BKR" create -r "$REPOS/$tool" --type "$type" "$CORPUS" ;;
	bkrencc) timed "${tool}_${phase}" env -u BKR_PASSWORD "$BKR" create -r "$REPOS/$tool" --type "$type" "$CORPUS" ;;
	restic) timed "${tool}_${phase}" restic -r "$REPOS/restic" backup --host bench corpus ;;
	borg) timed "${tool}_${phase}" borg create "$REPOS/borg::$phase" corpus ;;
	esac
	printf -v "${tool}_${phase}_repo" '%s' "$(du -sb "$REPOS/$tool" | cut -f1)"
}

for phase in $PHASES; do
	if [ "$phase" = change1 ]; then
		change_one_percent
		log "changed $CHANGED_FILES files"
	fi
	for tool in $TOOLS; do
		run_phase "$tool" "$phase"
	done
done

# ---- restore phase ----------------------------------------------------------
RTOOLS="bkr restic borg cp"

# tree_list DIR: one line per entry below DIR (sorted): type, mode, owner,
# size and mtime (not for directories, whose mtime extracting into them
# changes, nor symlinks), path, symlink target; then the SHA-256 of every
# regular file.
tree_list() {
	(
		cd "$1"
		find . -mindepth 1 \( -type d -printf 'd %m %U:%G - - %P\n' \) -o \
			\( -type l -printf 'l - %U:%G - - %P -> %l\n' \) -o \( -printf '%y %m %U:%G %s %T@ %P\n' \) | sort
		find . -type f -print0 | sort -z | xargs -0 -r sha256sum
	)
}

# restore_run TOOL: restore the latest backup into $RESTORE_DIR/TOOL (cache
# dropped first), timed up to a final sync; then check the tree (kept).
restore_run() {
	local tool=$1 dst=$RESTORE_DIR/$1 got
	rm -rf "$dst"
	mkdir -p "$dst"
	drop_caches
	RESTORE_LOADS+="${RESTORE_LOADS:+ }$(cut -d' ' -f1 /proc/loadavg)"
	log "$tool restore"
	case $tool in
	bkr) timed "${tool}_restore" sh -c '"$1" restore -q -r "$2" latest --target "$3" && sync' sh \
		"$BKR" "$REPOS/bkr" "$dst" ;;
	restic) timed "${tool}_restore" sh -c 'restic -r "$1" restore latest --target "$2" && sync' sh \
		"$REPOS/restic" "$dst" ;;
	borg) timed "${tool}_restore" sh -c 'cd "$2" && borg extract "$1::$3" && sync' sh \
		"$REPOS/borg" "$dst" "${PHASES##* }" ;;
	cp) timed "${tool}_restore" sh -c 'cp -a "$1" "$2/" && sync' sh "$CORPUS" "$dst" ;;
	esac
	got=$dst/corpus # every tool puts it there (restic without the path above it)
	[ -d "$got" ] || die "$tool restore: no $got"
	tree_list "$got" >"$BENCH_WORK/logs/restore-$tool.list"
	cmp -s "$BENCH_WORK/logs/restore-source.list" "$BENCH_WORK/logs/restore-$tool.list" ||
		die "$tool restore differs from the corpus: diff $BENCH_WORK/logs/restore-source.list $BENCH_WORK/logs/restore-$tool.list"
}

restore_phase() {
	RESTORE_DIR=$BENCH_WORK/restore
	RESTORE_LOADS=""
	rm -rf "$RESTORE_DIR"
	mkdir -p "$RESTORE_DIR"
	tree_list "$CORPUS" >"$BENCH_WORK/logs/restore-source.list"
	local tool
	# every restored tree stays until all tools have run: deleting one makes the
	# next tool's file creations search ext4's freed inodes, a cost only the
	# tools after the first would pay
	for tool in $RTOOLS; do
		restore_run "$tool"
	done
	rm -rf "$RESTORE_DIR"
}

# the table, ratios and PASS/MISS of the restore phase; appends to json_ratios
restore_report() {
	local tool b f rf rc
	echo
	echo "restore of the latest backup, cache dropped before each, timed to a final sync; every tree checked;" \
		"load average before each run: $RESTORE_LOADS"
	printf '%-7s %9s %9s %12s\n' tool seconds "CPU s" "peak RSS MiB"
	for tool in $RTOOLS; do
		printf '%-7s %9s %9s %12s\n' "$tool" "$(get "$tool" restore s)" "$(get "$tool" restore cpu)" \
			"$(mib $(($(get "$tool" restore kb) * 1024)))"
	done
	b=$(get bkr restore s)
	f=$(fmin "$(get restic restore s)" "$(get borg restore s)")
	rf=$(ratio "$b" "$f") rc=$(ratio "$b" "$(get cp restore s)")
	printf '%-8s %10s %10s %12s %8s %6s %10s %8s %6s\n' phase bkr/restic bkr/borg bkr/fastest target result \
		"bkr/cp -a" target result
	printf '%-8s %10s %10s %12s %8s %6s %10s %8s %6s\n' restore "$(ratio "$b" "$(get restic restore s)")" \
		"$(ratio "$b" "$(get borg restore s)")" "$rf" "≤0.5" "$(verdict "$rf" 0.5)" "$rc" "≤1.1" "$(verdict "$rc" 1.1)"
	echo "targets: restore ≤ 0.5× the faster peer, ≤ 1.1× cp -a"
	json_ratios+="${json_ratios:+,}\"restore\":{\"time_vs_restic\":\"$(ratio "$b" "$(get restic restore s)")\",\"time_vs_borg\":\"$(ratio "$b" "$(get borg restore s)")\",\"time_vs_fastest\":\"$rf\",\"time_vs_cp\":\"$rc\"}"
}

[ $RESTORE = 1 ] && restore_phase

# The word-text corpus: a full backup by each tool into its own repository,
# the page cache dropped before each (root only).
WCOLD=0
[ "$(id -u)" = 0 ] && WCOLD=1
[ $WCOLD = 1 ] || log "not root: the word-text corpus runs with a warm cache"
for tool in $TOOLS; do
	wrepo=$REPOS/words-$tool
	case $tool in
	bkr) "$BKR" -q init -r "$wrepo" --compression "$COMP" ;;
	bkrenc) "$BKR" -q init -r "$wrepo" --encryption aes-256-gcm ;;
	bkrencc) "$BKR" -q init -r "$wrepo" --encryption aes-256-gcm && unlock_cached "$wrepo" ;;
	restic) restic init -r "$wrepo" ;;
	borg) borg init --encryption none "$wrepo" ;;
	esac >"$BENCH_WORK/logs/init-words-$tool.log" 2>&1 || die "$tool init (words) failed"
	[ $WCOLD = 1 ] && drop_caches
	log "$tool words"
	case $tool in
	bkr | bkrenc) timed "${tool}_words" "$BKR" create -r "$wrepo" --type full "$WORDS" ;;
	bkrencc) timed "${tool}_words" env -u BKR_PASSWORD "$BKR" create -r "$wrepo" --type full "$WORDS" ;;
	restic) timed "${tool}_words" restic -r "$wrepo" backup --host bench words ;;
	borg) timed "${tool}_words" borg create "$wrepo::words" words ;;
	esac
	printf -v "${tool}_words_repo" '%s' "$(du -sb "$wrepo" | cut -f1)"
done
lock_cached

get() { local v="${1}_${2}_${3}"; printf '%s' "${!v}"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

echo
echo "bkr benchmark: backup  ($(date -u +%Y-%m-%dT%H:%MZ), $(machine_info))"
echo "$(tool_versions)"
echo "corpus: $CORPUS_FILES files, $(mib "$CORPUS_BYTES") MiB (/usr/include + ${BIG_MIB} MiB half text/half random);" \
	"change1 = 1 line appended to $CHANGED_FILES files; cache: $([ $COLD = 1 ] && echo cold || echo warm)"
echo "compression: bkr $COMP ($([ "$COMP" = zstd ] && echo "level 2, the default" || echo "its default level")), restic repo v2 'auto' (zstd default), borg lz4 (default)"
echo
printf '%-12s %-8s %9s %12s %10s\n' tool phase seconds "peak RSS MiB" "repo MiB"
for tool in $TOOLS; do
	for phase in $PHASES; do
		printf '%-12s %-8s %9s %12s %10s\n' "$(label "$tool")" "$phase" "$(get "$tool" "$phase" s)" \
			"$(mib $(($(get "$tool" "$phase" kb) * 1024)))" "$(mib "$(get "$tool" "$phase" repo)")"
	done
done

echo
printf '%-8s %-8s %10s %10s %12s %8s %6s\n' phase metric bkr/restic bkr/borg "bkr/fastest" target result
json_ratios=""
for phase in $PHASES; do
	b=$(get bkr "$phase" s) r=$(get restic "$phase" s) g=$(get borg "$phase" s)
	f=$(fmin "$r" "$g")
	rf=$(ratio "$b" "$f")
	case $phase in
	full) tgt=0.35 ;;
	noop) tgt=0.3 ;;
	*) tgt="" ;;
	esac
	res=$([ -n "$tgt" ] && verdict "$rf" "$tgt" || echo "-")
	printf '%-8s %-8s %10s %10s %12s %8s %6s\n' "$phase" time "$(ratio "$b" "$r")" "$(ratio "$b" "$g")" \
		"$rf" "${tgt:+≤$tgt}" "$res"
	printf '%-8s %-8s %10s %10s %12s\n' "$phase" rss "$(ratio "$(get bkr "$phase" kb)" "$(get restic "$phase" kb)")" \
		"$(ratio "$(get bkr "$phase" kb)" "$(get borg "$phase" kb)")" ""
	br=$(get bkr "$phase" repo) rr=$(get restic "$phase" repo) gr=$(get borg "$phase" repo)
	rres="-" rtgt=""
	if [ "$phase" = full ] || [ "$phase" = change1 ]; then rtgt=1.05; rres=$(verdict "$(ratio "$br" "$rr")" 1.05); fi
	printf '%-8s %-8s %10s %10s %12s %8s %6s\n' "$phase" repo "$(ratio "$br" "$rr")" "$(ratio "$br" "$gr")" \
		"" "${rtgt:+≤$rtgt}" "$rres"
	json_ratios+="${json_ratios:+,}\"$phase\":{\"time_vs_restic\":\"$(ratio "$b" "$r")\",\"time_vs_borg\":\"$(ratio "$b" "$g")\",\"time_vs_fastest\":\"$rf\",\"repo_vs_restic\":\"$(ratio "$br" "$rr")\",\"repo_vs_borg\":\"$(ratio "$br" "$gr")\"}"
done
echo "targets: full time ≤ 0.35× the faster peer; no-change incremental ≤ 0.3×; repository ≤ 1.05× restic's (after the full backup and after all phases)"
echo
echo "word-text corpus: $WORDS_FILES files, $(mib "$WORDS_BYTES") MiB (random dictionary words, a tenth random blocks);" \
	"full backup into a fresh repository; cache: $([ $WCOLD = 1 ] && echo "dropped before each tool" || echo "warm (not root)")"
printf '%-12s %9s %12s %10s\n' tool seconds "peak RSS MiB" "repo MiB"
for tool in $TOOLS; do
	printf '%-12s %9s %12s %10s\n' "$(label "$tool")" "$(get "$tool" words s)" "$(mib $(($(get "$tool" words kb) * 1024)))" \
		"$(mib "$(get "$tool" words repo)")"
done
b=$(get bkr words s) f=$(fmin "$(get restic words s)" "$(get borg words s)")
wt=$(ratio "$b" "$f") wr=$(ratio "$(get bkr words repo)" "$(get restic words repo)")
printf '%-8s %-8s %10s %10s %12s %8s %6s\n' phase metric bkr/restic bkr/borg "bkr/fastest" target result
printf '%-8s %-8s %10s %10s %12s %8s %6s\n' words time "$(ratio "$b" "$(get restic words s)")" \
	"$(ratio "$b" "$(get borg words s)")" "$wt" "≤0.35" "$(verdict "$wt" 0.35)"
printf '%-8s %-8s %10s %10s %12s %8s %6s\n' words repo "$wr" \
	"$(ratio "$(get bkr words repo)" "$(get borg words repo)")" "" "≤1.05" "$(verdict "$wr" 1.05)"
json_ratios+=",\"words\":{\"time_vs_restic\":\"$(ratio "$b" "$(get restic words s)")\",\"time_vs_borg\":\"$(ratio "$b" "$(get borg words s)")\",\"time_vs_fastest\":\"$wt\",\"repo_vs_restic\":\"$wr\"}"
if [ $ENC = 1 ]; then
	echo
	printf '%-8s %-12s %12s %12s %8s %6s %14s %8s %6s\n' phase tool "enc seconds" "enc/plain" target result \
		"enc/fastest" target result
	for phase in $PHASES; do
		for tool in bkrenc bkrencc; do
			e=$(get "$tool" "$phase" s) b=$(get bkr "$phase" s)
			f=$(fmin "$(get restic "$phase" s)" "$(get borg "$phase" s)")
			ep=$(ratio "$e" "$b") ef=$(ratio "$e" "$f")
			case $phase in
			full) tgt=0.5 ;;
			noop) tgt=0.3 ;;
			*) tgt="" ;;
			esac
			printf '%-8s %-12s %12s %12s %8s %6s %14s %8s %6s\n' "$phase" "$(label "$tool")" "$e" "$ep" "≤1.1" \
				"$(verdict "$ep" 1.1)" "$ef" "${tgt:+≤$tgt}" "$([ -n "$tgt" ] && verdict "$ef" "$tgt" || echo -)"
			key=${phase}_encrypted
			[ "$tool" = bkrenc ] || key+=_cached
			json_ratios+=",\"$key\":{\"time_vs_plain\":\"$ep\",\"time_vs_fastest\":\"$ef\"}"
		done
	done
	echo "encryption: encrypted bkr (aes-256-gcm) within 1.1× of plain bkr, same peer targets; bkrenc derives its key"
	echo "with scrypt (N=2^15) every run, bkrenc+cache takes it from the key cache ('bkr key unlock' before the runs)"
fi
[ $RESTORE = 1 ] && restore_report

out=$BENCH_WORK/results/backup-$(date -u +%Y%m%d-%H%M%S).json
{
	printf '{"benchmark":"backup","date":"%s","machine":"%s","versions":"%s","cache":"%s",' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(machine_info)" "$(tool_versions)" "$([ $COLD = 1 ] && echo cold || echo warm)"
	printf '"corpus":{"files":%s,"bytes":%s,"changed_files":%s},' "$CORPUS_FILES" "$CORPUS_BYTES" "$CHANGED_FILES"
	printf '"words":{"files":%s,"bytes":%s,"cache":"%s"},"results":[' "$WORDS_FILES" "$WORDS_BYTES" \
		"$([ $WCOLD = 1 ] && echo cold || echo warm)"
	sep=""
	for tool in $TOOLS; do
		for phase in $PHASES words; do
			printf '%s{"tool":"%s","phase":"%s","seconds":%s,"peak_rss_kib":%s,"repo_bytes":%s}' "$sep" "$(label "$tool")" "$phase" \
				"$(get "$tool" "$phase" s)" "$(get "$tool" "$phase" kb)" "$(get "$tool" "$phase" repo)"
			sep=,
		done
	done
	if [ $RESTORE = 1 ]; then
		for tool in $RTOOLS; do
			printf ',{"tool":"%s","phase":"restore","seconds":%s,"peak_rss_kib":%s}' "$tool" \
				"$(get "$tool" restore s)" "$(get "$tool" restore kb)"
		done
	fi
	printf '],"ratios":{%s}}\n' "$json_ratios"
} >"$out"
echo
echo "results: $out"
