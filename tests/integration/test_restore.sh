#!/bin/bash
# Restore safety (tests/integration/lib.sh).
#
# Attributes are set through a descriptor of the object restore created,
# never by a name another user could swap: restore is paused (BKR_FAULT
# "restore-meta:N:stop") between creating an entry and setting its
# attributes, the entry is replaced by a symlink to a 0600 file, and that
# file must keep its mode.
. "$(dirname "$0")/lib.sh"

R=$T/repo
src=$T/src
mkdir -p "$src/d"
mkfifo -m 0666 "$src/d/fifo"
printf 'data\n' >"$src/d/file"
chmod 0777 "$src/d"
expect_exit 0 "$BKR" -r "$R" init
expect_exit 0 "$BKR" -r "$R" create --type full "$src"

victim=$T/victim
printf 'secret\n' >"$victim"
chmod 0600 "$victim"

# wait_stopped PID: until the process is stopped (0) or gone (1)
wait_stopped() {
	local i state
	for i in $(seq 1 3000); do
		state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
		[ -n "$state" ] || return 1
		[ "$state" = T ] && return 0
		sleep 0.01
	done
	return 1
}

# paused_restore N SWAP TARGET ARGS...: restore paused at the N-th restore-meta
# point; run the shell code SWAP there, continue; exit status in $rc
paused_restore() {
	local n=$1 swap=$2 target=$3 pid
	shift 3
	rm -rf "$target"
	BKR_FAULT="restore-meta:$n:stop" "$BKR" -r "$R" restore latest "$@" --target "$target" \
		>"$T/out" 2>"$T/err" &
	pid=$!
	wait_stopped "$pid" || { cat "$T/err"; fail "restore never paused at restore-meta:$n"; }
	eval "$swap"
	kill -CONT "$pid"
	rc=0
	wait "$pid" || rc=$?
}

mode_of() { stat -c %a "$1"; }

# a fifo swapped for a symlink before its mode is set
swap_fifo='f=$(find "$T/r1/src/d" -type p); [ -n "$f" ] || fail "no fifo to swap"; rm "$f"; ln -s "$victim" "$f"'
paused_restore 1 "$swap_fifo" "$T/r1" src/d
[ "$(mode_of "$victim")" = 600 ] || fail "restore changed the mode of a swapped-in symlink's target to $(mode_of "$victim")"
[ "$rc" = 6 ] || { cat "$T/err"; fail "a fifo replaced during restore: expected exit 6, got $rc"; }
grep -q "fifo" "$T/err" || fail "the replaced fifo is not named"
pass "a fifo swapped for a symlink during restore: the link's target keeps its mode"

# the top directory of 'restore ID PATH' swapped before its mode is set
swap_dir='mv "$T/r1/src/d" "$T/r1/src/d.moved"; ln -s "$victim" "$T/r1/src/d"'
paused_restore 2 "$swap_dir" "$T/r1" src/d
[ "$(mode_of "$victim")" = 600 ] || fail "restore changed the mode of a swapped-in symlink's target to $(mode_of "$victim")"
[ "$(mode_of "$T/r1/src/d.moved")" = 777 ] || fail "the restored directory did not get its mode"
pass "the top directory swapped for a symlink during restore: the link's target keeps its mode"
