#!/usr/bin/env bash
# Backups racing cleanup and prune (issue 11, "Concurrency"): a backup that
# starts while cleanup/prune holds the exclusive lock waits for it and then
# dedups only against what is left (never a blob prune removed); a cleanup
# that starts while a backup runs waits for the backup; --no-wait fails at
# once (exit 5); and backups started at random instants beside a cleanup all
# complete, verify and restore exactly.
source "$(dirname "$0")/lib.sh"

R=$T/repo
ws=$T/ws
mkdir -p "$ws/docs" "$T/gold"
new_repo

# gold_of ID: the golden copy of a backup (made before it started)
n=0
backup() { # backup LABEL [args...]: a backup of $ws whose gold copy is $T/gold/LABEL
	local label=$1
	shift
	cp -a "$ws" "$T/gold/$label"
	"$BKR" -r "$R" create "$ws" "$@" --json >"$T/$label.json" 2>"$T/$label.err"
}
id_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/$1.json"; }

# restore_exact LABEL: the backup made as LABEL restores to its golden copy
restore_exact() {
	local id
	id=$(id_of "$1")
	rm -rf "$T/restore"
	expect_exit 0 "$BKR" -r "$R" restore "$id" --target "$T/restore"
	python3 "$HERE/treecmp.py" "$T/gold/$1" "$T/restore/ws" --no-dir-mtime >/dev/null ||
		fail "backup $1 ($id) does not restore exactly"
}

# Ten backups, each adding a file and dropping an old one, so that cleanup
# frees data a later backup could want again (blob-2 comes back below).
for i in $(seq 0 9); do
	head -c 150000 /dev/urandom >"$ws/docs/blob-$i.bin"
	[ "$i" -lt 3 ] || mv "$ws/docs/blob-$((i - 3)).bin" "$T/saved-$((i - 3)).bin"
	backup "b$i" || fail "backup $i: $(cat "$T/b$i.err")"
done
policy=(--keep-last 2)

# --- a backup started while cleanup holds the exclusive lock waits -------------
# cleanup stops (SIGSTOP, from inside) at its first rename: it holds the lock
# and has moved nothing yet.  The backup brings back a file only removed
# backups used: its blobs are exactly what prune frees.
mv "$T/saved-2.bin" "$ws/docs/blob-2.bin"
BKR_FAULT=rename:1:stop "$BKR" -q -r "$R" cleanup "${policy[@]}" >"$T/cleanup.out" 2>"$T/cleanup.err" &
cpid=$!
wait_stopped "$cpid" || fail "cleanup did not stop at its first rename: $(cat "$T/cleanup.err")"
expect_exit 5 "$BKR" -r "$R" create "$ws" --no-wait
one_line_error
backup racer &
bpid=$!
wait_line "$T/racer.err" "waiting" "$bpid" || fail "the backup does not say it waits for the cleanup: $(cat "$T/racer.err")"
kill -0 "$bpid" 2>/dev/null || fail "the backup did not wait for the cleanup"
kill -CONT "$cpid"
wait "$cpid" || fail "cleanup failed: $(cat "$T/cleanup.err")"
wait "$bpid" || fail "the backup failed: $(cat "$T/racer.err")"
expect_exit 0 "$BKR" -r "$R" verify --read-data
restore_exact racer
restore_exact b9
pass "a backup started during cleanup waits, then stores again what prune freed; --no-wait fails at once"

# --- a cleanup started while a backup runs waits for it ------------------------
head -c 150000 /dev/urandom >"$ws/docs/late.bin"
cp -a "$ws" "$T/gold/slow"
BKR_FAULT=write:1:stop "$BKR" -r "$R" create "$ws" --json >"$T/slow.json" 2>"$T/slow.err" &
bpid=$!
wait_stopped "$bpid" || fail "the backup did not stop at its first write"
expect_exit 5 "$BKR" -r "$R" cleanup "${policy[@]}" --no-wait
"$BKR" -r "$R" cleanup "${policy[@]}" >"$T/cleanup.out" 2>"$T/cleanup.err" &
cpid=$!
wait_line "$T/cleanup.err" "waiting" "$cpid" || fail "cleanup does not say it waits for the backup: $(cat "$T/cleanup.err")"
kill -CONT "$bpid"
wait "$bpid" || fail "the backup failed: $(cat "$T/slow.err")"
wait "$cpid" || fail "cleanup failed: $(cat "$T/cleanup.err")"
expect_exit 0 "$BKR" -r "$R" verify --read-data
restore_exact slow
pass "a cleanup started during a backup waits for it; the backup is complete and kept"

# --- backups at random instants beside cleanups ----------------------------------
rounds=${BKR_RACE_ROUNDS:-3}
for r in $(seq 1 "$rounds"); do
	head -c 150000 /dev/urandom >"$ws/docs/round-$r.bin"
	rm -f "$ws/docs/round-$((r - 1)).bin"
	"$BKR" -q -r "$R" cleanup --keep-last 1 >/dev/null 2>"$T/cleanup.err" &
	cpid=$!
	sleep "$(python3 -c 'import random; print(random.uniform(0, 0.2))')"
	backup "race$r" &
	bpid=$!
	wait "$cpid" || fail "round $r: cleanup failed: $(cat "$T/cleanup.err")"
	wait "$bpid" || fail "round $r: the backup failed: $(cat "$T/race$r.err")"
	expect_exit 0 "$BKR" -r "$R" verify --read-data
	# the backup may have run before the cleanup (and been removed by it) or after
	if grep -q "$(id_of "race$r")" <("$BKR" -r "$R" list --json); then
		restore_exact "race$r"
	fi
done
pass "$rounds backups racing cleanups: every remaining backup verifies and restores exactly"

# --- readers racing a backup, a merge and a migration ----------------------------
# Each reader stops (SIGSTOP, from inside) at a read of its own while the other
# command runs, then goes on; the stop points were chosen so that, before the
# fixes, each one failed.
R2=$T/repo-readers
ws2=$T/ws2
mkdir -p "$ws2"
echo one >"$ws2/a"
expect_exit 0 "$BKR" init -q -r "$R2"
expect_exit 0 "$BKR" init -q -r "$T/repo-copy"
expect_exit 0 "$BKR" -q -r "$R2" create "$ws2"

# a backup commits after the readers loaded the index (at open) and before they
# list the backups: verify, copy, restore latest and ls latest take it whole
pids=()
BKR_FAULT=read:2:stop "$BKR" -r "$R2" verify >"$T/rv.out" 2>"$T/rv.err" & pids+=($!)
BKR_FAULT=read:2:stop "$BKR" -q copy --from "$R2" --to "$T/repo-copy" >"$T/rc.out" 2>"$T/rc.err" & pids+=($!)
BKR_FAULT=read:2:stop "$BKR" -q -r "$R2" restore latest --target "$T/rr" >"$T/rr.out" 2>"$T/rr.err" & pids+=($!)
BKR_FAULT=read:2:stop "$BKR" -r "$R2" ls -R latest >"$T/rl.out" 2>"$T/rl.err" & pids+=($!)
for p in "${pids[@]}"; do wait_stopped "$p" || fail "a reader did not stop at its second read"; done
echo two >"$ws2/b"
expect_exit 0 "$BKR" -q -r "$R2" create "$ws2"
kill -CONT "${pids[@]}"
for i in 0 1 2 3; do
	wait "${pids[$i]}" || fail "reader $i failed: $(cat "$T/rv.err" "$T/rc.err" "$T/rr.err" "$T/rl.err")"
done
grep -q "^verify ok: 2 backups" "$T/rv.err" || fail "verify: $(cat "$T/rv.err")"
diff -r "$ws2" "$T/rr/ws2" || fail "restore latest did not restore the new backup"
grep -qx "ws2/b" "$T/rl.out" || fail "ls latest: $(cat "$T/rl.out")"
[ "$("$BKR" -r "$T/repo-copy" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ] ||
	fail "copy did not copy both backups"
pass "a backup committing while readers open: verify, copy, restore latest and ls latest take it whole"

# an index file merged away between the listing and its read: the load lists again
for i in 3 4; do echo "$i" >"$ws2/c$i"; expect_exit 0 "$BKR" -q -r "$R2" create "$ws2"; done
BKR_FAULT=read:3:stop "$BKR" -r "$R2" ls latest >"$T/rl.out" 2>"$T/rl.err" &
lpid=$!
wait_stopped "$lpid" || fail "ls did not stop at its third read"
expect_exit 0 "$BKR" -q -r "$R2" prune
kill -CONT "$lpid"
wait "$lpid" || fail "ls failed while prune merged the index: $(cat "$T/rl.err")"
grep -qx "ws2/" "$T/rl.out" || fail "ls latest: $(cat "$T/rl.out")"
pass "an index file merged away while a reader loads the index: the reader lists again"

# repair waiting for the first migration: it searches the tier the migration recorded
mkdir -p "$T/warm2" "$T/cold2"
head -c 3000000 /dev/urandom >"$ws2/big"
expect_exit 0 "$BKR" -q -r "$R2" create "$ws2"
cat >"$T/tiers2.json" <<EOF
{"repository": "$R2", "workspace_root": "$ws2",
 "tiers": {"warm": {"path": "$T/warm2", "after_days": 0}, "cold": {"path": "$T/cold2", "after_days": 0}}}
EOF
BKR_FAULT=rename:1:stop "$BKR" -q -c "$T/tiers2.json" tier migrate >/dev/null 2>"$T/tm.err" &
tpid=$!
wait_stopped "$tpid" || fail "migrate did not stop at its first rename"
"$BKR" -r "$R2" repair >"$T/rp.out" 2>"$T/rp.err" &
rpid=$!
# repair has opened the repository (no tier recorded yet) and waits for the
# lock: it says so (a fixed sleep here let a slow repair start after the
# migration, and the race went untested)
wait_line "$T/rp.err" "waiting" "$rpid" || fail "repair does not say it waits for the migration: $(cat "$T/rp.err")"
kill -CONT "$tpid"
wait "$tpid" || fail "migrate failed: $(cat "$T/tm.err")"
wait "$rpid" || fail "repair after the first migration: $(cat "$T/rp.out" "$T/rp.err")"
expect_exit 0 "$BKR" -r "$R2" verify --read-data
expect_exit 0 "$BKR" -q -r "$R2" restore latest --target "$T/rr2"
diff -r "$ws2" "$T/rr2/ws2" || fail "restore after repair and migration differs"
pass "a repair that waited for the first migration keeps the packs it moved"

# --- a recovery run stored while prune holds the lock waits for it ----------
# (it took no lock: a delete + prune beside it could free the blobs its run
# deduped against, leaving a stored run whose files read EIO)
rws=$T/rws
mkdir -p "$rws/d"
head -c 200000 /dev/urandom >"$rws/d/big.bin"
cp "$rws/d/big.bin" "$T/big.gold"
cat >"$T/rcfg.json" <<EOF
{"repository": "$R2", "workspace_root": "$rws", "recovery": {"staging_dir": "$T/staged"}}
EOF
expect_exit 0 "$BKR" -q -c "$T/rcfg.json" create
old=$("$BKR" -r "$R2" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
expect_exit 0 "$BKR" -q -r "$R2" delete "$old"
rm "$rws/d/big.bin"
BKR_FAULT=rename:1:stop "$BKR" -q -r "$R2" prune --grace 0 >/dev/null 2>"$T/pr.err" &
ppid=$!
wait_stopped "$ppid" || fail "prune did not stop at its first rename: $(cat "$T/pr.err")"
"$BKR" -v -c "$T/rcfg.json" recover --file d/big.bin >"$T/rec.out" 2>"$T/rec.err" &
rpid=$!
while kill -0 "$rpid" 2>/dev/null && ! grep -q "waiting for a running prune" "$T/rec.err"; do sleep 0.02; done
grep -q "waiting for a running prune" "$T/rec.err" || fail "recover stored its run while prune held the lock: $(cat "$T/rec.err")"
kill -CONT "$ppid"
wait "$ppid" || fail "prune failed: $(cat "$T/pr.err")"
wait "$rpid" || fail "recover after the prune: $(cat "$T/rec.err")"
expect_exit 0 "$BKR" -c "$T/rcfg.json" recovered latest --json
json_assert "$T/out" 'r["files"][0]["status"] == "recovered"' ||
	fail "the run does not say recovered: $(cat "$T/out")"
expect_exit 0 "$BKR" -q -r "$R2" prune --grace 0
expect_exit 0 "$BKR" -r "$R2" verify --read-data
pass "a recovery run waits for a prune that holds the lock"

# --- two backups of the same new data at once: one prune drops the duplicate packs
R3=$T/repo-dup
dws=$T/dupws
mkdir -p "$dws/d"
head -c 3000000 /dev/urandom >"$dws/d/big.bin"
head -c 50000 /dev/urandom >"$dws/small.bin"
expect_exit 0 "$BKR" init -r "$R3"
# the first stops at its first write (shared lock held, the index read without the second's blobs);
# the second stores the same blobs and publishes; then the first stores them again in packs of its own
BKR_FAULT=write:1:stop "$BKR" -q -r "$R3" create --type full "$dws" >/dev/null 2>"$T/dup1.err" &
dpid=$!
wait_stopped "$dpid" || fail "the first backup did not stop at its first write: $(cat "$T/dup1.err")"
expect_exit 0 "$BKR" -q -r "$R3" create --type full "$dws"
kill -CONT "$dpid"
wait "$dpid" || fail "the first backup failed: $(cat "$T/dup1.err")"
dpacks() { find "$R3/data" "$R3/tree" -name '*.pack' | wc -l; }
[ "$(dpacks)" = 4 ] || fail "the two backups did not each store the data and the trees: $(dpacks) packs"
expect_exit 0 "$BKR" -r "$R3" prune --json
json_assert "$T/out" 'r["unused_packs"] == 2 and r["moved_to_trash_bytes"] > 3000000' ||
	fail "prune did not drop the duplicate packs: $(cat "$T/out")"
[ "$(dpacks)" = 2 ] || fail "one prune left $(dpacks) packs of two backups of the same data, expected 2"
expect_exit 0 "$BKR" -r "$R3" prune --grace 0 --json   # the fixed point: nothing more to move
json_assert "$T/out" 'r["unused_packs"] == 0 and r["leftover_packs"] == 0 and r["repacked_packs"] == 0 and r["moved_to_trash_bytes"] == 0' ||
	fail "a second prune still found work: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R3" verify --read-data
for id in $("$BKR" -r "$R3" list --json | python3 -c 'import json,sys; print(" ".join(b["backup_id"] for b in json.load(sys.stdin)))'); do
	rm -rf "$T/rdup"
	expect_exit 0 "$BKR" -r "$R3" restore "$id" --target "$T/rdup"
	cmp "$dws/d/big.bin" "$T/rdup/dupws/d/big.bin" && cmp "$dws/small.bin" "$T/rdup/dupws/small.bin" ||
		fail "backup $id does not restore after the duplicates were dropped"
done
pass "two backups storing the same new data at once: one prune drops the duplicate packs, a second finds nothing"

# --- the same blob stored twice, the copy prune prefers damaged: prune keeps the intact one
# (two data packs of one blob each; prune prefers, among packs with as many used bytes, the
# one first by id; a verify records the blob as damaged when its readers' copy is the bad one)
R4=$T/repo-dupbad
bws=$T/dupbadws
mkdir -p "$bws"
head -c 200000 /dev/urandom >"$bws/one.bin"   # below the chunker's minimum: one blob
expect_exit 0 "$BKR" init -r "$R4"
BKR_FAULT=write:1:stop "$BKR" -q -r "$R4" create --type full "$bws" >/dev/null 2>"$T/dupbad1.err" &
dpid=$!
wait_stopped "$dpid" || fail "the first backup did not stop at its first write: $(cat "$T/dupbad1.err")"
expect_exit 0 "$BKR" -q -r "$R4" create --type full "$bws"
kill -CONT "$dpid"
wait "$dpid" || fail "the first backup failed: $(cat "$T/dupbad1.err")"
mapfile -t dpk < <(find "$R4/data" -name '*.pack' | sort -t/ -k2 | awk -F/ '{print $NF" "$0}' | sort | cut -d' ' -f2)
[ "${#dpk[@]}" = 2 ] || fail "the two backups did not each store the blob: ${#dpk[@]} data packs"
cp -a "$R4" "$T/repo-dupbad-clean"
flip_byte_in_blob "${dpk[0]}"                   # the copy prune would keep
expect_exit 1 "$BKR" -r "$R4" verify --read-data  # recorded as verify records it
expect_exit 0 "$BKR" -r "$R4" prune --grace 0 --json
[ ! -e "${dpk[0]}" ] && [ -e "${dpk[1]}" ] || fail "prune kept the damaged copy's pack and dropped the intact one's"
json_assert "$T/out" 'r["duplicate_blobs"] >= 1 and r["damaged_copies"] == 1' ||
	fail "prune does not count the damaged copy it passed over: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$R4" prune --grace 0   # what the trash held is gone now: only the kept copy is left
expect_exit 0 "$BKR" -r "$R4" verify --read-data
for id in $("$BKR" -r "$R4" list --json | python3 -c 'import json,sys; print(" ".join(b["backup_id"] for b in json.load(sys.stdin)))'); do
	rm -rf "$T/rdup"
	expect_exit 0 "$BKR" -r "$R4" restore "$id" --target "$T/rdup"
	cmp "$bws/one.bin" "$T/rdup/dupbadws/one.bin" || fail "backup $id does not restore after prune chose a copy"
done
# both copies damaged: prune chooses neither, and drops neither; it names the
# blob that has no intact copy, records it for repair and exits 6
rm -rf "$R4" && cp -a "$T/repo-dupbad-clean" "$R4"
flip_byte_in_blob "${dpk[0]}"
flip_byte_in_blob "${dpk[1]}"
expect_exit 6 "$BKR" -r "$R4" prune --grace 0 --json
json_assert "$T/out" 'r["damaged_copies"] == 2 and r["damaged_blobs"] == 1 and r["damage_recorded"] is True' ||
	fail "prune dropped a copy when none reads: $(cat "$T/out")"
grep -q "cannot be read intact from any of its 2 copies.*bkr repair" "$T/err" ||
	fail "prune does not name the blob no copy of which reads: $(cat "$T/err")"
[ -e "${dpk[0]}" ] && [ -e "${dpk[1]}" ] || fail "prune moved a damaged copy's pack when no copy reads"
pass "a blob stored twice with the preferred copy damaged: prune keeps the intact copy (every backup restores); with both damaged it drops neither"
# --- a pin beside a cleanup: the pinned backup is kept, or the pin fails ----------
# pin took no lock: a cleanup that had made its plan (the backup not pinned
# then) removed the backup after pin had printed "pinned" and exited 0
RPIN=$T/repo-pin
pws=$T/pinws
mkdir -p "$pws"
expect_exit 0 "$BKR" init -r "$RPIN"
for i in 1 2 3; do
	echo "$i" >"$pws/f$i"
	expect_exit 0 "$BKR" -q -r "$RPIN" create "$pws"
done
pin_ids=($("$BKR" -r "$RPIN" list --json | python3 -c 'import json,sys; print(" ".join(b["backup_id"] for b in json.load(sys.stdin)))'))
# cleanup stops once its trash batch is written: its plan removes the two oldest
BKR_FAULT=trash-move:1:stop "$BKR" -q -r "$RPIN" cleanup --keep-last 1 >/dev/null 2>"$T/pcl.err" &
cpid=$!
cleanup_hooks+=("kill -9 $cpid 2>/dev/null")
wait_stopped "$cpid" || fail "cleanup did not stop before its moves: $(cat "$T/pcl.err")"
expect_exit 5 "$BKR" -r "$RPIN" pin "${pin_ids[0]}" --no-wait
one_line_error
"$BKR" -r "$RPIN" pin "${pin_ids[0]}" >"$T/pin.out" 2>"$T/pin.err" &
ppid=$!
while kill -0 "$ppid" 2>/dev/null && ! grep -q "waiting" "$T/pin.err"; do sleep 0.02; done
grep -q "waiting for a running delete, cleanup" "$T/pin.err" || fail "pin did not wait for the cleanup: $(cat "$T/pin.out" "$T/pin.err")"
kill -CONT "$cpid"
wait "$cpid" || fail "cleanup failed: $(cat "$T/pcl.err")"
rc=0
wait "$ppid" || rc=$?
[ "$rc" = 3 ] || fail "pin of a backup the cleanup removed: exit $rc, expected 3: $(cat "$T/pin.out" "$T/pin.err")"
grep -q "no such backup" "$T/pin.err" || fail "pin does not say the backup is gone: $(cat "$T/pin.err")"
# the other way round: a pin at work (stopped at its record's write) holds off a cleanup
echo 4 >"$pws/f4"
expect_exit 0 "$BKR" -q -r "$RPIN" create "$pws"
echo 5 >"$pws/f5"
expect_exit 0 "$BKR" -q -r "$RPIN" create "$pws"
pin_ids=($("$BKR" -r "$RPIN" list --json | python3 -c 'import json,sys; print(" ".join(b["backup_id"] for b in json.load(sys.stdin)))'))
BKR_FAULT=write:1:stop "$BKR" -r "$RPIN" pin "${pin_ids[0]}" >"$T/pin.out" 2>"$T/pin.err" &
ppid=$!
cleanup_hooks+=("kill -9 $ppid 2>/dev/null")
wait_stopped "$ppid" || fail "pin did not stop at its write: $(cat "$T/pin.err")"
"$BKR" -r "$RPIN" cleanup --keep-last 1 >"$T/pcl.out" 2>"$T/pcl.err" &
cpid=$!
while kill -0 "$cpid" 2>/dev/null && ! grep -q "waiting" "$T/pcl.err"; do sleep 0.02; done
grep -q "waiting" "$T/pcl.err" || fail "cleanup did not wait for the pin: $(cat "$T/pcl.out" "$T/pcl.err")"
kill -CONT "$ppid"
wait "$ppid" || fail "pin failed: $(cat "$T/pin.err")"
wait "$cpid" || fail "cleanup failed: $(cat "$T/pcl.err")"
"$BKR" -r "$RPIN" list --json | python3 -c 'import json,sys; ids=[b["backup_id"] for b in json.load(sys.stdin)]; sys.exit(0 if ids == sys.argv[1:] else 1)' \
	"${pin_ids[0]}" "${pin_ids[2]}" || fail "cleanup did not keep exactly the pinned and the newest backup: $("$BKR" -r "$RPIN" list)"
expect_exit 0 "$BKR" -r "$RPIN" verify
pass "a pin waits for a cleanup at work and finds its backup gone (exit 3); a cleanup waits for a pin at work and keeps the backup"

# --- verify beside the first tier migration: packs moved meanwhile are found ------
# verify lists the packs of the places it knows at open; a migration that then
# moved packs to a tier it recorded after that made verify call them "named by
# the index but missing from every tier and trash", exit 1: damage reported
# (and recorded for health and repair) where nothing was lost
R5=$T/repo-vmig
vws=$T/vmigws
mkdir -p "$vws"
expect_exit 0 "$BKR" init -r "$R5"
for i in 1 2 3 4; do
	head -c 300000 /dev/urandom >"$vws/f$i"
	echo "$i" >>"$vws/c"
	expect_exit 0 "$BKR" -q -r "$R5" create "$vws"
done
cp -a "$R5" "$T/repo-vmig.orig"
cat >"$T/vmig.json" <<EOF
{"repository": "$R5", "workspace_root": "$vws",
 "tiers": {"warm": {"path": "$T/vwarm", "after_days": 0}, "cold": {"path": "$T/vcold", "after_days": 0}}}
EOF
# the stop points lie between verify's listing of the packs and its search for those not listed
for n in 10 14 20; do
	rm -rf "$R5" "$T/vwarm" "$T/vcold"
	cp -a "$T/repo-vmig.orig" "$R5"
	mkdir "$T/vwarm" "$T/vcold"
	BKR_FAULT=read:$n:stop "$BKR" -r "$R5" verify >"$T/vv.out" 2>"$T/vv.err" &
	vpid=$!
	cleanup_hooks+=("kill -9 $vpid 2>/dev/null")
	wait_stopped "$vpid" || fail "verify did not stop at read $n: $(cat "$T/vv.err")"
	expect_exit 0 "$BKR" -q -c "$T/vmig.json" tier migrate
	[ -n "$(find "$T/vcold" -name '*.pack')" ] || fail "the migration moved nothing"
	kill -CONT "$vpid"
	rc=0
	wait "$vpid" || rc=$?
	[ "$rc" = 0 ] || fail "verify stopped at read $n while the first migration ran: exit $rc: $(cat "$T/vv.out" "$T/vv.err")"
done
expect_exit 0 "$BKR" -r "$R5" verify --read-data
pass "verify beside the first tier migration finds the packs it moved (no damage reported)"

# --- tier forget waiting for the first migration to that location ----------------
# forget judged the location by the tiers the repository had recorded when it
# opened it, before the migration recorded this one: a location holding every
# moved pack was "missing or not mounted", and with --lost its record went
# (repair would then drop the entries of packs that are all there)
R6=$T/repo-forget
fws=$T/forgetws
mkdir -p "$fws"
expect_exit 0 "$BKR" init -r "$R6"
for i in 1 2; do
	head -c 200000 /dev/urandom >"$fws/f$i"
	expect_exit 0 "$BKR" -q -r "$R6" create "$fws"
done
mkdir -p "$T/fwarm" "$T/fcold"
cat >"$T/forget.json" <<EOF
{"repository": "$R6", "workspace_root": "$fws",
 "tiers": {"warm": {"path": "$T/fwarm", "after_days": 0}, "cold": {"path": "$T/fcold", "after_days": 0}}}
EOF
BKR_FAULT=rename:1:stop "$BKR" -q -c "$T/forget.json" tier migrate >/dev/null 2>"$T/fm.err" &
tpid=$!
cleanup_hooks+=("kill -9 $tpid 2>/dev/null")
wait_stopped "$tpid" || fail "migrate did not stop at its first rename: $(cat "$T/fm.err")"
"$BKR" -r "$R6" tier forget "$T/fcold" --lost >"$T/ff.out" 2>"$T/ff.err" &
fpid=$!
wait_line "$T/ff.err" "waiting" "$fpid" || fail "tier forget does not say it waits for the migration: $(cat "$T/ff.err")"
kill -CONT "$tpid"
wait "$tpid" || fail "migrate failed: $(cat "$T/fm.err")"
rc=0
wait "$fpid" || rc=$?
[ "$rc" = 2 ] || fail "tier forget --lost of a location the migration filled: exit $rc, expected 2: $(cat "$T/ff.out" "$T/ff.err")"
grep -q "still holds [0-9]* data pack" "$T/ff.err" || fail "tier forget does not say the location holds data: $(cat "$T/ff.err")"
expect_exit 0 "$BKR" -r "$R6" tier status
expect_exit 0 "$BKR" -r "$R6" verify --read-data
pass "tier forget that waited for the first migration to its location sees the data there and refuses"
