#!/usr/bin/env bash
# Messages kept whole: repositories under ~2000-byte paths.  A message naming
# a path, or carrying another error's text, was cut where it was built into a
# fixed buffer (verify's unrecorded[1024]); the end, which says why, was lost.  Each check asserts the end
# of the message is there.
source "$(dirname "$0")/lib.sh"

seg() { printf "$1%.0s" {1..240}; }
# a path of ~1950 bytes under $T
long_path() { local p=$T/$1 c; for c in a b c d e f g h; do p=$p/$(seg "$c"); done; echo "$p"; }
backup_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$1"; }

mkdir -p "$T/src/d" && printf 'one\n' >"$T/src/d/f"

# --- verify: a result that cannot be recorded names why, whole ------------------------
A=$(long_path A)/repo
mkdir -p "${A%/repo}"
expect_exit 0 "$BKR" init -r "$A"
expect_exit 0 "$BKR" -r "$A" create --type full "$T/src" --json
id1=$(backup_id "$T/out")
# the first write of a verify is its record's
BKR_FAULT=write:1:enospc expect_exit 0 "$BKR" -r "$A" verify
grep -q "^bkr verify: warning: the result could not be recorded in the repository: write $A/records/.*: injected fault at write: No space left on device$" "$T/err" ||
	fail "verify cut why its record was not written: $(cat "$T/err")"
pass "verify names why its record was not written whole, under a ~2000-byte repository path"
