#!/usr/bin/env bash
# Faults (BKR_FAULT) under the commands that change a repository other than
# create (test_crash): each faulted run either does its work (exit 0) or
# fails with one line naming the file and a documented exit status; nothing
# the operator relies on (a key, a pin, a hold, a backup) is dropped, and a
# rerun completes.  Samples of the sweeps run by hand (the report of the
# session that added this file lists them).
source "$(dirname "$0")/lib.sh"

export BKR_TEST_KDF_N=1024

# --- key files that cannot be read (an I/O error) are not damaged key files:
# the read of the one key file a passphrase opens failing with EIO made every
# key command (and every command on the repository) say "wrong passphrase ...
# 1 damaged key file could not be tried" (exit 9), and key list / remove call
# it damaged; an I/O error says nothing about the key file or the passphrase
K=$T/keys
BKR_PASSWORD=pw "$BKR" init -r "$K" --encryption aes-256-gcm >/dev/null
echo pw2 >"$T/pw2"
echo pw3 >"$T/pw3"
BKR_PASSWORD=pw "$BKR" -q -r "$K" key add --new-password-file "$T/pw2" >/dev/null
nkeys() { ls "$K/keys" | grep -c '\.json$'; }
fired=0
for n in 1 2 3 4 5 6 7 8; do
	for cmd in "key add --new-password-file $T/pw3" "key list" "list"; do
		rc=0
		# shellcheck disable=SC2086
		BKR_FAULT=read:$n:eio BKR_PASSWORD=pw "$BKR" -q -r "$K" $cmd >"$T/out" 2>"$T/err" || rc=$?
		[ $rc = 0 ] && continue
		fired=$((fired + 1))
		[ $rc = 7 ] || fail "$cmd with read $n failing: exit $rc (not 7): $(cat "$T/err")"
		one_line_error
		grep -q "^bkr [a-z]*: read $K/[a-z.]*/*[0-9a-f]*\.json: injected fault at read" "$T/err" ||
			fail "$cmd with read $n failing: the message does not name the file: $(cat "$T/err")"
		grep -qi "damaged\|wrong passphrase" "$T/err" && fail "$cmd with read $n failing: $(cat "$T/err")"
	done
	# the key added when the fault came after the reads is one more key, never one less
	[ "$(nkeys)" -ge 2 ] || fail "read $n failing: a key file is gone"
done
[ $fired -ge 10 ] || fail "the read faults fired only $fired times"
BKR_PASSWORD=pw expect_exit 0 "$BKR" -r "$K" list
BKR_PASSWORD=pw2 expect_exit 0 "$BKR" -r "$K" list
pass "a key file that cannot be read is an I/O error naming it (exit 7), not a wrong passphrase or a damaged key"

# --- key passwd failing or killed at each write, fsync and rename: one of
# the two passphrases always opens, never zero keys; a rerun completes
echo pwN >"$T/pwN"
cp -a "$K" "$T/keys-start"
opens() { BKR_PASSWORD=$1 "$BKR" -r "$K" list >/dev/null 2>&1; }
for fault in write:1 fsync:1 fsync:2 fsync:3 rename:1; do
	for action in eio crash; do
		rm -rf "$K" && cp -a "$T/keys-start" "$K"
		rc=0
		BKR_FAULT=$fault:$action BKR_PASSWORD=pw "$BKR" -q -r "$K" key passwd --new-password-file "$T/pwN" >/dev/null 2>"$T/err" || rc=$?
		case $action:$rc in
		crash:137) ;;
		eio:7) one_line_error
			grep -q "injected fault" "$T/err" || fail "passwd $fault:$action: $(cat "$T/err")" ;;
		eio:0) ;; # the fault came after the work: the old key is gone, the new one opens
		*) fail "passwd $fault:$action: exit $rc: $(cat "$T/err")" ;;
		esac
		opens pw || opens pwN || fail "passwd $fault:$action: neither passphrase opens"
		opens pw2 || fail "passwd $fault:$action: the other key stopped opening"
		if opens pw; then
			BKR_PASSWORD=pw expect_exit 0 "$BKR" -q -r "$K" key passwd --new-password-file "$T/pwN"
		fi
		opens pwN && ! opens pw || fail "passwd $fault:$action: after the rerun pwN does not open, or pw still does"
		BKR_PASSWORD=pwN expect_exit 0 "$BKR" -q -r "$K" verify --read-data
	done
done
pass "key passwd failing or killed at each write, fsync and rename: a passphrase always opens; a rerun completes"

# --- repair: a directory tree it cannot read (an I/O error) was reported as
# "directory tree ID is not in the repository and no live copy was found: no
# intact copy exists", the error itself dropped: false, and alarming (found
# by a sweep of read:N:eio over repair of a repository with an index file
# lost).  An I/O error is no damage: repair stops with it, naming the file.
P=$T/rep
mkdir -p "$T/ws/d1/d2"
echo a >"$T/ws/d1/f"
echo b >"$T/ws/d1/d2/g"
"$BKR" -q init -r "$P"
"$BKR" -q create -r "$P" "$T/ws"
echo c >>"$T/ws/d1/f"
"$BKR" -q create -r "$P" "$T/ws"
rm "$P/index/$(ls "$P/index" | head -1)"
seen=0
for n in $(seq 1 60); do
	rc=0
	BKR_FAULT=read:$n:eio "$BKR" -r "$P" repair --dry-run >"$T/out" 2>"$T/err" || rc=$?
	case $rc in 0 | 7) ;; *) fail "repair --dry-run with read $n failing: exit $rc: $(cat "$T/err")" ;; esac
	grep -q "no intact copy\|could not be read" "$T/out" && fail "repair --dry-run with read $n failing: $(cat "$T/out")"
	grep -q "^bkr repair: blob [0-9a-f]\{64\}: read $P/tree/.*injected fault at read" "$T/err" && seen=$((seen + 1))
done
[ $seen -ge 1 ] || fail "no read fault met a directory tree of the walk (or its error was not said)"
expect_exit 0 "$BKR" -r "$P" repair
expect_exit 0 "$BKR" -r "$P" verify --read-data
pass "repair: a directory tree that cannot be read stops it with its error ($seen reads), not missing"

# --- prune in an ENCRYPTED repository: the leftovers of a prune (or any
# writer) that failed or was killed were never removed.  The encrypting store
# gave no file times, so every leftover pack and temporary was "of unknown
# age", taken for a young one and kept, grace period or not (found by a sweep
# of write:N:eio over prune --max-unused 0 of an encrypted repository: a rerun
# and 'prune --grace 0' kept the failed run's repacked pack, 42 KiB for ever).
E=$T/enc
mkdir -p "$T/ews"
BKR_PASSWORD=pw "$BKR" init -r "$E" --encryption aes-256-gcm >/dev/null
for i in 0 1 2; do
	head -c $((40000 + i * 1000)) /dev/urandom >"$T/ews/b$i"
	echo "v$i" >"$T/ews/c" # the deleted backup's pack is then part used: repacked
	rm -f "$T/ews/b$((i - 2))"
	BKR_PASSWORD=pw "$BKR" -q -r "$E" create "$T/ews" >/dev/null
done
BKR_PASSWORD=pw "$BKR" -q -r "$E" delete "$(BKR_PASSWORD=pw "$BKR" -r "$E" list --json |
	python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["backup_id"])')" >/dev/null
cp -a "$E" "$T/enc-start"
npacks() { find "$E/data" -name '*.pack' | wc -l; }
ntmp() { find "$E" -name '.tmp-*' | wc -l; }
BKR_PASSWORD=pw expect_exit 0 "$BKR" -r "$E" prune --grace 0 --max-unused 0
want=$(npacks)
left=0
for fault in write:2:eio write:4:eio write:5:eio write:2:crash write:4:crash; do
	rm -rf "$E" && cp -a "$T/enc-start" "$E"
	rc=0
	BKR_FAULT=$fault BKR_PASSWORD=pw "$BKR" -q -r "$E" prune --grace 0 --max-unused 0 >/dev/null 2>"$T/err" || rc=$?
	case $rc in 0 | 7 | 137) ;; *) fail "prune with $fault: exit $rc: $(cat "$T/err")" ;; esac
	[ "$(npacks)" -gt "$want" ] || [ "$(ntmp)" -gt 0 ] && left=$((left + 1))
	BKR_PASSWORD=pw expect_exit 0 "$BKR" -r "$E" prune --grace 0 --max-unused 0
	[ "$(npacks)" = "$want" ] || fail "prune with $fault, then a rerun: $(npacks) data packs, a fault-free run leaves $want"
	[ "$(ntmp)" = 0 ] || fail "prune with $fault, then a rerun: temporaries left: $(find "$E" -name '.tmp-*')"
	BKR_PASSWORD=pw expect_exit 0 "$BKR" -r "$E" verify --read-data
done
[ $left -ge 2 ] || fail "no faulted prune left a pack behind: the case is not exercised"
pass "encrypted: a failed or killed prune's leftovers are removed by the next prune ($left runs left one)"

# --- the trash-move and key-remove fault points name the file, as the real
# failure there (the first move into trash, the key file's delete) does;
# their injected message named only the point, so a sweep's "one line naming
# the file" check could not tell a caller that drops the name
D=$T/trm
mkdir -p "$T/tws"
echo a >"$T/tws/a"
"$BKR" -q init -r "$D"
"$BKR" -q create -r "$D" "$T/tws" >/dev/null
did=$("$BKR" -r "$D" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
rc=0
BKR_FAULT=trash-move:1:eio "$BKR" -q -r "$D" delete "$did" >/dev/null 2>"$T/err" || rc=$?
[ $rc = 7 ] || fail "delete with trash-move failing: exit $rc (not 7): $(cat "$T/err")"
one_line_error
grep -q "^bkr delete: move $D/backups/$did\.json to $D/trash/$did\.json: injected fault at trash-move" "$T/err" ||
	fail "delete with trash-move failing: the message does not name the file: $(cat "$T/err")"
expect_exit 0 "$BKR" -q -r "$D" delete "$did"
K=$T/krm
BKR_PASSWORD=pw "$BKR" init -r "$K" --encryption aes-256-gcm >/dev/null
BKR_PASSWORD=pw "$BKR" -q -r "$K" key add --new-password-file "$T/pw3" >/dev/null
k3=$(BKR_PASSWORD=pw3 "$BKR" -r "$K" key list --json | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["current"]][0])')
rc=0
BKR_FAULT=key-remove:1:eio BKR_PASSWORD=pw "$BKR" -q -r "$K" key remove "$k3" >/dev/null 2>"$T/err" || rc=$?
[ $rc = 7 ] || fail "key remove with key-remove failing: exit $rc (not 7): $(cat "$T/err")"
one_line_error
grep -q "^bkr key: delete $K/keys/$k3\.json: injected fault at key-remove" "$T/err" ||
	fail "key remove with key-remove failing: the message does not name the file: $(cat "$T/err")"
BKR_PASSWORD=pw3 expect_exit 0 "$BKR" -r "$K" list
BKR_PASSWORD=pw expect_exit 0 "$BKR" -q -r "$K" key remove "$k3"
pass "the trash-move and key-remove fault points name the file, as the real failure does"

# faulted START REPO SPEC WANT CMD...: REPO afresh from the copy START, then
# CMD with BKR_FAULT=SPEC (its output in $T/out and $T/err): it either runs
# through (exit 0; returns 1) or fails with exit 7 and one line matching WANT
# (returns 0); anything else fails the test
faulted() {
	local start=$1 repo=$2 spec=$3 want=$4 rc=0
	shift 4
	rm -rf "$repo" && cp -a "$start" "$repo"
	BKR_FAULT=$spec "$@" >"$T/out" 2>"$T/err" || rc=$?
	case $rc in
	0) return 1 ;;
	7) one_line_error
		grep -q "$want" "$T/err" || fail "${*:2} with $spec failing: $(cat "$T/err")" ;;
	*) fail "${*:2} with $spec failing: exit $rc: $(cat "$T/out" "$T/err")" ;;
	esac
}

# --- an index file's superseded list that cannot be read is an error: the
# header read failing with EIO was taken for "supersedes nothing", so the
# files it supersedes (left listed, here put back, their packs since pruned)
# were loaded as live, and create, deduplicating against their entries,
# wrote a backup whose chunk is in no pack, exit 0 (found by a sweep of
# read:N:eio over create with a merged index and the files it supersedes)
X=$T/sup
mkdir -p "$T/sws"
head -c 50000 /dev/urandom >"$T/sup-a"
cp "$T/sup-a" "$T/sws/a"
"$BKR" -q init -r "$X"
"$BKR" -q create -r "$X" "$T/sws" >/dev/null
rm "$T/sws/a"
echo b >"$T/sws/b"
"$BKR" -q create -r "$X" "$T/sws" >/dev/null
"$BKR" -q -r "$X" delete "$("$BKR" -r "$X" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')"
cp -a "$X/index" "$T/sup-index"
"$BKR" -q -r "$X" prune --grace 0 >/dev/null
cp -n "$T/sup-index"/* "$X/index/"
cp -a "$X" "$T/sup-start"
cp "$T/sup-a" "$T/sws/a"
# (reads 2-4: each of the three index files read whole by the open; under
# the lock they are read again only if the index changed, which it has not;
# read 1 is config.json, read 5 the parent's manifest)
fired=0
for n in $(seq 2 4); do
	faulted "$T/sup-start" "$X" read:$n:eio "^bkr create: read $X/index/[0-9a-f]*\.idx: injected fault at read" \
		"$BKR" -q -r "$X" create "$T/sws" && fired=$((fired + 1))
	expect_exit 0 "$BKR" -q -r "$X" verify --read-data
done
[ $fired -eq 3 ] || fail "the index reads failed only $fired times"
pass "an index file whose superseded list cannot be read fails the load (exit 7), never taken for one that supersedes nothing"

# --- an index file that cannot be read is an I/O error for every command
# that loads the index: one line naming it, exit 7 (the index was mapped, so
# a disk error in it was a SIGBUS, beyond the reach of fault points; it is
# read now, and tests/integration/test_mount_damage.sh has the mount's side)
Q=$T/ir
mkdir -p "$T/irws"
head -c 20000 /dev/urandom >"$T/irws/a"
"$BKR" -q init -r "$Q"
"$BKR" -q create -r "$Q" "$T/irws" >/dev/null
for cmd in "list" "restore latest --target $T/irt" "verify --read-data" "repair"; do
	rc=0
	# shellcheck disable=SC2086 # the words of cmd
	BKR_FAULT=index-read:1:eio "$BKR" -q -r "$Q" $cmd >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 7 ] || fail "$cmd with the index file unreadable: exit $rc (not 7): $(cat "$T/out" "$T/err")"
	one_line_error
	grep -q "^bkr [a-z]*: read $Q/index/[0-9a-f]\{64\}\.idx: injected fault at index-read" "$T/err" ||
		fail "$cmd with the index file unreadable: $(cat "$T/err")"
done
[ ! -e "$T/irt/irws" ] || fail "restore without its index restored something"
expect_exit 0 "$BKR" -q -r "$Q" verify --read-data
pass "an index file that cannot be read: list, restore, verify and repair fail with one line naming it (exit 7)"

# --- an I/O error reading a pack is not damage: verify --read-data reported
# a pack read failing with EIO as a problem of the pack ("pack read PATH:
# ...", exit 1), the file using it as damaged, and recorded its blob as
# damaged, so the routine's repair step would take it out of the index; repair
# re-reading a recorded blob took an EIO for proof of damage and dropped the
# intact blob from the index.  An I/O error may be transient: repair stops
# with it (exit 7, one line naming the file), judging nothing; verify names
# it as an I/O error and goes on, then exits 7 with one line naming it
V=$T/vio
mkdir -p "$T/vws"
head -c 300000 /dev/urandom >"$T/vws/big"
echo small >"$T/vws/small"
"$BKR" -q init -r "$V"
"$BKR" -q create -r "$V" "$T/vws" >/dev/null
cp -a "$V" "$T/vio-start"
packs=0
for n in $(seq 1 12); do
	faulted "$T/vio-start" "$V" read:$n:eio "^bkr verify: \(1 object could not be read: \)\?read $V/[^ ]*: injected fault at read" \
		"$BKR" -q -r "$V" verify --read-data && grep -q "\.pack: injected" "$T/err" && packs=$((packs + 1))
	grep -q "damaged" "$T/out" && fail "verify with read $n failing: $(cat "$T/out")"
done
[ $packs -ge 1 ] || fail "no read fault met a pack"
# a blob verify found damaged (recorded), intact again (a transient error):
# repair re-reads it; an EIO then stops repair, the blob stays in the index
pack=$(find "$V/data" -name '*.pack' | head -1)
cp "$pack" "$T/pack.good"
flip_byte_in_blob "$pack"
expect_exit 1 "$BKR" -r "$V" verify --read-data
cp "$T/pack.good" "$pack"
cp -a "$V" "$T/vio-rec"
stopped=0
for n in $(seq 10 24); do
	faulted "$T/vio-rec" "$V" read:$n:eio "^bkr repair: .*read $V/[^ ]*: injected fault at read" \
		"$BKR" -r "$V" repair && grep -q "^bkr repair: blob [0-9a-f]*: read $V/data/" "$T/err" && stopped=$((stopped + 1))
	expect_exit 0 "$BKR" -q -r "$V" verify --read-data
done
[ $stopped -ge 1 ] || fail "no read fault met the re-read of the recorded blob"
pass "a pack read failing with EIO is an I/O error for verify and stops repair (exit 7, naming the file), never damage nor a dropped blob"

# --- verify goes on past an I/O error: a pack on a bad sector stopped
# 'verify --read-data' at that pack (exit 7), so whatever else was wrong in
# the repository went unsaid until the pack was moved away by hand (a
# damaged pack read after the failing one was never reported).  The pack is
# named as an I/O error (not damage), counted apart, none of its blobs
# recorded as damaged, and the rest checked: the damage in another pack is
# reported and recorded, exit 7 (a manifest that cannot be read is one too:
# that backup goes unchecked).  Repair after it takes out the damaged
# blob only: the blobs of the pack that could not be read stay in the
# index.  Data packs are read, not mapped (a disk error in a mapped page
# kills with SIGBUS): the read faults meet them.
W=$T/vgo
mkdir -p "$T/gws1/d/e" "$T/gws2" "$T/gws3"
for i in 1 2 3; do head -c 200000 /dev/urandom >"$T/gws$i/f$i"; done
mv "$T/gws1/f1" "$T/gws1/d/e/f1"
"$BKR" -q init -r "$W"
"$BKR" -q create -r "$W" "$T/gws1" >/dev/null
dmg=$(find "$W/data" -name '*.pack')
"$BKR" -q create -r "$W" "$T/gws2" >/dev/null
"$BKR" -q create -r "$W" "$T/gws3" >/dev/null
flip_byte_in_blob "$dmg"
cp -a "$W" "$T/vgo-start"
# the newest verify record: "IO_ERRORS DAMAGED_BLOB..."
last_verify() {
	python3 - "$W/records" <<'PY'
import json, os, sys
d = sys.argv[1]
recs = [json.load(open(os.path.join(d, f))) for f in sorted(os.listdir(d)) if f.endswith(".json")]
v = [r for r in recs if r.get("kind") == "verify"][-1]
print(v.get("io_errors", 0), *v["damaged_blobs"])
PY
}
datapacks=0 treepacks=0 manifests=0 checked=""
for n in $(seq 1 40); do
	# the damage makes it exit 1, or 7 with one line (a stop, or I/O errors)
	rm -rf "$W" && cp -a "$T/vgo-start" "$W"
	rc=0
	BKR_FAULT=read:$n:eio "$BKR" -q -r "$W" verify --read-data >"$T/out" 2>"$T/err" || rc=$?
	case $rc in
	1) ;;
	7) one_line_error
		grep -q "^bkr verify: \(1 object could not be read: \)\?read $W/[^ ]*: injected fault at read" "$T/err" ||
			fail "verify with read $n failing: $(cat "$T/err")" ;;
	*) fail "verify --read-data with read $n failing: exit $rc: $(cat "$T/out" "$T/err")" ;;
	esac
	grep -q "^io-error" "$T/out" || continue
	[ $rc = 7 ] || fail "read $n failing: an I/O error said, but exit $rc: $(cat "$T/out")"
	io=$(grep "^io-error" "$T/out")
	[ "$(echo "$io" | wc -l)" = 1 ] || fail "read $n failing: more than one I/O error: $io"
	echo "$io" | grep -q "^io-error read $W/[^ ]*: injected fault at read: .*an I/O error, not damage" ||
		fail "read $n failing: $io"
	grep -q "^bkr verify: 1 object could not be read: read $W/[^ ]*: injected fault at read" "$T/err" ||
		fail "read $n failing: $(cat "$T/err")"
	case $io in
	"io-error read $dmg:"*) continue ;; # the damaged pack itself: nothing to judge it by
	"io-error read $W/data/"*) datapacks=$((datapacks + 1)) ;;
	"io-error read $W/tree/"*) treepacks=$((treepacks + 1)) ;;
	"io-error read $W/backups/"*) manifests=$((manifests + 1)) ;;
	esac
	# the damage in the other pack is still found, and it alone recorded
	chunk=$(sed -n "s|^blob $dmg: blob \([0-9a-f]\{64\}\): .*|\1|p" "$T/out")
	[ -n "$chunk" ] || fail "read $n failing: the damaged blob is not reported: $(cat "$T/out")"
	[ "$(last_verify)" = "1 $chunk" ] || fail "read $n failing: the record says $(last_verify), not 1 $chunk"
	case $io in
	"io-error read $W/backups/"*) continue ;; # maybe f1's backup, not walked
	esac
	grep -q "^damaged-file [^ ]* gws1/d/e/f1: chunk $chunk is damaged$" "$T/out" ||
		fail "read $n failing: the damaged file is not reported: $(cat "$T/out")"
	case $checked$io in "io-error read $W/data/"*) ;; *) continue ;; esac
	checked=$n
	# as JSON: the kind, counted apart from the errors
	rc=0
	rm -rf "$W" && cp -a "$T/vgo-start" "$W"
	BKR_FAULT=read:$n:eio "$BKR" -r "$W" verify --read-data --json >"$T/json" 2>"$T/err" || rc=$?
	[ $rc = 7 ] || fail "verify --json with read $n failing: exit $rc"
	python3 - "$T/json" "$W" <<'PY' || fail "verify --json with read $n failing: $(cat "$T/json")"
import json, sys
j = json.load(open(sys.argv[1]))
io = [p for p in j["problems"] if p["kind"] == "io-error"]
assert j["ok"] is False and j["io_errors"] == 1 and j["errors"] >= 1, j
assert len(io) == 1 and io[0]["error"] and io[0]["object"].startswith(sys.argv[2] + "/data/"), io
assert any(p["kind"] == "damaged-file" for p in j["problems"]), j
PY
	# the health report says both, the I/O error apart from the damage
	printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s"}\n' "$W" "$T" "$T/hlogs" >"$T/h.json"
	expect_exit 1 "$BKR" -c "$T/h.json" health
	grep -q "the last verify could not read 1 object (an I/O error, not damage" "$T/out" &&
		grep -q "^last verify: .*DAMAGE found, 1 object COULD NOT BE READ (I/O error)$" "$T/out" ||
		fail "health after verify with read $n failing: $(cat "$T/out")"
	# repair takes out the damaged blob only: the pack that could not be
	# read keeps its blobs in the index (verify then finds f1 alone)
	expect_exit 1 "$BKR" -q -r "$W" repair # f1 stays damaged
	rc=0
	"$BKR" -q -r "$W" verify --read-data >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 1 ] || fail "verify after repair: exit $rc: $(cat "$T/out" "$T/err")"
	grep -q "^damaged-file [^ ]* gws1/d/e/f1: chunk $chunk is damaged (bkr repair took it out" "$T/out" ||
		fail "verify after repair: $(cat "$T/out")"
	[ "$(grep -vc "^damaged-file [^ ]* gws1/d/e/f1:" "$T/out")" = 0 ] ||
		fail "verify after repair: more than f1: $(cat "$T/out")"
done
[ $datapacks -ge 1 ] && [ $treepacks -ge 1 ] && [ $manifests -ge 1 ] ||
	fail "the read faults met $datapacks other data packs, $treepacks tree packs, $manifests manifests"
[ -n "$checked" ] || fail "no read fault met another data pack"
pass "verify goes on past a pack that cannot be read: an I/O error named apart ($datapacks data, $treepacks tree packs, $manifests manifests), the damage elsewhere found and alone recorded, exit 7; repair keeps the unread pack's blobs"

# --- after a lost index, a pack the index does not name whose footer cannot
# be read (an I/O error): the files whose chunks are in it were reported as
# "missing from the index" (kind missing, counted as damaged files, alerted
# as damage), a directory tree in it as a damaged tree, as if their data
# were gone, though it may well be in that pack.  They are not checked: an
# I/O error naming the pack, exit 7.  The index lacks the pack here because
# a repair ran while it was away (as if its index file were lost)
U=$T/unx
mkdir -p "$T/uws/d"
head -c 300000 /dev/urandom >"$T/uws/d/a"
for folder in data tree; do
	rm -rf "$U"
	"$BKR" -q init -r "$U"
	"$BKR" -q create -r "$U" "$T/uws" >/dev/null
	upack=$(find "$U/$folder" -name '*.pack')
	mv "$upack" "$T/upack"
	expect_exit 1 "$BKR" -q -r "$U" repair
	mkdir -p "${upack%/*}" # repair removed its directory, empty
	mv "$T/upack" "$upack"
	rm -rf "$T/unx-start" && cp -a "$U" "$T/unx-start"
	expect_exit 1 "$BKR" -r "$U" verify # the pack read: it holds what the index lacks
	grep -q "^[a-z]* [^ ]* [^ ]*: .* (it is in $upack, which the index does not name)$" "$T/out" ||
		fail "verify with the index lacking a $folder pack: $(cat "$T/out")"
	seen=0
	for n in $(seq 1 20); do
		rm -rf "$U" && cp -a "$T/unx-start" "$U"
		rc=0
		BKR_FAULT=read:$n:eio "$BKR" -q -r "$U" verify >"$T/out" 2>"$T/err" || rc=$?
		grep -q "^io-error read $upack:" "$T/out" || continue
		[ $rc = 7 ] || fail "verify with the footer of $upack failing: exit $rc: $(cat "$T/out" "$T/err")"
		one_line_error
		! grep -q "^missing \|^damaged-file \|^tree " "$T/out" || fail "verify with the footer of $upack failing: $(cat "$T/out")"
		grep -q "^io-error [^ ]* [^ ]*: .*[0-9a-f]\{64\} is not checked: not in the index, it may be in $upack, a pack the index does not name that could not be read" "$T/out" ||
			fail "verify with the footer of $upack failing: $(cat "$T/out")"
		# one object could not be read: io_errors counts it once; the files
		# and trees it left unchecked are counted apart (they counted as
		# more I/O errors: "3 objects could not be read" for one pack)
		grep -q "^bkr verify: 1 object could not be read: read $upack:" "$T/err" ||
			fail "verify with the footer of $upack failing counts more than one object: $(cat "$T/err")"
		rm -rf "$U" && cp -a "$T/unx-start" "$U"
		rc=0
		BKR_FAULT=read:$n:eio "$BKR" -r "$U" verify --json >"$T/json" 2>"$T/err" || rc=$?
		[ $rc = 7 ] || fail "verify --json with the footer of $upack failing: exit $rc"
		python3 - "$T/json" "$upack" <<'PY' || fail "verify --json with the footer of $upack failing: $(cat "$T/json")"
import json, sys
j = json.load(open(sys.argv[1]))
io = [p for p in j["problems"] if p["kind"] == "io-error"]
objects = [p for p in io if p["object"] == sys.argv[2]]
assert j["io_errors"] == 1 and len(objects) == 1 and not objects[0].get("backup_id"), j
assert j["unchecked"] >= 1 and len(io) == 1 + j["unchecked"], j
assert all(p.get("backup_id") and p.get("path") for p in io if p is not objects[0]), io
PY
		rm -rf "$U" && cp -a "$T/unx-start" "$U"
		rc=0
		BKR_FAULT=read:$n:eio "$BKR" -r "$U" verify >"$T/out" 2>"$T/err" || rc=$?
		[ $rc = 7 ] && grep -q "^verify FAILED: .*; 0 errors, 1 I/O error ([0-9]* files\? or trees\? not checked for it), 0 leftovers$" "$T/err" ||
			fail "the summary does not count the unchecked files apart (exit $rc): $(cat "$T/err")"
		seen=$((seen + 1))
	done
	[ $seen -ge 1 ] || fail "no read fault met the footer of the $folder pack the index does not name"
	expect_exit 0 "$BKR" -q -r "$U" repair
	expect_exit 0 "$BKR" -q -r "$U" verify --read-data
done
pass "a pack the index does not name that cannot be read: the files and trees it may hold are not checked (an I/O error), never missing or damaged"

# --- a place that cannot say whether it holds a pack (its stat failing with
# EIO, BKR_FAULT stat) is no proof the pack is gone: repair took it for
# "missing from every tier and trash" and dropped its index entries, and a
# tree pack so for "directory tree ... is not in the repository ...: no
# intact copy exists"; verify, when the second look failed too, for a pack
# "missing from every tier and trash" whose blobs it recorded as damaged.
# Repair stops with the error (exit 7, one line naming the file); verify
# names it as an I/O error.  The index names a pack in the trash here
S=$T/stat
mkdir -p "$T/stws"
head -c 300000 /dev/urandom >"$T/stws/a"
"$BKR" -q init -r "$S"
"$BKR" -q create -r "$S" "$T/stws" >/dev/null
spack=$(find "$S/data" -name '*.pack')
mkdir -p "$S/trash"
mv "$spack" "$S/trash/"
rm -rf "$T/stat-start" && cp -a "$S" "$T/stat-start"
seen=0
for n in $(seq 1 14); do
	for cmd in "repair --dry-run" "verify"; do
		rm -rf "$S" && cp -a "$T/stat-start" "$S"
		rc=0
		# shellcheck disable=SC2086 # the words of cmd
		BKR_FAULT=stat:$n:eio,stat:$((n + 1)):eio,stat:$((n + 2)):eio "$BKR" -q -r "$S" $cmd >"$T/out" 2>"$T/err" || rc=$?
		[ $rc = 0 ] && continue
		[ $rc = 7 ] || fail "$cmd with stats $n-$((n + 2)) failing: exit $rc: $(cat "$T/out" "$T/err")"
		one_line_error
		grep -q "injected fault at stat" "$T/err" || fail "$cmd with stats $n-$((n + 2)) failing: $(cat "$T/err")"
		! grep -q "missing\|no intact copy\|damaged" "$T/out" || fail "$cmd with stats $n-$((n + 2)) failing: $(cat "$T/out")"
		grep -q "$S/trash/[0-9a-f]*\.pack: injected fault at stat" "$T/err" && seen=$((seen + 1))
	done
done
[ $seen -ge 2 ] || fail "the stat faults met the pack in the trash $seen times"
expect_exit 0 "$BKR" -q -r "$S" repair
expect_exit 0 "$BKR" -q -r "$S" verify --read-data
pass "a pack whose place cannot be looked at (stat failing with EIO) is not missing: repair stops, verify says an I/O error ($seen runs)"

# --- the weekly routine's verify goes on the same way: the pack that cannot
# be read fails the step (its message names it) and is no damaged object;
# the damage in the other pack is still alerted (as damage, saying the I/O
# error too) and repaired.  Before, the step stopped at the I/O error and
# the damage went unsaid; counted among the damaged objects, the unread
# pack would have been named as damage in the alert.
mkdir -p "$T/gbin"
printf '#!/bin/sh\n{ cat; echo; } >>"$1"\n' >"$T/gbin/alert.sh"
chmod +x "$T/gbin/alert.sh"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "alert_command": ["%s", "%s"], "sources": [{"name": "g", "paths": ["gws2"], "schedule": "manual"}]}\n' \
	"$W" "$T" "$T/glogs" "$T/gbin/alert.sh" "$T/galerts.log" >"$T/g.json"
seen=""
for n in $(seq 1 60); do
	rm -rf "$W" "$T/glogs" && cp -a "$T/vgo-start" "$W" && : >"$T/galerts.log"
	rc=0
	BKR_FAULT=read:$n:eio "$BKR" -c "$T/g.json" --json routine weekly >"$T/out" 2>"$T/err" || rc=$?
	grep -q '"step":"verify","status":"failed"[^}]*could not be read: read '"$W"'/data/' "$T/out" || continue
	grep -q "could not be read: read $dmg:" "$T/out" && continue
	seen=$n
	[ $rc = 6 ] || fail "weekly routine with read $n failing: exit $rc: $(cat "$T/out" "$T/err")"
	python3 - "$T/out" "$T/galerts.log" "$dmg" <<'PY' || fail "weekly routine with read $n failing: $(cat "$T/out" "$T/galerts.log")"
import json, sys
out = json.load(open(sys.argv[1]))
v = out["verify"]
assert v["io_errors"] == 1 and v["errors"] >= 1, v
assert all("/data/" not in o or o == sys.argv[3] for o in v["damaged_objects"]), v
ev = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
d = [e for e in ev if e["kind"] == "damage"]
assert len(d) == 1 and "could not be read: read " in d[0]["message"] and "an I/O error, not damage" in d[0]["message"], ev
steps = {s["step"]: s["status"] for s in out["steps"]}
assert steps["repair"] != "skipped", steps
PY
	break
done
[ -n "$seen" ] || fail "no read fault met another data pack in the weekly routine's verify"
pass "the weekly routine's verify: a pack that cannot be read fails the step as an I/O error (read $seen), the damage elsewhere is alerted and repaired"

# --- an fsync failing after the work is done says what happened: create
# whose fsync of backups/ (after the manifest is linked in place) failed
# said only 'fsync REPO/backups: ...', exit 7, the backup listed; delete
# whose fsync of backups/ (after the manifest moved to the trash) failed
# said the same, and its rerun 'no such backup'.  The message now says the
# file is in place (moved) but may not be on disk, and the rerun of delete
# that it is already deleted
F=$T/fs
mkdir -p "$T/fws"
echo a >"$T/fws/a"
"$BKR" -q init -r "$F"
cp -a "$F" "$T/fs-start"
nb() { "$BKR" -r "$F" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
inplace=0
for n in $(seq 1 10); do
	rm -rf "$F" && cp -a "$T/fs-start" "$F"
	rc=0
	BKR_FAULT=fsync:$n:eio "$BKR" -q -r "$F" create "$T/fws" >/dev/null 2>"$T/err" || rc=$?
	case $rc in
	0) [ "$(nb)" = 1 ] || fail "create with fsync $n failing: exit 0 and $(nb) backups" ;;
	7) one_line_error
		if grep -q "^bkr create: $F/backups/backup_[a-z0-9_]*\.json is in place, but may not be on disk: fsync $F/backups: injected fault" "$T/err"; then
			inplace=$((inplace + 1))
			[ "$(nb)" = 1 ] || fail "create with fsync $n failing: says the backup is in place, $(nb) listed"
		else
			[ "$(nb)" = 0 ] || fail "create with fsync $n failing: $(cat "$T/err"), yet a backup is listed"
		fi ;;
	*) fail "create with fsync $n failing: exit $rc: $(cat "$T/err")" ;;
	esac
	expect_exit 0 "$BKR" -q -r "$F" create "$T/fws"
	expect_exit 0 "$BKR" -q -r "$F" verify
done
[ $inplace = 1 ] || fail "the fsync after the manifest's link failed in $inplace runs (not 1)"
"$BKR" -q -r "$F" create "$T/fws" >/dev/null
cp -a "$F" "$T/fs-two"
left=$(($(nb) - 1))
did=$("$BKR" -r "$F" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
moved=0
for n in $(seq 1 6); do
	rm -rf "$F" && cp -a "$T/fs-two" "$F"
	rc=0
	BKR_FAULT=fsync:$n:eio "$BKR" -q -r "$F" delete "$did" >/dev/null 2>"$T/err" || rc=$?
	case $rc in 0 | 7) ;; *) fail "delete with fsync $n failing: exit $rc: $(cat "$T/err")" ;; esac
	if [ $rc = 0 ] || grep -q "^bkr delete: $F/backups/$did\.json is moved to $F/trash/$did\.json, but that may not be on disk: fsync $F/backups: injected fault" "$T/err"; then
		[ $rc = 0 ] || moved=$((moved + 1))
		expect_exit 3 "$BKR" -q -r "$F" delete "$did"
		grep -q "^bkr delete: backup $did: already deleted (its manifest is in the trash" "$T/err" ||
			fail "delete after delete with fsync $n failing: $(cat "$T/err")"
	else
		[ $rc = 7 ] && one_line_error
		expect_exit 0 "$BKR" -q -r "$F" delete "$did"
	fi
	[ "$(nb)" = $left ] || fail "delete with fsync $n failing, then a rerun: $(nb) backups, not $left"
done
[ $moved = 1 ] || fail "the fsync after the manifest's move failed in $moved runs (not 1)"
pass "an fsync failing after create's or delete's work is done says so (in place or moved, may not be on disk); a rerun of delete says it is already deleted"

# --- a -c configuration whose first read fails: the log's read of it (for
# log_dir) failing with EIO was ignored and the command read it again, so a
# create ran with exit 0 while its log went to the default directory, not the
# configuration's log_dir.  One read decides: the command fails with its error
C=$T/cf
mkdir -p "$T/cws" "$T/clogs"
echo a >"$T/cws/a"
"$BKR" -q init -r "$C"
printf '{"repository": "%s", "workspace_root": "%s", "log_dir": "%s", "sources": [{"name": "w", "paths": ["."]}]}\n' \
	"$C" "$T/cws" "$T/clogs" >"$T/cf.json"
rc=0
BKR_FAULT=read:1:eio "$BKR" -q -c "$T/cf.json" create >/dev/null 2>"$T/err" || rc=$?
[ $rc = 7 ] || fail "create -c with the configuration's first read failing: exit $rc (not 7): $(cat "$T/err")"
one_line_error
grep -q "^bkr create: cannot read configuration: read $T/cf.json: injected fault at read" "$T/err" ||
	fail "create -c with the configuration's first read failing: $(cat "$T/err")"
[ -z "$(ls "$C/backups")" ] || fail "create -c with the configuration unread made a backup"
expect_exit 0 "$BKR" -q -c "$T/cf.json" create
grep -q '"event":"end"' "$T"/clogs/bkr-*.log || fail "the rerun did not log to the configuration's log_dir"
pass "a configuration whose first read fails with EIO fails the command (exit 7), never read again with the log elsewhere"

# restore_sweep REPO LAST WHAT TWICE NAMED [PATH]: `restore latest [PATH]` of REPO with three
# reads in a row failing, from the 3rd on through the LAST-th: each exits 0, 4, 6 or 7, and no
# error line matches TWICE (WHAT named twice); $named counts the runs whose error matches NAMED
restore_sweep() {
	local repo=$1 last=$2 what=$3 twice=$4 want=$5 n rc
	shift 5
	named=0
	for n in $(seq 3 "$last"); do
		rm -rf "$T/rst"
		rc=0
		BKR_FAULT=read:$n:eio,read:$((n + 1)):eio,read:$((n + 2)):eio "$BKR" -r "$repo" restore latest "$@" \
			--target "$T/rst" >/dev/null 2>"$T/err" || rc=$?
		case $rc in 0 | 4 | 6 | 7) ;; *) fail "restore of $what with reads $n-$((n + 2)) failing: exit $rc: $(cat "$T/err")" ;; esac
		! grep -q "$twice" "$T/err" || fail "restore names $what twice: $(cat "$T/err")"
		if grep -q "$want" "$T/err"; then
			named=$((named + 1))
		fi
	done
}

# --- restore's line about a root tree that cannot be read said "root
# directory: root directory: blob ..." when the read failed in its walk (after
# its own first look at the root had passed): the walk's message named the
# directory, and so did the line
G=$T/rdr
mkdir -p "$T/rdws"
echo a >"$T/rdws/a"
"$BKR" -q init -r "$G"
"$BKR" -q create -r "$G" "$T/rdws" >/dev/null
restore_sweep "$G" 9 "the root directory" "root directory: root directory" "root directory: blob [0-9a-f]*: read $G/tree/"
[ $named -ge 2 ] || fail "the root tree's read failed in $named runs (not the two: restore's look, its walk)"
pass "a root tree that cannot be read: restore names it once"

# --- the same for a PATH: restore's line named it twice ('ws/sub: path 'ws/sub': blob ...')
# when a tree on its way failed to read after restore's own first look had passed
H=$T/rpath
mkdir -p "$T/rpws/sub"
echo a >"$T/rpws/a"
echo b >"$T/rpws/sub/b"
"$BKR" -q init -r "$H"
"$BKR" -q create -r "$H" "$T/rpws" >/dev/null
restore_sweep "$H" 14 rpws/sub "path 'rpws/sub'" "^bkr restore: rpws/sub: blob [0-9a-f]*: read $H/tree/" rpws/sub
[ $named -ge 2 ] || fail "a tree on the way to rpws/sub failed to read in $named runs (not the two: resolving it, walking it)"
pass "a PATH whose trees cannot be read: restore names it once"

# --- a pack publish that fails (ENOSPC, EIO at the link or the fsync) left
# the data/XX or tree/XX directory it made behind, empty: the publish now
# removes it (rmdir: one another writer published into meanwhile stays), and
# prune and repair remove the empty ones an older version left
PD=$T/emptydirs
mkdir -p "$T/esrc"
for i in 1 2 3 4 5 6; do head -c 70000 /dev/urandom >"$T/esrc/f$i"; done
pack_dirs() { find "$PD/data" "$PD/tree" -mindepth 1 -type d "$@" | sort; }
for fault in rename:1:enospc rename:2:eio fsync:1:eio fsync:2:enospc; do
	rm -rf "$PD" && "$BKR" -q init -r "$PD"
	rc=0
	BKR_FAULT=$fault "$BKR" -q -r "$PD" create "$T/esrc" >/dev/null 2>"$T/err" || rc=$?
	[ $rc = 7 ] || fail "create with $fault: exit $rc (not 7): $(cat "$T/err")"
	one_line_error
	grep -q "^bkr create: publish pack \(data\|tree\)/[0-9a-f]\{2\}/[0-9a-f]*\.pack: .*injected fault at" "$T/err" ||
		fail "create with $fault: the fault did not fail a pack's publish: $(cat "$T/err")"
	[ -z "$(pack_dirs -empty)" ] || fail "create with $fault left empty pack directories: $(pack_dirs -empty)"
done
expect_exit 0 "$BKR" -q -r "$PD" create "$T/esrc"
expect_exit 0 "$BKR" -q -r "$PD" verify --read-data
full=$(pack_dirs)
[ -n "$full" ] || fail "no pack directories after a backup"
# the empty pack directories a failed publish of an older version left
made=()
for root in data tree; do
	for x in 00 01 02 03 04 05; do
		[ -e "$PD/$root/$x" ] && continue
		mkdir "$PD/$root/$x" && made+=("$PD/$root/$x") && break
	done
done
[ ${#made[@]} = 2 ] || fail "could not make two empty pack directories"
expect_exit 0 "$BKR" -q -r "$PD" prune --dry-run
[ "$(pack_dirs -empty)" = "$(printf '%s\n' "${made[@]}" | sort)" ] || fail "prune --dry-run changed the pack directories: $(pack_dirs)"
expect_exit 0 "$BKR" -q -r "$PD" prune
[ -z "$(pack_dirs -empty)" ] || fail "prune left empty pack directories: $(pack_dirs -empty)"
[ "$(pack_dirs)" = "$full" ] || fail "prune removed a pack directory that holds packs: $(pack_dirs)"
mkdir "${made[@]}"
expect_exit 0 "$BKR" -q -r "$PD" repair
[ -z "$(pack_dirs -empty)" ] || fail "repair left empty pack directories: $(pack_dirs -empty)"
[ "$(pack_dirs)" = "$full" ] || fail "repair removed a pack directory that holds packs: $(pack_dirs)"
expect_exit 0 "$BKR" -q -r "$PD" verify --read-data
pass "a pack publish that fails leaves no empty pack directory; prune and repair remove the empty ones"
