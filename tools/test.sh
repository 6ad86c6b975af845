#!/usr/bin/env bash
# Install what the tests need, build, and run every test: plainly, then (after
# checking that the README's -O3 release build compiles) under
# ASan+UBSan, then the engine's unit tests under valgrind, then each libFuzzer
# target for a bounded time (tests/fuzz/run.sh).  `.ci/run` runs this.
#
# Environment: BKR_TEST_QUICK=1 skips the sanitizer, valgrind and fuzzing passes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ "$(id -u)" != 0 ]; then
	echo "tools/test.sh: run it as root: the tests create device nodes and files of other owners" >&2
	exit 1
fi
tools/install-deps.sh --tests

jobs=$(nproc)
run_suite() { # name builddir meson-args...
	local name=$1 dir=$2
	shift 2
	phase "$name: configure and build ($dir)"
	if [ -d "$dir" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" -j "$jobs"
}

status=0
passed=0
failed=0
failures= # "phase: suite / test" of each failure, repeated at the end (CI keeps the tail)
# phase NAME: the previous phase's wall time, then NAME's heading
phase_name=
phase_start=$SECONDS
phase() {
	[ -z "$phase_name" ] || echo "=== $phase_name: $((SECONDS - phase_start)) s"
	phase_name=$1
	phase_start=$SECONDS
	[ -z "$1" ] || echo "=== $1"
}
# meson test, then add its "Ok:" and "Fail:"/"Timeout:" counts to the totals
mtest() {
	local log rc=0
	log=$(mktemp)
	meson test "$@" 2>&1 | tee "$log" || rc=1
	passed=$((passed + $(awk '/^Ok:/ {s += $2} END {print s + 0}' "$log")))
	failed=$((failed + $(awk '/^(Fail|Timeout|Unexpected Pass):/ {s += $2} END {print s + 0}' "$log")))
	# the per-test lines before "Summary of Failures:" (meson repeats them after it)
	failures+=$(awk -v phase="$phase_name" '/^Summary of Failures:/ {exit}
		/^ *[0-9]+\/[0-9]+ .* (FAIL|TIMEOUT|UNEXPECTEDPASS) / {sub(/^ *[0-9]+\/[0-9]+ +/, ""); sub(/ +(FAIL|TIMEOUT|UNEXPECTEDPASS) .*/, ""); printf "\n  %s: %s", phase, $0}' "$log")
	rm -f "$log"
	return $rc
}

run_suite plain build-test -Dfault_injection=enabled
phase "plain: every test"
mtest -C build-test --print-errorlogs --num-processes "$jobs" || status=1

if [ "${BKR_TEST_QUICK:-0}" != 1 ]; then
	# the README's build: -O3 sees warnings (-Werror) that the test builds' -O0 cannot
	if ! run_suite "release build" build-release -Dtests=false --buildtype=release; then
		status=1
		failures+=$'\n  release build: it failed (the compiler lines above)'
	fi

	run_suite asan build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dfault_injection=enabled
	phase "ASan+UBSan: every test"
	# fewer random kills and damages than the plain pass: each round costs a verify and restores
	# (at most 10 kills: test_crash 10 of 25; the tests with 2..8 keep theirs)
	BKR_CRASH_ROUNDS_MAX=10 BKR_DAMAGE_ROUNDS=10 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		mtest -C build-asan --print-errorlogs --num-processes "$jobs" || status=1

	phase "valgrind: engine unit tests"
	# BKR_TEST_BIG=0: no 5 GiB sparse file (hashing its zeros under valgrind takes half an hour)
	BKR_TEST_BIG=0 mtest -C build-test --suite unit --print-errorlogs --num-processes "$jobs" \
		--wrap='valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --quiet' \
		--timeout-multiplier 8 || status=1

	phase "libFuzzer: every decoder of repository data and the configuration, from tests/fuzz/corpus"
	tests/fuzz/run.sh build-fuzz || {
		status=1
		failures+=$'\n  libFuzzer: a target failed (its lines above)'
	}
fi

phase ""
echo "$passed passed, $failed failed in $((SECONDS / 60)) min $((SECONDS % 60)) s"
[ -z "$failures" ] || echo "failed:$failures"
if [ "$status" = 0 ]; then
	echo "tools/test.sh: every suite passed"
else
	echo "tools/test.sh: FAILED (see the logs above; meson-logs/testlog.txt in each build dir)"
fi
exit "$status"
