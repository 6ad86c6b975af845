#!/bin/bash
# Disaster scenario for the recovery engine, driving the real `bkr` binary:
# back up a workspace of JSON conversations, delete 10%, corrupt 5% of the JSON,
# truncate a few, remove a required file; `bkr batch --apply` must restore every
# recoverable file exactly, account for every damaged file in the report and
# leave every healthy file's bytes and mtime alone.  Strategy failures (git
# repository missing, MongoDB down, a command failing or hanging) fall through
# to the next strategy.  Path hostility: a symlink out of the workspace, '..'.
set -euo pipefail
BUILD=${BKR_BUILD_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)/build}
BKR="$BUILD/tools/bkr"
BKRFS="$BUILD/fs/bkrfs"
T=$(mktemp -d "${TMPDIR:-/tmp}/bkr-recovery-XXXXXX")
export XDG_STATE_HOME=$T/state  # the default log directory (bkr(1) LOGS) stays in the test's
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

WS="$T/ws"; REPO="$T/repo"; CFG="$T/bkr.json"
mkdir -p "$WS/conversations" "$WS/config" "$T/bin"
for i in $(seq -w 0 99); do
	printf '{"session_id":"s%s","messages":["hello %s","bye"],"n":%d}\n' "$i" "$i" "$((10#$i * 3))" \
		> "$WS/conversations/s$i.json"
done
echo '{"mode":"prod"}' > "$WS/config/settings.json"

cat > "$T/bin/gen.sh" <<'SH'
#!/bin/sh
printf '{"regenerated":"%s"}\n' "$1" > "$2"
SH
cat > "$T/bin/hang.sh" <<'SH'
#!/bin/sh
sleep 60
SH
cat > "$T/bin/fail.sh" <<'SH'
#!/bin/sh
echo "cannot rebuild" >&2; exit 2
SH
cat > "$T/bin/alert.sh" <<'SH'
#!/bin/sh
cat >> "$1"
SH
chmod +x "$T/bin/"*.sh

cat > "$CFG" <<JSON
{
  "repository": "$REPO",
  "workspace_root": "$WS",
  "required_files": ["config/settings.json", "extra/needed.json"],
  "recovery": {
    "staging_dir": "$T/staged",
    "rules": [
      {"pattern": "conversations/{id}.json", "strategies": [
        {"type": "backup", "max_age": "1d"},
        {"type": "manual", "command": ["$T/bin/alert.sh", "$T/alerts.log"]}]},
      {"pattern": "extra/{name}.json", "strategies": [
        "backup",
        {"type": "git", "repository": "$T/no-such-repo"},
        {"type": "mongodb", "uri": "mongodb://127.0.0.1:1", "database": "d", "collection": "c",
         "filter": {"name": "{name}"}, "server_selection_timeout_ms": 300, "connect_timeout_ms": 300},
        {"type": "regenerate", "command": ["$T/bin/fail.sh"]},
        {"type": "regenerate", "command": ["$T/bin/hang.sh"], "timeout": 1},
        {"type": "regenerate", "command": ["$T/bin/gen.sh", "{name}", "{output}"]}]}
    ]
  }
}
JSON

# a repository that cannot be opened: without the backups no file can be
# judged missing or truncated, so scan fails with the repository's error
# (exit 3, one line naming it), never "0 damaged files"
sed "s|\"repository\": \"$REPO\"|\"repository\": \"$T/no-such-repo\"|" "$CFG" > "$T/norepo.json"
st=0; "$BKR" scan -c "$T/norepo.json" > "$T/norepo.out" 2> "$T/norepo.err" || st=$?
[ "$st" = 3 ] || fail "scan with a repository that does not exist: exit $st: $(cat "$T/norepo.err")"
[ "$(wc -l < "$T/norepo.err")" = 1 ] && grep -q "$T/no-such-repo" "$T/norepo.err" ||
	fail "scan does not name the missing repository in one line: $(cat "$T/norepo.err")"
st=0; "$BKR" scan -c "$T/norepo.json" --json > "$T/norepo.json.out" 2>/dev/null || st=$?
[ "$st" = 3 ] && grep -q '"exit":3' "$T/norepo.json.out" || fail "scan --json with a missing repository: exit $st"
"$BKR" init -r "$REPO" >/dev/null
# a repository without a backup yet: what can be judged is (the required file no backup holds)
st=0; "$BKR" scan -c "$CFG" --json > "$T/scan-nobackup.json" || st=$?
[ "$st" = 1 ] || fail "scan before the first backup: exit $st"
grep -q '"found":	1' "$T/scan-nobackup.json" || fail "scan before the first backup: $(cat "$T/scan-nobackup.json")"
"$BKR" create -c "$CFG" --type full >/dev/null
"$BKR" scan -c "$CFG" >/dev/null 2>&1 || true
st=0; "$BKR" scan -c "$CFG" --json > "$T/scan0.json" || st=$?
# only the never-backed-up required file is found before the disaster
[ "$st" = 1 ] || fail "scan before damage: exit $st"
grep -q '"found":	1' "$T/scan0.json" || fail "scan before damage: $(cat "$T/scan0.json")"

# record the healthy files
( cd "$WS" && find . -type f -printf '%P %T@\n' | sort ) > "$T/before.lst"
( cd "$WS" && find . -type f -print0 | sort -z | xargs -0 sha256sum ) > "$T/before.sha"

# the disaster
for i in 0 1 2 3 4 5 6 7 8 9; do rm "$WS/conversations/s0$i.json"; done                  # 10% deleted
for i in 10 11 12 13 14; do echo '{"session_id":' > "$WS/conversations/s$i.json"; done # 5% corrupted
for i in 15 16 17; do : > "$WS/conversations/s$i.json"; done                     # truncated
rm "$WS/config/settings.json"                                                      # required
damaged=20   # 10 + 5 + 3 + settings + extra/needed.json

st=0; "$BKR" scan -c "$CFG" --json > "$T/scan.json" || st=$?
[ "$st" = 1 ] || fail "scan exit $st"
grep -q "\"found\":	$damaged" "$T/scan.json" || fail "scan: $(head -c 400 "$T/scan.json")"

# dry run: workspace untouched
"$BKR" batch -c "$CFG" --json > "$T/dry.json" || true
[ ! -e "$WS/conversations/s00.json" ] || fail "dry run wrote into the workspace"

st=0; "$BKR" batch -c "$CFG" --apply --json > "$T/report.json" || st=$?
[ "$st" = 0 ] || fail "batch --apply exit $st: $(head -c 2000 "$T/report.json")"
python3 - "$T/report.json" "$damaged" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
files = {f["path"]: f for f in r["files"]}
assert len(files) == n, (len(files), n)
assert all(f["status"] == "recovered" and f["applied"] for f in files.values()), [f for f in files.values() if f["status"] != "recovered" or not f["applied"]]
e = files["extra/needed.json"]
res = [a["result"] for a in e["attempts"]]
assert res == ["not_found", "unavailable", "unavailable", "failed", "timeout", "recovered"], res
assert r["summary"]["recovered"] == n and r["storage"]["kind"] == "repository"
PY
# every file back, byte for byte; healthy files untouched (bytes and mtime)
( cd "$WS" && find . -type f ! -path ./extra/needed.json -print0 | sort -z | xargs -0 sha256sum ) > "$T/after.sha"
diff "$T/before.sha" "$T/after.sha" || fail "contents differ after recovery"
( cd "$WS" && find . -type f ! -path ./extra/needed.json -printf '%P %T@\n' | sort ) > "$T/after.lst"
diff "$T/before.lst" "$T/after.lst" || fail "mtimes differ after recovery"
grep -q regenerated "$WS/extra/needed.json" || fail "extra/needed.json not regenerated"
"$BKR" scan -c "$CFG" >/dev/null 2>&1 || fail "scan after recovery still finds damage"

# the run is listed and its report readable
"$BKR" recovered -c "$CFG" --json | grep >/dev/null '"recovered":	20' || fail "bkr recovered list"
"$BKR" recovered -c "$CFG" latest | grep >/dev/null '"extra/needed.json"' || fail "bkr recovered latest"

# hostility: a symlink in the workspace pointing out, and '..'
mkdir -p "$T/outside"
rm -rf "$WS/conversations" && ln -s "$T/outside" "$WS/conversations"
"$BKR" batch -c "$CFG" --apply --json > "$T/hostile.json" || true
[ -z "$(ls -A "$T/outside")" ] || fail "wrote through a symlink out of the workspace"
grep -q "refusing to follow" "$T/hostile.json" || fail "symlink refusal not reported"
st=0; "$BKR" recover -c "$CFG" --file ../escape.json --apply >/dev/null 2>&1 || st=$?
[ "$st" != 0 ] || fail "recover ../escape.json succeeded"
[ ! -e "$T/escape.json" ] || fail "wrote outside the workspace"
# a directory is no file to recover: a usage error naming it, and no run stored
runs_before=$("$BKR" recovered -c "$CFG" --json | grep -c '"run_id"')
mkdir -p "$WS/adir"
st=0; out=$("$BKR" recover -c "$CFG" --file adir/ 2>&1) || st=$?
[ "$st" = 2 ] && grep -q "^bkr recover: adir: a directory" <<<"$out" || fail "recover of a directory: exit $st, $out"
[ "$("$BKR" recovered -c "$CFG" --json | grep -c '"run_id"')" = "$runs_before" ] || fail "recover of a directory stored a run"
rmdir "$WS/adir"

# the repository cannot be written: the run is staged
rm -rf "$WS/conversations"; mkdir -p "$WS/conversations"
chmod -R a-w "$REPO"
st=0; "$BKR" recover -c "$CFG" --file conversations/s05.json --json > "$T/staged.json" 2>/dev/null || st=$?
chmod -R u+w "$REPO"
grep -q '"kind":	"staged"' "$T/staged.json" || [ "$(id -u)" = 0 ] || fail "run not staged: $(head -c 600 "$T/staged.json")"
# without the bkr-mongodb module the strategy is unavailable (named), and the
# next one runs; bkr and bkrfs do not load libmongoc at startup (it would
# leave /dev/shm/mongoc-PID behind whenever one of them is killed)
rm -f "$WS/extra/needed.json"
BKR_MONGODB_MODULE=$T/no/bkr-mongodb.so "$BKR" recover -c "$CFG" --file extra/needed.json --json \
	> "$T/nomodule.json" 2>/dev/null || true
python3 - "$T/nomodule.json" "$T/no/bkr-mongodb.so" <<'PY' || fail "missing module: $(head -c 1500 "$T/nomodule.json")"
import json, sys
r = json.load(open(sys.argv[1]))
a = [x for x in r["files"][0]["attempts"] if x["strategy"] == "mongodb"][0]
assert a["result"] == "unavailable", a
assert "mongodb support is not available" in json.dumps(a) and sys.argv[2] in json.dumps(a), a
assert r["files"][0]["status"] == "recovered", r["files"][0]
PY
for exe in "$BKR" "$BKRFS"; do
	grep -q libmongoc <(ldd "$exe") && fail "$exe links libmongoc"
done

# ---- issue 10 regressions (one workspace, two sources) ----------------------
W2="$T/ws2"; R2="$T/repo2"; C2="$T/bkr2.json"
bad=$(printf 'caf\xe9')   # a name that is not UTF-8
mkdir -p "$W2/conversations" "$W2/config" "$W2/private"
echo '{"a":1}' > "$W2/conversations/a.json"
echo '{"b":2}' > "$W2/conversations/b.json"
echo '{"c":3}' > "$W2/conversations/$bad.json"
echo '{"mode":"prod"}' > "$W2/config/settings.json"
ln -s settings.json "$W2/config/current.json"
echo '{"key":"s3cr3t"}' > "$W2/private/key.json"
chmod 0640 "$W2/private/key.json"; chmod 0750 "$W2/private"
if [ "$(id -u)" = 0 ]; then chown -R 4321:4322 "$W2/private"; fi
# a file over 512 MiB (sparse: data at both ends)
truncate -s 600M "$W2/config/big.bin"
printf 'head' | dd of="$W2/config/big.bin" conv=notrunc status=none
printf 'tail' | dd of="$W2/config/big.bin" bs=1 seek=$((600 * 1024 * 1024 - 4)) conv=notrunc status=none
sha_big=$(sha256sum < "$W2/config/big.bin")
cat > "$C2" <<JSON
{"repository": "$R2", "workspace_root": "$W2",
 "required_files": ["conversations/manual.json"],
 "sources": [{"name": "conversations", "paths": ["conversations"]},
             {"name": "config", "paths": ["config"]},
             {"name": "private", "paths": ["private"]}],
 "recovery": {"staging_dir": "$T/staged2",
   "rules": [{"pattern": "conversations/manual.json",
              "strategies": [{"type": "manual", "command": ["$T/bin/alert.sh", "$T/alerts2.log"]}]}]}}
JSON
"$BKR" init -r "$R2" >/dev/null
"$BKR" create -c "$C2" >/dev/null
"$BKR" create -c "$C2" --source conversations >/dev/null
runs() { "$BKR" recovered -c "$C2" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# (14) a clean batch stores no run
echo '{}' > "$W2/conversations/manual.json"
"$BKR" batch -c "$C2" --apply >"$T/clean.out" || fail "clean batch failed"
[ "$(runs)" = 0 ] || fail "a clean batch stored a run"
# ... and names none: 'run ID: 0 files' sent the reader to 'bkr recovered ID', which knows no such run
[ "$(cat "$T/clean.out")" = "nothing to recover: no damaged file found; no recovery run stored" ] ||
	fail "a clean batch's summary: $(cat "$T/clean.out")"
rm "$W2/conversations/manual.json"
# the damage: a file of a source the newest backup does not hold (13), a
# symlink (14), a name that is not UTF-8 (14), a file under a 0750 directory (2, 3)
rm "$W2/config/settings.json" "$W2/config/current.json" "$W2/conversations/a.json" "$W2/config/big.bin"
echo '{' > "$W2/conversations/$bad.json"
rm -r "$W2/private"
st=0; "$BKR" scan -c "$C2" > "$T/scan2.out" 2> "$T/scan2.err" || st=$?
[ "$st" = 1 ] || fail "scan2 exit $st"
grep -q "config/settings.json" "$T/scan2.out" || fail "a deleted file of a source missing from the newest backup is not reported: $(cat "$T/scan2.out")"
grep -q "config/current.json" "$T/scan2.out" || fail "a deleted symlink is not reported: $(cat "$T/scan2.out")"
# (20) counts: b.json and café.json walked; a.json, settings, current, big.bin, key.json missing;
# manual.json required
grep -q "^7 damaged files among 8 checked" "$T/scan2.err" || fail "scan counts: $(cat "$T/scan2.err")"
"$BKR" scan -c "$C2" --json > "$T/scan2.json" || true
python3 - "$T/scan2.json" <<'PY' || fail "scan --json with a non-UTF-8 name"
import json, sys
r = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
f = [x for x in r["files"] if "path_hex" in x]
assert len(f) == 1 and bytes.fromhex(f[0]["path_hex"]) == b"conversations/caf\xe9.json", f
assert f[0]["path"] == "conversations/caf\ufffd.json", f
PY
# (14) a dry run sends no alert
"$BKR" batch -c "$C2" --json > "$T/dry2.json" || true
[ ! -e "$T/alerts2.log" ] || fail "a dry run ran the alert command"
st=0; "$BKR" batch -c "$C2" --apply > "$T/batch2.out" || st=$?
[ "$st" = 6 ] || fail "batch2 exit $st (a file needs a person)"
# (14) a manual file is counted once
grep -q "1 need a person, 0 failed" "$T/batch2.out" || fail "manual counted twice: $(cat "$T/batch2.out")"
[ -s "$T/alerts2.log" ] || fail "--apply sent no alert"
cmp "$W2/config/settings.json" <(echo '{"mode":"prod"}') || fail "config/settings.json not recovered"
[ "$(readlink "$W2/config/current.json")" = settings.json ] || fail "the symlink was not recovered"
# (14) a file over 512 MiB is recovered (streamed, not held in memory)
[ "$(sha256sum < "$W2/config/big.bin")" = "$sha_big" ] || fail "config/big.bin (600 MiB) not recovered"
cmp "$W2/conversations/$bad.json" <(echo '{"c":3}') || fail "the non-UTF-8 name was not recovered"
# (2, 3) modes and owners: the file and the directory made for it
[ "$(stat -c %a "$W2/private")" = 750 ] || fail "recreated directory mode $(stat -c %a "$W2/private")"
[ "$(stat -c %a "$W2/private/key.json")" = 640 ] || fail "recovered file mode $(stat -c %a "$W2/private/key.json")"
if [ "$(id -u)" = 0 ]; then
	[ "$(stat -c %u:%g "$W2/private")" = 4321:4322 ] || fail "recreated directory owner $(stat -c %u:%g "$W2/private")"
	[ "$(stat -c %u:%g "$W2/private/key.json")" = 4321:4322 ] || fail "recovered file owner $(stat -c %u:%g "$W2/private/key.json")"
fi
# (14) every --json is valid UTF-8 and keeps the exact bytes
"$BKR" recovered -c "$C2" latest > "$T/rep2.json"
"$BKR" recovered -c "$C2" --json > "$T/runs2.json"
python3 - "$T/rep2.json" "$T/runs2.json" <<'PY' || fail "report JSON with a non-UTF-8 name"
import json, sys
r = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
json.loads(open(sys.argv[2], "rb").read().decode("utf-8"))
f = [x for x in r["files"] if "path_hex" in x]
assert len(f) == 1 and bytes.fromhex(f[0]["path_hex"]) == b"conversations/caf\xe9.json", f
assert r["summary"]["manual"] == 1 and r["summary"]["failed"] == 0, r["summary"]
PY
# (2) the report is for the repository's owner only
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$T"
	st=0; setpriv --reuid=4321 --regid=4322 --clear-groups "$BKR" recovered -r "$R2" latest > "$T/other.out" 2>&1 || st=$?
	[ "$st" != 0 ] && ! grep -q s3cr3t "$T/other.out" && ! grep -q key.json "$T/other.out" ||
		fail "another user read the run's report: $(head -c 300 "$T/other.out")"
	chmod 700 "$T"
fi
# (15) a JSON file over 16 MiB that shrinks while scan reads it: read, never mapped (a mapping of
# the live file died of SIGBUS); scan pauses at the fault point between its stat and its read
W3="$T/ws3"; C3="$T/bkr3.json"; mkdir -p "$W3/db"
python3 -c "import sys; sys.stdout.write('{\"a\":\"' + 'x' * (17 << 20) + '\"}\n')" > "$W3/db/big.json"
echo "{\"repository\":\"$T/repo3\",\"workspace_root\":\"$W3\"}" > "$C3"
"$BKR" init -r "$T/repo3" >/dev/null
BKR_FAULT=recover-read:1:stop "$BKR" scan -c "$C3" --json > "$T/scan3.json" 2> "$T/scan3.err" &
pid=$!
for _ in $(seq 1 3000); do
	[ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" = T ] && break
	sleep 0.01
done
[ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" = T ] || fail "scan did not stop at recover-read"
truncate -s 1M "$W3/db/big.json"
kill -CONT "$pid"
st=0; wait "$pid" || st=$?
[ "$st" = 1 ] || fail "scan of a file that shrank while read: exit $st: $(head -c 300 "$T/scan3.err")"
python3 - "$T/scan3.json" <<'PY' || fail "scan of a file that shrank while read: $(head -c 500 "$T/scan3.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert [(f["path"], f["kind"]) for f in r["files"]] == [("db/big.json", "invalid")], r
PY

# text output (bkr recover without --json): a copy older than the newest is
# recovered with a warning naming the newest, skipped commit; a file that is
# not recovered gets a line saying why (here: a damaged git object, which
# fails the git strategy instead of falling back to an older commit)
W4="$T/ws4"; mkdir -p "$W4/d"
G="git -C $W4 -c user.email=t@example.com -c user.name=t -c commit.gpgsign=false"
$G init -q .
echo '{"v":1}' > "$W4/d/a.json"; echo 'b1' > "$W4/d/b.txt"; $G add -A; $G commit -qm one
echo '{"v":' > "$W4/d/a.json"; echo 'b2' > "$W4/d/b.txt"; $G add -A; $G commit -qm two
newest=$($G rev-parse HEAD); blob=$($G rev-parse HEAD:d/b.txt)
chmod u+w "$W4/.git/objects/${blob:0:2}/${blob:2}"; printf garbage > "$W4/.git/objects/${blob:0:2}/${blob:2}"
rm "$W4/d/b.txt"
cat > "$T/c4.json" <<JSON
{"repository": "$REPO", "workspace_root": "$W4",
 "recovery": {"staging_dir": "$T/staged4", "rules": [{"pattern": "d/*", "strategies": [{"type": "git"}]}]}}
JSON
st=0; "$BKR" recover -c "$T/c4.json" --file d/a.json > "$T/t3.out" 2> "$T/t3.err" || st=$?
[ "$st" = 0 ] || fail "recover d/a.json: exit $st: $(cat "$T/t3.out" "$T/t3.err")"
grep -q "warning: d/a.json: recovered from an older copy.*newer copy skipped, the newest $newest: not valid JSON" "$T/t3.err" ||
	fail "no warning naming the skipped commit $newest: $(cat "$T/t3.err")"
st=0; "$BKR" recover -c "$T/c4.json" --file d/b.txt --apply > "$T/t4.out" 2> "$T/t4.err" || st=$?
[ "$st" = 6 ] || fail "recover d/b.txt with a damaged object: exit $st: $(cat "$T/t4.out" "$T/t4.err")"
grep -q "^failed *d/b.txt: git object $blob (d/b.txt in commit $newest) cannot be read" "$T/t4.out" ||
	fail "no line saying why d/b.txt failed: $(cat "$T/t4.out")"
[ ! -e "$W4/d/b.txt" ] || fail "an older commit's d/b.txt was written in place of the damaged newest one"
# (16, 22) a repository shared by two workspaces on two hosts: each scan and
# batch uses its own workspace's backups of its host (--host), never the
# other's; a backup dated in the future is left out with one warning
W5A="$T/svcA/ws"; W5B="$T/svcB/ws"; R5="$T/repo5"
mkdir -p "$W5A/c" "$W5B/c"
echo '{"owner":"A"}' > "$W5A/c/a1.json"; echo '{"owner":"A"}' > "$W5A/c/shared.json"
echo '{"owner":"B"}' > "$W5B/c/b1.json"; echo '{"owner":"B"}' > "$W5B/c/shared.json"
echo "{\"repository\":\"$R5\",\"workspace_root\":\"$W5A\",\"recovery\":{\"staging_dir\":\"$T/st5\"}}" > "$T/a5.json"
echo "{\"repository\":\"$R5\",\"workspace_root\":\"$W5B\",\"recovery\":{\"staging_dir\":\"$T/st5\"}}" > "$T/b5.json"
"$BKR" init -r "$R5" >/dev/null
"$BKR" create -c "$T/a5.json" --host hostA >/dev/null
echo '{"owner":"A","old":"clock a day ahead"}' > "$W5A/c/shared.json"
BKR_TEST_NOW=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%SZ) "$BKR" create -c "$T/a5.json" --host hostA --all >/dev/null
echo '{"owner":"A"}' > "$W5A/c/shared.json"
"$BKR" create -c "$T/b5.json" --host hostB > "$T/b5.out" 2>&1 || fail "B's first create: $(cat "$T/b5.out")"
grep -q "no source is due" "$T/b5.out" && fail "A's backup made B's source not due"
rm "$W5A/c/a1.json"; echo '{' > "$W5A/c/shared.json"
st=0; "$BKR" scan -c "$T/a5.json" --host hostA > "$T/scan5.out" 2> "$T/scan5.err" || st=$?
[ "$st" = 1 ] && grep -q "^missing *c/a1.json" "$T/scan5.out" && ! grep -q b1.json "$T/scan5.out" ||
	fail "scan of A with B's backup newest: $(cat "$T/scan5.out")"
[ "$(grep -c "dated in the future" "$T/scan5.err")" = 1 ] || fail "no single warning: $(cat "$T/scan5.err")"
"$BKR" batch -c "$T/a5.json" --host hostA --apply > /dev/null 2>&1 || fail "batch of A"
[ ! -e "$W5A/c/b1.json" ] || fail "B's file written into A"
[ "$(cat "$W5A/c/shared.json")" = '{"owner":"A"}' ] || fail "A's shared.json: $(cat "$W5A/c/shared.json")"
# another host's backups are not this one's: nothing is missing for it
"$BKR" scan -c "$T/a5.json" --host hostC > "$T/scan5c.out" 2> "$T/scan5c.err" || fail "scan as hostC: $(cat "$T/scan5c.out")"
# ... and it is told so, with the way to use them (a machine rebuilt under another name)
grep -q "no backup of this workspace was made by host 'hostC'.* (the newest by 'hostA'): give --host NAME" "$T/scan5c.err" ||
	fail "scan as hostC does not say other hosts' backups exist: $(cat "$T/scan5c.err")"
grep -q "made by host" "$T/scan5.err" && fail "scan as hostA warned of other hosts: $(cat "$T/scan5.err")"
# a workspace moved (another path, same host): its old backups are not compared
# with, and the scan says so, naming the path they hold
mv "$T/svcA" "$T/svcA2"
sed "s|$T/svcA/ws|$T/svcA2/ws|" "$T/a5.json" > "$T/a5m.json"
"$BKR" scan -c "$T/a5m.json" --host hostA > "$T/scan5m.out" 2> "$T/scan5m.err" || true
grep -q "no backup of this host holds a source in $T/svcA2/ws.*the newest, of workspace $T/svcA/ws" "$T/scan5m.err" ||
	fail "scan of a moved workspace does not say why nothing is compared: $(cat "$T/scan5m.err")"

# a workspace deeper than the scan walks (256 levels): create backs it up
# whole; scan names the directory it did not look into (stdout, --json
# "skipped") and exits 6, never 0 as if every file had been checked; a
# damaged file above the limit is still found (1)
W6="$T/deep/ws"; R6="$T/deep/repo"
mkdir -p "$W6"
python3 - "$W6" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for depth in range(1, 301):
    os.mkdir("d", dir_fd=fd)
    nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
with open(os.open("new.json", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
    f.write("{}")
PY
"$BKR" init -r "$R6" > /dev/null
printf '{"repository": "%s", "workspace_root": "%s"}\n' "$R6" "$W6" > "$T/deep.json"
"$BKR" -q -c "$T/deep.json" create --all > /dev/null || fail "create of a 300-level tree"
"$BKR" -r "$R6" restore latest --target "$T/deep/out" > /dev/null || fail "restore of a 300-level tree"
[ "$(find "$T/deep/out" -name new.json | wc -l)" = 1 ] || fail "the 300-level tree was not backed up whole"
skipped6="d$(printf '/d%.0s' $(seq 2 257))"
# an invalid file written after the backup, below the limit: not checked, and said so
echo '{' > "$(dirname "$(find "$W6" -name new.json)")/late.json"
st=0; "$BKR" scan -c "$T/deep.json" > "$T/scan6.out" 2> "$T/scan6.err" || st=$?
[ "$st" = 6 ] || fail "scan of a 300-level tree: exit $st: $(cat "$T/scan6.out" "$T/scan6.err")"
grep -qx "skipped   $skipped6: more than 256 levels deep: not scanned" "$T/scan6.out" ||
	fail "scan does not name the directory it did not scan: $(cat "$T/scan6.out")"
grep -q "0 damaged files among .*; 1 directory not scanned" "$T/scan6.err" || fail "scan summary: $(cat "$T/scan6.err")"
st=0; "$BKR" scan --json -c "$T/deep.json" > "$T/scan6.json" 2> "$T/scan6.err" || st=$?
[ "$st" = 6 ] || fail "scan --json of a 300-level tree: exit $st"
python3 - "$T/scan6.json" "$skipped6" <<'PY' || fail "scan --json: $(cat "$T/scan6.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["found"] == 0 and r["skipped"] == [{"path": sys.argv[2], "reason": "more than 256 levels deep: not scanned"}], r
PY
st=0; "$BKR" batch -c "$T/deep.json" > "$T/batch6.out" 2> "$T/scan6.err" || st=$?
[ "$st" = 6 ] || fail "batch of a 300-level tree: exit $st: $(cat "$T/batch6.out" "$T/scan6.err")"
grep -q "^bkr batch: warning: $skipped6: more than 256 levels deep: not scanned" "$T/scan6.err" ||
	fail "batch does not name the directory its scan did not look into: $(cat "$T/scan6.err")"
echo '{' > "$W6/d/bad.json"
st=0; "$BKR" scan -c "$T/deep.json" > "$T/scan6.out" 2> /dev/null || st=$?
[ "$st" = 1 ] && grep -q "^invalid *d/bad.json" "$T/scan6.out" && grep -q "^skipped " "$T/scan6.out" ||
	fail "scan of a deep tree with a damaged file: exit $st: $(cat "$T/scan6.out")"

# backup_ws CONF REPO WS STAGED: configuration CONF recovering WS's c/{id}.json
# from backups only (staged runs in STAGED), repository REPO, a full backup of WS
backup_ws() {
	cat > "$1" <<JSON
{"repository": "$2", "workspace_root": "$3",
 "recovery": {"staging_dir": "$4", "rules": [{"pattern": "c/{id}.json", "strategies": ["backup"]}]}}
JSON
	"$BKR" init -r "$2" >/dev/null
	"$BKR" create -c "$1" --type full >/dev/null
}

# a recovered file that cannot be written (a full disk) keeps its old bytes,
# fails the run, and the text output names it and why (even with -q), not
# only "1 failed" in the summary
W7="$T/ws7"; mkdir -p "$W7/c"
echo '{"n":1}' > "$W7/c/a.json"
backup_ws "$T/enospc.json" "$T/repo7" "$W7" "$T/staged7"
printf '{"broken' > "$W7/c/a.json"
st=0; BKR_FAULT=write:1:enospc "$BKR" batch -q -c "$T/enospc.json" --apply > "$T/batch7.out" 2> "$T/batch7.err" || st=$?
[ "$st" = 6 ] || fail "batch --apply with the disk full: exit $st: $(cat "$T/batch7.out" "$T/batch7.err")"
[ "$(cat "$W7/c/a.json")" = '{"broken' ] || fail "a failed apply changed the live file: $(cat "$W7/c/a.json")"
[ "$(ls -A "$W7/c")" = a.json ] || fail "a failed apply left files behind: $(ls -A "$W7/c")"
grep -qx "failed    c/a.json: recovered, not written: .*No space left on device" "$T/batch7.out" ||
	fail "batch does not name the file it could not write: $(cat "$T/batch7.out" "$T/batch7.err")"

# a writer between the check of the live file and the rename of the
# recovered copy over it keeps its write: the live file was checked only
# before the copy was written.  It is compared again after (write:1:stop: the
# writer appends while the copy is written) and, once exchanged, after
# (recover-replace:1:stop: the writer appends, or renames a new version in,
# just after that last check); each time the writer's version stays, nothing
# is left beside it, and the run fails naming the file
W9="$T/ws9"; mkdir -p "$W9/c"
echo '{"n":1}' > "$W9/c/a.json"
backup_ws "$T/race.json" "$T/repo9" "$W9" "$T/staged9"
# race FAULT WRITER WANT: batch --apply of the invalid c/a.json stopped at
# FAULT:1 while the shell code WRITER runs; the file must then hold WANT
race() {
	local pid st=0
	printf '{"broken' > "$W9/c/a.json"
	BKR_FAULT=$1:1:stop "$BKR" batch -c "$T/race.json" --apply > "$T/batch9.out" 2> "$T/batch9.err" &
	pid=$!
	for _ in $(seq 1 3000); do
		[ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" = T ] && break
		sleep 0.01
	done
	[ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" = T ] || fail "batch did not stop at $1"
	eval "$2"
	kill -CONT "$pid"
	wait "$pid" || st=$?
	[ "$st" = 6 ] || fail "($1) batch --apply over a file being written: exit $st: $(cat "$T/batch9.out" "$T/batch9.err")"
	[ "$(cat "$W9/c/a.json")" = "$3" ] || fail "($1) the writer's version was lost: $(cat "$W9/c/a.json")"
	[ "$(ls -A "$W9/c")" = a.json ] || fail "($1) files left beside it: $(ls -A "$W9/c")"
	grep -qx "failed    c/a.json: recovered, not written: c/a.json: changed while the recovered copy was written; not overwritten" \
		"$T/batch9.out" || fail "($1) the file is not named with why: $(cat "$T/batch9.out")"
}
race write 'printf " more" >> "$W9/c/a.json"' '{"broken more'
race recover-replace 'printf " more" >> "$W9/c/a.json"' '{"broken more'
race recover-replace 'printf "{\"new\":1}" > "$W9/c/a.new"; mv "$W9/c/a.new" "$W9/c/a.json"' '{"new":1}'

# a recovered symlink whose times cannot be set fails as a file does, and is
# not put in place (it was, silently, with the time of the recovery as its
# mtime); otherwise it gets the backup's mtime
W10="$T/ws10"; mkdir -p "$W10/c"
echo '{}' > "$W10/c/a.json"; ln -s a.json "$W10/c/l.json"
touch -h -d '2026-01-02 03:04:05 UTC' "$W10/c/l.json"
echo "{\"repository\":\"$T/repo10\",\"workspace_root\":\"$W10\",\"recovery\":{\"staging_dir\":\"$T/st10\"}}" > "$T/c10.json"
"$BKR" init -r "$T/repo10" >/dev/null
"$BKR" create -c "$T/c10.json" --type full >/dev/null
rm "$W10/c/l.json"
st=0; BKR_FAULT=recover-times:1 "$BKR" batch -c "$T/c10.json" --apply > "$T/batch10.out" 2> "$T/batch10.err" || st=$?
[ "$st" = 6 ] || fail "batch --apply of a symlink whose times cannot be set: exit $st: $(cat "$T/batch10.out" "$T/batch10.err")"
[ "$(ls -A "$W10/c")" = a.json ] || fail "a symlink whose times could not be set was put in place: $(ls -Al "$W10/c")"
grep -q "^failed    c/l.json: recovered, not written: c/l.json: setting times: " "$T/batch10.out" ||
	fail "the symlink whose times could not be set is not named: $(cat "$T/batch10.out")"
"$BKR" batch -c "$T/c10.json" --apply > "$T/batch10.out" 2> "$T/batch10.err" || fail "batch --apply of a symlink: $(cat "$T/batch10.err")"
[ "$(readlink "$W10/c/l.json")" = a.json ] && [ "$(stat -c %Y "$W10/c/l.json")" = "$(date -d '2026-01-02 03:04:05 UTC' +%s)" ] ||
	fail "the recovered symlink: $(ls -l --time-style=+%s "$W10/c/l.json")"

# a staged run (the repository not writable: its first write fails) gives
# its copies what the applied ones get: a staged symlink its owner and
# times (it had neither: root's, the time of the recovery), and times that
# cannot be set are said in the report and on stderr (they were ignored)
W13="$T/ws13"; mkdir -p "$W13/c"
echo '{}' > "$W13/c/a.json"; ln -s a.json "$W13/c/l.json"
touch -h -d '2026-01-02 03:04:05 UTC' "$W13/c/l.json" "$W13/c/a.json"
owner13="$(id -u):$(id -g)"
if [ "$(id -u)" = 0 ]; then chown -h 1000:1000 "$W13/c/l.json"; owner13=1000:1000; fi
backup_ws "$T/c13.json" "$T/repo13" "$W13" "$T/st13"
rm "$W13/c/a.json" "$W13/c/l.json"
st=0; BKR_FAULT=write:1:eio "$BKR" batch -c "$T/c13.json" > "$T/batch13.out" 2> "$T/batch13.err" || st=$?
[ "$st" = 0 ] && grep -q "staged in $T/st13/" "$T/batch13.out" || fail "a run not staged: exit $st: $(cat "$T/batch13.out" "$T/batch13.err")"
l13=$(echo "$T"/st13/*/files/c/l.json)
[ "$(stat -c '%Y %u:%g' "$l13")" = "$(date -d '2026-01-02 03:04:05 UTC' +%s) $owner13" ] ||
	fail "a staged symlink's times and owner: $(stat -c '%Y %u:%g' "$l13")"
rm -rf "$T/st13"
st=0; BKR_FAULT=write:1:eio,recover-times:2 "$BKR" batch -c "$T/c13.json" > "$T/batch13.out" 2> "$T/batch13.err" || st=$?
[ "$st" = 0 ] || fail "a staged run whose times cannot be set: exit $st: $(cat "$T/batch13.out" "$T/batch13.err")"
grep -q "warning: c/l.json: staged copy: setting times: .*Input/output error" "$T/batch13.err" &&
	! grep -q "c/a.json" "$T/batch13.err" || fail "times not set on a staged copy are not said: $(cat "$T/batch13.err")"
python3 -c '
import json, sys
v = {f["path"]: f for f in json.load(open(sys.argv[1]))["files"]}
assert v["c/l.json"]["stage_warnings"][0].startswith("setting times: "), v
assert "stage_warnings" not in v["c/a.json"], v' "$T"/st13/*/report.json || fail "the staged report does not say the times not set"

# a backup's copy of another user's set-ID file, recovered by a user who is
# not root: it stays that user's (no chown), so it must not keep its set-ID
# bits (it did: a set-user-ID file of the recovering user); the user's own
# set-ID file keeps them, and the text output says which lost them; a file
# of theirs whose group is another keeps its set-user-ID bit only (one rule
# with bkr restore: bkr_entry_setid_allowed; it lost both)
if [ "$(id -u)" = 0 ]; then
	U8="$T/u8"; W8="$U8/ws"; mkdir -p "$W8/c"
	echo '{"n":1}' > "$W8/c/other.json"; echo '{"n":2}' > "$W8/c/mine.json"; echo '{"n":3}' > "$W8/c/grp.json"
	chown 1000:1000 "$W8/c/other.json"; chown 65534:65534 "$W8/c/mine.json"; chown 65534:1000 "$W8/c/grp.json"
	chmod 6755 "$W8/c/other.json" "$W8/c/mine.json" "$W8/c/grp.json"
	backup_ws "$T/setid.json" "$U8/repo" "$W8" "$U8/staged"
	rm "$W8/c/other.json" "$W8/c/mine.json" "$W8/c/grp.json"
	chown -R 65534:65534 "$U8"
	chmod 755 "$T" # let uid 65534 reach it
	st=0; XDG_STATE_HOME=$U8/state setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$BKR" batch -c "$T/setid.json" --apply > "$T/batch8.out" 2> "$T/batch8.err" || st=$?
	chmod 700 "$T"
	[ "$st" = 0 ] || fail "batch --apply as uid 65534: exit $st: $(cat "$T/batch8.out" "$T/batch8.err")"
	got=$(cd "$W8/c" && stat -c '%n %a %u:%g' other.json mine.json grp.json | tr '\n' ' ')
	[ "$got" = "other.json 755 65534:65534 mine.json 6755 65534:65534 grp.json 4755 65534:65534 " ] ||
		fail "set-ID bits of a backup's copy recovered by a user who is not root: $got"
	grep -q "warning: c/other.json: recovered without the set-ID bits: its owner could not be set" "$T/batch8.err" &&
		grep -q "warning: c/grp.json: recovered without the set-ID bits: its owner could not be set" "$T/batch8.err" &&
		! grep -q "mine.json" "$T/batch8.err" || fail "the dropped set-ID bits are not said (or wrongly): $(cat "$T/batch8.err")"
fi

# the same by root in a user namespace that maps only root (a rootless
# container): the chown to 1000:1000 fails with EINVAL, which failed the
# apply (exit 6, nothing recovered) where bkr restore goes on; now the file
# is recovered as root's, without its set-ID bits
if [ "$(id -u)" = 0 ] && unshare --user --map-root-user true 2>/dev/null; then
	W11="$T/ws11"; mkdir -p "$W11/c"
	echo '{"n":1}' > "$W11/c/other.json"; chown 1000:1000 "$W11/c/other.json"; chmod 6755 "$W11/c/other.json"
	backup_ws "$T/userns.json" "$T/repo11" "$W11" "$T/staged11"
	rm "$W11/c/other.json"
	st=0; unshare --user --map-root-user "$BKR" batch -c "$T/userns.json" --apply > "$T/batch11.out" 2> "$T/batch11.err" || st=$?
	[ "$st" = 0 ] || fail "batch --apply in a user namespace: exit $st: $(cat "$T/batch11.out" "$T/batch11.err")"
	[ "$(cat "$W11/c/other.json")" = '{"n":1}' ] && [ "$(stat -c '%a %u' "$W11/c/other.json")" = "755 0" ] ||
		fail "recovered in a user namespace: $(stat -c '%a %u:%g' "$W11/c/other.json")"
	grep -q "warning: c/other.json: recovered without the set-ID bits: its owner could not be set" "$T/batch11.err" ||
		fail "the dropped set-ID bits are not said: $(cat "$T/batch11.err")"
fi

# a directory above the file, gone too, is made again with the owner and
# mode the backup recorded; where root's chown of it is refused the file's
# report entry says so (parent_dirs) and so do warnings, as for the file
# itself: it was made as root's, without its set-group-ID bit, unsaid
if [ "$(id -u)" = 0 ] && unshare --user --map-root-user true 2>/dev/null; then
	W14="$T/ws14"; mkdir -p "$W14/c"
	echo '{"n":1}' > "$W14/c/a.json"
	chown 0:1000 "$W14/c"; chmod 2775 "$W14/c"
	backup_ws "$T/parents.json" "$T/repo14" "$W14" "$T/staged14"
	rm -r "$W14/c"
	st=0; unshare --user --map-root-user "$BKR" batch -c "$T/parents.json" --apply > "$T/batch14.out" 2> "$T/batch14.err" || st=$?
	[ "$st" = 0 ] || fail "batch --apply of a file whose directory is gone, in a user namespace: exit $st: $(cat "$T/batch14.out" "$T/batch14.err")"
	[ "$(cat "$W14/c/a.json")" = '{"n":1}' ] && [ "$(stat -c '%a %u:%g' "$W14/c")" = "775 0:0" ] ||
		fail "the directory made again in a user namespace: $(stat -c '%a %u:%g' "$W14/c")"
	grep -q "warning: c: made for c/a.json: owner 0:1000 not set: chown: Invalid argument" "$T/batch14.err" &&
		grep -q "warning: c: made for c/a.json without the set-ID bits: its owner could not be set" "$T/batch14.err" ||
		fail "the directory's owner not set and its dropped set-ID bit are not said: $(cat "$T/batch14.err")"
	"$BKR" recovered -c "$T/parents.json" latest --json > "$T/rec14.json"
	python3 -c '
import json, sys
f = json.load(open(sys.argv[1]))["files"][0]
assert f["applied"] and "owner_error" not in f, f
[d] = f["parent_dirs"]
assert d["path"] == "c" and d["owner_error"] == "owner 0:1000 not set: chown: Invalid argument", f
assert d["setid_dropped"].startswith("its owner could not be set"), f' "$T/rec14.json" || fail "the report of a directory made again"
fi

# root whose chown is refused with EPERM (without CAP_CHOWN here; NFS
# root_squash alike): the apply failed ('c/other.json: chown: Operation not
# permitted', exit 6) where bkr restore warns and goes on; now the file is
# recovered as root's, without its set-ID bits, and both are said
if [ "$(id -u)" = 0 ] && setpriv --inh-caps=-chown --bounding-set=-chown true 2>/dev/null; then
	W12="$T/ws12"; mkdir -p "$W12/c"
	echo '{"n":1}' > "$W12/c/other.json"; chown 1000:1000 "$W12/c/other.json"; chmod 6755 "$W12/c/other.json"
	backup_ws "$T/nochown.json" "$T/repo12" "$W12" "$T/staged12"
	rm "$W12/c/other.json"
	st=0; setpriv --inh-caps=-chown --bounding-set=-chown "$BKR" batch -c "$T/nochown.json" --apply \
		> "$T/batch12.out" 2> "$T/batch12.err" || st=$?
	[ "$st" = 0 ] || fail "batch --apply as root without CAP_CHOWN: exit $st: $(cat "$T/batch12.out" "$T/batch12.err")"
	[ "$(cat "$W12/c/other.json")" = '{"n":1}' ] && [ "$(stat -c '%a %u:%g' "$W12/c/other.json")" = "755 0:0" ] ||
		fail "recovered without CAP_CHOWN: $(stat -c '%a %u:%g' "$W12/c/other.json")"
	grep -q "warning: c/other.json: owner 1000:1000 not set: chown: Operation not permitted" "$T/batch12.err" &&
		grep -q "warning: c/other.json: recovered without the set-ID bits: its owner could not be set" "$T/batch12.err" ||
		fail "the owner not set and the dropped set-ID bits are not said: $(cat "$T/batch12.err")"
	"$BKR" recovered -c "$T/nochown.json" latest --json > "$T/rec12.json"
	python3 -c '
import json, sys
f = json.load(open(sys.argv[1]))["files"][0]
assert f["applied"] and f["owner_error"] == "owner 1000:1000 not set: chown: Operation not permitted", f
assert f["setid_dropped"].startswith("its owner could not be set"), f' "$T/rec12.json" || fail "report of a recovery without CAP_CHOWN"
	# staged (a dry run, the repository not writable): the staged copy is
	# root's, without set-ID bits, and the report says so as for an applied one
	rm "$W12/c/other.json"
	st=0; BKR_FAULT=write:1:eio setpriv --inh-caps=-chown --bounding-set=-chown "$BKR" batch -c "$T/nochown.json" \
		> "$T/batch12.out" 2> "$T/batch12.err" || st=$?
	[ "$st" = 0 ] && grep -q "staged in $T/staged12/" "$T/batch12.out" || fail "not staged: exit $st: $(cat "$T/batch12.out" "$T/batch12.err")"
	[ "$(stat -c '%a %u:%g' "$T"/staged12/*/files/c/other.json)" = "755 0:0" ] || fail "staged without CAP_CHOWN"
	python3 -c '
import json, sys
f = json.load(open(sys.argv[1]))["files"][0]
assert not f["applied"] and f["owner_error"] == "owner 1000:1000 not set: chown: Operation not permitted", f
assert f["setid_dropped"].startswith("its owner could not be set"), f' "$T"/staged12/*/report.json ||
		fail "the staged report of a recovery without CAP_CHOWN"
fi

# a command validator's message (the last line of its output, which may
# quote the file) went to the terminal as it was in scan's text output: an
# escape sequence coloured it and a carriage return overwrote the line.  It
# is escaped now, as recover and batch print it
WV="$T/ws-val"; mkdir -p "$WV"; echo 'data' > "$WV/notes.txt"
printf '#!/bin/sh\nprintf "line one\\n\\033[31mred\\rover\\n"; exit 1\n' > "$T/bin/val.sh"; chmod +x "$T/bin/val.sh"
cat > "$T/val.json" <<JSON
{"repository": "$T/repo-val", "workspace_root": "$WV",
 "recovery": {"staging_dir": "$T/staged-val", "validators": [{"pattern": "*.txt", "type": "command", "command": ["$T/bin/val.sh"]}]}}
JSON
"$BKR" init -r "$T/repo-val" >/dev/null
st=0; "$BKR" scan -c "$T/val.json" > "$T/scan-val.out" 2>/dev/null || st=$?
[ "$st" = 1 ] && grep -qF 'invalid   notes.txt: validator command exited with status 1: \x1b[31mred\x0dover' "$T/scan-val.out" ||
	fail "scan's line for a validator's message: exit $st: $(cat -A "$T/scan-val.out")"
! grep -q $'[\x1b\r]' "$T/scan-val.out" || fail "scan printed control characters: $(cat -A "$T/scan-val.out")"

# a validator that timed out judged the file invalid: one slower on a file
# that grew (sqlite's integrity_check) and in time on the backup's smaller
# copy made batch --apply put the old copy over the newer file, exit 0.  A
# timeout is "could not be checked" now, and nothing is overwritten for it
printf '#!/bin/sh\n[ $(wc -c < "$1") -gt 20 ] && exec sleep 30\nexit 0\n' > "$T/bin/val.sh"
sed -i 's|"command": \["\([^"]*\)"\]}|"command": ["\1", "{path}"], "timeout": 1}|' "$T/val.json"
echo 'short' > "$WV/notes.txt"
"$BKR" create --all -c "$T/val.json" >/dev/null
echo 'newer and longer: written after the backup' > "$WV/notes.txt"
st=0; "$BKR" batch --apply -c "$T/val.json" > "$T/batch-val.out" 2>&1 || st=$?
[ "$st" = 6 ] && [ "$(cat "$WV/notes.txt")" = 'newer and longer: written after the backup' ] ||
	fail "a file whose validator timed out was overwritten: exit $st, now '$(cat "$WV/notes.txt")': $(cat "$T/batch-val.out")"
grep -q '^failed    notes.txt: recovered, not written: notes.txt: not overwritten: checking it again: validator command timed out' "$T/batch-val.out" ||
	fail "the timed-out validator is not said: $(cat "$T/batch-val.out")"

# --- many files that need a person: `bkr batch --apply` and `bkr recover --apply`
# send one alert a run naming them all (the first 10 in its message, every one in
# its "files"), not one a file (25 files ran the alert command 25 times)
WM="$T/wsm"; RM="$T/repom"
mkdir -p "$WM/notes"
for i in $(seq -w 1 25); do echo "{\"n\": $i}" > "$WM/notes/n$i.json"; done
cat > "$T/bin/alert1.sh" <<'SH'
#!/bin/sh
cat > "$1.$$"
echo run >> "$1.count"
SH
chmod +x "$T/bin/alert1.sh"
cat > "$T/many.json" <<JSON
{"repository": "$RM", "workspace_root": "$WM",
 "recovery": {"staging_dir": "$T/stagedm",
   "rules": [{"pattern": "notes/{id}.json",
              "strategies": [{"type": "manual", "command": ["$T/bin/alert1.sh", "$T/alertm"]}]}]}}
JSON
"$BKR" init -r "$RM" >/dev/null
for i in $(seq -w 1 25); do echo "{" > "$WM/notes/n$i.json"; done
st=0; "$BKR" batch -c "$T/many.json" --apply > "$T/batch-many.out" 2>&1 || st=$?
[ "$st" = 6 ] || fail "batch of 25 files for a person: exit $st: $(cat "$T/batch-many.out")"
grep -q "25 need a person, 0 failed" "$T/batch-many.out" || fail "batch of 25 files for a person: $(cat "$T/batch-many.out")"
[ "$(cat "$T/alertm.count")" = run ] || fail "the alert command ran $(wc -l < "$T/alertm.count") times for 25 files"
run=$("$BKR" recovered -c "$T/many.json" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["run_id"])')
python3 - "$T" "$run" <<'PY' || fail "the alert of 25 files"
import glob, json, sys
t, run = sys.argv[1], sys.argv[2]
(f,) = [x for x in glob.glob(t + "/alertm.*") if not x.endswith(".count")]
a = json.load(open(f))
names = ["notes/n%02d.json" % i for i in range(1, 26)]
assert a["event"] == "bkr.recovery.manual" and a["run_id"] == run and a["count"] == 25, a
assert [x["path"] for x in a["files"]] == names, a["files"]
assert all(x["kind"] == "invalid" and x["absolute_path"] == t + "/wsm/" + x["path"] for x in a["files"]), a["files"]
assert a["path"] == names[0], a
assert a["message"] == ("25 files need a person: recovery run %s could not recover them: %s and 15 more (every one "
                        "in the description's \"files\", and in 'bkr recovered %s')" % (run, ", ".join(names[:10]), run)), a["message"]
PY
# one file (recover --file): one alert of one file, as before
rm -f "$T"/alertm.*
st=0; "$BKR" recover -c "$T/many.json" --file "$WM/notes/n03.json" --apply > "$T/recover-one.out" 2>&1 || st=$?
[ "$st" = 6 ] && [ "$(cat "$T/alertm.count")" = run ] || fail "recover of one file for a person: exit $st: $(cat "$T/recover-one.out")"
python3 - "$T" <<'PY' || fail "the alert of one file"
import glob, json, sys
(f,) = [x for x in glob.glob(sys.argv[1] + "/alertm.*") if not x.endswith(".count")]
a = json.load(open(f))
assert a["count"] == 1 and a["path"] == "notes/n03.json" and [x["path"] for x in a["files"]] == ["notes/n03.json"], a
assert a["message"].startswith("notes/n03.json needs a person: recovery run "), a["message"]
PY

# --- the manual strategy's wait: its "timeout", else recovery.alert_timeout, also
# with recovery.alert_command (a "timeout" given there was ignored: 60 s) and with
# a command of its own (recovery.alert_timeout was ignored: 60 s)
cat > "$T/bin/alerthang.sh" <<'SH'
#!/bin/sh
exec sleep 300
SH
chmod +x "$T/bin/alerthang.sh"
cat > "$T/hang-a.json" <<JSON
{"repository": "$RM", "workspace_root": "$WM",
 "recovery": {"staging_dir": "$T/stagedm", "alert_command": ["$T/bin/alerthang.sh"],
   "rules": [{"pattern": "notes/{id}.json", "strategies": [{"type": "manual", "timeout": 1}]}]}}
JSON
cat > "$T/hang-b.json" <<JSON
{"repository": "$RM", "workspace_root": "$WM",
 "recovery": {"staging_dir": "$T/stagedm", "alert_timeout": "1s",
   "rules": [{"pattern": "notes/{id}.json", "strategies": [{"type": "manual", "command": ["$T/bin/alerthang.sh"]}]}]}}
JSON
for c in hang-a hang-b; do
	st=0; "$BKR" recover -c "$T/$c.json" --file "$WM/notes/n04.json" --apply > "$T/$c.out" 2>&1 || st=$?
	[ "$st" = 6 ] && grep -q "^failed    notes/n04.json: alert command timed out after 1.0s (process group killed)" "$T/$c.out" ||
		fail "$c: the manual strategy's alert command was not given its 1 s: exit $st: $(cat "$T/$c.out")"
done

echo "recovery integration: ok"
