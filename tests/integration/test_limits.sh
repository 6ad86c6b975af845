#!/usr/bin/env bash
# A backup under a low limit of open files (ulimit -n, a service's
# LimitNOFILE): every file the scan queues for the workers holds an fd until
# it is read, so the scan ran the process out of descriptors and left the
# files it could not open out of the backup ('cannot open, skipped: Too
# many open files', exit 6): lost for this process's own want, not the
# file's.  The queue (with the scan's open directories) now takes the limit
# less what the backup holds besides, counted, and the scan, out of
# descriptors all the same, waits for the queued files to be read and opens
# again; below what a backup needs it fails at once, one line, exit 7,
# nothing published.  A restore, whose files in flight hold an fd each too,
# likewise writes every file.
source "$(dirname "$0")/lib.sh"

src=$T/src
mkdir -p "$src/a" "$src/b/c"
# 1 MiB each: a worker reads one in milliseconds while the scan opens
# dozens, so the queue fills before the first is read
for i in $(seq 1 40); do head -c 1M /dev/urandom >"$src/a/f$i"; done
for i in $(seq 1 20); do head -c 256K /dev/urandom >"$src/b/c/g$i"; done
for i in $(seq 1 300); do echo "small $i" >"$src/b/s$i"; done
tmpfs_dir RT

# 8 threads queue up to 80 files: more than 48 descriptors
for threads in 8 1; do
	R=$T/repo-$threads
	"$BKR" init -r "$R" >/dev/null
	got=0
	(ulimit -n 48 && exec "$BKR" -r "$R" create --type full --threads "$threads" "$src") >"$T/out" 2>"$T/err" || got=$?
	[ "$got" = 0 ] || { cat "$T/err"; fail "--threads $threads, ulimit -n 48: exit $got"; }
	! grep -q "skipped" "$T/err" || { cat "$T/err"; fail "--threads $threads, ulimit -n 48: files skipped"; }
	rm -rf "$RT/r"
	expect_exit 0 "$BKR" -r "$R" restore latest --target "$RT/r"
	python3 "$HERE/treecmp.py" "$src" "$RT/r/src" >/dev/null || fail "--threads $threads, ulimit -n 48: the backup does not restore the tree"
done
pass "ulimit -n 48: every file backed up (8 threads and 1), the tree restored exactly"

# restore likewise: each file in flight holds its fd until its last chunk is written (64 at
# once), so under ulimit -n 20 files failed 'create: Too many open files' (exit 6)
for threads in 8 1; do
	rm -rf "$RT/r"
	got=0
	(ulimit -n 20 && exec "$BKR" -r "$T/repo-8" restore latest --threads "$threads" --target "$RT/r") >"$T/out" 2>"$T/err" ||
		got=$?
	[ "$got" = 0 ] || { head -c 2000 "$T/err"; fail "restore --threads $threads, ulimit -n 20: exit $got"; }
	python3 "$HERE/treecmp.py" "$src" "$RT/r/src" >/dev/null || fail "restore --threads $threads, ulimit -n 20: the tree differs"
done
pass "ulimit -n 20: restore writes every file (8 threads and 1)"

# low N CMD...: CMD under ulimit -n N
low() {
	local n=$1
	shift
	(ulimit -n "$n" && exec "$@")
}

# the store keeps up to 64 descriptors of the files it read open for the next read (index
# files, packs): more than ulimit -n 48 left, so a repository of 70 index files failed every
# command that opens them ('open .../index/X.idx: Too many open files', exit 7); the idle ones
# are closed now when an open finds none left.  A repository of 80 index files, two sources
# (a configuration's, for scan and recover), a pack of data and one of trees per backup.
W=$T/w
R=$W/repo
mkdir -p "$W/ws/i" "$W/ws/conv" "$W/warm" "$W/cold"
cat >"$W/cfg.json" <<JSON
{"repository": "$R", "workspace_root": "$W/ws", "log_dir": "$T/log",
 "sources": [{"name": "i", "paths": ["i"]}, {"name": "conv", "paths": ["conv"]}],
 "tiers": {"warm": {"path": "$W/warm"}, "cold": {"path": "$W/cold"}}}
JSON
"$BKR" init -r "$R" >/dev/null
for k in $(seq 1 80); do
	echo "$k" >"$W/ws/i/f$k"
	head -c 20K /dev/urandom >"$W/ws/i/r$k"
	printf '{"n": %d}\n' "$k" >"$W/ws/conv/c$k.json"
	"$BKR" -q -c "$W/cfg.json" create --all --type incremental >/dev/null
done
[ "$(ls "$R/index" | wc -l)" = 80 ] || fail "the fixture has not 80 index files"
for cmd in verify list; do
	expect_exit 0 low 48 "$BKR" -r "$R" $cmd
done
rm -rf "$RT/r"
expect_exit 0 low 48 "$BKR" -r "$R" restore latest --target "$RT/r"
python3 "$HERE/treecmp.py" "$W/ws" "$RT/r" >/dev/null || fail "restore from 80 index files, ulimit -n 48: the tree differs"
pass "ulimit -n 48: 80 index files (more than the store keeps open) verify, list and restore"

# ... but the store kept 64 whatever the limit, and closed them only for its own opens: under
# ulimit -n 32 every other open found none left - verify (with --read-data too) failed to
# read every backup, restore and copy their manifests, restore's dup of the target,
# recover and batch the records, a create its temporaries and tier migrate the packs
# (exit 7), and the mount failed reads with EIO.  The store keeps a quarter of the limit now.
ids=$("$BKR" -r "$R" list --json | python3 -c 'import json,sys; print(" ".join(b["backup_id"] for b in json.load(sys.stdin)))')
first=${ids%% *}
# (which open found none depends on how many the cache held then: every limit from 32 to 40)
for n in $(seq 32 40); do
	expect_exit 0 low "$n" "$BKR" -r "$R" verify
	expect_exit 0 low "$n" "$BKR" -r "$R" verify --read-data
	for threads in 8 1; do
		rm -rf "$RT/r"
		expect_exit 0 low "$n" "$BKR" -r "$R" restore latest --threads "$threads" --target "$RT/r"
		python3 "$HERE/treecmp.py" "$W/ws" "$RT/r" >/dev/null ||
			fail "restore --threads $threads, ulimit -n $n: the tree differs"
	done
done
expect_exit 0 low 32 "$BKR" -r "$R" diff "$first" latest
grep -q "^+ *i/r80$" "$T/out" || fail "diff under ulimit -n 32 lacks i/r80: $(head -c 500 "$T/out")"
expect_exit 0 low 32 "$BKR" -c "$W/cfg.json" diff latest --live
expect_exit 0 low 32 "$BKR" -r "$R" log i/r1 --all
[ "$(grep -c backup_ "$T/out")" = 80 ] || fail "log under ulimit -n 32 lists not 80 backups: $(head -c 500 "$T/out")"
expect_exit 0 low 32 "$BKR" -r "$R" ls -R latest
[ "$(grep -c "r[0-9]" "$T/out")" = 80 ] || fail "ls -R under ulimit -n 32 lists not 80 files"
"$BKR" init -r "$W/dst" >/dev/null
expect_exit 0 low 32 "$BKR" copy --from "$R" --to "$W/dst"
expect_exit 0 "$BKR" -r "$W/dst" verify --read-data
pass "ulimit -n 32-40: verify (--read-data too) and restore (8 threads and 1); 32: diff, log, ls and copy of 80 index files"

# the mount, read by 8 parallel readers: each backup's every file, the bytes checked
cat >"$T/bkrfs32" <<SH
#!/bin/sh
ulimit -n 32 && exec "$BKRFS" "\$@"
SH
chmod +x "$T/bkrfs32"
real_bkrfs=$BKRFS
BKRFS=$T/bkrfs32
bkrfs_fg "$R" "$T/m" "$T/daemon.err"
BKRFS=$real_bkrfs
pids=()
for p in $(seq 0 7); do
	(
		k=0
		for id in $ids; do
			k=$((k + 1))
			[ $((k % 8)) = "$p" ] || continue
			for j in $(seq 1 "$k"); do
				cmp -s "$T/m/by-id/$id/i/r$j" "$W/ws/i/r$j" || { echo "$id/i/r$j" >>"$T/badreads"; break; }
			done
		done
	) &
	pids+=($!)
done
wait "${pids[@]}"
bkrfs_unmount "$T/m"
[ ! -e "$T/badreads" ] || fail "the mount under ulimit -n 32 misread $(wc -l <"$T/badreads") files: $(head -3 "$T/badreads") $(head -3 "$T/daemon.err")"
pass "ulimit -n 32: the mount serves every file of 80 backups to 8 parallel readers"

# what changes the repository, each on a copy: backups of every type with 8 threads,
# prune, repair of a lost index, tier status and migrate (then restore and verify across tiers)
fresh() {
	rm -rf "$T/c"
	cp -a "$W" "$T/c"
	sed "s|$W/|$T/c/|g" "$W/cfg.json" >"$T/c/cfg.json"
}
fresh
for type in full incremental differential snapshot; do
	echo "$type" >>"$T/c/ws/i/f1"
	expect_exit 0 low 32 "$BKR" -c "$T/c/cfg.json" create --all --type "$type" --threads 8
done
expect_exit 0 low 32 "$BKR" -r "$T/c/repo" create --type full --threads 8 "$T/c/ws/i"
expect_exit 0 "$BKR" -r "$T/c/repo" verify --read-data
fresh
expect_exit 0 low 32 "$BKR" -r "$T/c/repo" prune --grace 0s --max-unused 0
expect_exit 0 "$BKR" -r "$T/c/repo" verify --read-data
fresh
rm "$T/c/repo/index/"*
expect_exit 0 low 32 "$BKR" -r "$T/c/repo" repair
expect_exit 0 "$BKR" -r "$T/c/repo" verify --read-data
fresh
expect_exit 0 low 32 "$BKR" -c "$T/c/cfg.json" tier status
BKR_TEST_NOW=2099-01-01T00:00:00Z expect_exit 0 low 32 "$BKR" -c "$T/c/cfg.json" tier migrate
[ "$(find "$T/c/repo/data" -name '*.pack' | wc -l)" = 0 ] || fail "tier migrate under ulimit -n 32 left data packs hot"
rm -rf "$RT/r"
expect_exit 0 low 32 "$BKR" -c "$T/c/cfg.json" restore latest --threads 8 --target "$RT/r"
python3 "$HERE/treecmp.py" "$W/ws" "$RT/r" >/dev/null || fail "restore from the cold tier, ulimit -n 32: the tree differs"
expect_exit 0 low 32 "$BKR" -c "$T/c/cfg.json" verify --read-data
pass "ulimit -n 32: create (every type, 8 threads), prune, repair, tier status and migrate; the results verify"

# every local store of a process kept its own quarter of the limit: a copy from a repository
# whose packs are in two tiers opens four stores (the repository, warm, cold, the
# destination), and under ulimit -n 32 their caches left none to create the destination's
# packs ('create .../data/.tmp-X: Too many open files', exit 7).  The quarter is for all of them
# now.  80 backups of a file each, the first 40 dated 2026-01-01 (cold by 2026-01-30), the
# rest 2026-01-20 (warm).
X=$T/x
mkdir -p "$X/ws/s" "$X/warm" "$X/cold"
cat >"$X/cfg.json" <<JSON
{"repository": "$X/repo", "workspace_root": "$X/ws", "log_dir": "$T/log",
 "sources": [{"name": "s", "paths": ["s"]}],
 "tiers": {"warm": {"path": "$X/warm", "after_days": 7}, "cold": {"path": "$X/cold", "after_days": 20}}}
JSON
"$BKR" init -r "$X/repo" >/dev/null
for k in $(seq 1 80); do
	rm -f "$X/ws/s/"*
	head -c 4K /dev/urandom >"$X/ws/s/x$k"
	day=01
	[ "$k" -le 40 ] || day=20
	BKR_TEST_NOW=2026-01-${day}T00:$(printf %02d $((k / 60))):$(printf %02d $((k % 60)))Z \
		"$BKR" -q -c "$X/cfg.json" create --all --type incremental >/dev/null
done
BKR_TEST_NOW=2026-01-30T00:00:00Z expect_exit 0 "$BKR" -c "$X/cfg.json" tier migrate
[ "$(find "$X/warm" -name '*.pack' | wc -l)" = 40 ] && [ "$(find "$X/cold" -name '*.pack' | wc -l)" = 40 ] ||
	fail "the tiered fixture has not 40 data packs in each tier"
"$BKR" init -r "$X/dst" >/dev/null
expect_exit 0 low 32 "$BKR" copy --from "$X/repo" --to "$X/dst"
expect_exit 0 "$BKR" -r "$X/dst" verify --read-data
n=$("$BKR" -r "$X/dst" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 80 ] || fail "copy from two tiers under ulimit -n 32 copied $n backups, not 80"
expect_exit 0 low 32 "$BKR" -r "$X/repo" verify --read-data
pass "ulimit -n 32: copy from a repository with packs in two tiers (four stores) copies every backup"

# scan, recover and batch --apply of a damaged workspace
cp -a "$W/ws" "$T/ws.orig"
# batch --apply under 12: the walk to a file's folder found none left while the store kept the
# tree pack it had read open ('i/r55: opening i: Too many open files', exit 7); an open out
# of descriptors in the recovery's walk (and make_parents') closes the stores' idle ones now.
# Files lost, then a whole folder.
# (which open finds none depends on what the process holds then: every limit from 10 to 12)
for n in 10 11 12; do
	for what in files folder; do
		rm -rf "$W/ws"
		cp -a "$T/ws.orig" "$W/ws"
		if [ "$what" = files ]; then rm "$W/ws/i/f"*; else rm -r "$W/ws/i"; fi
		echo broken >"$W/ws/conv/c3.json"
		expect_exit 0 low "$n" "$BKR" -c "$W/cfg.json" batch --apply
		diff -r "$W/ws" "$T/ws.orig" >/dev/null ||
			fail "batch --apply under ulimit -n $n ($what lost) did not recover the workspace"
	done
done
pass "ulimit -n 10-12: batch --apply recovers lost files and a lost folder"
rm "$W/ws/i/f"*
echo broken >"$W/ws/conv/c3.json"
expect_exit 1 low 32 "$BKR" -c "$W/cfg.json" scan
expect_exit 0 low 32 "$BKR" -c "$W/cfg.json" recover --file i/f2 --apply
expect_exit 0 low 14 "$BKR" -c "$W/cfg.json" batch --apply
diff -r "$W/ws" "$T/ws.orig" >/dev/null || fail "scan, recover and batch under ulimit -n 32 did not recover the workspace"
pass "ulimit -n 32: scan, recover and batch --apply (14 too) recover the workspace"

# the queue took a quarter of the limit (the files being read not counted) and the rest of the
# backup's needs came out of what was left, uncounted: under ulimit -n 12-16 a worker found no
# descriptor for a new pack's temporary ('create .../data/.tmp-X: Too many open files', exit 7,
# half-way; 16 with 8 threads every time), under 18-20 now and then.  The queue's budget is now
# the limit less a counted reserve (stdio, the log, the locks, the writer's packs, the stores'
# cache), and below what a backup needs at all (20) it stops at once: one line, exit 7, nothing
# published; a tree deeper than the limit allows stops where the scan finds no room, the same line
# naming the directory or file.
R=$T/repo-tiny
"$BKR" init -r "$R" >/dev/null
for n in 10 12 14 16 18 20; do
	for threads in 8 1; do
		expect_exit 7 low "$n" "$BKR" -q -r "$R" create --type full --threads "$threads" "$src"
		one_line_error
		[ "$(cat "$T/err")" = "bkr create: the limit of open files (ulimit -n $n) is too low for this backup: raise it" ] ||
			fail "create under ulimit -n $n, --threads $threads: not the one line of a limit too low: $(head -c 500 "$T/err")"
	done
done
for n in 21 22; do
	expect_exit 7 low "$n" "$BKR" -q -r "$R" create --type full --threads 8 "$src"
	one_line_error
	err_has "the limit of open files (ulimit -n $n) is too low for this backup: raise it" ||
		fail "create under ulimit -n $n: not the one line of a limit too low: $(head -c 500 "$T/err")"
	grep -q "^bkr create: src/b" "$T/err" || fail "create under ulimit -n $n does not name where: $(cat "$T/err")"
done
[ "$(ls "$R/backups" | wc -l)" = 0 ] || fail "a create under a limit too low published a backup"
expect_exit 0 "$BKR" -r "$R" verify
# from 23 (this tree: files two folders below the source) every backup works, whatever the threads
for n in 23 24; do
	for round in 1 2 3; do
		for threads in 8 1; do
			rm -rf "$R"
			"$BKR" init -r "$R" >/dev/null
			expect_exit 0 low "$n" "$BKR" -q -r "$R" create --type full --threads "$threads" "$src"
			[ ! -s "$T/err" ] || fail "create under ulimit -n $n, --threads $threads: $(head -c 500 "$T/err")"
		done
	done
	rm -rf "$RT/r"
	expect_exit 0 "$BKR" -r "$R" restore latest --target "$RT/r"
	python3 "$HERE/treecmp.py" "$src" "$RT/r/src" >/dev/null || fail "the backup under ulimit -n $n lacks files"
done
pass "ulimit -n 10-22: create fails at once (or where the tree is too deep) with one line, exit 7, nothing published; 23, 24: every create works"

# below 32: each store closed only its own idle descriptors when an open found none left, so
# a restore from a tiered repository (the repository's store reading a tree pack while the
# tiers' stores held the quarter) failed under ulimit -n 14-16 ('open .../tree/X.pack: Too
# many open files', exit 6).  An open out of
# descriptors now closes the idle ones of every store of the process, or waits for a reader
# to give one back, and a restore's walk leaves one free for its workers' reads.  The big
# files of the first fixture, half of them changed, in a repository whose packs are warm.
Y=$T/y
mkdir -p "$Y/warm" "$Y/cold"
cp -a "$src" "$Y/ws"
cat >"$Y/cfg.json" <<JSON
{"repository": "$Y/repo", "workspace_root": "$Y/ws", "log_dir": "$T/log",
 "sources": [{"name": "src", "paths": ["."]}],
 "tiers": {"warm": {"path": "$Y/warm", "after_days": 7}, "cold": {"path": "$Y/cold", "after_days": 20}}}
JSON
"$BKR" init -r "$Y/repo" >/dev/null
BKR_TEST_NOW=2026-01-01T00:00:00Z "$BKR" -q -c "$Y/cfg.json" create --all --type full >/dev/null
for i in $(seq 1 20); do head -c 300K /dev/urandom >"$Y/ws/a/f$i"; done
BKR_TEST_NOW=2026-01-20T00:00:00Z "$BKR" -q -c "$Y/cfg.json" create --all --type incremental >/dev/null
BKR_TEST_NOW=2026-01-30T00:00:00Z expect_exit 0 "$BKR" -c "$Y/cfg.json" tier migrate
[ "$(find "$Y/warm/data" -name '*.pack' | wc -l)" -gt 0 ] && [ "$(find "$Y/repo/data" -name '*.pack' | wc -l)" = 0 ] ||
	fail "the tiered fixture has no warm data packs, or hot ones"
for n in 12 14 16 20 24; do
	for threads in 8 1; do
		rm -rf "$RT/r"
		expect_exit 0 low "$n" "$BKR" -c "$Y/cfg.json" restore latest --threads "$threads" --target "$RT/r"
		python3 "$HERE/treecmp.py" "$Y/ws" "$RT/r/src" >/dev/null ||
			fail "restore from warm packs --threads $threads, ulimit -n $n: the tree differs"
	done
	expect_exit 0 low "$n" "$BKR" -c "$Y/cfg.json" verify --read-data
	"$BKR" init -r "$T/ydst" >/dev/null
	expect_exit 0 low "$n" "$BKR" copy --from "$Y/repo" --to "$T/ydst"
	expect_exit 0 "$BKR" -r "$T/ydst" verify --read-data
	rm -rf "$T/ydst"
done
cp -a "$Y" "$T/yc"
sed -i "s|$Y/|$T/yc/|g" "$T/yc/cfg.json"
# (a backup's own need - its counted reserve and the scan's open directories - is 23 for this tree)
for n in 23 28 32; do
	echo "$n" >>"$T/yc/ws/b/s1"
	expect_exit 0 low "$n" "$BKR" -c "$T/yc/cfg.json" create --all --type full --threads 8
done
expect_exit 0 "$BKR" -c "$T/yc/cfg.json" verify --read-data
pass "ulimit -n 12-24: restore from warm packs (8 threads and 1), verify --read-data, copy; 23, 28, 32: create of 8 threads"

# below what a restore needs (its open directories, the process's own, one to write and one to
# read with): it stops at once, one line naming the limit, exit 7 - not a line per file
rm -rf "$RT/r"
expect_exit 7 low 10 "$BKR" -c "$Y/cfg.json" restore latest --threads 8 --target "$RT/r"
one_line_error
err_has "the limit of open files (ulimit -n 10) is too low for this restore" ||
	fail "restore under ulimit -n 10 does not say the limit is too low: $(cat "$T/err")"
pass "ulimit -n 10: restore fails with one line saying the limit is too low, exit 7"
