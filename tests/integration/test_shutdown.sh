#!/usr/bin/env bash
# Shutdown of bkrfs during heavy cold reads (issue 9's race): a daemon told
# to stop while a `cat` of a big file and a `tar` of thousands of small files
# read through it must exit promptly and cleanly.  In flight at that moment:
# reads the kernel has queued but nobody will answer once the session loop
# stops, whose page-cache pages stay locked, and prefetch workers and the
# page-cache store thread about to push chunks into the page cache
# (notify_store), which waits for exactly those pages.
#
# Rounds of each: SIGTERM, and a lazy unmount (`fusermount3 -u -z`) followed
# by the readers' end.  Each round asserts that the daemon exits within a
# bound (a hang is a failure), with status 0, and that its stderr holds no
# sanitizer report (the test also runs in the ASan+UBSan build).
#
# Env: BKR_SHUTDOWN_ROUNDS (default 10 of each).  The reads are cold: the
# repository's own files leave the page cache before each round (not the whole
# machine's: a global drop_caches would take pages that a test running beside
# this one is asserting on).
source "$(dirname "$0")/lib.sh"

ROUNDS=${BKR_SHUTDOWN_ROUNDS:-10}
[ -c /dev/fuse ] && command -v fusermount3 >/dev/null ||
	fail "no /dev/fuse or fusermount3: this test needs real mounts (apt-get install fuse3)"

# ---- a backup with one big file and many small files ---------------------------
S=$T/src/d
mkdir -p "$S/small"
head -c $((200 << 20)) /dev/urandom >"$S/big.bin"
python3 - "$S/small" <<'PY'
import os, sys
top = sys.argv[1]
for d in range(100):
    p = os.path.join(top, "d%03d" % d)
    os.mkdir(p)
    for f in range(200):
        with open(os.path.join(p, "f%03d" % f), "wb") as fh:
            fh.write(os.urandom(2000 + (d * 200 + f) % 9000))
PY
new_repo
"$BKR" create -r "$T/repo" --type full "$S" >/dev/null || fail "bkr create"
rm -rf "$T/src"
[ -n "${BKR_SHUTDOWN_KEEP:-}" ] && cp -a "$T/repo" "$BKR_SHUTDOWN_KEEP"
mkdir -p "$T/mnt"
M=$T/mnt

# from here on only bkrfs is instrumented (the readers are cat and tar):
# libfuse's own leak of a late FUSE_INTERRUPT is suppressed (the file says why)
export LSAN_OPTIONS="suppressions=$HERE/lsan-libfuse-interrupt.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

DAEMON=
READERS=()
cleanup_hooks+=('[ -n "$DAEMON" ] && kill -9 $DAEMON 2>/dev/null; for p in "${READERS[@]}"; do kill -9 $p 2>/dev/null; done; fusermount3 -uz "$M" 2>/dev/null')

# abort every FUSE connection of ours through fusectl (after a hang only)
abort_connections() {
	local dev
	mountpoint -q /sys/fs/fuse/connections || mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true
	dev=$(stat -c %d "$M" 2>/dev/null) || return 0
	[ -e "/sys/fs/fuse/connections/$((dev & 0xff))/abort" ] &&
		echo 1 >"/sys/fs/fuse/connections/$((dev & 0xff))/abort"
	return 0
}

start_readers() {
	READERS=()
	cat "$M/latest/d/big.bin" >/dev/null 2>&1 &
	READERS+=($!)
	tar -cf - -C "$M/latest/d" small 2>/dev/null >/dev/null &
	READERS+=($!)
}

stop_readers() {
	for p in "${READERS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for p in "${READERS[@]}"; do wait "$p" 2>/dev/null || true; done
	READERS=()
}

# wait_exit WHAT: the daemon must be gone within 30 s, with status 0
wait_exit() {
	local i rc=0
	for i in $(seq 1 300); do
		kill -0 "$DAEMON" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$DAEMON" 2>/dev/null; then
		echo "--- stacks of the hung daemon" >&2
		for t in /proc/"$DAEMON"/task/*; do cat "$t/stack" 2>/dev/null | head -3; done >&2
		abort_connections
		stop_readers
		kill -9 "$DAEMON" 2>/dev/null || true
		wait "$DAEMON" 2>/dev/null || true
		fail "$1: the daemon did not exit within 30 s"
	fi
	wait "$DAEMON" || rc=$?
	DAEMON=
	if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:|ThreadSanitizer' "$T/daemon.err"; then
		head -c 6000 "$T/daemon.err" >&2
		fail "$1: sanitizer report"
	fi
	[ "$rc" = 0 ] || { cat "$T/daemon.err" >&2; fail "$1: the daemon exited $rc"; }
}

for r in $(seq 1 "$ROUNDS"); do
	for how in term lazy; do
		sync
		find "$T/repo" -type f -exec dd iflag=nocache count=0 status=none if={} \;
		bkrfs_fg "$T/repo" "$M" "$T/daemon.err"
		start_readers
		sleep 0.$((2 + RANDOM % 6))
		if [ $how = term ]; then
			kill -TERM "$DAEMON"
			wait_exit "round $r, SIGTERM during cold reads"
			stop_readers
		else
			fusermount3 -u -z "$M" || fail "round $r: fusermount3 -u -z"
			stop_readers # the detached mount lives until its last user is gone
			wait_exit "round $r, lazy unmount during cold reads"
		fi
		if mountpoint -q "$M"; then
			fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M"
			fail "round $r ($how): still mounted after the daemon exited"
		fi
	done
done
pass "$ROUNDS rounds each of SIGTERM and lazy unmount during cold reads: prompt, clean exits"
