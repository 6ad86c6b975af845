#!/usr/bin/env bash
# The key cache (docs/security.md "Key cache"): 'bkr key unlock' holds the key
# that opens the repository in the kernel's session keyring, and the commands
# and the mount then need no passphrase; 'bkr key lock', the expiry, and
# 'bkr key remove' or 'passwd' of its key file end it; a given passphrase still
# decides; the entry of one repository is never used for another, and a forged
# or garbage entry is never used: one warning line naming why, the passphrase
# asked for as before, nothing written.  The test runs in a session keyring of
# its own (keyring.c new-session), so that nothing of it meets another test's
# or the user's entries.  Needs root (FUSE).
source "$(dirname "$0")/lib.sh"

export BKR_TEST_KDF_N=1024 # cheap keys for the test (stored with each key)
unset BKR_PASSWORD BKR_NEW_PASSWORD BKR_KEY_CACHE

cc -O2 -Wall -o "$T/keyring" "$HERE/keyring.c" || fail "cannot build keyring.c"
KR=$T/keyring
"$KR" new-session || fail "cannot give the test a session keyring of its own"

# every file of a repository with size and mtime: what "nothing written" compares
snapshot() { find "$1" -printf '%P %s %T@\n' | sort; }
repo_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$1/config.json"; }
only_key() { ls "$1/keys" | sed 's/\.json$//'; }
# no passphrase from anywhere: no variable, no file, no terminal
nopass() { expect_exit "$1" "${@:2}" </dev/null; }

src=$T/src
mkdir -p "$src/d"
printf 'alpha\n' >"$src/a.txt"
head -c 300000 /dev/urandom >"$src/d/random.bin"
A=$T/repo-a
B=$T/repo-b
BKR_PASSWORD=pw expect_exit 0 "$BKR" init -r "$A" --encryption aes-256-gcm
BKR_PASSWORD=pw expect_exit 0 "$BKR" init -r "$B" --encryption aes-256-gcm
idA=$(repo_id "$A")
idB=$(repo_id "$B")
kA=$(only_key "$A")
kB=$(only_key "$B")

# --- without the cache: no passphrase, no command; key list shows no cache
nopass 2 "$BKR" -r "$A" list
one_line_error
# the cache was asked and held nothing: the line says how to fill it
err_has "no passphrase: set BKR_PASSWORD, give --password-file or --password-command, or run on a terminal; or cache the key first with 'bkr key unlock'" ||
	fail "no passphrase: $(cat "$T/err")"
BKR_PASSWORD=pw expect_exit 0 "$BKR" -r "$A" key list
! grep -q "^key cache" "$T/out" || fail "key list names a key cache where none is held: $(cat "$T/out")"
BKR_PASSWORD=pw expect_exit 0 "$BKR" -r "$A" key list --json
python3 -c 'import json,sys; k = json.load(open(sys.argv[1])); assert k[0]["cached_until"] is None, k' "$T/out" ||
	fail "key list --json: cached_until is not null without a cache"
BKR_PASSWORD=wrong expect_exit 9 "$BKR" -r "$A" key unlock
! "$KR" has "bkr:$idA" || fail "unlock with a wrong passphrase cached a key"
pass "without the cache a command needs the passphrase; unlock with a wrong one caches nothing"

# --- unlock: the entry has a timeout and is the possessor's only
BKR_PASSWORD=pw expect_exit 0 "$BKR" -r "$A" key unlock --for 1h --json
python3 -c 'import json,sys; u = json.load(open(sys.argv[1])); assert u["key"] == sys.argv[2] and u["seconds"] == 3600 and u["until"].endswith("Z"), u' \
	"$T/out" "$kA" || fail "unlock --json: $(cat "$T/out")"
"$KR" has "bkr:$idA" || fail "unlock left no entry bkr:$idA in the session keyring"
# KEYCTL_DESCRIBE: type;uid;gid;perm;description - possessor view, read, search, link,
# setattr; the user view only; group and others nothing
[ "$("$KR" desc "bkr:$idA")" = "user;0;0;3b010000;bkr:$idA" ] || fail "the entry's permissions: $("$KR" desc "bkr:$idA")"
# /proc/keys: its timeout is counting (not "perm")
timeout=$(awk -v d="bkr:$idA:" '$9 == d { print $4 }' /proc/keys)
[ -n "$timeout" ] && [ "$timeout" != perm ] || fail "the entry has no timeout: $(grep "bkr:$idA" /proc/keys)"
# another session does not see it
bash -c '"$1" new-session && ! "$1" has "bkr:$2"' _ "$KR" "$idA" || fail "another session keyring sees the entry"
pass "unlock caches the key in the session keyring, with a timeout, for its possessor only"

# --- with it: create, ls, restore, the mount, with no passphrase anywhere
nopass 0 "$BKR" -r "$A" create --type full "$src" --json
[ ! -s "$T/err" ] || fail "create with the cache said: $(cat "$T/err")"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$T/out")
nopass 0 "$BKR" -r "$A" ls "$id" src/d
grep -q "random.bin" "$T/out" || fail "ls with the cache: $(cat "$T/out")"
nopass 0 "$BKR" -r "$A" restore "$id" --target "$T/restored"
cmp "$src/d/random.bin" "$T/restored/src/d/random.bin" || fail "restore with the cache differs"
nopass 0 "$BKR" -r "$A" create --type incremental "$src"
bkrfs_fg "$A" "$T/mnt" "$T/daemon.err" </dev/null
cmp "$src/d/random.bin" "$T/mnt/latest/src/d/random.bin" || fail "the mount with the cache differs"
bkrfs_unmount "$T/mnt"
nopass 0 "$BKR" -r "$A" key list
grep -q "^key cache: key $kA, until " "$T/out" || fail "key list does not show the cached key: $(cat "$T/out")"
pass "with the key cached, create, ls, restore and the mount need no passphrase; key list says until when"

# --- a given passphrase decides, as before; BKR_KEY_CACHE=0 turns the cache off;
# changing keys takes the passphrase
BKR_PASSWORD=wrong expect_exit 9 "$BKR" -r "$A" list
printf 'wrong\n' >"$T/pw-wrong"
expect_exit 9 "$BKR" -r "$A" --password-file "$T/pw-wrong" list
BKR_KEY_CACHE=0 nopass 2 "$BKR" -r "$A" list
err_has "no passphrase" || fail "BKR_KEY_CACHE=0: $(cat "$T/err")"
! err_has "bkr key unlock" || fail "BKR_KEY_CACHE=0: the cache is named, though it is off: $(cat "$T/err")"
BKR_NEW_PASSWORD=other nopass 2 "$BKR" -r "$A" key add
err_has "no passphrase" || fail "key add with only the cache: $(cat "$T/err")"
! err_has "bkr key unlock" || fail "key add: the cache is named, though it needs the passphrase: $(cat "$T/err")"
[ "$(ls "$A/keys" | wc -l)" = 1 ] || fail "key add with only the cache added a key file"
"$KR" has "bkr:$idA" || fail "the entry went away"
pass "a given passphrase wins over the cache (a wrong one: exit 9); BKR_KEY_CACHE=0 disables it; key add needs the passphrase"

# --- repository A's entry is not repository B's (the same passphrase)
before=$(snapshot "$B")
nopass 2 "$BKR" -r "$B" list
one_line_error
err_has "no passphrase" || fail "B with A's key cached: $(cat "$T/err")"
# A's entry put under B's description: its key file is not in B
"$KR" copy "bkr:$idA" "bkr:$idB" || fail "cannot copy the entry"
nopass 2 "$BKR" -r "$B" create --type full "$src"
[ "$(wc -l <"$T/err")" = 2 ] || fail "A's entry under B's name: not a note and the error: $(cat "$T/err")"
head -1 "$T/err" | grep -q "^bkr create: warning: $B: the key cache's entry is not used (removed from the cache): its key file $B/keys/$kA.json is gone" ||
	fail "A's entry under B's name: $(cat "$T/err")"
tail -1 "$T/err" | grep -q "no passphrase" || fail "A's entry under B's name, then: $(cat "$T/err")"
! "$KR" has "bkr:$idB" || fail "the entry that did not fit was not removed"
[ "$(snapshot "$B")" = "$before" ] || fail "B was written to with A's entry"
pass "repository A's cached key is never used for B, even under B's name (a warning, then the passphrase; nothing written)"

# --- forged entries under the right name: never used, one warning each, nothing written
forge() { "$KR" add "bkr:$idB" "$1" || fail "cannot add a forged entry"; }
expires=$(python3 -c 'import struct,time; print(struct.pack("<Q", int(time.time()) + 600).hex())')
magic=$(printf BKRKEYC1 | od -An -tx1 | tr -d ' \n')
keyhex=$(printf '%s' "$kB" | od -An -tx1 | tr -d ' \n')
random32=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
for case in "garbage:$(head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n'):another magic" \
	"short:${magic}00:9 bytes" \
	"bad-id:${magic}$(printf '../../etc/passw' | od -An -tx1 | tr -d ' \n')00${expires}${random32}:its key file id" \
	"wrong-key:${magic}${keyhex}${expires}${random32}:does not open its key file $B/keys/$kB.json"; do
	IFS=: read -r name payload why <<<"$case"
	forge "$payload"
	nopass 2 "$BKR" -r "$B" create --type full "$src"
	grep -q "warning: $B: the key cache's entry is not used (removed from the cache): .*$why" "$T/err" ||
		fail "forged entry ($name): $(cat "$T/err")"
	[ "$(wc -l <"$T/err")" = 2 ] || fail "forged entry ($name): more than a note and the error: $(cat "$T/err")"
	! "$KR" has "bkr:$idB" || fail "forged entry ($name) was not removed"
	[ "$(snapshot "$B")" = "$before" ] || fail "forged entry ($name): B was written to"
done
# the mount likewise: a warning, then no passphrase (exit as for a wrong one's absence)
forge "${magic}${keyhex}${expires}${random32}"
expect_exit 2 "$BKR" -r "$B" mount "$T/mnt-b" -f </dev/null
grep -q "bkrfs: warning: $B: the key cache's entry is not used" "$T/err" || fail "the mount with a forged entry: $(cat "$T/err")"
! mountpoint -q "$T/mnt-b" || fail "the mount with a forged entry mounted"
# and a right one still works: with B's passphrase it opens as ever
BKR_PASSWORD=pw expect_exit 0 "$BKR" -r "$B" list
pass "a forged or garbage entry is never used: one warning naming why, removed, nothing written"

# --- lock: no passphrase needed; then the passphrase is needed again
nopass 0 "$BKR" -r "$A" key lock
grep -q "is removed" "$T/out" || fail "lock: $(cat "$T/out")"
! "$KR" has "bkr:$idA" || fail "lock left the entry"
nopass 2 "$BKR" -r "$A" list
one_line_error
err_has "no passphrase" || fail "after lock: $(cat "$T/err")"
nopass 0 "$BKR" -r "$A" key lock --json
[ "$(cat "$T/out")" = '{"removed":false}' ] || fail "lock of nothing --json: $(cat "$T/out")"
# no repository named: lock says so as every command that opens one does
for cmd in "key lock" list; do
	env -u BKR_REPO -u BKR_CONFIG "$BKR" $cmd >"$T/out" 2>"$T/err" </dev/null && fail "$cmd without a repository succeeded"
	one_line_error
	[ "$(cat "$T/err")" = "bkr ${cmd%% *}: no repository: give -r REPO, set BKR_REPO, or name one in the configuration (-c)" ] ||
		fail "$cmd without a repository: $(cat "$T/err")"
done
nopass 3 "$BKR" -r "$T/plain-none" key lock
one_line_error
pass "key lock removes the entry without a passphrase; the next command needs the passphrase"

# --- key remove of the cached key file: in this session the entry goes with it; from
# another session (whose remove cannot reach this keyring) it is refused when used
BKR_PASSWORD=pw BKR_NEW_PASSWORD=pw2 expect_exit 0 "$BKR" -r "$A" key add
BKR_PASSWORD=pw expect_exit 0 "$BKR" -r "$A" key unlock
BKR_PASSWORD=pw2 expect_exit 0 "$BKR" -r "$A" key remove "$kA"
! "$KR" has "bkr:$idA" || fail "key remove of the cached key file left its entry"
nopass 2 "$BKR" -r "$A" list
k2=$(only_key "$A")
BKR_PASSWORD=pw2 expect_exit 0 "$BKR" -r "$A" key unlock
BKR_PASSWORD=pw2 BKR_NEW_PASSWORD=pw3 expect_exit 0 "$BKR" -r "$A" key add
BKR_PASSWORD=pw3 bash -c '"$1" new-session && "$2" -r "$3" key remove "$4"' _ "$KR" "$BKR" "$A" "$k2" >/dev/null ||
	fail "key remove from another session"
"$KR" has "bkr:$idA" || fail "another session's key remove reached this session's keyring"
before=$(snapshot "$A")
nopass 2 "$BKR" -r "$A" create --type incremental "$src"
grep -q "warning: $A: the key cache's entry is not used (removed from the cache): its key file $A/keys/$k2.json is gone" "$T/err" ||
	fail "the entry of a removed key file: $(cat "$T/err")"
[ "$(snapshot "$A")" = "$before" ] || fail "the entry of a removed key file: A was written to"
! "$KR" has "bkr:$idA" || fail "the entry of a removed key file was not removed"
# passwd replaces the key file in use: the entry naming it goes too
k3=$(only_key "$A")
BKR_PASSWORD=pw3 expect_exit 0 "$BKR" -r "$A" key unlock
BKR_PASSWORD=pw3 BKR_NEW_PASSWORD=pw4 expect_exit 0 "$BKR" -r "$A" key passwd
! "$KR" has "bkr:$idA" || fail "key passwd left the entry of the key file it replaced ($k3)"
nopass 2 "$BKR" -r "$A" list
pass "key remove and passwd revoke the cached key (here at once; from another session when it is next used)"

# --- expiry: the kernel removes the entry; then the passphrase is needed again
BKR_PASSWORD=pw4 expect_exit 0 "$BKR" -r "$A" key unlock --for 1s
wait_until eval '! "$KR" has "bkr:$idA"' || fail "the entry did not expire"
nopass 2 "$BKR" -r "$A" list
one_line_error
err_has "no passphrase" || fail "after the expiry: $(cat "$T/err")"
pass "an entry expires (KEYCTL_SET_TIMEOUT); then the passphrase is needed again"

# --- usage: --for bounds and syntax, where it belongs; a plain repository has no keys
for bad in 0 25h 2d 2x 15m ''; do
	BKR_PASSWORD=pw4 expect_exit 2 "$BKR" -r "$A" key unlock --for "$bad"
	one_line_error
done
! "$KR" has "bkr:$idA" || fail "a refused --for cached a key"
BKR_PASSWORD=pw4 expect_exit 2 "$BKR" -r "$A" key list --for 1h
one_line_error
expect_exit 2 "$BKR" -r "$A" key lock --no-wait
one_line_error
expect_exit 0 "$BKR" init -r "$T/plain"
expect_exit 2 "$BKR" -r "$T/plain" key unlock
one_line_error
expect_exit 2 "$BKR" -r "$T/plain" key lock
one_line_error
err_has "not encrypted" || fail "lock on a plain repository: $(cat "$T/err")"
# unlock with BKR_KEY_CACHE=0 in its environment says that such commands will not use it
BKR_KEY_CACHE=0 BKR_PASSWORD=pw4 expect_exit 0 "$BKR" -r "$A" key unlock -q
[ ! -s "$T/err" ] || fail "unlock -q said: $(cat "$T/err")"
BKR_KEY_CACHE=0 BKR_PASSWORD=pw4 expect_exit 0 "$BKR" -r "$A" key unlock
err_has "BKR_KEY_CACHE=0: the commands run with it set do not use the key cache" || fail "unlock under BKR_KEY_CACHE=0: $(cat "$T/err")"
expect_exit 0 "$BKR" -r "$A" key lock
expect_exit 0 "$BKR" key --help
grep -q "bkr key unlock -r REPO \[--for DURATION\]" "$T/out" || fail "key --help has no unlock"
grep -q "bkr key lock" "$T/out" || fail "key --help has no lock"
pass "unlock takes --for 1s..24h only; lock and unlock refuse a plain repository; --help names both"

# --- a shell that no PAM module gave a session keyring of its own (a
# container, CI, a login without pam_keyinit) has the user's default session
# keyring: unlock must put the entry there, where the next command's search
# finds it, not into a session keyring the kernel makes for its link alone
# and that goes with it.  (Last: from here on this test shares that keyring
# with the user's other processes; its entry is its own repository's and
# is removed below.)
"$KR" user-session || fail "cannot take the user's default session keyring"
C=$T/repo-c
BKR_PASSWORD=pw expect_exit 0 "$BKR" init -r "$C" --encryption aes-256-gcm
idC=$(repo_id "$C")
BKR_PASSWORD=pw expect_exit 0 "$BKR" create -q -r "$C" "$src"
BKR_PASSWORD=pw expect_exit 0 "$BKR" -r "$C" key unlock --for 2min -q
"$KR" has "bkr:$idC" || fail "unlock in the user's default session keyring: the next process does not find bkr:$idC"
nopass 0 "$BKR" -r "$C" ls latest
grep -q "^src/" "$T/out" || fail "ls with the cached key (default session keyring): $(cat "$T/out")"
expect_exit 0 "$BKR" -r "$C" key lock
! "$KR" has "bkr:$idC" || fail "lock left bkr:$idC in the user's default session keyring"
nopass 2 "$BKR" -r "$C" ls latest
pass "without a session keyring of its own, unlock caches where the next command finds it; lock removes it"
