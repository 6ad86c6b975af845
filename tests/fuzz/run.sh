#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan+UBSan) and run each for a bounded
# time from its checked-in seed corpus (tests/fuzz/corpus/<target>/), as many at
# once as there are cores; a crash, leak or timeout fails.  tools/test.sh runs this.
# Usage: tests/fuzz/run.sh [BUILD_DIR]   (BKR_FUZZ_SECONDS per target, default 15)
# Each run replays the whole seed corpus first (a regression run: libFuzzer's
# INITED line, demanded below), then fuzzes for the rest of its seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build-fuzz}
secs=${BKR_FUZZ_SECONDS:-15}
targets=(pack index tree manifest record config key sealed verify_record s3_list)

command -v clang >/dev/null || { echo "fuzz: clang is missing (tools/install-deps.sh --tests)" >&2; exit 1; }
if [ -d "$build" ]; then
	meson setup --reconfigure "$build" >/dev/null
else
	# -Dwerror=false: clang knows other warnings than gcc, which the build is held to
	CC=clang meson setup "$build" "$root" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
		-Dwerror=false >/dev/null
fi
ninja -C "$build" -j "$(nproc)" "${targets[@]/#/tests/fuzz/fuzz_}" >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# fuzz_one TARGET: run it; its report on stdout, a failure's details on stderr; 1 when it failed
fuzz_one() {
	local t=$1 a
	mkdir -p "$work/$t" "$work/$t-crash"
	# new inputs go to a scratch corpus; the checked-in seeds are read only
	if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len=262144 -print_final_stats=1 -artifact_prefix="$work/$t-crash/" \
		"$work/$t" "$here/corpus/$t" >"$work/$t.log" 2>&1 &&
		grep -q 'INITED' "$work/$t.log"; then
		echo "fuzz_$t: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$') runs)"
		return 0
	fi
	{
		echo "fuzz_$t: FAILED"
		tail -60 "$work/$t.log"
		grep -q 'INITED' "$work/$t.log" || echo "fuzz_$t: its seed corpus was not run to the end (no INITED line above)"
		for a in "$work/$t-crash"/*; do
			[ -e "$a" ] || continue
			mkdir -p "$root/fuzz-artifacts"
			cp "$a" "$root/fuzz-artifacts/$t-$(basename "$a")"
			echo "fuzz_$t: input kept as fuzz-artifacts/$t-$(basename "$a")"
		done
	} >&2
	return 1
}

# one target per core at a time (each fuzzer is one process on one core): every
# target still gets its full $secs, the whole run takes 1/nproc of the time
status=0
jobs=$(nproc)
running=0
for t in "${targets[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n || status=1
		running=$((running - 1))
	fi
	fuzz_one "$t" &
	running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
	wait -n || status=1
	running=$((running - 1))
done
exit "$status"
