# Shared helpers for the integration tests (sourced).  Each test gets a private
# temporary directory removed on exit; failures name what went wrong.
set -euo pipefail

: "${BKR_BUILD_ROOT:?run through meson test}"
: "${BKR_SOURCE_ROOT:?run through meson test}"
BKR=$BKR_BUILD_ROOT/tools/bkr
BKRFS=$BKR_BUILD_ROOT/fs/bkrfs
HERE=$BKR_SOURCE_ROOT/tests/integration
export NO_COLOR=1

T=$(mktemp -d /tmp/bkr-test.XXXXXX)
# commands without a configuration log to the default log directory
# ($XDG_STATE_HOME/bkr, bkr(1) "LOGS"): keep it inside the test's directory
export XDG_STATE_HOME=$T/state
# and the disk cache of remote repositories ($XDG_CACHE_HOME/bkrfs, docs/s3.md): never the real one
export XDG_CACHE_HOME=$T/cache
# Debian's python3 (tools/install-deps.sh --tests), not the first one in PATH:
# a version manager's shim there (pyenv's) costs 0.35 s a start against 0.03,
# and the tests start python hundreds of times (treecmp.py, JSON checks)
if [ -x /usr/bin/python3 ]; then
	mkdir "$T/bin" && ln -s /usr/bin/python3 "$T/bin/python3"
	export PATH=$T/bin:$PATH
fi
cleanup_hooks=()
cleanup() {
	local rc=$?
	for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
	rm -rf "$T" 2>/dev/null || true
	exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
# A command failing where set -e stops the test names itself (it used to end
# the test without a word: a curl that failed under load in test_s3 left
# nothing to go on).  Only where -e is in force: not in `if`, `||`, `!` or
# a `set +e` stretch, where a failure is expected and handled; and not in a
# subshell ($(...), a pipeline's part: `yes | head` ends yes by SIGPIPE),
# whose failure, if it matters, fails the command around it.
set -E
trap 'rc=$?; [[ $- != *e* ]] || ((BASH_SUBSHELL)) || echo "FAIL: ${BASH_SOURCE[0]##*/}:$LINENO${FUNCNAME:+ (in ${FUNCNAME[0]}, called from line ${BASH_LINENO[0]})}: exit $rc from: $BASH_COMMAND" >&2' ERR
pass() { echo "ok - $*"; }

# wait_line FILE PATTERN PID: until FILE has a line matching PATTERN (0), or
# PID is gone or two minutes have passed (1).  For "it says it waits" checks:
# a fixed sleep raced a loaded machine's slow start (test_s3 failed so).
wait_line() {
	local i
	for i in $(seq 1 1200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# wait_until CMD...: until CMD succeeds (0) or two minutes have passed (1), trying every
# 0.1 s; `wait_until eval '...'` for a compound condition.  For what another process makes
# true in its own time (the mount's watcher, a server starting): a loop of a fixed number
# of tries is a time limit, which an ASan run on a loaded machine can overrun.
wait_until() {
	local end=$((SECONDS + 120))
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

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

# crash_rounds DEFAULT: how many random kills a crash test makes: BKR_CRASH_ROUNDS when
# set, else DEFAULT, at most BKR_CRASH_ROUNDS_MAX (tools/test.sh's sanitizer pass: fewer
# there, never more; a global BKR_CRASH_ROUNDS=10 gave the tests whose default is 2..8 more)
crash_rounds() {
	local n=${BKR_CRASH_ROUNDS:-$1}
	[ -z "${BKR_CRASH_ROUNDS_MAX:-}" ] || [ "$n" -le "$BKR_CRASH_ROUNDS_MAX" ] || n=$BKR_CRASH_ROUNDS_MAX
	echo "$n"
}

# expect_exit CODE CMD... : run CMD, demand exit status CODE; stdout/stderr in $T/out, $T/err
expect_exit() {
	local want=$1 got=0
	shift
	"$@" >"$T/out" 2>"$T/err" || got=$?
	if [ "$got" != "$want" ]; then
		echo "--- stdout"; head -c 3000 "$T/out"; echo "--- stderr"; head -c 3000 "$T/err"
		fail "expected exit $want, got $got: $*"
	fi
}

# one_line_error: stderr is exactly one line (ended by a newline).  With err_has, read by
# bash itself: a test checks hundreds of errors, and each process started (wc, grep) costs
# ~25 ms on the CI's machines, more than most bkr commands that made the error
one_line_error() {
	local lines
	mapfile lines <"$T/err"
	[ "${#lines[@]}" = 1 ] && [[ ${lines[0]} == *$'\n' ]] ||
		{ cat "$T/err"; fail "expected a one-line error, got ${#lines[@]} lines"; }
}
# err_has TEXT: stderr ($T/err) holds TEXT, a fixed string (grep -qF)
err_has() { [[ $(<"$T/err") == *"$1"* ]]; }

# tmpfs_dir VAR: VAR is set to a new directory in tmpfs (/dev/shm) when there is one, else
# in $T; removed at exit.  For what a test writes only to compare it (a restore that checks a
# backup): on the CI's disk (ext4 mounted with discard) removing a file whose data has been
# written out (restore ends with syncfs) costs ~4 ms, 14 s for 9,000 restored files
tmpfs_dir() {
	local d
	if [ -w /dev/shm ]; then
		d=$(mktemp -d /dev/shm/bkr-test.XXXXXX)
		cleanup_hooks+=("rm -rf '$d'")
	else
		d=$(mktemp -d "$T/tmpfs.XXXXXX")
	fi
	printf -v "$1" %s "$d"
}

json_ok() { python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" || fail "not valid JSON: $1"; }
# json_assert FILE EXPR: the Python expression EXPR is true of FILE's JSON document, read as r
# (an assertion error with r when it is not; the caller fails with its message)
json_assert() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert eval(sys.argv[2]), r' "$1" "$2"; }

# make_deep_tree DIR NAME TEXT: 20 directories of 253-byte names below DIR (a
# path longer than PATH_MAX, 4096 bytes), and at the bottom a file NAME (any
# bytes but '/' and NUL) holding TEXT.
make_deep_tree() {
	python3 - "$@" <<'PY'
import os, sys
os.chdir(sys.argv[1])
for i in range(20):
    n = b"D%02d" % i + b"d" * 250
    os.mkdir(n)
    os.chdir(n)
open(os.fsencode(sys.argv[2]), "wb").write(os.fsencode(sys.argv[3]))
PY
}

# make_edge_tree DIR: every kind of entry the engine must keep faithfully.
make_edge_tree() {
	local d=$1
	mkdir -p "$d"
	: >"$d/empty"
	printf 'hello\n' >"$d/small.txt"
	printf '{"a": 1, "b": [1, 2, 3]}\n' >"$d/data.json"
	head -c 3000000 /dev/urandom >"$d/random.bin"
	# sparse: holes at the start, middle and end
	truncate -s 64M "$d/sparse.img"
	printf 'middle' | dd of="$d/sparse.img" bs=1 seek=$((20 << 20)) conv=notrunc status=none
	printf 'later' | dd of="$d/sparse.img" bs=1 seek=$((40 << 20)) conv=notrunc status=none
	# over 4 GiB (sparse)
	truncate -s 5G "$d/huge.img"
	printf 'beyond-4GiB' | dd of="$d/huge.img" bs=1 seek=$((4500 << 20)) conv=notrunc status=none
	ln -s small.txt "$d/link-rel"
	ln -s /etc/hostname "$d/link-abs"
	ln -s does/not/exist "$d/link-dangling"
	printf 'shared\n' >"$d/hard1"
	ln "$d/hard1" "$d/hard2"
	mkdir -p "$d/sub"
	ln "$d/hard1" "$d/sub/hard3"
	mkfifo "$d/fifo"
	mknod "$d/chardev" c 1 3
	mknod "$d/blockdev" b 7 200
	python3 - "$d" <<'PY'
import os, sys
d = sys.argv[1]
os.setxattr(d + "/small.txt", "user.comment", b"a small value")
os.setxattr(d + "/small.txt", "user.empty", b"")
os.setxattr(d + "/data.json", "user.big", os.urandom(3000))  # ext4 caps one inode's xattrs at a block
os.setxattr(d + "/sub", "user.dirattr", b"on a directory")
for name in [b"with space", b"new\nline", b"\xff\xfe-not-utf8", b"-dash", b"tab\there", b"quote\"and'"]:
    with open(os.path.join(os.fsencode(d), name), "wb") as f:
        f.write(name * 3)
PY
	printf '#!/bin/sh\n' >"$d/setuid"
	chmod 4755 "$d/setuid"
	chmod 2750 "$d/sub"
	printf 'x' >"$d/owned"
	chown 1234:5678 "$d/owned"
	chown nobody:nogroup "$d/small.txt"
	chmod 0600 "$d/data.json"
	mkdir -p "$d/sticky" && chmod 1777 "$d/sticky"
	# deep and wide
	local p=$d/deep
	for i in $(seq 1 120); do p=$p/d$i; done
	mkdir -p "$p" && printf 'bottom\n' >"$p/file"
	mkdir -p "$d/wide"
	(cd "$d/wide" && seq -f 'f%05g' 1 5000 | xargs touch)
	# nanosecond times, and directory times set last
	touch -h -d '2021-03-04 05:06:07.123456789' "$d/link-rel"
	touch -d '2019-01-02 03:04:05.987654321' "$d/small.txt"
	touch -d '1969-12-31 23:59:58.5' "$d/random.bin"
	find "$d" -depth -type d -exec touch -d '2020-06-07 08:09:10.111222333' {} +
}

# new_repo: $T/repo initialised
new_repo() {
	"$BKR" init -r "$T/repo" >/dev/null
}

# flip_byte_in_blob PACKFILE: flip one byte inside the first blob's payload
flip_byte_in_blob() {
	python3 - "$1" <<'PY'
import sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(16 + 100)
    b = f.read(1)
    f.seek(16 + 100)
    f.write(bytes([b[0] ^ 0x5a]))
PY
}

# damage_stored REPO FILE OFFSET: flip a bit of the stored copy of FILE's byte at OFFSET, in
# every pack of REPO that holds the 64 bytes there (FILE's chunks stored raw: random bytes);
# fails when no pack holds them
damage_stored() {
	python3 - "$@" <<'PY'
import os, sys
repo, f, off = sys.argv[1], sys.argv[2], int(sys.argv[3])
pat = open(f, "rb").read()[off:off + 64]
hit = 0
for d, _, names in os.walk(os.path.join(repo, "data")):
    for n in names:
        p = os.path.join(d, n)
        b = open(p, "rb").read()
        i = b.find(pat)
        if n.endswith(".pack") and i >= 0:
            with open(p, "r+b") as w:
                w.seek(i + 10)
                w.write(bytes([b[i + 10] ^ 0x40]))
            hit += 1
sys.exit(hit == 0)
PY
}

# damage_tree REPO TREE-ID: flip the last stored byte of that tree blob in its pack (a
# plain repository)
damage_tree() {
	python3 - "$1" "$2" <<'PY'
import glob, struct, sys
repo, tid = sys.argv[1], bytes.fromhex(sys.argv[2])
for p in glob.glob(repo + "/tree/*/*.pack"):
    d = open(p, "rb").read()
    count, foff = struct.unpack_from("<IQ", d, len(d) - 64 + 12)
    ents = [struct.unpack_from("<32sQ", d, foff + 56 * i) for i in range(count)]
    for i, (bid, off) in enumerate(ents):
        if bid == tid:
            end = ents[i + 1][1] if i + 1 < count else foff
            with open(p, "r+b") as f:
                f.seek(end - 1)
                b = f.read(1)
                f.seek(end - 1)
                f.write(bytes([b[0] ^ 0x5a]))
            sys.exit(0)
sys.exit("tree blob %s not found" % sys.argv[2])
PY
}

# ---- bkrfs mounts: the one way a test mounts ------------------------------------------
BKRFS_MOUNTS=()
BKRFS_PIDS=()
# bkrfs_stop_all: unmount and stop every mount of bkrfs_fg (the cleanup hook the first
# bkrfs_fg adds; registering it again is harmless)
bkrfs_stop_all() {
	local m p
	for m in "${BKRFS_MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null; }
	done
	for p in "${BKRFS_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait "${BKRFS_PIDS[@]}" 2>/dev/null
}
# bkrfs_fg REPO MNT ERRFILE [OPTIONS...]: bkrfs -f mounts REPO at MNT (made if missing) in
# the background ($DAEMON), its stderr in ERRFILE; returns once the mount serves (else the
# test ends, whatever its own fail does); unmounted and stopped at exit
bkrfs_fg() {
	local repo=$1 mnt=$2 err=$3
	shift 3
	[ ${#BKRFS_PIDS[@]} -gt 0 ] || cleanup_hooks+=(bkrfs_stop_all)
	mkdir -p "$mnt"
	rm -f "$T/ready"
	mkfifo "$T/ready"
	"$BKRFS" "$repo" "$mnt" -f --ready-fd=3 "$@" 3>"$T/ready" 2>"$err" &
	DAEMON=$!
	BKRFS_PIDS+=("$DAEMON")
	BKRFS_MOUNTS+=("$mnt")
	timeout 60 head -c1 "$T/ready" >/dev/null || { echo "FAIL: bkrfs did not become ready: $(cat "$err")" >&2; exit 1; }
}
# bkrfs_unmount MNT: unmount, and wait for $DAEMON to exit 0
bkrfs_unmount() {
	fusermount3 -u "$1" || fail "fusermount3 -u $1"
	wait "$DAEMON" || fail "bkrfs exited with $?"
}
# cache_report ERRFILE: the closing line of a foreground mount's disk cache
cache_report() { grep "cache .*requests" "$1" || fail "no cache report in $1: $(cat "$1")"; }
# expect_eio FILE: reading FILE fails with EIO
expect_eio() {
	python3 - "$1" <<'PY' || fail "reading $1 did not fail with EIO"
import errno, sys
try:
    open(sys.argv[1], "rb").read()
except OSError as e:
    sys.exit(0 if e.errno == errno.EIO else 1)
sys.exit(1)
PY
}

# manifest_as_id FROM TO ID: the manifest FROM written to TO as backup ID, its checksum sealed
# again (another backup under a copied id: what copy must name, never copy over)
manifest_as_id() {
	python3 - "$1" "$2" "$3" <<'PY'
import hashlib, json, re, sys
t = open(sys.argv[1]).read().rstrip()
t = t.replace('"backup_id":"%s"' % json.loads(t)["backup_id"], '"backup_id":"%s"' % sys.argv[3])
t = re.sub(r'"sha256":"[0-9a-f]{64}"}$', '"sha256":"' + "0" * 64 + '"}', t)
open(sys.argv[2], "w").write(t[:-66] + hashlib.sha256(t.encode()).hexdigest() + '"}')
PY
}
