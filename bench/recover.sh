#!/usr/bin/env bash
# Recovery benchmark: `bkr scan` and `bkr batch` (a dry run) after a mass
# deletion, against a repository of many backups.
#
#   bench/recover.sh [--work DIR] [--files F] [--dirs D] [--backups N]
#                    [--invalid M] [--delete K] [--runs R] [--vs BUILD] [--no-build]
#
# Workspace (DIR/recover/ws): F files (default 4000) of about 200 bytes of
# JSON spread over D directories (default 40) under conversations/, one
# source.  N backups (default 10), one percent of the files rewritten before
# each; with --invalid M, every file is rewritten as invalid JSON before each
# of the M newest backups, so that recovery rejects M copies of each file
# before the valid one.  Then the first K files (default: all F) are deleted.
# Timed, R rounds (default 3): `bkr scan` (finds the K missing files) and
# `bkr batch` without --apply (scan, then every missing file recovered from
# the backups into a run that is stored but not applied).  With --vs BUILD
# the bkr of another build directory (say, of the main branch) is timed too,
# in alternation with this one on the same repository: an A/B comparison.
# Printed: the wall seconds of each round and their median, the median user
# and system seconds; JSON in DIR/results/recover-<time>.json.  Not a test:
# nothing is asserted on time (exit 0 unless bkr fails).  The workspace and
# repository are made anew every run (about a minute on 2 cores) by the bkr
# of BENCH_BUILD (bench/lib.sh; --no-build takes it as it is).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NF=4000
ND=40
NB=10
NI=0
NK=""
RUNS=3
VS=""
bench_args --files=NF --dirs=ND --backups=NB --invalid=NI --delete=NK --runs=RUNS --vs=VS -- "$@"
NK=${NK:-$NF}
[[ $NF =~ ^[0-9]+$ && $ND =~ ^[0-9]+$ && $NB =~ ^[0-9]+$ && $NI =~ ^[0-9]+$ && $NK =~ ^[0-9]+$ &&
	$RUNS =~ ^[0-9]+$ ]] || die "--files, --dirs, --backups, --invalid, --delete and --runs take whole numbers"
[ "$ND" -ge 1 ] && [ "$NB" -ge 1 ] && [ "$NI" -lt "$NB" ] && [ "$NK" -le "$NF" ] && [ "$RUNS" -ge 1 ] ||
	die "need --dirs >= 1, --backups >= 1, --invalid < --backups, --runs >= 1 and --delete <= --files"
need python3
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"

mkdir -p "$BENCH_WORK"
BENCH_WORK=$(cd "$BENCH_WORK" && pwd)
build_bkr
D=$BENCH_WORK/recover
WS=$D/ws
REPO=$D/repo
CFG=$D/bkr.json
rm -rf "$D"
mkdir -p "$WS" "$D/logs" "$BENCH_WORK/results"
export XDG_STATE_HOME=$D/state
cat >"$CFG" <<JSON
{"repository": "$REPO", "workspace_root": "$WS",
 "recovery": {"staging_dir": "$D/staged"}}
JSON

# make_ws ROUND: write (round 0) or rewrite (every 100th file from ROUND; all of
# them, as invalid JSON, in the last NI rounds) the files
make_ws() {
	python3 - "$WS" "$NF" "$ND" "$1" "$((NB - NI))" <<'PY'
import os, sys
ws, nf, nd, rnd, first_bad = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
bad = rnd >= first_bad
for i in range(nf):
    if rnd and not bad and (i - rnd) % 100:
        continue
    d = os.path.join(ws, "conversations", "d%03d" % (i % nd))
    os.makedirs(d, exist_ok=True)
    text = '{"session": %d, "round": %d, "messages": [%s]}\n' % (i, rnd, ", ".join('"m%d"' % k for k in range(20)))
    with open(os.path.join(d, "s%05d.json" % i), "w") as f:
        f.write(text[:-8] if bad else text)
PY
}

log "workspace: $NF files in $ND directories; $NB backups ($NI newest with invalid copies)"
"$BKR" -q init -r "$REPO" >"$D/logs/init.log" 2>&1 || die "bkr init failed"
make_ws 0
for ((b = 0; b < NB; b++)); do
	[ $b = 0 ] || make_ws "$b"
	"$BKR" -q -c "$CFG" create --type incremental --all >>"$D/logs/create.log" 2>&1 ||
		die "bkr create failed (see $D/logs/create.log)"
done
log "deleting $NK files"
python3 - "$WS" "$NF" "$ND" "$NK" <<'PY'
import os, sys
ws, nf, nd, nk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(nk):
    os.unlink(os.path.join(ws, "conversations", "d%03d" % (i % nd), "s%05d.json" % i))
PY

# timed NAME CMD...: wall, user and sys seconds appended to $D/times-NAME
timed() {
	local name=$1 st=0
	shift
	/usr/bin/time -o "$D/time.out" -f '%e %U %S' "$@" >"$D/logs/$name.out" 2>"$D/logs/$name.err" || st=$?
	# scan exits 1 (damage found), batch 0 (everything recovered)
	[ $st -le 1 ] || die "$name failed (exit $st, see $D/logs/$name.err)"
	tail -1 "$D/time.out" >>"$D/times-$name"
}

# the builds timed, in alternation: this one, and --vs DIR's
NAMES=(bkr)
BINS=("$BKR")
if [ -n "$VS" ]; then
	[ -x "$VS/tools/bkr" ] || die "$VS/tools/bkr missing"
	NAMES=(bkr vs)
	BINS=("$BKR" "$VS/tools/bkr")
fi
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= RUNS; r++)); do
	for k in "${!BINS[@]}"; do
		timed "scan-${NAMES[$k]}" "${BINS[$k]}" -q -c "$CFG" scan
		timed "batch-${NAMES[$k]}" "${BINS[$k]}" -q -c "$CFG" batch
	done
done
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
found=$(grep -c '^missing' "$D/logs/scan-bkr.out" || true)
"$BKR" -q -c "$CFG" --json batch >"$D/logs/batch.json" 2>/dev/null || true
recovered=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["recovered"])' \
	"$D/logs/batch.json")

python3 - "$D" "$NF" "$ND" "$NB" "$NI" "$NK" "$found" "$recovered" \
	"$BENCH_WORK/results/recover-$(date -u +%Y%m%dT%H%M%SZ).json" "${NAMES[@]}" <<'PY'
import json, statistics, sys
d, nf, nd, nb, ni, nk, found, recovered, out = sys.argv[1:10]
names = sys.argv[10:]
res = {"files": int(nf), "dirs": int(nd), "backups": int(nb), "invalid": int(ni), "deleted": int(nk),
       "scan_found": int(found), "batch_recovered": int(recovered)}
print("%d files in %s directories, %s backups (%s newest invalid), %s deleted: scan found %s, batch recovered %s"
      % (res["files"], nd, nb, ni, nk, found, recovered))
print("%-9s %-36s %7s %7s %7s" % ("", "wall s (each round)", "median", "user", "sys"))
for name in ("scan", "batch"):
    for b in names:
        key = "%s-%s" % (name, b)
        rows = [tuple(map(float, l.split())) for l in open("%s/times-%s" % (d, key))]
        wall = [r[0] for r in rows]
        res[key] = {"wall": wall, "median": statistics.median(wall),
                    "user": statistics.median(r[1] for r in rows), "sys": statistics.median(r[2] for r in rows)}
        print("%-9s %-36s %7.2f %7.2f %7.2f" % (key, " ".join("%.2f" % w for w in wall), res[key]["median"],
                                                res[key]["user"], res[key]["sys"]))
json.dump(res, open(out, "w"), indent=1)
print("results:", out)
PY
