#!/usr/bin/env bash
# Storage tiers: backups over simulated days (BKR_TEST_NOW), `bkr tier
# migrate --as-of` puts each data pack where the youngest backup using it
# asks (warm after 7 days, cold after 30, pinned stays hot, trees and the
# index stay in the repository), then — with no configuration file at all —
# restore, verify --read-data, diff, cat and a bkrfs mount read every backup
# exactly.  A missing or unmounted tier is one clear error and nothing moves;
# pinning brings data back; prune deletes unused packs in the tiers; a file
# open in a mount keeps reading while its pack moves; migrate killed or
# failing at writes, fsyncs and renames loses nothing and a rerun completes.
source "$(dirname "$0")/lib.sh"

R=$T/repo
ws=$T/ws
gold=$T/gold
WARM=$T/warm
COLD=$T/cold
mkdir -p "$ws/docs" "$gold" "$WARM" "$COLD"
new_repo
cat >"$T/bkr.json" <<EOF
{"repository": "$R", "workspace_root": "$ws",
 "tiers": {"warm": {"path": "$WARM"}, "cold": {"path": "$COLD"}}}
EOF

# 8 backups on these days from 2026-06-01 (ages at AS_OF = day 70: 70, 65,
# 60, 50, 40, 25, 12, 2 days).  Backup i adds blob-i and removes blob-(i-3),
# so its data pack (blob-i and counter.txt) is used by backups i..i+2.
days=(0 5 10 20 30 45 58 68)
start=$(date -u -d 2026-06-01T00:00:00Z +%s)
AS_OF=$(date -u -d @$((start + 70 * 86400)) +%Y-%m-%dT%H:%M:%SZ)
for i in "${!days[@]}"; do
	when=$(date -u -d @$((start + ${days[$i]} * 86400)) +%Y-%m-%dT%H:%M:%SZ)
	echo "backup $i at $when" >"$ws/docs/counter.txt"
	head -c 200000 /dev/urandom >"$ws/docs/blob-$i.bin"
	rm -f "$ws/docs/blob-$((i - 3)).bin"
	BKR_TEST_NOW=$when "$BKR" -q -r "$R" create "$ws" >/dev/null || fail "backup $i"
	cp -a "$ws" "$gold/$i"
done
"$BKR" -r "$R" list --json >"$T/all.json"
mapfile -t ids < <(python3 -c 'import json,sys; [print(b["backup_id"]) for b in json.load(open(sys.argv[1]))]' "$T/all.json")
[ "${#ids[@]}" = 8 ] || fail "expected 8 backups, got ${#ids[@]}"
expect_exit 0 "$BKR" -r "$R" pin "${ids[1]}"
cp -a "$R" "$T/repo-start"

# tier_counts: "hot warm cold" data packs, from `bkr tier status --json`
tier_counts() {
	"$BKR" -r "$R" tier status --json >"$T/status.json" || fail "tier status: $(cat "$T/status.json")"
	python3 - "$T/status.json" <<'PY'
import json, sys
t = {x["tier"]: x for x in json.load(open(sys.argv[1]))["tiers"]}
assert t["hot"]["tree_packs"] > 0 and all(x["tree_packs"] == 0 for n, x in t.items() if n != "hot"), t
print(*(t.get(n, {"data_packs": 0})["data_packs"] for n in ("hot", "warm", "cold")))
PY
}

# The rule, written from the spec: pack i's youngest user is backup min(i+2, 7)
# (or a pinned one: hot); warm from 7 days, cold from 30.
expected_counts() {
	python3 - "$@" <<'PY'
import sys
days, pinned = [0, 5, 10, 20, 30, 45, 58, 68], {int(x) for x in sys.argv[1:]}
n = [0, 0, 0]
for i in range(8):
    users = range(i, min(i + 2, 7) + 1)
    age = 70 - days[max(users)]
    n[0 if pinned & set(users) or age < 7 else 1 if age < 30 else 2] += 1
print(*n)
PY
}

# restore_all LABEL: every backup restores exactly, with no configuration
restore_all() {
	for i in "${!ids[@]}"; do
		rm -rf "$T/rst"
		env -u BKR_CONFIG "$BKR" -q -r "$R" restore "${ids[$i]}" --target "$T/rst" >/dev/null 2>"$T/err" ||
			fail "$1: restore of backup $i: $(cat "$T/err")"
		diff -r "$gold/$i" "$T/rst/ws" >/dev/null || fail "$1: backup $i restores different bytes"
	done
}

[ "$(tier_counts)" = "8 0 0" ] || fail "before migrate every data pack is hot, not $(tier_counts)"

# --- a missing or unmounted tier: one clear error, nothing moves ----------------
snapshot() { (cd "$T" && find repo warm cold -printf '%p %s\n' | sort); }
snapshot >"$T/before"
rmdir "$COLD"
expect_exit 3 "$BKR" -c "$T/bkr.json" tier migrate --as-of "$AS_OF"
one_line_error
grep -q "tiers.cold.path: $COLD is missing or not mounted; nothing was moved" "$T/err" ||
	fail "the error does not name the missing tier: $(cat "$T/err")"
expect_exit 3 "$BKR" -c "$T/bkr.json" --json tier migrate --as-of "$AS_OF"
json_ok "$T/out"
mkdir "$COLD"
diff "$T/before" <(snapshot) || fail "a migrate that failed on a missing tier changed something"
pass "a missing tier location is one clear error (valid --json) and nothing moves"

# --- dry run, then the migration ------------------------------------------------
want=$(expected_counts 1)
expect_exit 0 "$BKR" -c "$T/bkr.json" tier migrate --dry-run --as-of "$AS_OF" --json
json_ok "$T/out"
diff "$T/before" <(snapshot) || fail "--dry-run changed something"
read -r _ w c <<<"$want"
python3 - "$T/out" "$w" "$c" <<'PY' || fail "the dry run plans other moves: $(cat "$T/out")"
import json, sys
m = json.load(open(sys.argv[1]))["moved"]
assert (m["warm"]["packs"], m["cold"]["packs"]) == (int(sys.argv[2]), int(sys.argv[3])), m
PY
expect_exit 0 "$BKR" -c "$T/bkr.json" tier migrate --as-of "$AS_OF"
[ "$(tier_counts)" = "$want" ] || fail "after migrate hot/warm/cold hold $(tier_counts), expected $want"
[ "$want" = "5 2 1" ] || fail "the fixture should put packs in every tier, the rule says $want"
ls "$R"/tiers/*-warm.json "$R"/tiers/*-cold.json >/dev/null || fail "the repository did not record its tiers"
[ -f "$WARM/tier.json" ] && [ -f "$COLD/tier.json" ] || fail "a tier holds no tier.json"
[ -z "$(find "$WARM" "$COLD" -path '*/tree/*')" ] || fail "a tree pack left the repository"
[ -z "$(find "$T" -name '.tmp-*')" ] || fail "migrate left temporaries"
pass "migrate: hot/warm/cold = $want data packs as the rule says (pins hot, trees stay, tiers recorded)"

expect_exit 0 "$BKR" -c "$T/bkr.json" tier migrate --as-of "$AS_OF" --json
json_assert "$T/out" 'r["stayed_packs"]==8 and sum(v["packs"] for v in r["moved"].values())==0' ||
	fail "a second migrate moved something: $(cat "$T/out")"
pass "a second migrate moves nothing"

# --- one directory under two names is one place: never its own "extra copy" -------
# (a tier path changed to a symlink or a bind mount of the same directory, a tier
# that is the repository, warm and cold as one directory: each deleted every pack)
ln -s "$WARM" "$T/warm-link"
mkdir -p "$T/warm-bind" && mount --bind "$WARM" "$T/warm-bind" || fail "mount --bind"
cleanup_hooks+=("umount '$T/warm-bind' 2>/dev/null")
snapshot >"$T/aliased"
for w in "$T/warm-link" "$T/warm-bind"; do
	cat >"$T/alias.json" <<EOF
{"repository": "$R", "workspace_root": "$ws",
 "tiers": {"warm": {"path": "$w"}, "cold": {"path": "$COLD"}}}
EOF
	expect_exit 0 "$BKR" -c "$T/alias.json" tier migrate --as-of "$AS_OF" --json
	json_assert "$T/out" 'r["copies_removed"]==0 and r["stayed_packs"]==8' ||
		fail "migrate with warm at $w: $(cat "$T/out")"
	diff "$T/aliased" <(snapshot) || fail "migrate with warm at $w changed the tiers"
done
umount "$T/warm-bind"
ln -s "$R" "$T/repo-link"
ln -s "$WARM" "$T/warm-link2"
for c in "$T/repo-link" "$T/warm-link2"; do
	cat >"$T/alias.json" <<EOF
{"repository": "$R", "workspace_root": "$ws",
 "tiers": {"warm": {"path": "$WARM"}, "cold": {"path": "$c"}}}
EOF
	want_msg="is the same directory as tiers.warm.path"
	[ "$c" = "$T/repo-link" ] && want_msg="is the repository itself"
	expect_exit 2 "$BKR" -c "$T/alias.json" config check
	grep -q "key 'tiers.cold.path': $want_msg" "$T/err" || fail "config check with cold at $c: $(cat "$T/err")"
	expect_exit 2 "$BKR" -c "$T/alias.json" tier migrate --as-of "$AS_OF"
	one_line_error
	diff "$T/aliased" <(snapshot) || fail "migrate with cold at $c changed the tiers"
done
pass "a tier under a second name (symlink, bind mount) is the same place; a tier that is the repository or the other tier is refused"

# a tier inside the repository (its trash/ is emptied, data/ holds the hot packs) or holding it:
# refused by config check and migrate, also through a symlink, and nothing moves
ln -s "$R" "$T/repo-link2"
for c in "$R/trash" "$R/data/t" "$T/repo-link2/trash" "$(dirname "$R")"; do
	cat >"$T/alias.json" <<EOF
{"repository": "$R", "workspace_root": "$ws",
 "tiers": {"warm": {"path": "$WARM"}, "cold": {"path": "$c"}}}
EOF
	expect_exit 2 "$BKR" -c "$T/alias.json" config check
	grep -q "key 'tiers.cold.path': .*\\(is inside\\|holds\\) the repository" "$T/err" ||
		fail "config check with cold at $c: $(cat "$T/err")"
	expect_exit 2 "$BKR" -c "$T/alias.json" tier migrate --as-of "$AS_OF"
	one_line_error
	diff "$T/aliased" <(snapshot) || fail "migrate with cold at $c changed the tiers"
	[ ! -e "$R/trash/tier.json" ] && [ ! -e "$R/data/t" ] || fail "migrate with cold at $c wrote into the repository"
done
rm "$T/repo-link2"
pass "a tier inside the repository, or holding it, is refused (exit 2, naming the key)"

# a damaged tier.json: verify names it as a problem (exit 1), not 'FAILED, 0 errors'
cp "$COLD/tier.json" "$T/tier.json.good"
printf 'x' | dd of="$COLD/tier.json" bs=1 seek=5 conv=notrunc status=none
expect_exit 1 "$BKR" -r "$R" verify
grep -q "tier.json" "$T/out" "$T/err" || fail "verify does not name the damaged tier.json: $(cat "$T/out" "$T/err")"
grep -q "1 error" "$T/err" || fail "verify does not count the damaged tier.json: $(cat "$T/err")"
expect_exit 1 "$BKR" -r "$R" verify --json
python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["problems"]; assert len(p)==1 and p[0]["object"]=="tier.json" and p[0]["error"], p' "$T/out" ||
	fail "verify --json does not list the damaged tier.json: $(cat "$T/out")"
python3 - "$R/records" <<'PY' || fail "verify with a damaged tier.json left no record of it"
import glob, json, sys
v = sorted((r for r in (json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*.json")) if r.get("kind") == "verify"),
           key=lambda r: r["time"])
assert v and v[-1]["result"] == "problems" and v[-1]["errors"] == 1, v[-1:]
PY
# tier status said 'missing' (exit 1), "missing or not mounted": the disk is there, its
# tier.json damaged; it says what verify says, naming the file (exit 4, damaged data)
expect_exit 4 "$BKR" -r "$R" tier status
err_has "tier cold: $COLD/tier.json: checksum mismatch" || fail "tier status with a damaged tier.json: $(cat "$T/err")"
grep -q "^cold  *damaged .*$COLD\$" "$T/out" || fail "tier status with a damaged tier.json: $(cat "$T/out")"
grep -q "missing" "$T/out" "$T/err" && fail "tier status calls the tier with a damaged tier.json missing: $(cat "$T/out" "$T/err")"
expect_exit 4 "$BKR" -r "$R" tier status --json
json_assert "$T/out" '[(t["tier"], t["damaged"]) for t in r["tiers"] if t["damaged"]] == [("cold", "'"$COLD"'/tier.json: checksum mismatch (file modified or damaged)")]' ||
	fail "tier status --json with a damaged tier.json: $(cat "$T/out")"
cp "$T/tier.json.good" "$COLD/tier.json"
pass "a damaged tier.json: verify names it, counts it and records it; tier status names it, not 'missing'"

# a tier.json sealed right but whose "tier" is no tier (an unknown name, another type, none):
# one line naming the file and the key, exit 4 (damaged), nothing moved; verify reports it
# (and the other tier's name: the cold disk's marker says warm, where would each tier's packs be?)
for v in '"tepid"' '"hot"' '"warm"' '3' '["cold"]' 'null'; do
	python3 - "$T/tier.json.good" "$COLD/tier.json" "$v" <<'PY'
import hashlib, json, sys
o = json.load(open(sys.argv[1]))
del o["sha256"]
v = json.loads(sys.argv[3])
if v is None:
    del o["tier"]
else:
    o["tier"] = v
t = json.dumps(o, separators=(",", ":"))[:-1] + ',"sha256":"' + "0" * 64 + '"}'
open(sys.argv[2], "w").write(t[:-66] + hashlib.sha256(t.encode()).hexdigest() + '"}')
PY
	snapshot >"$T/before"
	case $v in
	'"tepid"') want_err="key 'tier': unknown tier 'tepid', expected \"warm\" or \"cold\"" ;;
	'"hot"') want_err="key 'tier': unknown tier 'hot', expected \"warm\" or \"cold\"" ;;
	'"warm"') want_err="key 'tier': 'warm', but the repository records this location as tier cold" ;;
	null) want_err="key 'tier': missing, expected \"warm\" or \"cold\"" ;;
	*) want_err="key 'tier': not a string, expected \"warm\" or \"cold\"" ;;
	esac
	expect_exit 4 "$BKR" -c "$T/bkr.json" tier migrate --as-of "$AS_OF"
	one_line_error
	err_has "$COLD/tier.json: $want_err" || fail "migrate with \"tier\": $v in tier.json: $(cat "$T/err")"
	diff "$T/before" <(snapshot) || fail "migrate with \"tier\": $v in tier.json changed the tiers"
	expect_exit 1 "$BKR" -r "$R" verify --json
	python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["problems"]; assert len(p)==1 and p[0]["object"]=="tier.json" and p[0]["error"] and sys.argv[2] in p[0]["message"], p' \
		"$T/out" "$want_err" || fail "verify with \"tier\": $v in tier.json: $(cat "$T/out")"
	expect_exit 4 "$BKR" -r "$R" tier status
	err_has "tier cold: $COLD/tier.json: $want_err" || fail "tier status with \"tier\": $v in tier.json: $(cat "$T/err")"
	# its packs are there: no lost disk, so forget refuses, --lost too (repair would drop
	# their index entries), naming the marker's damage; never "give --lost"
	snapshot >"$T/before"
	for lost in "" --lost; do
		expect_exit 4 "$BKR" -r "$R" tier forget "$COLD" $lost
		one_line_error
		err_has "$COLD/tier.json: $want_err: that is damage of its tier.json, not loss of the packs, so it is not forgotten" ||
			fail "tier forget $lost with \"tier\": $v in tier.json: $(cat "$T/err")"
		! grep -q "give --lost" "$T/err" || fail "tier forget suggests --lost for a damaged marker: $(cat "$T/err")"
		diff "$T/before" <(snapshot) || fail "tier forget $lost with \"tier\": $v in tier.json changed the repository"
	done
done
cp "$T/tier.json.good" "$COLD/tier.json"
pass "a tier.json whose \"tier\" is unknown, the other tier, not a string or missing: one line naming the file and key, exit 4; tier forget refuses it, --lost too"

# an old copy of the cold disk at its path (tier.json, packs missing): verify says the files'
# chunks are missing and where it looked, not that they are damaged
mkdir -p "$T/cold-old-disk"
gone=$(find "$COLD/data" -name '*.pack' | head -n 3)
[ -n "$gone" ] || fail "no pack in the cold tier to take away"
mv $gone "$T/cold-old-disk/"
expect_exit 1 "$BKR" -r "$R" verify
grep -q "missing .*: chunk [0-9a-f]* is missing: its pack is in none of $R, .*tier cold at $COLD" "$T/out" ||
	fail "verify with packs gone from the cold tier: $(cat "$T/out")"
! grep -q "is damaged" "$T/out" || fail "verify calls a pack gone from a tier damaged: $(cat "$T/out")"
grep -q "missing from every tier and trash (searched $R, .*tier cold at $COLD" "$T/out" ||
	fail "verify does not say where it looked for the missing packs: $(cat "$T/out")"
# repair says first how many packs are in none of the places and where it looked; once the
# right disk is back, a second repair indexes them again
"$BKR" -r "$R" repair >"$T/out" 2>"$T/err" || true
n=$(echo $gone | wc -w)
grep -q "$n packs\\? named by the index \\(is\\|are\\) in none of $R, .*tier cold at $COLD: is the right disk mounted at each tier?" "$T/out" "$T/err" ||
	fail "repair does not warn of packs gone from a tier: $(cat "$T/out" "$T/err")"
# (repair removed the pack directories it left empty)
for f in $gone; do mkdir -p "${f%/*}" && mv "$T/cold-old-disk/$(basename "$f")" "$f"; done
rmdir "$T/cold-old-disk"
expect_exit 0 "$BKR" -r "$R" repair
expect_exit 0 "$BKR" -r "$R" verify
pass "packs gone from a tier (an old copy of its disk): verify says missing and where it looked, repair warns; the right disk back, repair indexes them again"

# --- every reader, without a configuration file ---------------------------------
unset BKR_CONFIG
restore_all "after migrate"
expect_exit 0 "$BKR" -r "$R" verify --read-data
expect_exit 0 "$BKR" -r "$R" diff "${ids[0]}" "${ids[7]}"
grep -q "blob-0.bin" "$T/out" || fail "diff of the oldest and newest backup does not show blob-0.bin"
"$BKR" -r "$R" cat "${ids[2]}" ws/docs/blob-2.bin | cmp - "$gold/2/docs/blob-2.bin" ||
	fail "cat of a file in a cold pack differs"
bkrfs_fg "$R" "$T/mnt" "$T/bkrfs.log"
for i in "${!ids[@]}"; do
	diff -r "$gold/$i" "$T/mnt/by-id/${ids[$i]}/ws" >/dev/null || fail "the mount serves backup $i differently"
done
fusermount3 -u "$T/mnt"
wait "$DAEMON" || fail "bkrfs exited with an error: $(cat "$T/bkrfs.log")"
pass "restore, verify --read-data, diff, cat and the mount read every tier with no configuration"

# --- a tier that is not mounted: readers and prune say so -----------------------
mv "$COLD" "$T/cold-away" && mkdir "$COLD"
expect_exit 3 "$BKR" -r "$R" verify
one_line_error
grep -q "tier cold: $COLD is missing or not mounted" "$T/err" || fail "verify does not name the tier: $(cat "$T/err")"
expect_exit 3 "$BKR" -r "$R" prune --grace 0
one_line_error
expect_exit 3 "$BKR" -r "$R" cat "${ids[2]}" ws/docs/blob-2.bin
grep -q "tier cold: $COLD is missing or not mounted" "$T/err" || fail "cat does not name the tier: $(cat "$T/err")"
expect_exit 1 "$BKR" -r "$R" tier status
rmdir "$COLD" && mv "$T/cold-away" "$COLD"
expect_exit 0 "$BKR" -r "$R" tier status
pass "an unmounted tier: verify, prune and cat fail naming it; tier status exits 1"

# --- pinning brings data back; prune frees packs in the tiers --------------------
export BKR_CONFIG=$T/bkr.json
expect_exit 0 "$BKR" pin "${ids[3]}"
expect_exit 0 "$BKR" tier migrate --as-of "$AS_OF"
[ "$(tier_counts)" = "$(expected_counts 1 3)" ] ||
	fail "after pinning backup 3: $(tier_counts), expected $(expected_counts 1 3)"
expect_exit 0 "$BKR" unpin "${ids[3]}"
expect_exit 0 "$BKR" tier migrate --as-of "$AS_OF"
[ "$(tier_counts)" = "$want" ] || fail "after unpinning: $(tier_counts), expected $want"
pass "a pinned backup's data comes back hot, and goes again once unpinned"

cold_before=$(find "$COLD/data" -name '*.pack' | wc -l)
expect_exit 0 "$BKR" delete "${ids[2]}" "${ids[3]}" "${ids[4]}"
expect_exit 0 "$BKR" prune --grace 0
cold_after=$(find "$COLD/data" -name '*.pack' | wc -l)
[ "$cold_after" -lt "$cold_before" ] || fail "prune left unused packs in the cold tier ($cold_before -> $cold_after)"
expect_exit 0 "$BKR" -r "$R" verify --read-data
unset BKR_CONFIG
pass "prune deletes unused packs in the tiers ($cold_before -> $cold_after cold packs); verify passes"

# --- a file open in a mount while its pack moves --------------------------------
fresh() {
	rm -rf "$R" "$WARM" "$COLD"
	cp -a "$T/repo-start" "$R"
	mkdir -p "$WARM" "$COLD"
}
fresh
bkrfs_fg "$R" "$T/mnt" "$T/bkrfs.log"
mkfifo "$T/go" "$T/half"
# the reader: opens blob-2 of backup 2 (its pack goes cold), reads half, waits
# for the migration to pass, reads the rest
python3 - "$T/mnt/by-id/${ids[2]}/ws/docs/blob-2.bin" "$gold/2/docs/blob-2.bin" "$T/half" "$T/go" <<'PY' &
import sys
path, gold, half, go = sys.argv[1:]
want = open(gold, "rb").read()
with open(path, "rb", buffering=0) as f:
    got = f.read(len(want) // 2)
    open(half, "w").close()
    open(go).read()
    while len(got) < len(want):
        b = f.read(65536)
        if not b:
            break
        got += b
sys.exit(0 if got == want else 1)
PY
reader=$!
cat "$T/half" >/dev/null
# migrate, paused at its last publish (2 markers, 2 records, 2 packs moved and
# gone from the repository before it) while the mount reads every backup
BKR_FAULT=rename:7:stop "$BKR" -q -c "$T/bkr.json" tier migrate --as-of "$AS_OF" >/dev/null 2>"$T/mig.err" &
mig=$!
wait_stopped "$mig" || fail "migrate did not stop at its last rename: $(cat "$T/mig.err")"
[ "$(find "$R/data" -name '*.pack' | wc -l)" = 6 ] || fail "the paused migrate should have moved 2 packs"
for i in "${!ids[@]}"; do
	diff -r "$gold/$i" "$T/mnt/by-id/${ids[$i]}/ws" >/dev/null || fail "the mount misread backup $i during migrate"
done
kill -CONT "$mig"
wait "$mig" || fail "migrate failed: $(cat "$T/mig.err")"
echo go >"$T/go"
wait "$reader" || fail "a file open in the mount read different bytes once its pack moved"
for i in "${!ids[@]}"; do
	diff -r "$gold/$i" "$T/mnt/by-id/${ids[$i]}/ws" >/dev/null || fail "after migrate the mount serves backup $i differently"
done
fusermount3 -u "$T/mnt"
wait "$DAEMON" || fail "bkrfs exited with an error: $(cat "$T/bkrfs.log")"
[ "$(tier_counts)" = "$want" ] || fail "the paused migrate did not complete: $(tier_counts)"
pass "a mount (started before the tiers existed) keeps reading an open file and every backup while packs move"

# --- crash safety ---------------------------------------------------------------
# check_crash LABEL: nothing lost, no configuration needed; a rerun completes
check_crash() {
	expect_exit 0 "$BKR" -r "$R" verify --read-data
	expect_exit 0 "$BKR" -c "$T/bkr.json" tier migrate --as-of "$AS_OF"
	[ "$(tier_counts)" = "$want" ] || fail "$1: the rerun left $(tier_counts), expected $want"
	[ -z "$(find "$R" "$WARM" "$COLD" -name '.tmp-*')" ] || fail "$1: the rerun left temporaries: $(find "$R" "$WARM" "$COLD" -name ".tmp-*")"
	local total
	total=$(find "$R/data" "$WARM" "$COLD" -name '*.pack' | wc -l)
	[ "$total" = 8 ] || fail "$1: $total data pack copies after the rerun, expected 8"
	echo "  $1: intact, rerun completed"
}
rounds=$(crash_rounds 3)
for r in $(seq 1 "$rounds"); do
	fresh
	delay=$(python3 -c "import random; print(random.uniform(0.0, 0.05))")
	"$BKR" -q -c "$T/bkr.json" tier migrate --as-of "$AS_OF" >/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	check_crash "migrate killed after ${delay}s"
done
pass "$rounds random SIGKILLs of migrate lost nothing"

for fault in write:1:crash write:4:crash fsync:1:crash fsync:3:eio fsync:6:crash rename:1:crash rename:2:eio \
	rename:5:crash write:7:enospc; do
	fresh
	got=0
	BKR_FAULT=$fault "$BKR" -q -c "$T/bkr.json" tier migrate --as-of "$AS_OF" >/dev/null 2>"$T/fault.err" || got=$?
	[ "$got" != 0 ] || fail "migrate with $fault: the fault point was not reached"
	case $fault in *eio | *enospc) grep -q "injected fault" "$T/fault.err" || { cat "$T/fault.err"; fail "$fault: no message"; } ;; esac
	check_crash "migrate $fault"
done
restore_all "after the crash rounds"
pass "migrate crashing or failing at writes, fsyncs and renames lost nothing; reruns completed"

# --- a tier no copy reached is not recorded; retiring and forgetting tiers ------
# a warm tier on a disk too small for the first pack: migrate fails (exit 7) and
# the repository does not record the tier, which would otherwise be searched
# (and missed) by every command from then on
fresh
mkdir -p "$T/small"
mount -t tmpfs -o size=64k tmpfs "$T/small" || fail "mount tmpfs"
cleanup_hooks+=("umount '$T/small' 2>/dev/null")
cat >"$T/small.json" <<EOF
{"repository": "$R", "workspace_root": "$ws", "tiers": {"warm": {"path": "$T/small"}}}
EOF
expect_exit 7 "$BKR" -c "$T/small.json" tier migrate --as-of "$AS_OF"
[ -z "$(ls "$R/tiers" 2>/dev/null)" ] || fail "a tier no pack reached was recorded: $(ls "$R/tiers")"
umount "$T/small"
expect_exit 0 "$BKR" -r "$R" verify
pass "a tier whose first copy fails (disk full) is not recorded; verify passes once it is gone"

# retiring cold: refused while it holds data; brought back by a migration without it, then forgotten
expect_exit 0 "$BKR" -c "$T/bkr.json" tier migrate --as-of "$AS_OF"
expect_exit 2 "$BKR" -r "$R" tier forget "$COLD"
one_line_error
grep -q "tier cold: $COLD still holds 1 data pack: bring them back first" "$T/err" || fail "forget of a tier with data: $(cat "$T/err")"
cat >"$T/warm-only.json" <<EOF
{"repository": "$R", "workspace_root": "$ws", "tiers": {"warm": {"path": "$WARM"}}}
EOF
expect_exit 0 "$BKR" -c "$T/warm-only.json" tier migrate --as-of "$AS_OF"
[ -z "$(find "$COLD" -name '*.pack')" ] || fail "a migration without cold left packs in it"
expect_exit 0 "$BKR" -r "$R" tier forget "$COLD" --json
json_assert "$T/out" 'r["tier"]=="cold" and r["present"] and r["records"]==1 and not r["dry_run"]' ||
	fail "forget --json: $(cat "$T/out")"
[ -z "$(ls "$R"/tiers/*-cold.json 2>/dev/null)" ] || fail "cold is still recorded"
rm -rf "$COLD"
expect_exit 0 "$BKR" -r "$R" verify --read-data
expect_exit 0 "$BKR" -r "$R" tier status
restore_all "after cold was retired"
pass "a retired tier: refused while it holds data, forgotten once empty; nothing needs it after"

# a lost warm disk: refused without --lost; --dry-run changes nothing; then repair drops what was there
mv "$WARM" "$T/warm-lost"
expect_exit 3 "$BKR" -r "$R" verify
expect_exit 2 "$BKR" -r "$R" tier forget "$WARM"
grep -q "tier warm: $WARM is missing or not mounted: .*give --lost" "$T/err" || fail "forget of a missing tier: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$R" tier forget "$WARM" --lost --dry-run
ls "$R"/tiers/*-warm.json >/dev/null 2>&1 || fail "forget --dry-run removed the record"
expect_exit 0 "$BKR" -r "$R" tier forget "$WARM" --lost
grep -q "^forgot tier warm at $WARM (1 record)" "$T/out" && grep -q "bkr repair" "$T/out" || fail "forget --lost: $(cat "$T/out")"
expect_exit 3 "$BKR" -r "$R" tier forget "$WARM" --lost
expect_exit 1 "$BKR" -r "$R" verify
expect_exit 1 "$BKR" -r "$R" repair
expect_exit 0 "$BKR" -r "$R" prune
expect_exit 0 "$BKR" -r "$R" tier status
pass "a lost tier: forgotten only with --lost; verify then names the damage, repair and prune run"

# --- each tier its own directory: recorded locations against each other --------
# A configuration changed over time may name for one tier the directory the
# repository recorded for another, or one inside (or holding) a recorded
# location: migrate refuses it before anything moves or is recorded (exit 2,
# one line naming the key).  Records that clash already (an older bkr wrote
# them) are named by tier status (exit 1, one line).
fresh
unset BKR_CONFIG
expect_exit 0 "$BKR" -c "$T/bkr.json" tier migrate --as-of "$AS_OF"
cp -a "$R/tiers" "$T/tiers-before"
packs_before=$(cd "$T" && find repo warm cold -name '*.pack' | sort)
mkdir -p "$T/cold2"
cat >"$T/inside.json" <<JSON
{"repository": "$R", "workspace_root": "$ws", "tiers": {"warm": {"path": "$COLD/w"}, "cold": {"path": "$T/cold2"}}}
JSON
expect_exit 2 "$BKR" -c "$T/inside.json" tier migrate --as-of "$AS_OF"
one_line_error
grep -q "tiers.warm.path: $COLD/w is inside $COLD, the directory of tier cold, as the repository recorded it (each tier needs its own directory); nothing was moved" "$T/err" ||
	fail "a warm tier inside the recorded cold one: $(cat "$T/err")"
cat >"$T/swap.json" <<JSON
{"repository": "$R", "workspace_root": "$ws", "tiers": {"warm": {"path": "$COLD"}, "cold": {"path": "$T/cold2"}}}
JSON
expect_exit 2 "$BKR" -c "$T/swap.json" tier migrate --as-of "$AS_OF" --dry-run
one_line_error
grep -q "tiers.warm.path: $COLD is the directory of tier cold, as the repository recorded it" "$T/err" ||
	fail "warm at the recorded cold directory: $(cat "$T/err")"
[ ! -e "$COLD/w" ] && diff -r "$T/tiers-before" "$R/tiers" >/dev/null &&
	[ "$(cd "$T" && find repo warm cold cold2 -name '*.pack' | sort)" = "$packs_before" ] ||
	fail "a refused migration moved or recorded something"
expect_exit 0 "$BKR" -r "$R" tier status
pass "migrate refuses a tier at, inside or holding a location recorded for another tier (exit 2, naming the key); nothing moves"

# a record (as an older bkr could write) puts warm at the cold tier's directory
python3 - "$R/tiers/00000000000000000001-warm.json" "$COLD" <<'PY'
import hashlib, json, sys
o = json.dumps({"kind": "tier", "tier": "warm", "location": sys.argv[2], "time": "1970-01-01T00:00:00Z"},
               separators=(",", ":"))
t = o[:-1] + ',"sha256":"' + "0" * 64 + '"}'
t = t[:-66] + hashlib.sha256(t.encode()).hexdigest() + '"}'
open(sys.argv[1], "w").write(t)
PY
expect_exit 1 "$BKR" -r "$R" tier status
one_line_error
grep -q "tier records: tier warm's $COLD is the directory of tier cold (each tier needs its own directory" "$T/err" ||
	fail "tier status with two tiers recorded at one directory: $(cat "$T/err")"
expect_exit 1 "$BKR" -r "$R" tier status --json
python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["location_conflict"]; assert c and "is the directory of tier cold" in c, c' "$T/out" ||
	fail "tier status --json: location_conflict: $(cat "$T/out")"
rm "$R/tiers/00000000000000000001-warm.json"
expect_exit 0 "$BKR" -r "$R" tier status
pass "tier status names two tiers recorded at one directory (exit 1, one line; --json location_conflict)"

# --- a pack missing from every tier -----------------------------------------------
# A tier disk that holds its tier.json but not every pack (an old copy of the
# tier): tier status compares what the index names with what every place holds
# and says how many packs no place has (exit 4); --json missing_packs.
victim=$(find "$COLD" -name '*.pack' | head -1)
[ -n "$victim" ] || fail "no pack in the cold tier"
vhex=$(basename "$victim" .pack)
mv "$victim" "$T/victim.pack"
expect_exit 4 "$BKR" -r "$R" tier status
one_line_error
grep -q "1 pack(s) missing from every tier: .*(first: $vhex)" "$T/err" || fail "tier status with a pack gone: $(cat "$T/err")"
# -q hides the table, not the reason for exit 4
expect_exit 4 "$BKR" -q -r "$R" tier status
one_line_error
grep -q "1 pack(s) missing from every tier: .*(first: $vhex)" "$T/err" || fail "tier status -q with a pack gone: '$(cat "$T/err")'"
[ ! -s "$T/out" ] || fail "tier status -q printed its table: $(cat "$T/out")"
expect_exit 4 "$BKR" -r "$R" tier status --json
python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["missing_packs"] == 1 and o["first_missing_pack"] == sys.argv[2] and o["indexed_packs"] > 1, o' "$T/out" "$vhex" ||
	fail "tier status --json with a pack gone: $(cat "$T/out")"
# in a trash it is not missing (readers find it there)
mkdir -p "$COLD/trash" && mv "$T/victim.pack" "$COLD/trash/$vhex.pack"
expect_exit 0 "$BKR" -r "$R" tier status
mv "$COLD/trash/$vhex.pack" "$victim"
# a tier not mounted: its packs are not proven missing (exit 1, as before)
mv "$COLD" "$T/cold-away" && mkdir "$COLD"
expect_exit 1 "$BKR" -r "$R" tier status
grep -q "in no place that is there" "$T/err" || fail "tier status with cold not mounted: $(cat "$T/err")"
rmdir "$COLD" && mv "$T/cold-away" "$COLD"
expect_exit 0 "$BKR" -r "$R" tier status --json
json_assert "$T/out" 'r["missing_packs"] == 0 and r["first_missing_pack"] is None' ||
	fail "tier status --json, every pack back: $(cat "$T/out")"
pass "tier status: a pack missing from every tier is exit 4 (named); in a trash it is there; an unmounted tier is exit 1"

# --- health counts each pack in the tier that holds it ---------------------------
# by the places the repository recorded, not by the configured paths: with a
# configuration that names no tier (taken out after migrating) the cold packs
# were reported hot.  Its storage is what tier status and the directories say.
cat >"$T/no-tiers.json" <<EOF
{"repository": "$R", "workspace_root": "$ws", "sources": [{"name": "ws", "paths": ["$ws"], "schedule": "manual"}]}
EOF
cat >"$T/tiers.json" <<EOF
{"repository": "$R", "workspace_root": "$ws", "sources": [{"name": "ws", "paths": ["$ws"], "schedule": "manual"}],
 "tiers": {"warm": {"path": "$WARM"}, "cold": {"path": "$COLD"}}}
EOF
"$BKR" -r "$R" tier status --json >"$T/status.json"
for cfg in "$T/no-tiers.json" "$T/tiers.json"; do
	expect_exit 0 "$BKR" -c "$cfg" health --json
	python3 - "$T/out" "$T/status.json" "$R" "$WARM" "$COLD" <<'PY' || fail "health --json storage with $cfg: $(cat "$T/out")"
import json, sys, pathlib
h, st = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
want = {"hot": [0, 0], "warm": [0, 0], "cold": [0, 0]}
for t in st["tiers"]:
    want[t["tier"]][0] += t["data_packs"] + t["tree_packs"]
    want[t["tier"]][1] += t["data_bytes"] + t["tree_bytes"]
for tier, d in zip(("hot", "warm", "cold"), sys.argv[3:6]):
    packs = [p for p in pathlib.Path(d).glob("*/*/*.pack") if p.parts[-3] in ("data", "tree")]
    assert len(packs) == want[tier][0], (tier, len(packs), want)
    assert sum(p.stat().st_size for p in packs) == want[tier][1], (tier, want)
    assert [h["storage"][tier]["packs"], h["storage"][tier]["bytes"]] == want[tier], (tier, h["storage"], want)
assert want["cold"][0] > 0, want
PY
done
pass "health counts each pack in the tier holding it, with or without the tiers in the configuration"

# --- a damaged tier record -----------------------------------------------------
# A record in tiers/ whose checksum fails was left out in silence: its
# location was searched by nobody, the cold packs looked missing from every
# tier, and repair dropped their index entries.  Each command that judges
# packs missing now stops naming the record (exit 4), and changes nothing.
rec=$(grep -l "\"location\":\"$COLD\"" "$R"/tiers/*.json | head -1)
[ -n "$rec" ] || fail "no tier record names $COLD"
cp "$rec" "$T/rec.json"
python3 - "$rec" <<'PY'
import sys
p = sys.argv[1]
b = open(p, "rb").read()
open(p, "wb").write(b.replace(b'"tier":"cold"', b'"tier":"colD"', 1))
PY
cmp -s "$rec" "$T/rec.json" && fail "the record was not changed"
find "$R/index" -type f | sort >"$T/index-before"
for cmd in repair prune "tier status" "tier migrate"; do
	cfg=()
	[ "$cmd" != "tier migrate" ] || cfg=(-c "$T/tiers.json")
	# shellcheck disable=SC2086
	expect_exit 4 "$BKR" -r "$R" "${cfg[@]}" $cmd
	one_line_error
	grep -qF "1 tier record is damaged ($rec: " "$T/err" || fail "$cmd with a damaged tier record: $(cat "$T/err")"
done
expect_exit 1 "$BKR" -r "$R" verify
grep -qF "1 tier record is damaged ($rec: " "$T/out" "$T/err" || fail "verify with a damaged tier record: $(cat "$T/out" "$T/err")"
find "$R/index" -type f | sort | cmp -s - "$T/index-before" || fail "a command changed the index with a damaged tier record"
# The command meant to clean up tier records refused it (exit 3: no record
# names a location nobody can read).  --damaged moves it into trash/.
base=$(basename "$rec")
cp "$rec" "$T/rec-damaged.json"
expect_exit 0 "$BKR" -r "$R" tier forget --damaged --dry-run
grep -qF "would move damaged tier record tiers/$base into trash: $rec: " "$T/out" || fail "forget --damaged --dry-run: $(cat "$T/out")"
[ -e "$rec" ] || fail "forget --damaged --dry-run moved the record"
expect_exit 0 "$BKR" -r "$R" tier forget --damaged --json
python3 - "$T/out" "tiers/$base" <<'PY' || fail "forget --damaged --json: $(cat "$T/out")"
import json, sys
o = json.load(open(sys.argv[1]))
assert not o["dry_run"] and o["records"] == 1 and [d["record"] for d in o["damaged"]] == [sys.argv[2]], o
PY
[ ! -e "$rec" ] && cmp -s "$R/trash/$base" "$T/rec-damaged.json" || fail "the damaged tier record did not move into trash"
"$BKR" -r "$R" tier status >"$T/out" 2>"$T/err" || true
err_has "tier record" && fail "tier status still stops on the damaged record: $(cat "$T/err")"
expect_exit 3 "$BKR" -r "$R" tier forget --damaged
one_line_error
err_has "no tier record is damaged" || fail "forget --damaged with none: $(cat "$T/err")"
find "$R/index" -type f | sort | cmp -s - "$T/index-before" || fail "forget --damaged changed the index"
mv "$R/trash/$base" "$rec"
cp "$T/rec.json" "$rec"
expect_exit 0 "$BKR" -r "$R" verify
pass "a damaged tier record stops repair, prune, tier status and migrate naming it (exit 4), verify names it; tier forget --damaged moves it into trash"

# A retired tier's disk taken up as the other tier: 'bkr tier forget' leaves its tier.json
# (naming the old tier), and migrate rewrites it when it records the location again; from
# then on the marker and the record agree (verify passes).
fresh
expect_exit 0 "$BKR" -c "$T/bkr.json" tier migrate --as-of "$AS_OF"
cat >"$T/no-cold.json" <<JSON
{"repository": "$R", "workspace_root": "$ws", "tiers": {"warm": {"path": "$WARM"}}}
JSON
expect_exit 0 "$BKR" -c "$T/no-cold.json" tier migrate --as-of "$AS_OF"
expect_exit 0 "$BKR" -r "$R" tier forget "$COLD"
grep -q '"tier":"cold"' "$COLD/tier.json" || fail "forget changed the cold marker: $(cat "$COLD/tier.json")"
cat >"$T/swapped.json" <<JSON
{"repository": "$R", "workspace_root": "$ws", "tiers": {"warm": {"path": "$COLD"}, "cold": {"path": "$WARM"}}}
JSON
expect_exit 2 "$BKR" -c "$T/swapped.json" tier migrate --as-of "$AS_OF"  # WARM is still recorded warm
mkdir -p "$T/cold3"
cat >"$T/swapped.json" <<JSON
{"repository": "$R", "workspace_root": "$ws", "tiers": {"warm": {"path": "$COLD"}, "cold": {"path": "$T/cold3"}}}
JSON
expect_exit 0 "$BKR" -c "$T/swapped.json" tier migrate --as-of "$AS_OF"
grep -q '"tier":"warm"' "$COLD/tier.json" || fail "migrate did not rewrite the reused disk's marker: $(cat "$COLD/tier.json")"
[ -n "$(find "$COLD/data" -name '*.pack')" ] || fail "no pack moved to the reused disk"
expect_exit 0 "$BKR" -r "$R" verify --read-data
restore_all "after a forgotten cold disk became warm"
pass "a forgotten tier's disk taken up as the other tier: migrate rewrites its tier.json; verify passes"
