# Shared helpers of the benchmarks in bench/ (sourced, not run).
#
# Environment:
#   BENCH_WORK   work directory (default /var/tmp/bkr-bench)
#   BENCH_BUILD  build directory (default <source>/build-bench)
#   BENCH_NOBUILD=1  use BENCH_BUILD as it is (no meson setup / ninja)

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_WORK=${BENCH_WORK:-/var/tmp/bkr-bench}
BENCH_BUILD=${BENCH_BUILD:-$BENCH_SRC/build-bench}
# Bump when the corpus recipe changes, so a cached corpus is regenerated.
CORPUS_VERSION=1
BIG_MIB=512
RESTIC_PASSWORD_FIXED=bkr-bench
export LC_ALL=C

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# bench_args [SPEC...] -- "$@": a benchmark's command line.  Every benchmark takes
# --work DIR (BENCH_WORK), --no-build (BENCH_NOBUILD=1) and -h/--help (the script's
# header comment, after the #! line); each SPEC adds one of its own: "--name=VAR"
# takes a value (--name V or --name=V) into VAR, "--name:VAR" is a flag that sets
# VAR=1.  Anything else: "unknown option", exit 1.
bench_args() {
	local _spec _opt _var _done
	local -a _specs=(--work=BENCH_WORK --no-build:BENCH_NOBUILD)
	while [ $# -gt 0 ] && [ "$1" != -- ]; do _specs+=("$1"); shift; done
	[ $# -eq 0 ] || shift
	while [ $# -gt 0 ]; do
		case $1 in
		-h | --help) awk 'NR > 1 { if (!/^#/) exit; sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
		esac
		_done=0
		for _spec in "${_specs[@]}"; do
			case $_spec in
			*=*)
				_opt=${_spec%%=*} _var=${_spec#*=}
				case $1 in
				"$_opt")
					[ $# -ge 2 ] || die "$_opt needs a value (see --help)"
					printf -v "$_var" %s "$2"
					shift
					_done=1 ;;
				"$_opt"=*) printf -v "$_var" %s "${1#*=}"; _done=1 ;;
				esac ;;
			*)
				[ "$1" = "${_spec%%:*}" ] && { printf -v "${_spec#*:}" 1; _done=1; } ;;
			esac
			[ $_done = 0 ] || break
		done
		[ $_done = 1 ] || die "unknown option $1 (see --help)"
		shift
	done
}

# bench_unmount: unmount $MNT when mounted and stop $DAEMON_PID when alive (part of
# the exit trap of the benchmarks that mount)
bench_unmount() {
	if grep -q " $MNT " /proc/mounts; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
	fi
	if [ -n "${DAEMON_PID:-}" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill "$DAEMON_PID" 2>/dev/null || true
	fi
}

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			die "$c not found (tools/install-deps.sh --bench installs restic, borgbackup, fio, time)"
	done
}

# warm_tree DIR: every file under DIR read once, into the page cache.
warm_tree() {
	log "warming the page cache with $1"
	find "$1" -type f -print0 | xargs -0 -r cat >/dev/null
}

# Release build of bkr, bkrfs and bench/*.c (with -Werror, like every build).
build_bkr() {
	if [ "${BENCH_NOBUILD:-0}" != 1 ]; then
		log "building $BENCH_BUILD (release)"
		if [ -d "$BENCH_BUILD/meson-info" ]; then
			meson setup --reconfigure "$BENCH_BUILD" "$BENCH_SRC" -Dtests=false \
				-Dbuildtype=release >"$BENCH_WORK/build.log" 2>&1
		else
			meson setup "$BENCH_BUILD" "$BENCH_SRC" -Dtests=false \
				-Dbuildtype=release >"$BENCH_WORK/build.log" 2>&1
		fi || { tail -20 "$BENCH_WORK/build.log"; die "meson setup failed"; }
		ninja -C "$BENCH_BUILD" >>"$BENCH_WORK/build.log" 2>&1 ||
			{ tail -20 "$BENCH_WORK/build.log"; die "build failed (see $BENCH_WORK/build.log)"; }
	fi
	BKR=$BENCH_BUILD/tools/bkr
	BKRFS=$BENCH_BUILD/fs/bkrfs
	RANDREAD=$BENCH_BUILD/bench/randread
	FOLIOS=$BENCH_BUILD/bench/folios
	[ -x "$BKR" ] || die "$BKR missing"
}

# The 512 MiB file: 256 MiB of deterministic log lines (dictionary words,
# compresses to about 1/3 with zlib -1), then 256 MiB of AES-CTR keystream
# (incompressible, deterministic).
make_big() {
	local out=$1 half=$((BIG_MIB / 2 * 1048576))
	{
		perl -e '
use strict;
my @w = qw(user assistant content the backup restore file workspace error ok
  timestamp message tool_call result json request response latency session token
  cache miss hit disk write read commit index pack chunk tree manifest verify prune
  retention hourly daily weekly warning info debug trace service config worker
  thread queue retry timeout connect closed open);
my @lv = qw(INFO DEBUG WARN ERROR TRACE);
srand(20240601);
my ($n, $buf, $t) = (0, "", 1700000000);
my $target = $ARGV[0];
while ($n < $target) {
  $t += int(rand(3));
  my $line = sprintf("%d.%06d %s worker-%d req=%08x", $t, int(rand(1000000)),
    $lv[int(rand(5))], int(rand(16)), int(rand(4294967295)));
  my $k = 4 + int(rand(12));
  $line .= " " . $w[int(rand(@w))] for 1 .. $k;
  $buf .= $line . "\n";
  if (length($buf) >= 1 << 20) {
    $buf = substr($buf, 0, $target - $n) if $n + length($buf) > $target;
    print $buf; $n += length($buf); $buf = "";
  }
}' "$half"
		head -c "$half" /dev/zero | openssl enc -aes-256-ctr -nosalt \
			-K 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
			-iv 00000000000000000000000000000000 2>/dev/null
	} >"$out.tmp"
	[ "$(stat -c %s "$out.tmp")" = $((BIG_MIB * 1048576)) ] || die "generating $out failed"
	mv "$out.tmp" "$out"
}

# CORPUS=$BENCH_WORK/corpus: include/ (a fresh copy of /usr/include, so that
# earlier modifications are undone) and big.bin (kept between runs).
make_corpus() {
	CORPUS=$BENCH_WORK/corpus
	mkdir -p "$CORPUS"
	if [ "$(cat "$BENCH_WORK/corpus.version" 2>/dev/null)" != "$CORPUS_VERSION" ] ||
		[ "$(stat -c %s "$CORPUS/big.bin" 2>/dev/null)" != $((BIG_MIB * 1048576)) ]; then
		log "generating $CORPUS/big.bin ($BIG_MIB MiB, half text, half random)"
		rm -f "$BENCH_WORK/corpus.version"
		make_big "$CORPUS/big.bin"
		echo "$CORPUS_VERSION" >"$BENCH_WORK/corpus.version"
	fi
	log "copying /usr/include to $CORPUS/include"
	rm -rf "$CORPUS/include"
	cp -a /usr/include "$CORPUS/include"
	CORPUS_FILES=$(find "$CORPUS" -type f | wc -l)
	CORPUS_BYTES=$(du -sb --apparent-size "$CORPUS" | cut -f1)
}

# The word-text corpus (WORDS=$BENCH_WORK/words, kept between runs): WORDS_MIB
# MiB in 64 files of text made of random dictionary words (/usr/share/dict/words,
# package wamerican; lines of 6..17 words), with a block of random bytes (4..64
# KiB) after every 64..512 KiB of text (about a tenth of it).  Deterministic
# (perl's srand), generated once per WORDS_VERSION.
WORDS_VERSION=1
WORDS_MIB=256
WORDS_FILES=64
make_words() {
	WORDS=$BENCH_WORK/words
	local dict=/usr/share/dict/words
	[ -r "$dict" ] || die "$dict not found (tools/install-deps.sh --bench installs wamerican)"
	if [ "$(cat "$BENCH_WORK/words.version" 2>/dev/null)" = "$WORDS_VERSION" ] &&
		[ "$(du -sb --apparent-size "$WORDS" 2>/dev/null | cut -f1)" -ge $((WORDS_MIB * 1048576)) ]; then
		WORDS_BYTES=$(du -sb --apparent-size "$WORDS" | cut -f1)
		return 0
	fi
	log "generating $WORDS ($WORDS_MIB MiB of dictionary words and random blocks)"
	rm -rf "$WORDS" "$BENCH_WORK/words.version"
	mkdir -p "$WORDS"
	perl -e '
use strict;
my ($dir, $nfiles, $mib, $dict) = @ARGV;
open(my $d, "<", $dict) or die "$dict: $!";
my @w = grep { /^[a-z]+$/ } map { chomp; $_ } <$d>;
close $d;
srand(20261130);
my $per = int($mib * 1048576 / $nfiles);
for my $f (1 .. $nfiles) {
  my $name = sprintf("%s/w%03d.txt", $dir, $f);
  open(my $o, ">", $name) or die "$name: $!";
  binmode $o;
  my $n = 0;
  while ($n < $per) {
    my $text = 65536 + int(rand(458752));
    my $buf = "";
    while (length($buf) < $text) {
      $buf .= join(" ", map { $w[int(rand(@w))] } 1 .. 6 + int(rand(12))) . "\n";
    }
    $buf .= pack("L*", map { int(rand(4294967296)) } 1 .. (4096 + int(rand(61440))) / 4);
    $buf = substr($buf, 0, $per - $n) if $n + length($buf) > $per;
    print $o $buf;
    $n += length($buf);
  }
  close $o or die "$name: $!";
}' "$WORDS" "$WORDS_FILES" "$WORDS_MIB" "$dict" || die "generating $WORDS failed"
	WORDS_BYTES=$(du -sb --apparent-size "$WORDS" | cut -f1)
	[ "$WORDS_BYTES" -ge $((WORDS_MIB * 1048576)) ] || die "generating $WORDS failed (short)"
	echo "$WORDS_VERSION" >"$BENCH_WORK/words.version"
}

# Append one line to every 100th regular file of the corpus (sorted by path).
change_one_percent() {
	local n=0 f
	while IFS= read -r f; do
		n=$((n + 1))
		if [ $((n % 100)) = 0 ]; then
			printf '/* bkr-bench change %d */\n' "$n" >>"$f"
		fi
	done < <(cd "$BENCH_WORK" && find corpus -type f | sort | sed "s|^|$BENCH_WORK/|")
	CHANGED_FILES=$((n / 100))
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || die "dropping the page cache needs root"
}

# timed OUTVAR CMD...: runs CMD with /usr/bin/time; sets OUTVAR_s (seconds),
# OUTVAR_kb (peak RSS KiB) and OUTVAR_cpu (user + system CPU seconds, CMD's
# and its children's); CMD's output goes to $BENCH_WORK/logs.
timed() {
	local var=$1
	shift
	local tf=$BENCH_WORK/logs/time.$$ lf=$BENCH_WORK/logs/$var.log
	if ! /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$lf" 2>&1; then
		tail -5 "$lf" >&2
		die "failed: $* (log: $lf)"
	fi
	local s kb u sy
	read -r s kb u sy <"$tf"
	printf -v "${var}_s" '%s' "$s"
	printf -v "${var}_kb" '%s' "$kb"
	printf -v "${var}_cpu" '%s' "$(awk -v u="$u" -v s="$sy" 'BEGIN { printf "%.2f", u + s }')"
}

# ratio A B: A/B with 2 decimals ("-" when either is not a number or B is 0)
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { n = "^[0-9]+([.][0-9]*)?$"
		if (a !~ n || b !~ n || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
# fmin A B: the smaller number (a non-number loses)
fmin() {
	awk -v a="$1" -v b="$2" 'BEGIN { n = "^[0-9]+([.][0-9]*)?$"
		if (a !~ n) print b; else if (b !~ n) print a; else print (a + 0 < b + 0) ? a : b }'
}
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { if (r == "-") print "n/a"; else print (r + 0 <= t + 0) ? "PASS" : "MISS" }'; }

machine_info() {
	printf '%s, %s cores, %s MiB RAM, kernel %s' \
		"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
		"$(nproc)" "$(awk '/MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)" "$(uname -r)"
}

tool_versions() {
	printf 'bkr %s; %s; %s' "$("$BKR" --version 2>&1 | head -1 | awk '{print $NF}')" \
		"$(restic version | awk '{print "restic " $2}')" "$(borg --version)"
}
