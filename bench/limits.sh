#!/usr/bin/env bash
# Sweep of `bkr create` under low limits of open files (ulimit -n): is it
# reliable, and where does it stop working?
#
#   bench/limits.sh [--work DIR] [--from N] [--to M] [--runs R] [--no-build]
#
# The tree of tests/integration/test_limits.sh (src/a: 40 files of 1 MiB,
# src/b/c: 20 of 256 KiB, src/b: 300 small ones; random bytes, made once in
# DIR/limits/src).  At each limit from N (default 10) to M (default 32), R
# runs (default 40), alternately --threads 8 and --threads 1, each a full
# backup into a fresh repository (so that every run writes its packs).  Each
# run must either back up (exit 0; the backup then verifies) or fail with the
# one line of a limit too low (exit 7, nothing published): at once
# ('bkr create: the limit of open files (ulimit -n N) is too low for this
# backup: raise it') or, for a tree deeper than the limit allows, naming the
# file or directory where the scan found no room.  Printed: one line a limit
# (ok, too low at once, too low at a path, anything else).  Exit 1 when any
# run did anything else, or when the runs at one limit did not all end alike
# (a limit where a backup works only sometimes is a failing one).  The bkr of
# BENCH_BUILD (bench/lib.sh; --no-build takes it as it is: say,
# BENCH_BUILD=build-asan, whose sanitizers open descriptors of their own).
# About 25 minutes on a loaded machine of 2 cores.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FROM=10
TO=32
RUNS=40
bench_args --from=FROM --to=TO --runs=RUNS -- "$@"
mkdir -p "$BENCH_WORK/limits"
build_bkr
W=$BENCH_WORK/limits
export XDG_STATE_HOME=$W/state NO_COLOR=1

if [ ! -e "$W/src/.done" ]; then
	rm -rf "$W/src"
	mkdir -p "$W/src/a" "$W/src/b/c"
	for i in $(seq 1 40); do head -c 1M /dev/urandom >"$W/src/a/f$i"; done
	for i in $(seq 1 20); do head -c 256K /dev/urandom >"$W/src/b/c/g$i"; done
	for i in $(seq 1 300); do echo "small $i" >"$W/src/b/s$i"; done
	: >"$W/src/.done"
fi

bad=0
for n in $(seq "$FROM" "$TO"); do
	ok=0 once=0 at=0 other=0
	for k in $(seq 1 "$RUNS"); do
		threads=$((k % 2 ? 8 : 1))
		rm -rf "$W/r"
		"$BKR" init -r "$W/r" >/dev/null
		got=0
		(ulimit -n "$n" && exec "$BKR" -q -r "$W/r" create --type full --threads "$threads" "$W/src") \
			>"$W/out" 2>"$W/err" || got=$?
		published=$("$BKR" -r "$W/r" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
		low="the limit of open files (ulimit -n $n) is too low for this backup: raise it"
		if [ "$got" = 0 ] && [ "$published" = 1 ] && [ ! -s "$W/err" ] &&
			"$BKR" -q -r "$W/r" verify >/dev/null 2>&1; then
			ok=$((ok + 1))
		elif [ "$got" = 7 ] && [ "$published" = 0 ] && [ "$(cat "$W/err")" = "bkr create: $low" ]; then
			once=$((once + 1))
		elif [ "$got" = 7 ] && [ "$published" = 0 ] && [ "$(wc -l <"$W/err")" = 1 ] &&
			[[ $(cat "$W/err") == "bkr create: src/"*": $low" ]]; then
			at=$((at + 1))
		else
			other=$((other + 1))
			echo "ulimit -n $n, --threads $threads, run $k: exit $got, $published published: $(head -c 500 "$W/err")" >&2
		fi
	done
	echo "ulimit -n $n: $RUNS runs: $ok ok, $once too low at once, $at too low at a path, $other otherwise"
	kinds=0
	for x in $ok $once $at; do [ "$x" = 0 ] || kinds=$((kinds + 1)); done
	[ "$other" = 0 ] && [ "$kinds" = 1 ] || bad=1
done
rm -rf "$W/r"
[ "$bad" = 0 ] || { echo "some runs failed otherwise, or ended differently at one limit" >&2; exit 1; }
