#!/usr/bin/env bash
# bkr copy (docs/bkr.1.md "copy"): backups replicated between repositories.
# plain -> plain exact (manifests, tree ids, restores of the edge-case tree)
# and incremental (a second run sends nothing; a new backup sends only its
# new blobs); plain -> encrypted -> encrypted -> plain with restores, diff,
# verify --read-data, and the same tree ids back at the end; the ID forms;
# --dry-run and --json; a damaged source blob (one line naming backup and
# blob, nothing published); a damaged source manifest (named, the rest
# copied, exit 4; latest refused when it is the newest); a copy killed by
# fault injection at several points, then rerun; an unknown id; a repository
# copied into itself; another backup under a copied one's id (plain and
# encrypted: exit 7, true duplicates skipped); tags of one instant; between
# differently keyed repositories, the copy of an almost unchanged backup reads
# only what changed (bytes_read), a file rewritten deep in the tree with its
# size and mtime kept still copied; between repositories that name blobs
# alike, a chunk repair took out of the destination's index below a tree it
# still has is sent again; a damaged tree in the destination's copy
# of the parent named once, not a failure (the new backup read in full); a
# damaged tree (or a recorded damaged chunk) the destination's index still
# names, shared by a new backup, stored again by its copy (whole there);
# copy --heal: what repair took out of a backup already copied, or verify
# found damaged in it, stored again from the source, nothing else touched
# (a dry run writes nothing; killed at a rename, nothing lost); between
# differently keyed repositories a backup found the same before is not
# compared again (the copy cache; a file that is not one is ignored).
# Needs root (mknod, chown in the edge tree).
source "$(dirname "$0")/lib.sh"

export BKR_TEST_KDF_N=1024 # cheap keys for the test
unset BKR_PASSWORD BKR_NEW_PASSWORD BKR_FROM_PASSWORD BKR_TO_PASSWORD BKR_REPO

backup_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$1"; }
# every file of a repository with size and mtime: what "nothing written" compares
snapshot() { find "$1" -printf '%P %s %T@\n' | sort; }
# the manifests of a repository as `bkr list --json` gives them (records applied), less
# bkr_version and, unless "trees", the tree ids: one JSON line each
manifests() {
	"$BKR" -r "$1" list --json >"$T/list.json" || fail "list $1"
	python3 - "$T/list.json" "${2:-}" <<'PY'
import json, sys
keep_trees = sys.argv[2] == "trees"
for m in json.load(open(sys.argv[1])):
    m["metadata"].pop("bkr_version", None)
    if not keep_trees:
        m.pop("tree")
        for s in m["sources"]:
            s.pop("checksum")
    print(json.dumps(m, sort_keys=True))
PY
}
# flip_manifest FILE: one bit flipped in the middle of FILE (its checksum fails)
flip_manifest() {
	python3 - "$1" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 1
open(p, "wb").write(bytes(b))
PY
}
json_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
# restore_cmp REPO ID TREE: ID restored from REPO is TREE, exactly (treecmp; and diff -r,
# but not of the edge tree: its FIFO and devices, and 5 GiB of holes)
restore_cmp() {
	rm -rf "$T/rc"
	expect_exit 0 "$BKR" -r "$1" restore "$2" --target "$T/rc"
	python3 "$HERE/treecmp.py" "$3" "$T/rc/$(basename "$3")" >/dev/null ||
		fail "$2 restored from $1 differs from $3"
	[ "$3" = "$src" ] || diff -r "$3" "$T/rc/$(basename "$3")" >/dev/null || fail "diff -r: $2 restored from $1 differs"
}

# --- the source: the edge-case tree (one full backup), then a small tree: full,
# incremental, a tagged snapshot; an incremental comes later
src=$T/src
make_edge_tree "$src"
sm=$T/small
mkdir -p "$sm/sub"
printf 'copy-marker-%s\n' 7d41c0 >"$sm/marker.txt"
head -c 3000000 /dev/urandom >"$sm/random.bin"
printf 'hello\n' >"$sm/sub/hello"
A=$T/a
expect_exit 0 "$BKR" init -r "$A"
expect_exit 0 "$BKR" -r "$A" create --type full "$src" --json
id1=$(backup_id "$T/out")
expect_exit 0 "$BKR" -r "$A" create --type full "$sm" --json
# no pause for the next backups' ids: one made in the same second as its parent is dated a
# microsecond after it (docs/format.md), and a change shows in the ctime's nanoseconds
printf 'changed\n' >"$sm/sub/hello"
printf 'new file\n' >"$sm/added.txt"
head -c 200000 /dev/urandom >"$sm/sub/more.bin"
mkdir -p "$T/snap" && cp -a "$sm" "$T/snap/small"
expect_exit 0 "$BKR" -r "$A" create --type incremental "$sm" --json
id2=$(backup_id "$T/out")
expect_exit 0 "$BKR" -r "$A" create --type snapshot "$sm" --json
id3=$(backup_id "$T/out")
expect_exit 0 "$BKR" -r "$A" tag "$id3" --add keep --add release-1

# --- usage, help, refusals
expect_exit 0 "$BKR" copy --help
grep -q -- "--from-password-file" "$T/out" || fail "copy --help does not name --from-password-file"
expect_exit 2 "$BKR" copy --to "$A"
one_line_error
expect_exit 2 "$BKR" copy --from "$A" --to "$A"
one_line_error
grep -q "same repository" "$T/err" || fail "copy into itself: $(cat "$T/err")"
B=$T/b
expect_exit 0 "$BKR" init -r "$B"
before=$(snapshot "$B")
expect_exit 3 "$BKR" copy --from "$A" --to "$B" "$id1" nosuchbackup
one_line_error
grep -q "nosuchbackup" "$T/err" || fail "unknown id not named: $(cat "$T/err")"
expect_exit 3 "$BKR" copy --from "$T/nowhere" --to "$B"
one_line_error
[ "$(snapshot "$B")" = "$before" ] || fail "a refused copy wrote to the destination"
expect_exit 0 "$BKR" copy --from "$A" --to "$B" --dry-run --json
json_ok "$T/out"
[ "$(json_get "$T/out" backups_copied)" = 4 ] || fail "dry run would not copy 4 backups: $(cat "$T/out")"
[ "$(json_get "$T/out" blobs_sent)" -gt 0 ] || fail "dry run would send nothing"
[ "$(snapshot "$B")" = "$before" ] || fail "a dry run wrote to the destination"
pass "help, usage errors, a copy into itself, an unknown id and a dry run write nothing"

# --- plain -> plain: the ID forms, exact, then incremental
expect_exit 0 "$BKR" copy --from "$A" --to "$B" latest --json
json_ok "$T/out"
[ "$(json_get "$T/out" backups_copied)" = 1 ] || fail "latest: $(cat "$T/out")"
suffix=${id1##*_}
expect_exit 0 "$BKR" -r "$B" --json copy --from "$A" "${suffix:0:5}"  # -r names the destination
[ "$(json_get "$T/out" backups_copied)" = 1 ] || fail "suffix prefix: $(cat "$T/out")"
expect_exit 0 "$BKR" copy --from "$A" --to "$B"
grep -q "^copied $id2" "$T/out" || fail "the rest was not copied: $(cat "$T/out")"
grep -q "^copied 2 backups (2 skipped)" "$T/out" || fail "the summary: $(cat "$T/out")"
grep -q "^skipped $id1" "$T/out" || fail "a copied backup was not skipped: $(cat "$T/out")"
[ "$(manifests "$A" trees)" = "$(manifests "$B" trees)" ] || {
	diff <(manifests "$A" trees) <(manifests "$B" trees); fail "plain -> plain manifests differ"; }
grep -q '"tags": \["keep", "release-1"\]' <(manifests "$B") || fail "the tags were not kept: $(manifests "$B")"
restore_cmp "$B" "$id1" "$src"
restore_cmp "$B" "$id3" "$T/snap/small"
expect_exit 0 "$BKR" -r "$B" verify --read-data
expect_exit 0 "$BKR" copy --from "$A" --to "$B" --json
[ "$(json_get "$T/out" blobs_sent)" = 0 ] || fail "a second run sent blobs: $(cat "$T/out")"
[ "$(json_get "$T/out" backups_copied)" = 0 ] || fail "a second run copied backups"
[ "$(json_get "$T/out" backups_skipped)" = 4 ] || fail "a second run skipped $(json_get "$T/out" backups_skipped)"
expect_exit 0 "$BKR" copy --from "$A" --to "$B"
grep -q "nothing to copy" "$T/out" || fail "a second run does not say so: $(cat "$T/out")"
printf 'one more change\n' >>"$sm/marker.txt"
expect_exit 0 "$BKR" -r "$A" create --type incremental "$sm" --json
id4=$(backup_id "$T/out")
expect_exit 0 "$BKR" copy --from "$A" --to "$B" --json
[ "$(json_get "$T/out" backups_copied)" = 1 ] || fail "the new backup was not copied alone"
sent=$(json_get "$T/out" blobs_sent)
[ "$sent" -ge 1 ] && [ "$sent" -le 4 ] || fail "an incremental copy sent $sent blobs (a changed file, its directory, the root)"
restore_cmp "$B" "$id4" "$sm"
grep -q '"event":"copied"' "$XDG_STATE_HOME"/bkr/*.log 2>/dev/null || grep -rq '"copied"' "$XDG_STATE_HOME/bkr" ||
	fail "no copy event in the log"
pass "plain -> plain: latest, a suffix prefix, the rest; manifests and tree ids equal, restores exact; a second run sends 0 blobs; a new backup only its own"

# --- plain -> encrypted -> encrypted -> plain
E=$T/e
E2=$T/e2
P=$T/p
BKR_PASSWORD=pass-e expect_exit 0 "$BKR" init -r "$E" --encryption aes-256-gcm
BKR_PASSWORD=pass-e2 expect_exit 0 "$BKR" init -r "$E2" --encryption aes-256-gcm
expect_exit 0 "$BKR" init -r "$P"
BKR_PASSWORD=wrong expect_exit 9 "$BKR" copy --from "$A" --to "$E"
one_line_error
# an empty passphrase names where it came from (found by hostile testing: only
# "--to: an empty passphrase is refused", whichever of the sources gave it)
: >"$T/pw-empty"
expect_exit 2 "$BKR" copy --from "$A" --to "$E" --to-password-file "$T/pw-empty"
one_line_error
grep -q "^bkr copy: --to: password file $T/pw-empty: its first line is empty (an empty passphrase is refused)$" "$T/err" ||
	fail "an empty password file is not named: $(cat "$T/err")"
expect_exit 2 "$BKR" copy --from "$A" --to "$E" --to-password-command 'echo'
one_line_error
grep -q "^bkr copy: --to: password command printed nothing or an empty first line (an empty passphrase is refused): echo$" "$T/err" ||
	fail "an empty password command is not named: $(cat "$T/err")"
BKR_TO_PASSWORD= expect_exit 2 "$BKR" copy --from "$A" --to "$E"
one_line_error
grep -q "^bkr copy: --to: BKR_TO_PASSWORD is empty (an empty passphrase is refused)$" "$T/err" ||
	fail "an empty BKR_TO_PASSWORD is not named: $(cat "$T/err")"
BKR_TO_PASSWORD=pass-e expect_exit 0 "$BKR" copy --from "$A" --to "$E"
! grep -rqa "copy-marker-7d41c0" "$E" || fail "plaintext of a file in the encrypted copy"
! grep -rqa "with space" "$E" || fail "a file name in plaintext in the encrypted copy"
export BKR_PASSWORD=pass-e
restore_cmp "$E" "$id4" "$sm"
expect_exit 0 "$BKR" -r "$E" verify --read-data
expect_exit 0 "$BKR" -r "$A" diff "$id2" "$id4"
cp "$T/out" "$T/diff-a"
grep -q marker.txt "$T/diff-a" || fail "the source's diff does not name marker.txt: $(cat "$T/diff-a")"
expect_exit 0 "$BKR" -r "$E" diff "$id2" "$id4"
cmp -s "$T/out" "$T/diff-a" || { diff "$T/diff-a" "$T/out"; fail "diff of the copied backups differs"; }
[ "$(manifests "$A")" = "$(manifests "$E")" ] || { diff <(manifests "$A") <(manifests "$E"); fail "the encrypted copy's manifests differ"; }
[ "$(manifests "$A" trees)" != "$(manifests "$E" trees)" ] || fail "the tree ids were not translated"
unset BKR_PASSWORD
# one encrypted repository into another (other keys), with --from/--to password files
printf 'pass-e\n' >"$T/pw-e"
printf 'pass-e2\n' >"$T/pw-e2"
expect_exit 0 "$BKR" copy --from "$E" --to "$E2" --from-password-file "$T/pw-e" --to-password-file "$T/pw-e2" --json
[ "$(json_get "$T/out" backups_copied)" = 5 ] || fail "encrypted -> encrypted: $(cat "$T/out")"
BKR_FROM_PASSWORD=pass-e2 expect_exit 0 "$BKR" copy --from "$E2" --to "$P"
restore_cmp "$P" "$id1" "$src"
restore_cmp "$P" "$id3" "$T/snap/small"
expect_exit 0 "$BKR" -r "$P" verify --read-data
# the trees came back to the same ids: the re-encoding loses nothing
[ "$(manifests "$A" trees)" = "$(manifests "$P" trees)" ] || {
	diff <(manifests "$A" trees) <(manifests "$P" trees); fail "plain -> encrypted -> plain changed the manifests"; }
BKR_PASSWORD=pass-e2 expect_exit 0 "$BKR" -r "$E2" verify --read-data
BKR_FROM_PASSWORD=pass-e2 expect_exit 0 "$BKR" copy --from "$E2" --to "$P" --json
[ "$(json_get "$T/out" blobs_sent)" = 0 ] || fail "encrypted -> plain again sent blobs"
pass "plain -> encrypted -> encrypted -> plain: restores exact, verify --read-data clean, diff alike, the same tree ids at the end, no plaintext"

# --- a damaged source blob: one line naming backup and blob; nothing published
D=$T/damaged
cp -a "$A" "$D"
pack=$(find "$D/data" -name '*.pack' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
flip_byte_in_blob "$pack"
C=$T/c
expect_exit 0 "$BKR" init -r "$C"
expect_exit 4 "$BKR" copy --from "$D" --to "$C"
one_line_error
grep -q "backup backup_" "$T/err" && grep -q "blob [0-9a-f]\{64\}" "$T/err" ||
	fail "the error does not name the backup and the blob: $(cat "$T/err")"
[ -z "$(ls "$C/backups" 2>/dev/null)" ] || fail "a backup was published from a damaged source"
expect_exit 0 "$BKR" -r "$C" verify --read-data
pass "a damaged source blob: exit 4, one line naming backup and blob, nothing published, the destination verifies"

# --- a damaged source manifest (found by hostile testing: "not copied" as a
# warning, the summary, exit 0 - a replication job took it for done): the
# other backups are copied, the copy ends with exit 4, and a rerun says so again
DM=$T/damaged-manifest
cp -a "$A" "$DM"
flip_manifest "$DM/backups/$id3.json"
C=$T/c-dm
expect_exit 0 "$BKR" init -r "$C"
for run in first second; do
	expect_exit 4 "$BKR" copy --from "$DM" --to "$C"
	grep -q "warning: $id3.json: not copied: .*checksum mismatch" "$T/err" ||
		fail "$run run: the damaged manifest is not named: $(cat "$T/err")"
	grep -q "$DM: 1 backup not copied: its manifest there is damaged (named above); every other backup is in $C" "$T/err" ||
		fail "$run run: the error: $(cat "$T/err")"
done
[ "$(ls "$C/backups" | sort)" = "$(ls "$A/backups" | grep -v "$id3" | sort)" ] ||
	fail "the other backups were not copied: $(ls "$C/backups")"
expect_exit 4 "$BKR" copy --from "$DM" --to "$C" --dry-run
expect_exit 0 "$BKR" copy --from "$DM" --to "$C" "$id4"
# 'latest' when the newest source manifest is damaged (found by hostile testing:
# an older backup copied, exit 0): refused, as everywhere (docs/bkr.1.md), nothing copied
flip_manifest "$DM/backups/$id4.json"
C=$T/c-latest
expect_exit 0 "$BKR" init -r "$C"
expect_exit 4 "$BKR" copy --from "$DM" --to "$C" latest
grep -q "backups/$id4.json is damaged and newer than every readable backup, so 'latest' would name an older one" "$T/err" ||
	fail "copy latest does not name the damaged newest manifest: $(cat "$T/err")"
[ -z "$(ls "$C/backups")" ] || fail "copy latest copied an older backup: $(ls "$C/backups")"
pass "a damaged source manifest: named, the others copied, exit 4 (and for a dry run); a copy of other IDs is not concerned; latest names a damaged newest one"

# --- killed mid-way (a crash at the n-th rename or write), then rerun
for fault in rename:1 rename:4 write:9 fsync:6; do
	K=$T/k-${fault/:/-}
	expect_exit 0 "$BKR" init -r "$K"
	BKR_FAULT=$fault:crash expect_exit 137 "$BKR" copy --from "$A" --to "$K"
	expect_exit 0 "$BKR" -r "$K" verify --read-data
	expect_exit 0 "$BKR" copy --from "$A" --to "$K" --json
	[ "$(json_get "$T/out" backups_copied)" -ge 1 ] || fail "$fault: the rerun had nothing to do"
	[ "$(manifests "$A" trees)" = "$(manifests "$K" trees)" ] || fail "$fault: the rerun did not complete the copy"
	expect_exit 0 "$BKR" -r "$K" verify --read-data
done
restore_cmp "$K" "$id4" "$sm"
pass "a copy killed at a rename, write or fsync leaves the destination verify-clean; a rerun completes it"

# --- a backup whose manifest in the destination is damaged is not "already
# there" (found by hostile testing: skipped, "nothing to copy", exit 0): it is
# named, never copied over (a manifest is never replaced), exit 4; the others
# are copied; once it is deleted there, a rerun copies it again
D=$T/damaged-dest
expect_exit 0 "$BKR" init -r "$D"
expect_exit 0 "$BKR" copy --from "$A" --to "$D" "$id1"
flip_manifest "$D/backups/$id1.json"
expect_exit 4 "$BKR" copy --from "$A" --to "$D"
grep -q "backup $id1: not copied: it is in $D, but its manifest there is damaged" "$T/err" ||
	fail "a damaged destination manifest is not named: $(cat "$T/err")"
grep -q "1 backup to copy is there with a damaged manifest" "$T/err" || fail "the error: $(cat "$T/err")"
grep -q "nothing to copy\|^skipped $id1" "$T/out" && fail "a damaged destination manifest counted as copied: $(cat "$T/out")"
grep -q "^copied $id4" "$T/out" || fail "the other backups were not copied: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$D" delete --force "$id1"
expect_exit 0 "$BKR" copy --from "$A" --to "$D"
grep -q "^copied $id1" "$T/out" || fail "the rerun did not copy it again: $(cat "$T/out")"
restore_cmp "$D" "$id1" "$src"
pass "a backup damaged in the destination is named (exit 4), not skipped; deleted there, it is copied again"

# --- a destination holding another backup under the same id (found by hostile
# testing: "skipped ID: already in the destination", exit 0, though its data is
# another backup's): named with both root trees, never copied over, exit 7;
# the other backups are copied
O=$T/other-dest
mkdir -p "$T/other-src" && printf 'other\n' >"$T/other-src/f"
expect_exit 0 "$BKR" init -r "$O"
expect_exit 0 "$BKR" -r "$O" create --type full "$T/other-src" --json
oid=$(backup_id "$T/out")
manifest_as_id "$O/backups/$oid.json" "$O/backups/$id1.json" "$id1"
rm "$O/backups/$oid.json"
expect_exit 7 "$BKR" copy --from "$A" --to "$O"
grep -q "backup $id1: not copied: $O has another backup under that id (root tree [0-9a-f]\{64\} there, [0-9a-f]\{64\} in $A)" "$T/err" ||
	fail "another backup under the same id is not named: $(cat "$T/err")"
grep -q "$O: 1 backup to copy is there with other content under the same id (named above): not copied over" "$T/err" ||
	fail "the error: $(cat "$T/err")"
grep -q "^copied $id4" "$T/out" || fail "the other backups were not copied: $(cat "$T/out")"
grep -q "$T/other-src" "$O/backups/$id1.json" || fail "the destination's backup was replaced"
pass "another backup under the same id in the destination: named, not copied over, exit 7; the others copied"

# --- two copies into the same destination at once (found by review: the one
# publishing second said "nothing to copy" though it had sent every blob
# again): it names what it sent twice; nothing is lost or inconsistent, and
# prune drops the duplicates. The first copy stops at its second write (it
# has read the destination's index, committed nothing), the second runs
# through, the first goes on.
W=$T/twice
expect_exit 0 "$BKR" init -r "$W"
BKR_FAULT=write:2:stop "$BKR" copy --from "$A" --to "$W" "$id2" >"$T/c1.out" 2>"$T/c1.err" &
c1=$!
wait_stopped $c1 || fail "the first copy did not stop: $(cat "$T/c1.err")"
[ -z "$(ls "$W/backups")" ] || fail "the first copy published before it stopped"
expect_exit 0 "$BKR" copy --from "$A" --to "$W" "$id2"
grep -q "^copied $id2" "$T/out" || fail "the second copy did not copy: $(cat "$T/out")"
kill -CONT $c1
wait $c1 || fail "the first copy failed: $(cat "$T/c1.err")"
grep -q "^skipped $id2: copied into the destination meanwhile by another run ([0-9]* blobs, .* sent twice: 'bkr prune' there drops the duplicates)$" "$T/c1.out" &&
	grep -q "^nothing copied: 1 backup already in $W, copied there meanwhile by another run ([0-9]* blobs, .* sent twice: 'bkr prune' there drops the duplicates)$" "$T/c1.out" ||
	fail "the copy published second does not say what it sent twice: $(cat "$T/c1.out")"
expect_exit 0 "$BKR" -r "$W" verify --read-data
restore_cmp "$W" "$id2" "$T/snap/small"
expect_exit 0 "$BKR" -r "$W" prune --json
[ "$(json_get "$T/out" duplicate_blobs)" -gt 0 ] && [ "$(json_get "$T/out" unused_packs)" -gt 0 ] ||
	fail "prune found no duplicates to drop: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$W" prune --dry-run --json
[ "$(json_get "$T/out" duplicate_blobs)" = 0 ] || fail "duplicates left after prune: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$W" verify --read-data
restore_cmp "$W" "$id2" "$T/snap/small"
pass "two copies into one destination at once: the second to publish names the blobs it sent twice; verify clean, restores exact, one prune drops the duplicates"

# --- another backup under a copied backup's id between repositories that name
# blobs differently (plain and encrypted, two sets of keys; found by review:
# skipped as "already in the destination", exit 0, since their tree ids cannot
# be compared): the manifests' fields and the trees, entry by entry, are
# compared, never blob ids. True duplicates (A's backups, copied into E and E2
# above: the edge tree's xattrs, holes, devices and hardlinks too) are skipped;
# a forged one is named with what differs, never copied over, exit 7.
# forge IN OUT PYTHON [ARG...]: manifest IN changed by PYTHON (on the dict m; the
# ARGs in sys.argv[4:]), sealed again, into OUT
forge() {
	python3 - "$@" <<'PY'
import hashlib, json, sys
m = json.load(open(sys.argv[1]))
exec(sys.argv[3])
m.pop("sha256", None)
t = json.dumps(m, separators=(",", ":"), ensure_ascii=False)[:-1] + ',"sha256":"' + "0" * 64 + '"}'
open(sys.argv[2], "w").write(t[:-66] + hashlib.sha256(t.encode()).hexdigest() + '"}')
PY
}
expect_exit 0 "$BKR" copy --from "$A" --to "$E" --to-password-file "$T/pw-e"
grep -q "^nothing to copy: 5 backups already in $E$" "$T/out" || fail "plain -> encrypted again: $(cat "$T/out")"
expect_exit 0 "$BKR" copy --from "$E" --to "$E2" --from-password-file "$T/pw-e" --to-password-file "$T/pw-e2"
grep -q "^nothing to copy: 5 backups already in $E2$" "$T/out" || fail "encrypted -> encrypted again: $(cat "$T/out")"
F=$T/forged
cp -a "$A" "$F"
# id2 with id4's trees (every manifest field of id2, another backup's files); id3 from another host
forge "$A/backups/$id2.json" "$F/backups/$id2.json" 'o = json.load(open(sys.argv[4])); m["tree"] = o["tree"]
for s, x in zip(m["sources"], o["sources"]): s["checksum"] = x["checksum"]' "$A/backups/$id4.json"
forge "$A/backups/$id3.json" "$F/backups/$id3.json" 'm["metadata"]["hostname"] = "elsewhere"'
expect_exit 0 "$BKR" -r "$F" verify
host=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["hostname"])' "$A/backups/$id3.json")
E_before=$(snapshot "$E")
for pair in "$F $E pw-e" "$T/ef $E2 pw-e2"; do
	set -- $pair
	if [ "$1" = "$T/ef" ]; then # the forged backups in an encrypted repository with keys of its own
		printf 'pass-f\n' >"$T/pw-f"
		BKR_PASSWORD=pass-f expect_exit 0 "$BKR" init -r "$1" --encryption aes-256-gcm
		expect_exit 0 "$BKR" copy --from "$F" --to "$1" --to-password-file "$T/pw-f"
		set -- "$1" "$2" "$3" --from-password-file "$T/pw-f"
	fi
	src_repo=$1 dst=$2 pw=$3
	shift 3
	expect_exit 7 "$BKR" copy --from "$src_repo" --to "$dst" --to-password-file "$T/$pw" "$@"
	grep -q "^bkr copy: warning: backup $id2: not copied: $dst has another backup under that id (small/marker.txt: other times there than in $src_repo)$" "$T/err" ||
		fail "$src_repo -> $dst: the forged trees are not named: $(cat "$T/err")"
	grep -q "^bkr copy: warning: backup $id3: not copied: $dst has another backup under that id (hostname '$host' there, 'elsewhere' in $src_repo)$" "$T/err" ||
		fail "$src_repo -> $dst: the forged host is not named: $(cat "$T/err")"
	grep -q "$dst: 2 backups to copy are there with other content under the same id (named above): not copied over" "$T/err" ||
		fail "$src_repo -> $dst: the error: $(cat "$T/err")"
	[ "$(grep -c "^skipped .*: already in the destination$" "$T/out")" = 3 ] ||
		fail "$src_repo -> $dst: the true duplicates were not skipped: $(cat "$T/out")"
done
[ "$(snapshot "$E")" = "$E_before" ] || fail "a refused copy wrote to $E"
BKR_PASSWORD=pass-e expect_exit 0 "$BKR" -r "$E" verify
[ "$(BKR_PASSWORD=pass-e manifests "$E")" = "$(manifests "$A")" ] || fail "the encrypted copy's manifests changed"
pass "another backup under a copied backup's id, plain -> encrypted and encrypted -> encrypted (other keys): the forged trees and host named, exit 7, nothing copied over; true duplicates skipped"

# --- tags of one instant (one 'bkr tag' with several --add, the clock fixed, as a
# coarse clock or two hosts in the same nanosecond give them): listed by name, in
# every run and every repository, never in the order of the random part of their
# records' names (found by review: the order changed from one repository to another)
tags_of() {
	"$BKR" -r "$1" list --json >"$T/list.json" || fail "list $1"
	python3 - "$T/list.json" "$2" <<'PY'
import json, sys
print(",".join(next(m for m in json.load(open(sys.argv[1])) if m["backup_id"] == sys.argv[2])["tags"]))
PY
}
TG=$T/tags
TG2=$T/tags2
expect_exit 0 "$BKR" init -r "$TG"
expect_exit 0 "$BKR" init -r "$TG2"
expect_exit 0 "$BKR" -r "$TG" create --type full "$T/other-src" --tag made --json
tid=$(backup_id "$T/out")
BKR_TEST_NOW=2001-01-01T00:00:00Z expect_exit 0 "$BKR" -r "$TG" tag "$tid" --add t-h --add t-c --add t-f \
	--add t-a --add t-g --add t-b --add t-e --add t-d
[ "$(ls "$TG/records" | cut -d- -f1 | sort -u | wc -l)" = 1 ] || fail "the tag records are not of one instant"
want=made,t-a,t-b,t-c,t-d,t-e,t-f,t-g,t-h
[ "$(tags_of "$TG" "$tid")" = "$want" ] || fail "tags of one instant not by name: $(tags_of "$TG" "$tid")"
expect_exit 0 "$BKR" copy --from "$TG" --to "$TG2"
[ "$(tags_of "$TG2" "$tid")" = "$want" ] || fail "the copy's tags: $(tags_of "$TG2" "$tid")"
pass "tags added at one instant are listed by name, in the source and in a copy"

# --- tags and pins changed in the source after a backup was copied (found by
# review: a later copy left the old ones there, for ever): the next copy makes
# them the source's there (the records 'bkr tag' and 'bkr pin' write; a tag given
# in the destination alone goes too), says so, and then has nothing to do;
# --no-sync-tags and --dry-run write nothing; plain -> plain and -> encrypted
expect_exit 0 "$BKR" -r "$TG" tag "$tid" --remove t-c --add later
expect_exit 0 "$BKR" -r "$TG" pin "$tid"
expect_exit 0 "$BKR" -r "$TG2" tag "$tid" --add dest-only
before=$(snapshot "$TG2")
expect_exit 0 "$BKR" copy --from "$TG" --to "$TG2" --no-sync-tags
grep -q "^nothing to copy: 1 backup already in $TG2$" "$T/out" || fail "--no-sync-tags: $(cat "$T/out")"
expect_exit 0 "$BKR" copy --from "$TG" --to "$TG2" --dry-run
change="+tag later, -tag t-c, -tag dest-only, pin none -> forever"
grep -q "^skipped $tid: already in the destination; would take the source's tags and pin: $change$" "$T/out" ||
	fail "a dry run does not say what it would change: $(cat "$T/out")"
[ "$(snapshot "$TG2")" = "$before" ] || fail "--no-sync-tags or a dry run wrote to the destination"
expect_exit 0 "$BKR" copy --from "$TG" --to "$TG2" --json
json_ok "$T/out"
python3 - "$T/out" "$change" <<'PY' || fail "the update is not in --json: $(cat "$T/out")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["backups_updated"] == 1 and j["backups"][0]["updated"] == sys.argv[2], j
PY
[ "$(manifests "$TG" trees)" = "$(manifests "$TG2" trees)" ] || {
	diff <(manifests "$TG" trees) <(manifests "$TG2" trees); fail "tags and pin not made the source's"; }
[ "$(tags_of "$TG2" "$tid")" = made,t-a,t-b,t-d,t-e,t-f,t-g,t-h,later ] || fail "tags: $(tags_of "$TG2" "$tid")"
before=$(snapshot "$TG2")
expect_exit 0 "$BKR" copy --from "$TG" --to "$TG2"
grep -q "^nothing to copy: 1 backup already in $TG2$" "$T/out" || fail "converged, a copy still changes: $(cat "$T/out")"
[ "$(snapshot "$TG2")" = "$before" ] || fail "converged, a copy still writes"
expect_exit 0 "$BKR" -r "$TG" unpin "$tid"
expect_exit 0 "$BKR" -r "$TG" tag "$tid" --remove made
expect_exit 0 "$BKR" copy --from "$TG" --to "$TG2"
grep -q "^skipped $tid: already in the destination; took the source's tags and pin: -tag made, pin forever -> none$" "$T/out" &&
	grep -q "^nothing to copy: 1 backup already in $TG2 (1 took the source's tags and pin)$" "$T/out" ||
	fail "unpin and untag: $(cat "$T/out")"
[ "$(manifests "$TG" trees)" = "$(manifests "$TG2" trees)" ] || fail "unpin and untag not carried"
# a backup deleted in the destination leaves its records there, which apply to it once copied again
expect_exit 0 "$BKR" -r "$TG2" tag "$tid" --add stale
expect_exit 0 "$BKR" -r "$TG2" delete --force "$tid"
expect_exit 0 "$BKR" copy --from "$TG" --to "$TG2"
grep -q "^copied $tid: .*; took the source's tags and pin: -tag stale$" "$T/out" || fail "copied again: $(cat "$T/out")"
[ "$(manifests "$TG" trees)" = "$(manifests "$TG2" trees)" ] || fail "copied again: the old records apply"
expect_exit 0 "$BKR" -r "$A" tag "$id3" --add offsite --remove keep
expect_exit 0 "$BKR" -r "$A" pin "$id1" --until 2200-01-01
expect_exit 0 "$BKR" copy --from "$A" --to "$E" --to-password-file "$T/pw-e"
grep -q "^nothing to copy: 5 backups already in $E (2 took the source's tags and pin)$" "$T/out" ||
	fail "plain -> encrypted: $(cat "$T/out")"
[ "$(BKR_PASSWORD=pass-e manifests "$E")" = "$(manifests "$A")" ] || {
	diff <(manifests "$A") <(BKR_PASSWORD=pass-e manifests "$E"); fail "plain -> encrypted: tags and pin not carried"; }
pass "tags and pins changed in the source after a copy are made the source's by the next copy (plain and encrypted; also over the records of a backup deleted there); then nothing to do; --no-sync-tags and --dry-run write nothing"

# --- between repositories that name blobs differently, a copy of a backup whose parent the
# destination has reads only what changed: each unchanged file lends the blob ids of its copy
# there (the same bytes: size, content digest, holes, each chunk's length), so the
# second copy of an almost unchanged backup reads its trees and the one changed file, not every
# file again (it read 100 %), nor the files only touched or chmod'ed; a file rewritten with its
# size and mtime kept, deep in the tree, is still copied; plain -> encrypted and encrypted ->
# plain restore exactly
H=$T/hsrc
mkdir -p "$H/a/b/c/d" "$H/big" "$H/x"
for i in 1 2 3 4 5 6; do head -c 1500000 /dev/urandom >"$H/big/f$i.bin"; done
for i in $(seq 1 30); do printf 'small file %s\n' "$i" >"$H/x/s$i.txt"; done
head -c 300000 /dev/urandom >"$H/a/b/c/d/deep.bin"
printf 'unchanged\n' >"$H/a/b/c/d/keep.txt"
HA=$T/ha HE=$T/he HP=$T/hp
expect_exit 0 "$BKR" init -r "$HA"
BKR_PASSWORD=pass-h expect_exit 0 "$BKR" init -r "$HE" --encryption aes-256-gcm
expect_exit 0 "$BKR" init -r "$HP"
expect_exit 0 "$BKR" -r "$HA" create --type full "$H" --json
hid1=$(backup_id "$T/out")
mkdir -p "$T/hsnap1" && cp -a "$H" "$T/hsnap1/hsrc"
BKR_TO_PASSWORD=pass-h expect_exit 0 "$BKR" copy --from "$HA" --to "$HE" --json
full=$(json_get "$T/out" bytes_read)
# one file touched, another chmod'ed (the same bytes: read by the backup, not by the copy);
# the deep file rewritten in place: the same size, its mtime put back
touch -d '2020-01-02 03:04:05' "$H/big/f1.bin"
chmod 600 "$H/big/f2.bin"
python3 - "$H/a/b/c/d/deep.bin" <<'PY'
import os, sys
p = sys.argv[1]
st = os.stat(p)
with open(p, "r+b") as f:
    f.seek(150000)
    f.write(b"\xa5" * 4096)
os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
PY
expect_exit 0 "$BKR" -r "$HA" create --type incremental "$H" --json
hid2=$(backup_id "$T/out")
BKR_TO_PASSWORD=pass-h expect_exit 0 "$BKR" copy --from "$HA" --to "$HE" --json
[ "$(json_get "$T/out" backups_copied)" = 1 ] || fail "the incremental: $(cat "$T/out")"
second=$(json_get "$T/out" bytes_read)
# the trees and the changed file (300000 bytes); every file was 9.3 MB, the touched ones 3 MB
[ "$second" -lt 1000000 ] || fail "plain -> encrypted, an almost unchanged backup: read $second bytes of $full"
export BKR_PASSWORD=pass-h
restore_cmp "$HE" "$hid1" "$T/hsnap1/hsrc"
restore_cmp "$HE" "$hid2" "$H"
expect_exit 0 "$BKR" -r "$HE" verify --read-data
unset BKR_PASSWORD
# and back: encrypted -> plain, the same
BKR_FROM_PASSWORD=pass-h expect_exit 0 "$BKR" copy --from "$HE" --to "$HP" "$hid1" --json
BKR_FROM_PASSWORD=pass-h expect_exit 0 "$BKR" copy --from "$HE" --to "$HP" --json
second=$(json_get "$T/out" bytes_read)
[ "$second" -lt 1000000 ] || fail "encrypted -> plain, an almost unchanged backup: read $second bytes"
restore_cmp "$HP" "$hid1" "$T/hsnap1/hsrc"
restore_cmp "$HP" "$hid2" "$H"
[ "$(manifests "$HA" trees)" = "$(manifests "$HP" trees)" ] || {
	diff <(manifests "$HA" trees) <(manifests "$HP" trees); fail "plain -> encrypted -> plain changed the manifests"; }
pass "differently keyed: the copy of an almost unchanged backup read $second bytes, not every file ($full); a file rewritten with its size and mtime kept is copied; restores exact both ways"

# --- between repositories that name blobs alike, a tree the destination's index has is walked all
# the same (only the source's trees are read, not the files whose chunks are there): the destination
# does not hold every blob below such a tree once repair has taken a damaged one out of its index
# (docs/operations.md "Healing damaged data"), and the next copy of a backup using it sends it
# again, which makes every backup there whole; skipping the tree would leave the new backup damaged
RS=$T/rsrc RA=$T/ra RB=$T/rb
mkdir -p "$RS/keep/deep" "$RS/other"
# under the chunker's least chunk (a quarter of 1 MiB): one chunk, whatever the random bytes (at
# 300000 a cut fell after 262144 now and then, and only part of the file was damaged and sent)
head -c 250000 /dev/urandom >"$RS/keep/deep/data.bin"
printf 'one\n' >"$RS/other/x"
expect_exit 0 "$BKR" init -r "$RA"
expect_exit 0 "$BKR" init -r "$RB"
expect_exit 0 "$BKR" -r "$RA" create --type full "$RS" --json
expect_exit 0 "$BKR" copy --from "$RA" --to "$RB"
damage_stored "$RB" "$RS/keep/deep/data.bin" 1000 || fail "no pack of $RB holds keep/deep/data.bin"
expect_exit 1 "$BKR" -r "$RB" verify --read-data
expect_exit 1 "$BKR" -r "$RB" repair
printf 'two\n' >"$RS/other/x"
expect_exit 0 "$BKR" -r "$RA" create --type incremental "$RS" --json
rid2=$(backup_id "$T/out")
expect_exit 0 "$BKR" copy --from "$RA" --to "$RB" --json
json_assert "$T/out" 'r["backups_copied"] == 1 and r["bytes_sent"] >= 250000'
expect_exit 0 "$BKR" -r "$RB" verify --read-data
restore_cmp "$RB" "$rid2" "$RS"
pass "same keys: a blob repair took out of the destination's index below a tree it still has is sent again by the next copy; every backup there whole"

# --- between differently keyed repositories, a damaged tree in the destination's copy of the
# parent (found by the copy: it compares the backups there with the source's, and walks the parent
# beside the new backup) no longer stops the copy with exit 4: it is named once (the backup there and
# the tree), the parent is taken as the one already there, the new backup's files below it are read
# from the source, and the new backup there reads whole and restores exactly
DS=$T/dsrc DE=$T/de DP=$T/dp
mkdir -p "$DS/a/b" "$DS/c"
for i in 1 2 3; do head -c 200000 /dev/urandom >"$DS/a/b/f$i"; done
printf 'one\n' >"$DS/c/x"
BKR_PASSWORD=pass-d expect_exit 0 "$BKR" init -r "$DE" --encryption aes-256-gcm
expect_exit 0 "$BKR" init -r "$DP"
BKR_PASSWORD=pass-d expect_exit 0 "$BKR" -r "$DE" create --type full "$DS" --json
did1=$(backup_id "$T/out")
BKR_FROM_PASSWORD=pass-d expect_exit 0 "$BKR" copy --from "$DE" --to "$DP"
printf 'two\n' >"$DS/c/x"
BKR_PASSWORD=pass-d expect_exit 0 "$BKR" -r "$DE" create --type incremental "$DS" --json
did2=$(backup_id "$T/out")
droot=$("$BKR" -r "$DP" show --json "$did1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tree"])')
damage_tree "$DP" "$droot"
# the new backup alone: the parent is not compared, only walked beside it
cp -a "$DP" "$T/dp2"
BKR_FROM_PASSWORD=pass-d expect_exit 0 "$BKR" copy --from "$DE" --to "$T/dp2" "$did2" --json
json_assert "$T/out" 'r["backups_copied"] == 1 and r["bytes_read"] >= 600000'
[ "$(grep -c "backup $did1 in $T/dp2: tree $droot there is damaged (.*blob $droot.*): its files are read from the source instead" "$T/err")" = 1 ] &&
	[ "$(wc -l <"$T/err")" = 1 ] || fail "copy $did2: the damaged tree is not named once: $(cat "$T/err")"
restore_cmp "$T/dp2" "$did2" "$DS"
# every backup: the parent is compared, then walked beside the new one; one warning
BKR_FROM_PASSWORD=pass-d expect_exit 0 "$BKR" copy --from "$DE" --to "$DP" --json
json_assert "$T/out" 'r["backups_copied"] == 1 and r["backups_skipped"] == 1 and r["bytes_read"] >= 600000'
[ "$(grep -c "backup $did1 in $DP: tree $droot there is damaged (.*blob $droot" "$T/err")" = 1 ] ||
	fail "the damaged tree is not named once: $(cat "$T/err")"
[ "$(wc -l <"$T/err")" = 1 ] || fail "more than the one warning: $(cat "$T/err")"
# the one problem verify finds for the new backup is the parent's tree damaged above
expect_exit 1 "$BKR" -r "$DP" verify "$did2" --read-data --json
json_assert "$T/out" '[(p["kind"], p["object"]) for p in r["problems"]] == [("blob", "'"$droot"'")]'
restore_cmp "$DP" "$did2" "$DS"
pass "differently keyed: a damaged tree in the destination's copy of the parent is named once, the new backup read from the source in full, whole there"

# --- a damaged tree of the destination that a new backup shares, its index still naming it (no
# repair since): between differently keyed repositories the copy names it and reads the files
# below it from the source, and re-encodes the same tree; the writer took the index's word for it
# and the new backup used the damaged copy (verify --read-data: a tree problem, restore exit 6).
# Now a tree the destination's index has is read there before it is used (as a reader reads it),
# and a damaged one is stored again from the source: the new backup reads whole, the one damaged
# copy is all verify finds, and after repair (it drops that entry) the destination is clean, the
# older backup whole again too
KS=$T/ksrc KE=$T/ke KP=$T/kp
mkdir -p "$KS/a/b" "$KS/c"
for i in 1 2 3; do head -c 200000 /dev/urandom >"$KS/a/b/f$i"; done
printf 'one\n' >"$KS/c/x"
BKR_PASSWORD=pass-k expect_exit 0 "$BKR" init -r "$KE" --encryption aes-256-gcm
expect_exit 0 "$BKR" init -r "$KP"
BKR_PASSWORD=pass-k expect_exit 0 "$BKR" -r "$KE" create --type full "$KS/a" "$KS/c" --json
kid1=$(backup_id "$T/out")
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$KP"
printf 'two\n' >"$KS/c/x"
BKR_PASSWORD=pass-k expect_exit 0 "$BKR" -r "$KE" create --type incremental "$KS/a" "$KS/c" --json
kid2=$(backup_id "$T/out")
ka=$("$BKR" -r "$KP" show --json "$kid1" | python3 -c 'import json,sys; print([s["checksum"] for s in json.load(sys.stdin)["sources"] if s["source"] == "a"][0])')
damage_tree "$KP" "$ka"
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$KP" --json
json_assert "$T/out" 'r["backups_copied"] == 1 and r["blobs_sent"] >= 4'
grep -q "tree $ka there is damaged" "$T/err" || fail "the damaged tree is not named: $(cat "$T/err")"
expect_exit 1 "$BKR" -r "$KP" verify "$kid2" --read-data --json
json_assert "$T/out" '[(p["kind"], p["object"]) for p in r["problems"]] == [("blob", "'"$ka"'")]'
restore_cmp "$KP" "$kid2" "$KS/a"
expect_exit 0 "$BKR" -r "$KP" repair
expect_exit 0 "$BKR" -r "$KP" verify --read-data
restore_cmp "$KP" "$kid1" "$KS/a"
# the same between repositories that name blobs alike, with a chunk verify found damaged (its
# record names it; no repair since): read there before it is used, stored again, named once
KB=$T/kb
expect_exit 0 "$BKR" init -r "$KB"
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$KB" "$kid1"
expect_exit 0 "$BKR" init -r "$T/ka2"
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$T/ka2"
damage_stored "$KB" "$KS/a/b/f2" 1000 || fail "no pack of $KB holds a/b/f2"
expect_exit 1 "$BKR" -r "$KB" verify --read-data
expect_exit 0 "$BKR" copy --from "$T/ka2" --to "$KB" "$kid2" --json
[ "$(grep -c "data blob .* in $KB is damaged (.*): stored again from $T/ka2" "$T/err")" = 1 ] ||
	fail "the damaged chunk is not named once: $(cat "$T/err")"
expect_exit 1 "$BKR" -r "$KB" verify "$kid2" --read-data --json
json_assert "$T/out" '[p["kind"] for p in r["problems"]] == ["blob"]'
restore_cmp "$KB" "$kid2" "$KS/a"
expect_exit 0 "$BKR" -r "$KB" repair
expect_exit 0 "$BKR" -r "$KB" verify --read-data
pass "a damaged tree (differently keyed) or a recorded damaged chunk (same keys) the destination's index still names is stored again by the copy of a new backup that uses it: whole there, clean after repair"

# --- copy --heal: a backup already in the destination is skipped (a no-op when its copy there is
# intact), so a copy run again after damage there brought nothing back; --heal walks it as a new
# one and stores again from the source every blob it uses that is missing there (repair took it out
# of the index) or damaged (a tree, or a blob a verify record names, read there first), in new packs
# and an index file, touching no intact byte: after it (and repair, which drops the damaged entries
# verify named) verify --read-data is clean; a dry run says what it would send and writes nothing
HD=$T/hd
expect_exit 0 "$BKR" init -r "$HD"
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$HD"
damage_stored "$HD" "$KS/a/b/f1" 1000 || fail "no pack of $HD holds a/b/f1"
expect_exit 1 "$BKR" -r "$HD" verify --read-data
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$HD" --json
json_assert "$T/out" 'r["backups_skipped"] == 2 and r["blobs_sent"] == 0 and r["blobs_read"] == 0'
files() { find "$1" -type f -printf '%P %s %T@\n' | sort; }
files "$HD" >"$T/hd.before"
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$HD" --heal --dry-run
grep -q "^would heal $kid1: 1 blob it uses, missing or damaged in the destination, to send" "$T/out" ||
	fail "copy --heal --dry-run: $(cat "$T/out")"
grep -q "data blob .* in $HD is damaged (.*): would be stored again from $KE" "$T/err" ||
	fail "copy --heal --dry-run does not name the damaged chunk: $(cat "$T/err")"
[ "$(files "$HD")" = "$(cat "$T/hd.before")" ] || fail "copy --heal --dry-run wrote to $HD"
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$HD" --heal --json
json_assert "$T/out" 'r["backups_healed"] == 1 and r["blobs_sent"] == 1 and r["backups"][0]["result"] == "healed"'
grep -q "data blob .* in $HD is damaged (.*): stored again from $KE" "$T/err" || fail "the damaged chunk is not named: $(cat "$T/err")"
# nothing there changed or went: packs and an index file were added
[ -z "$(comm -23 "$T/hd.before" <(files "$HD"))" ] ||
	fail "copy --heal changed what was there: $(comm -23 "$T/hd.before" <(files "$HD"))"
restore_cmp "$HD" "$kid1" "$KS/a"
expect_exit 0 "$BKR" -r "$HD" repair
expect_exit 0 "$BKR" -r "$HD" verify --read-data
# repair first (the chunk out of the index: the files using it stay damaged), then heal
damage_stored "$HD" "$KS/a/b/f3" 1000 || fail "no pack of $HD holds a/b/f3"
expect_exit 1 "$BKR" -r "$HD" verify --read-data
expect_exit 1 "$BKR" -r "$HD" repair
expect_exit 1 "$BKR" -r "$HD" verify --read-data
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$HD" --heal
grep -q "^healed $kid1: 1 blob it uses, missing or damaged in the destination, sent again from the source" "$T/out" ||
	fail "copy --heal: $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$HD" verify --read-data
restore_cmp "$HD" "$kid2" "$KS/a"
# an intact destination: --heal sends nothing
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$HD" --heal --json
json_assert "$T/out" 'r["backups_healed"] == 0 and r["blobs_sent"] == 0'
# between repositories that name blobs alike, the same
damage_stored "$KB" "$KS/a/b/f3" 1000 || fail "no pack of $KB holds a/b/f3"
expect_exit 1 "$BKR" -r "$KB" verify --read-data
expect_exit 1 "$BKR" -r "$KB" repair
# killed at the pack's or the index file's rename: as a backup killed there, nothing lost
for fault in rename:1 rename:2; do
	BKR_FAULT=$fault:crash expect_exit 137 "$BKR" copy --from "$T/ka2" --to "$KB" --heal
	expect_exit 1 "$BKR" -r "$KB" verify --read-data --json
	json_assert "$T/out" '{p["kind"] for p in r["problems"] if p["error"]} == {"damaged-file"}'
done
expect_exit 0 "$BKR" copy --from "$T/ka2" --to "$KB" --heal --json
json_assert "$T/out" 'r["backups_healed"] == 1 and r["blobs_sent"] == 1'
expect_exit 0 "$BKR" -r "$KB" verify --read-data
pass "copy --heal stores again what repair took out or verify found damaged in backups already there, nothing else; verify --read-data clean after"

# --- between differently keyed repositories a backup already in the destination is compared with
# the source's, tree by tree, to tell it from another backup under its id: every tree of both
# sides, on every run (a second run with nothing new read 0.7 MB, the trees of 5 backups of a 53 MB
# tree, where the first read 53 MB).  Tree ids name their content, so a finding holds while the
# root trees are the same ids: the copy's cache file ($XDG_CACHE_HOME/bkr/copy/SRCID-DSTID) keeps
# it, and the next run reads no tree of a backup found the same (or copied) before: here it copies
# with the source's tree packs moved away.  A file that is not a cache is ignored (the backups are
# compared again) and rewritten
KC=$T/kc
expect_exit 0 "$BKR" init -r "$KC"
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$KC" --json
json_assert "$T/out" 'r["backups_copied"] == 2'
repo_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1] + "/config.json"))["id"])' "$1"; }
cache=$XDG_CACHE_HOME/bkr/copy/$(repo_id "$KE")-$(repo_id "$KC")
[ "$(wc -l <"$cache")" = 3 ] || fail "the copy cache: $(cat "$cache")"
mv "$KE/tree" "$T/ke-tree"
BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$KC" --json
json_assert "$T/out" 'r["backups_skipped"] == 2 and r["blobs_read"] == 0'
mv "$T/ke-tree" "$KE/tree"
for bad in 'not a cache' "$(printf 'bkr-copy-cache 1\n%064d\n' 0)" "$(printf 'bkr-copy-cache 1\n%063dz\n' 0)"; do
	printf '%s' "$bad" >"$cache"
	BKR_FROM_PASSWORD=pass-k expect_exit 0 "$BKR" copy --from "$KE" --to "$KC" --json
	json_assert "$T/out" 'r["backups_skipped"] == 2'
	[ "$(wc -l <"$cache")" = 3 ] && [ "$(head -1 "$cache")" = "bkr-copy-cache 1" ] || fail "the copy cache: $(cat "$cache")"
done
# the backups are compared when the cache does not know them: with the tree packs gone, exit 4
: >"$cache"
mv "$KE/tree" "$T/ke-tree"
BKR_FROM_PASSWORD=pass-k expect_exit 4 "$BKR" copy --from "$KE" --to "$KC"
mv "$T/ke-tree" "$KE/tree"
pass "differently keyed: a backup found the same (or copied) before is not compared again (the copy cache); a file that is not one is ignored and rewritten"

# One cache folder rule (bkr_host_cache_dir, bkrfs's disk cache too): a relative XDG_CACHE_HOME
# is ignored for $HOME/.cache; with a relative HOME as well there is no cache (nothing written
# below the working directory) and the backups are compared: with the tree packs gone, exit 4
rm -f "$cache"
mkdir -p "$T/home" "$T/cwd"
BKR_FROM_PASSWORD=pass-k expect_exit 0 env -C "$T/cwd" XDG_CACHE_HOME=rel HOME="$T/home" "$BKR" copy --from "$KE" --to "$KC"
hcache=$T/home/.cache/bkr/copy/$(basename "$cache")
[ "$(wc -l <"$hcache")" = 3 ] || fail "a relative XDG_CACHE_HOME was not ignored for HOME's: $(ls -R "$T/home" "$T/cwd")"
[ -z "$(ls -A "$T/cwd")" ] || fail "copy wrote below the working directory: $(ls -R "$T/cwd")"
mv "$KE/tree" "$T/ke-tree"
BKR_FROM_PASSWORD=pass-k expect_exit 4 env -C "$T/cwd" XDG_CACHE_HOME=rel HOME=home "$BKR" copy --from "$KE" --to "$KC"
mv "$T/ke-tree" "$KE/tree"
[ -z "$(ls -A "$T/cwd")" ] || fail "copy wrote below the working directory: $(ls -R "$T/cwd")"
# ... and says so once a run (the cache is looked for once, not by its read and its write)
BKR_FROM_PASSWORD=pass-k expect_exit 0 env -C "$T/cwd" XDG_CACHE_HOME=rel HOME=home "$BKR" -vv copy --from "$KE" --to "$KC"
[ "$(grep -c "every backup is compared" "$T/err")" = 1 ] || fail "no cache told other than once: $(cat "$T/err")"
pass "the copy cache: a relative XDG_CACHE_HOME or HOME is ignored, never resolved against the working directory"

# 'bkr copy latest' is the newest backup made by now, as every command's
# 'latest': a backup dated in the future (made while the clock was ahead),
# readable or damaged, is passed over with the warning naming it
FA=$T/fut-a
FB=$T/fut-b
FS=$T/fut-src
mkdir -p "$FS"
"$BKR" init -r "$FA" >/dev/null
"$BKR" init -r "$FB" >/dev/null
echo ahead >"$FS/f"
BKR_TEST_NOW=2030-01-01T00:00:00Z expect_exit 0 "$BKR" -r "$FA" create "$FS" --json
ahead=$(backup_id "$T/out")
echo now >"$FS/f"
expect_exit 0 "$BKR" -r "$FA" create "$FS" --json
madenow=$(backup_id "$T/out")
expect_exit 0 "$BKR" copy --from "$FA" --to "$FB" latest --json
[ "$(json_get "$T/out" backups_copied)" = 1 ] || fail "copy latest: $(cat "$T/out")"
ls "$FB/backups" | grep -qF "$madenow.json" || fail "copy latest did not copy $madenow: $(ls "$FB/backups")"
ls "$FB/backups" | grep -qF "$ahead.json" && fail "copy latest copied $ahead, dated in the future"
grep -qF "backup $ahead is dated in the future" "$T/err" || fail "copy latest does not name the backup it passed over: $(cat "$T/err")"
# ... damaged: passed over as if it read, named
printf 'not a manifest' >"$FA/backups/$ahead.json"
rm -rf "$FB" && "$BKR" init -r "$FB" >/dev/null
expect_exit 0 "$BKR" copy --from "$FA" --to "$FB" latest --json
ls "$FB/backups" | grep -qF "$madenow.json" || fail "copy latest with a damaged manifest dated in the future: $(cat "$T/err")"
grep -qF "backups/$ahead.json is damaged and its id is dated in the future" "$T/err" ||
	fail "copy latest does not name the damaged manifest it passed over: $(cat "$T/err")"
pass "copy latest passes over a backup dated in the future, readable or damaged, naming it, as every 'latest'"

# 'bkr copy latest' lists the source's backups once: 'latest' is chosen, as
# every command's is, in the listing the copy makes anyway
# (bkr_repo_resolve_listed); it listed them a second time to find it.  The
# catalog-list fault point fails the Nth listing of manifests in the process:
# the first is the copy's own, a second one would fail the copy
rm -rf "$FB" && "$BKR" init -r "$FB" >/dev/null
BKR_FAULT=catalog-list:1:eio expect_exit 7 "$BKR" copy --from "$FA" --to "$FB" latest
grep -qF "list $FA/backups: injected fault at catalog-list" "$T/err" ||
	fail "copy with its listing failing: $(cat "$T/err")"
BKR_FAULT=catalog-list:2:eio expect_exit 0 "$BKR" copy --from "$FA" --to "$FB" latest --json
[ "$(json_get "$T/out" backups_copied)" = 1 ] && ls "$FB/backups" | grep -qF "$madenow.json" ||
	fail "copy latest listed the source's backups more than once: $(cat "$T/err")"
grep -qF "backups/$ahead.json is damaged and its id is dated in the future" "$T/err" ||
	fail "copy latest from its one listing does not name the damaged manifest it passed over: $(cat "$T/err")"
pass "copy latest lists the source's backups once, and still passes over a damaged one dated in the future"
