#!/bin/bash
# meson install: into a DESTDIR, the exact list of files; each man page
# renders without a warning; then, in a private mount namespace where the
# DESTDIR's /sbin and <prefix> are overlaid on the real ones (so everything
# sits at its installed path, as after a real install), the installed
# programs are used as a person would: `man bkr`, bkr from PATH finding its
# MongoDB module, bash-completion loading the completion and completing
# commands, options and backup ids, `mount -t bkrfs` and an fstab line
# really mounting through mount.bkrfs, and `systemd-analyze verify` on the
# units.
source "$(dirname "$0")/lib.sh"

D=$T/destdir
meson install -C "$BKR_BUILD_ROOT" --no-rebuild --quiet --destdir "$D" >"$T/install.log" 2>&1 ||
	{ cat "$T/install.log"; fail "meson install"; }

# the build's install locations
eval "$(meson introspect "$BKR_BUILD_ROOT" --buildoptions | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
for k in ("prefix", "bindir", "libdir", "mandir", "datadir", "mount_helper_dir", "systemd_unit_dir", "bash_completion_dir"):
    print("opt_%s=%s" % (k, o[k]))
')"
P=$opt_prefix
at() { case $1 in /*) echo "$1" ;; *) echo "$P/$1" ;; esac; }
units=$(at "${opt_systemd_unit_dir:-lib/systemd/system}")
compdir=$(at "${opt_bash_completion_dir:-$opt_datadir/bash-completion/completions}")
cat >"$T/want" <<EOF
$(at "$opt_bindir")/bkr
$(at "$opt_bindir")/bkrfs
$opt_mount_helper_dir/mount.bkrfs
$(at "$opt_libdir")/bkr/bkr-mongodb.so
$(at "$opt_mandir")/man1/bkr.1
$(at "$opt_mandir")/man5/bkr.json.5
$(at "$opt_mandir")/man8/bkrfs.8
$compdir/bkr
$units/bkr-routine@.service
$units/bkr-routine-hourly.timer
$units/bkr-routine-daily.timer
$units/bkr-routine-weekly.timer
$units/bkrfs@.service
$(at "$opt_datadir")/doc/bkrfs/examples/bkr.cron
EOF
sort -o "$T/want" "$T/want"
(cd "$D" && find . -type f -o -type l) | sed 's|^\.||' | sort >"$T/got"
diff -u "$T/want" "$T/got" >"$T/diff" || fail "installed files differ from the list: $(cat "$T/diff")"
for x in "$(at "$opt_bindir")/bkr" "$(at "$opt_bindir")/bkrfs" "$opt_mount_helper_dir/mount.bkrfs"; do
	[ -x "$D$x" ] || fail "$x is not executable"
done
grep -q "ExecStart=$(at "$opt_bindir")/bkr -q routine %i" "$D$units/bkr-routine@.service" ||
	fail "the routine unit does not run the installed bkr"
# the sandbox lets the routine write what docs/config.md's example names: the
# repository under /srv/backup and metrics_file in node_exporter's textfile
# directory (a read-only one failed every run with exit 6, "metrics file ... not written")
for d in /srv/backup /var/lib/prometheus/node-exporter; do
	grep -q "^ReadWritePaths=.*-$d\( \|\$\)" "$D$units/bkr-routine@.service" ||
		fail "the routine unit's sandbox does not let it write $d"
done
pass "meson install: $(wc -l <"$T/want") files, where they belong"

# every man page renders, without a single warning, at 80 columns
for page in man1/bkr.1 man8/bkrfs.8 man5/bkr.json.5; do
	f=$D$(at "$opt_mandir")/$page
	MANWIDTH=80 man --warnings -l "$f" >"$T/page" 2>"$T/warn" || fail "man -l $page failed: $(cat "$T/warn")"
	[ ! -s "$T/warn" ] || fail "man --warnings -l $page: $(cat "$T/warn")"
	grep -q '^NAME' "$T/page" || fail "$page has no NAME section"
	[ "$(wc -l <"$T/page")" -gt 60 ] || fail "$page is short: $(cat "$T/page")"
done
grep -q "LOGS" <(MANWIDTH=80 man -l "$D$(at "$opt_mandir")/man1/bkr.1") || fail "bkr(1) lacks LOGS"
grep -q "retention" <(MANWIDTH=80 man -l "$D$(at "$opt_mandir")/man5/bkr.json.5") || fail "bkr.json(5) lacks retention"
pass "man -l renders bkr(1), bkrfs(8), bkr.json(5) without warnings"

# a repository with two backups, made by the installed bkr
IB=$D$(at "$opt_bindir")/bkr
mkdir -p "$T/ws/data" "$T/mnt"
printf 'installed\n' >"$T/ws/data/f.txt"
"$IB" init -r "$T/repo" >/dev/null
id1=$("$IB" --json create -r "$T/repo" "$T/ws/data" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backup_id"])')
id2=$("$IB" --json create -r "$T/repo" "$T/ws/data" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backup_id"])')

# the MongoDB module, found from the installed bkr (not from the build tree):
# the strategy runs and fails to connect, it is not "unavailable"
mkdir -p "$T/ws/extra"
cat >"$T/bkr.json" <<JSON
{"repository": "$T/repo", "workspace_root": "$T/ws",
 "recovery": {"rules": [{"pattern": "extra/{name}.json", "strategies": [
   {"type": "mongodb", "uri": "mongodb://127.0.0.1:1", "database": "d", "collection": "c",
    "filter": {"name": "{name}"}, "server_selection_timeout_ms": 200, "connect_timeout_ms": 200}]}]}}
JSON
"$IB" -c "$T/bkr.json" recover --file extra/x.json --json >"$T/rec.json" 2>/dev/null || true
python3 - "$T/rec.json" <<'PY' || fail "the installed bkr did not load its MongoDB module: $(head -c 1500 "$T/rec.json")"
import json, sys
r = json.load(open(sys.argv[1]))
a = [x for x in r["files"][0]["attempts"] if x["strategy"] == "mongodb"][0]
assert "not available" not in json.dumps(a) and "bkr-mongodb.so" not in json.dumps(a), a
assert "127.0.0.1:1" in a["error"], a  # libmongoc itself tried the server
PY
pass "the installed bkr loads the installed MongoDB module"

# --- as installed: a private mount namespace with the DESTDIR overlaid -------
helper_real=$(readlink -f "$opt_mount_helper_dir")
cat >"$T/inside.sh" <<EOF
set -euo pipefail
fail() { echo "FAIL: \$*" >&2; exit 1; }
MNT=$T/mnt
trap 'mountpoint -q "\$MNT" && umount "\$MNT"' EXIT
mount -t overlay overlay -o "lowerdir=$D$opt_mount_helper_dir:$helper_real" "$helper_real"
mkdir -p "$P"
if [ -d "$D$P" ]; then
	mount -t overlay overlay -o "lowerdir=$D$P:$P" "$P"
fi
export PATH=$(at "$opt_bindir"):\$PATH MANWIDTH=80

# man finds the pages by name
man bkr >"$T/man.txt" 2>"$T/man.err" || fail "man bkr: \$(cat "$T/man.err")"
grep -q 'bkr .* back up, verify' "$T/man.txt" || fail "man bkr: \$(head -5 "$T/man.txt")"
man 5 bkr.json >/dev/null 2>&1 || fail "man 5 bkr.json"
man 8 bkrfs >/dev/null 2>&1 || fail "man 8 bkrfs"
[ "\$(command -v bkr)" = "$(at "$opt_bindir")/bkr" ] || fail "bkr on PATH is \$(command -v bkr)"
echo "ok - man bkr, man 5 bkr.json, man 8 bkrfs"

# bash-completion loads the installed completion on first use
bash --norc -c '
	source /usr/share/bash-completion/bash_completion
	_completion_loader bkr
	complete -p bkr >/dev/null || { echo "no completion for bkr"; exit 1; }
	c() { COMP_WORDS=("\$@"); COMP_CWORD=\$((\${#COMP_WORDS[@]} - 1)); _bkr; echo "\${COMPREPLY[*]}"; }
	[ "\$(c bkr cre)" = create ] || { echo "commands: \$(c bkr cre)"; exit 1; }
	for w in init create restore verify delete prune cleanup recover batch; do
		[[ " \$(c bkr "") " == *" \$w "* ]] || { echo "command \$w not offered"; exit 1; }
	done
	[ "\$(c bkr restore --tar)" = --target ] || { echo "options: \$(c bkr restore --tar)"; exit 1; }
	[ "\$(c bkr prune --max)" = --max-unused ] || { echo "options: \$(c bkr prune --max)"; exit 1; }
	got=\$(c bkr -r $T/repo restore "")
	[ "\$got" = "$id1 $id2 latest" ] || [ "\$got" = "$id2 $id1 latest" ] || { echo "ids: \$got"; exit 1; }
	[ "\$(c bkr restore -r $T/repo ${id2:0:${#id2}-7})" = "$id2" ] || [ "${id1:0:${#id1}-7}" = "${id2:0:${#id2}-7}" ] ||
		{ echo "id prefix: \$(c bkr restore -r $T/repo ${id2:0:${#id2}-7})"; exit 1; }
	[ "\$(BKR_REPO=$T/repo c bkr diff $id1 "")" = "$id1 $id2 latest" ] ||
		[ "\$(BKR_REPO=$T/repo c bkr diff $id1 "")" = "$id2 $id1 latest" ] || { echo "BKR_REPO ids"; exit 1; }
	[ "\$(c bkr create --type d)" = differential ] || { echo "--type values"; exit 1; }
' || fail "bash completion"
echo "ok - bash-completion loads it: commands, options, backup ids"

# mount -t bkrfs: mount(8) runs the installed mount.bkrfs, which runs bkrfs
mount -t bkrfs -o ro "$T/repo" "\$MNT" || fail "mount -t bkrfs"
findmnt -n -o FSTYPE,SOURCE,OPTIONS "\$MNT" >"$T/findmnt" || fail "not mounted"
grep -q "^fuse.bkrfs *$T/repo *ro," "$T/findmnt" || fail "mounted as: \$(cat "$T/findmnt")"
cmp "$T/ws/data/f.txt" "\$MNT/by-id/$id1/data/f.txt" || fail "wrong content through the mount"
umount "\$MNT"
! mountpoint -q "\$MNT" || fail "still mounted"
# mount(8)'s default "rw" (no -o) is no error: the mount is read-only anyway
mount -t bkrfs "$T/repo" "\$MNT" || fail "mount -t bkrfs without -o"
grep -q "ro," <(findmnt -n -o OPTIONS "\$MNT") || fail "not read-only"
umount "\$MNT"
# an fstab line, as mount(8) reads it at boot
printf '%s %s bkrfs ro,allow_other,noauto 0 0\n' "$T/repo" "\$MNT" >"$T/fstab"
mount -T "$T/fstab" "\$MNT" || fail "mount from the fstab line"
grep -q "allow_other" <(findmnt -n -o OPTIONS "\$MNT") || fail "allow_other lost: \$(findmnt -n "\$MNT")"
cmp "$T/ws/data/f.txt" "\$MNT/latest/data/f.txt" || fail "wrong content through the fstab mount"
umount "\$MNT"
# a bad repository: mount fails with bkrfs's message, nothing mounted
if mount -t bkrfs -o ro "$T/no-such-repo" "\$MNT" 2>"$T/mount.err"; then fail "mounted a missing repository"; fi
grep -q "no-such-repo" "$T/mount.err" || fail "mount error: \$(cat "$T/mount.err")"
! mountpoint -q "\$MNT" || fail "mounted anyway"
echo "ok - mount -t bkrfs and an fstab line mount for real through mount.bkrfs"

# the systemd units
systemd-analyze verify --man=no $units/bkr-routine@.service $units/bkr-routine-hourly.timer \
	$units/bkr-routine-daily.timer $units/bkr-routine-weekly.timer $units/bkrfs@.service \
	>"$T/verify" 2>&1 || fail "systemd-analyze verify: \$(cat "$T/verify")"
[ ! -s "$T/verify" ] || fail "systemd-analyze verify: \$(cat "$T/verify")"
for t in hourly daily weekly; do
	grep -q "^Unit=bkr-routine@\$t.service" $units/bkr-routine-\$t.timer || fail "\$t timer"
	# a random delay drawn anew for each run lets an hourly run come 51 min
	# after the last one, before the sources are due: that hour is skipped
	grep -q "^RandomizedDelaySec=" $units/bkr-routine-\$t.timer || fail "\$t timer: no random delay"
	grep -qx "FixedRandomDelay=true" $units/bkr-routine-\$t.timer || fail "\$t timer: the random delay is not fixed"
done
# the routine service has no condition that skips it in silence: with
# BKR_CONFIG set in /etc/default/bkr there may be no /etc/bkr.json at all
[ ! -e /etc/bkr.json ] || fail "this test needs a machine without /etc/bkr.json"
SYSTEMD_UNIT_PATH=$units: systemd-analyze condition --unit=bkr-routine@hourly.service >"$T/cond" 2>&1 ||
	fail "bkr-routine@.service would be skipped: \$(cat "$T/cond")"
! grep -q "^Condition" $units/bkr-routine@.service || fail "bkr-routine@.service has a condition: \$(grep ^Condition $units/bkr-routine@.service)"
# ... instead a configuration file that is not there fails the run loudly, one line naming it
rc=0
BKR_CONFIG=$T/no-such.json XDG_STATE_HOME=$T/state bkr -q routine hourly >"$T/rt.out" 2>"$T/rt.err" || rc=\$?
[ "\$rc" = 3 ] && [ ! -s "$T/rt.out" ] && [ "\$(wc -l <"$T/rt.err")" = 1 ] && grep -q "$T/no-such.json" "$T/rt.err" ||
	fail "the unit's command without its configuration: exit \$rc, \$(cat "$T/rt.out" "$T/rt.err")"
echo "ok - systemd-analyze verify: the routine service, its three timers (fixed random delays), bkrfs@; the service runs without /etc/bkr.json and fails loudly"
EOF
unshare -m --propagation private bash "$T/inside.sh" || fail "as installed (see above)"
# a fake mount (-f) does nothing
"$D$opt_mount_helper_dir/mount.bkrfs" "$T/repo" "$T/mnt" -f -o ro || fail "mount.bkrfs -f"
! mountpoint -q "$T/mnt" || fail "-f mounted"
pass "as installed: man, completion, mount -t bkrfs, fstab, units"
