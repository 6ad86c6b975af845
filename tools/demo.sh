#!/usr/bin/env bash
# The main job on a built-in example: install, build, make a sample workspace,
# back it up (full, then incremental after a change), list, verify, and mount it.
#
# Usage: tools/demo.sh [DIR]   (default DIR: /tmp/bkr-demo; it is recreated)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
demo=${1:-/tmp/bkr-demo}

tools/install-deps.sh
[ -d build ] || meson setup build -Dtests=false >/dev/null
ninja -C build >/dev/null
bkr=$src/build/tools/bkr
bkrfs=$src/build/fs/bkrfs

if mountpoint -q "$demo/mnt" 2>/dev/null; then fusermount3 -u "$demo/mnt"; fi
rm -rf "$demo"
mkdir -p "$demo/workspace/conversations" "$demo/workspace/config" "$demo/workspace/data" "$demo/mnt"
ws=$demo/workspace

echo "== making a sample workspace in $ws"
for i in $(seq 1 300); do
	printf '{"session_id":"s%04d","user":"user%d","messages":[{"role":"user","text":"hello %d"},{"role":"assistant","text":"%s"}]}\n' \
		"$i" $((i % 17)) "$i" "$(head -c 300 /dev/urandom | base64 -w0)" >"$ws/conversations/s$(printf %04d "$i").json"
done
printf '{"model":"demo","max_tokens":1024,"features":["a","b"]}\n' >"$ws/config/service.json"
printf 'listen = 127.0.0.1:8080\nworkers = 4\n' >"$ws/config/service.conf"
head -c 4M /dev/urandom >"$ws/data/blob.bin"
cat >"$demo/bkr.json" <<JSON
{
  "repository": "$demo/repo",
  "workspace_root": "$ws",
  "log_dir": "$demo/logs",
  "required_files": ["config/service.json"]
}
JSON

echo "== bkr init / create --type full"
$bkr init -r "$demo/repo"
$bkr -c "$demo/bkr.json" create --type full
sleep 1
echo "== changing 3 files, adding one, then bkr create --type incremental"
printf '{"session_id":"s0001","user":"user1","messages":[]}\n' >"$ws/conversations/s0001.json"
printf '{"session_id":"s0301","messages":[]}\n' >"$ws/conversations/s0301.json"
echo "workers = 8" >>"$ws/config/service.conf"
$bkr -c "$demo/bkr.json" create --all --type incremental
echo "== bkr list"
$bkr -r "$demo/repo" list
echo "== bkr diff (full -> incremental)"
first=$($bkr -r "$demo/repo" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')
$bkr -r "$demo/repo" diff "$first" latest || true
echo "== bkr verify --read-data"
$bkr -r "$demo/repo" verify --read-data

echo "== mounting with bkrfs at $demo/mnt"
$bkrfs "$demo/repo" "$demo/mnt"
ls -l "$demo/mnt" "$demo/mnt/by-date"/* 2>/dev/null | head -20
cat <<TXT

The repository is mounted read-only at $demo/mnt.  Try:
  ls -l $demo/mnt/latest/workspace/conversations | head
  diff -r $demo/mnt/by-id/$first/workspace $ws
  cp -a $demo/mnt/latest/workspace/config/service.json /tmp/
  getfattr -n user.bkr.sha256 $demo/mnt/latest/workspace/config/service.json
  $bkr -c $demo/bkr.json scan        # after deleting or corrupting a file in $ws
  fusermount3 -u $demo/mnt           # unmount
TXT
