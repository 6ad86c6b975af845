#!/usr/bin/env bash
# Regenerate the seed corpus of the libFuzzer targets (tests/fuzz/corpus/<target>/)
# from real repository files: a small backup made with the bkr binary, its
# packs, index file, tree blobs (decoded from their pack), manifest, records
# (pin, tag) and configuration.  Usage: tests/fuzz/make-corpus.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
bkr=$build/tools/bkr
[ -x "$bkr" ] || { echo "make-corpus: no $bkr (build first)" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# a small source: text (compressed), random bytes (stored), a symlink, an
# empty file, xattrs, nested directories, a sparse file
mkdir -p "$T/src/a/b" "$T/src/c"
seq 1 300 >"$T/src/a/text.txt"
head -c 3000 /dev/urandom >"$T/src/a/b/random.bin"
: >"$T/src/c/empty"
ln -s ../a/text.txt "$T/src/c/link"
truncate -s 70000 "$T/src/c/sparse"
printf 'x' | dd of="$T/src/c/sparse" bs=1 seek=65536 conv=notrunc 2>/dev/null
setfattr -n user.note -v hello "$T/src/a/text.txt" 2>/dev/null || true
R=$T/repo
"$bkr" -q init "$R" >/dev/null
"$bkr" -q -r "$R" create --type full "$T/src" >/dev/null
id=$(basename "$(ls "$R"/backups/*.json)" .json)
"$bkr" -q -r "$R" pin "$id" --until 2030-01-01 >/dev/null
"$bkr" -q -r "$R" tag "$id" --add seed >/dev/null
"$bkr" -q -r "$R" verify --read-data >/dev/null # a verify record

out=$here/corpus
rm -rf "$out"
mkdir -p "$out"/{pack,index,tree,manifest,record,config,key,sealed,verify_record}
i=0
for p in "$R"/data/*/*.pack "$R"/tree/*/*.pack; do
	cp "$p" "$out/pack/seed-$i"
	i=$((i + 1))
done
# a trailer claiming 2^26 entries (a footer of 3.5 GiB) at the end of a 1 GiB
# hole (fuzz_pack reads it as a sparse file): refused from a piece of it
python3 -c 'import struct, sys
sys.stdout.buffer.write(bytes(100) + b"BKRPACK\0" + struct.pack("<IIQQ", 1, 1 << 26, 1 << 30, 0) + bytes(32))' \
	>"$out/pack/sparse-trailer"
i=0
for p in "$R"/index/*.idx; do
	cp "$p" "$out/index/seed-$i"
	i=$((i + 1))
done
# tree blobs, decoded from the tree packs (footer -> blob -> zlib)
python3 - "$R" "$out/tree" <<'PY'
import glob, os, struct, sys, zlib
repo, out = sys.argv[1], sys.argv[2]
n = 0
for path in glob.glob(os.path.join(repo, "tree", "*", "*.pack")):
    data = open(path, "rb").read()
    magic, version, count, foff = struct.unpack_from("<8sIIQ", data, len(data) - 64)
    for i in range(count):
        e = foff + 56 * i
        off, stored, raw, typ, flags = struct.unpack_from("<QIIBB", data, e + 32)
        payload = data[off + 16: off + 16 + stored]
        blob = zlib.decompress(payload) if flags & 1 else payload
        open(os.path.join(out, "seed-%d" % n), "wb").write(blob)
        n += 1
PY
# manifests and records: as stored, and without "sha256" (the targets seal them)
python3 - "$R" "$out" "backup_20260101_000000_full_00000000" <<'PY'
import glob, json, os, sys
repo, out, fixed = sys.argv[1], sys.argv[2], sys.argv[3]
def unsealed(path, rename=False):
    obj = json.load(open(path))
    obj.pop("sha256", None)
    if rename:
        obj["backup_id"] = fixed  # the id fuzz_record's repository holds
    return json.dumps(obj, separators=(",", ":"))
for i, p in enumerate(sorted(glob.glob(os.path.join(repo, "backups", "*.json")))):
    open(os.path.join(out, "manifest", "sealed-%d" % i), "wb").write(open(p, "rb").read())
    open(os.path.join(out, "manifest", "seed-%d" % i), "w").write(unsealed(p))
for i, p in enumerate(sorted(glob.glob(os.path.join(repo, "records", "*.json")))):
    if json.load(open(p))["kind"] == "verify":
        open(os.path.join(out, "verify_record", "seed-%d" % i), "w").write(unsealed(p))
        continue
    open(os.path.join(out, "record", "seed-%d" % i), "w").write(unsealed(p, True))
    obj = json.loads(unsealed(p, True))
obj["kind"] = "delete"
open(os.path.join(out, "record", "seed-delete"), "w").write(json.dumps(obj, separators=(",", ":")))
# the repository's config.json, unsealed, behind the odd selector byte of fuzz_config
open(os.path.join(out, "config", "repo-0"), "w").write("\x01" + unsealed(os.path.join(repo, "config.json")))
PY
# a user configuration with every section (even selector byte)
{
	printf '\x00'
	cat <<'JSON'
{
  "repository": "/srv/bkr/repo",
  "workspace_root": "/srv/ws",
  "log_dir": "logs",
  "_comment": "seed",
  "sources": [
    {"name": "code", "paths": ["src", "/etc/hostname"], "excludes": ["*.o", "build/"], "priority": 5, "schedule": "hourly"},
    {"paths": ["data"], "schedule": "daily"}
  ],
  "retention": {"keep_last": 3, "keep_daily": 7, "keep_within": "2d", "snapshot": {"keep_last": 1}},
  "tiers": {"warm": {"path": "/srv/warm", "after_days": 7}, "cold": {"path": "/srv/cold", "after_days": 30}},
  "compression": {"level": 3},
  "alert_command": ["/bin/echo", "alert"],
  "required_files": ["src/main.c"],
  "protected_patterns": ["*.key"],
  "recovery": {"rules": []}
}
JSON
} >"$out/config/user-0"
printf '\x00{"repository":"/r","workspace_root":"/w"}' >"$out/config/user-1"
echo "make-corpus: $(find "$out" -type f | wc -l) seeds, $(du -sk "$out" | cut -f1) KiB in $out"

# an encrypted repository (passphrase "fuzz", cheap scrypt): its key file
# (as stored and unsealed: fuzz_key opens it), and sealed objects and packs
# (under its random keys: fuzz_sealed's fixed keys fail them at the tag)
E=$T/enc
BKR_PASSWORD=fuzz BKR_TEST_KDF_N=1024 "$bkr" -q init "$E" --encryption aes-256-gcm >/dev/null
BKR_PASSWORD=fuzz "$bkr" -q -r "$E" create --type full "$T/src" >/dev/null
python3 - "$E" "$out" <<'PY'
import glob, json, os, sys
repo, out = sys.argv[1], sys.argv[2]
k = glob.glob(os.path.join(repo, "keys", "*.json"))[0]
open(os.path.join(out, "key", "sealed-0"), "wb").write(open(k, "rb").read())
obj = json.load(open(k)); obj.pop("sha256")
open(os.path.join(out, "key", "seed-0"), "w").write(json.dumps(obj, separators=(",", ":")))
seeds = glob.glob(os.path.join(repo, "backups", "*.json")) + glob.glob(os.path.join(repo, "index", "*.idx")) + \
        glob.glob(os.path.join(repo, "data", "*", "*.pack")) + glob.glob(os.path.join(repo, "tree", "*", "*.pack"))
for i, p in enumerate(sorted(seeds)):
    open(os.path.join(out, "sealed", "seed-%d" % i), "wb").write(open(p, "rb").read())
open(os.path.join(out, "sealed", "short"), "wb").write(b"BKRSEAL\0" + bytes(40))
PY

