#!/usr/bin/env bash
# s3-server.sh - a throwaway S3 server on 127.0.0.1 for tests and benchmarks:
# Ceph's RADOS Gateway over a one-node cluster (one monitor, one OSD keeping
# its objects in RAM, no manager, no authentication inside the cluster),
# from Debian 12's packages (tools/install-deps.sh --tests installs them).
#
#   s3-server.sh start DIR [PORT]  a fresh, empty server under DIR (on a port the kernel
#                                  gives when none is given); prints S3_ENDPOINT, S3_ACCESS_KEY,
#                                  S3_SECRET_KEY and S3_REGION as shell assignments (also kept
#                                  in DIR/env)
#   s3-server.sh bucket DIR NAME   create bucket NAME
#   s3-server.sh gateway-stop DIR  kill the gateway only (the stored objects stay)
#   s3-server.sh gateway-start DIR start it again on the same port
#   s3-server.sh stop DIR          stop every daemon started under DIR (logs stay)
#
# Only processes whose command line names DIR/ceph.conf are ever signalled.
# Ready in 7-10 s on 2 cores; every start is a new, empty cluster.
#
# Ports: the gateway binds port 0 (the kernel picks a free one, read back from
# /proc), so no other process can take it between the pick and the bind.  The
# monitor's port must be in the monitor map before it runs: it is picked free
# and may be taken by another process before the monitor binds it; a start
# that finds "unable to bind" in the monitor's log starts again on another
# port (at most 3 tries).  A start on a given PORT, or a gateway-start (on the
# recorded port), that finds it taken fails, naming the port.
set -euo pipefail

KEY=${S3_ACCESS_KEY:-BKRTESTACCESSKEY0000}
SECRET=${S3_SECRET_KEY:-bkrtestsecretkey00000000000000000000000}
TIMEOUT=${S3_SERVER_TIMEOUT:-120}

fail() { echo "s3-server: $*" >&2; exit 1; }

# PID belongs to this server: alive and started with our configuration
mine() { [ -r "/proc/$1/cmdline" ] && grep -qF -- "$CONF" <(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null); }

port_taken() { # PORT: another socket holds 127.0.0.1:PORT (a bind as the daemons do it fails)
	/usr/bin/python3 -c 'import errno, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    sys.exit(0 if e.errno == errno.EADDRINUSE else 2)
sys.exit(1)' "$1"
}

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

listen_ports() { # PID: the TCP ports PID listens on, one a line
	/usr/bin/python3 - "$1" <<'EOF'
import os, sys
pid = sys.argv[1]
socks = set()
try:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            socks.add(link[8:-1])
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for row in f.read().splitlines()[1:]:
                c = row.split()
                if c[3] == "0A" and c[9] in socks:  # LISTEN
                    print(int(c[1].rsplit(":", 1)[1], 16))
except OSError:
    pass
EOF
}

pid_of() { sed -n "s/^$1 //p" "$DIR/pids" | tail -n 1; } # NAME: its recorded pid

log_size() { stat -c %s "$1" 2>/dev/null || echo 0; } # FILE: its bytes (0: none yet)

# until daemon NAME listens on PORT (on any port when none is given), then
# prints the port; returns 1 when it could not bind PORT: its LOG, past the
# first FROM bytes (what an earlier run of it wrote), says so, or it exited
# and another socket holds PORT.  A daemon that cannot bind exits, and its
# log is no witness of why: the gateway's log is written by a thread of its
# own and is often lost when it exits so early (1 start in 8 under load).
# Whether it is alive is asked before the port is, so a port freed after
# the daemon found it taken still reads as the daemon's failure.
until_bound() {
	local name=$1 log=$2 from=$3 port=${4:-} pid got alive
	pid=$(pid_of "$name")
	while :; do
		if mine "$pid"; then alive=1; else alive=0; fi
		got=$(listen_ports "$pid")
		if [ -n "$got" ] && { [ -z "$port" ] || grep -qx "$port" <<<"$got"; }; then
			echo "${port:-$(head -n 1 <<<"$got")}"
			return 0
		fi
		! grep -q "unable to bind\|failed to bind" <(tail -c +$((from + 1)) "$log" 2>/dev/null) || return 1
		if [ "$alive" = 0 ]; then
			[ -z "$port" ] || ! port_taken "$port" || return 1
			fail "$name exited before it listened (logs in $DIR/log)"
		fi
		[ $(( $(date +%s) - t0 )) -lt "$TIMEOUT" ] || fail "timed out waiting for $name to listen (logs in $DIR/log)"
		sleep 0.2
	done
}

# until CMD... succeeds or TIMEOUT passes since $t0
until_ok() {
	local what=$1; shift
	while ! "$@" >/dev/null 2>&1; do
		[ $(( $(date +%s) - t0 )) -lt "$TIMEOUT" ] || fail "timed out waiting for $what (logs in $DIR/log)"
		sleep 0.2
	done
}

launch() { # NAME CMD...: a daemon in its own session, in the foreground mode (-f), its pid recorded
	local name=$1; shift
	setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
	echo "$name $!" >>"$DIR/pids"
}

s3curl() { # METHOD PATH: a signed request to the gateway
	curl -sf --noproxy '*' --aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY:$SECRET" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X "$1" "http://127.0.0.1:$(cat "$DIR/port")/$2" -o /dev/null
}

answers() { # the gateway answers HTTP on its port
	local code
	code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat "$DIR/port")/") || return 1
	[ "$code" = 200 ] || [ "$code" = 403 ]
}

setdir() {
	[ -n "${1:-}" ] || fail "no DIR given"
	mkdir -p "$1"
	DIR=$(cd "$1" && pwd)
	CONF=$DIR/ceph.conf
}

write_conf() { # FSID MONPORT PORT
	cat >"$CONF" <<EOF
[global]
fsid = $1
mon host = v2:127.0.0.1:$2
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
mon_warn_on_insecure_global_id_reclaim_allowed = false
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = false
crash dir = $DIR/crash
mon cluster log file = $DIR/log/cluster.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
# one monitor need not batch its map updates: start-up in seconds, not a minute
paxos propose interval = 0.01
paxos min wait = 0.01
mon tick interval = 1

[mon]
mon data = $DIR/mon/\$cluster-\$id

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${S3_SERVER_BYTES:-2147483648}
osd op num shards = 2
osd op num threads per shard = 2
osd max object size = 1073741824

[client.rgw.a]
# radosgw asks for cephx and a secure monitor connection unless told otherwise
auth client required = none
ms mon client mode = crc
ms client mode = crc
rgw frontends = beast endpoint=127.0.0.1:$3
rgw data = $DIR/rgw
rgw thread pool size = 32
rgw enable usage log = false
rgw enable ops log = false
rgw dns name = localhost
rgw gc obj min wait = 30
rgw gc processor period = 30
# no resharding thread: in a gateway that shuts down at once (its port taken)
# it dies of SIGSEGV or SIGABRT (boost::bad_get, Ceph 16.2) in rgw_reshard
rgw dynamic resharding = false
EOF
}

start() {
	setdir "$1"
	local want=${2:-0} tries=0
	for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph curl setsid /usr/bin/python3; do
		command -v "$b" >/dev/null || fail "$b is missing (tools/install-deps.sh --tests)"
	done
	if [ -s "$DIR/pids" ]; then
		while read -r _ pid; do mine "$pid" && fail "already running in $DIR (stop it first)"; done <"$DIR/pids"
	fi
	trap 'if [ $? != 0 ]; then stop "$DIR" >/dev/null 2>&1 || true; fi' EXIT
	t0=$(date +%s)
	local began=$t0
	rebind=1
	while [ "$rebind" = 1 ]; do
		tries=$((tries + 1))
		[ "$tries" -le 3 ] || fail "the monitor's port was taken on 3 tries (logs in $DIR/log)"
		start_once "$want"
	done
	trap - EXIT
	printf 'S3_ENDPOINT=http://127.0.0.1:%s\nS3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\nS3_REGION=us-east-1\n' \
		"$(cat "$DIR/port")" "$KEY" "$SECRET" | tee "$DIR/env"
	echo "s3-server: ready in $(( $(date +%s) - began )) s at http://127.0.0.1:$(cat "$DIR/port") (logs in $DIR/log)" >&2
}

# One try of a start, the gateway on PORT (0: one the kernel gives): sets
# rebind=1 when another process took the monitor's port first, else 0.
start_once() {
	local port=$1 monport fsid uuid id
	stop "$DIR" # what a try before left
	monport=${S3_SERVER_MON_PORT:-$(free_port)}
	unset S3_SERVER_MON_PORT # the first try's only (tests of the retry)
	rm -rf "$DIR/mon" "$DIR/osd" "$DIR/rgw" "$DIR/run" "$DIR/log" "$DIR/crash" "$DIR/pids" "$DIR/env" "$DIR/monmap"
	mkdir -p "$DIR/mon" "$DIR/osd/ceph-0" "$DIR/rgw" "$DIR/run" "$DIR/log" "$DIR/crash"
	: >"$DIR/pids"
	fsid=$(cat /proc/sys/kernel/random/uuid)
	uuid=$(cat /proc/sys/kernel/random/uuid)
	write_conf "$fsid" "$monport" "$port"

	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$monport]" "$DIR/monmap" >>"$DIR/log/setup.log" 2>&1 ||
		fail "monmaptool failed (see $DIR/log/setup.log)"
	ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" >>"$DIR/log/setup.log" 2>&1 ||
		fail "the monitor's mkfs failed (see $DIR/log/setup.log)"
	launch mon ceph-mon -c "$CONF" -i a -f
	if ! until_bound mon "$DIR/log/mon.a.log" 0 "$monport" >/dev/null; then
		echo "s3-server: the monitor's port $monport was taken by another process: starting again" >&2
		rebind=1
		return 0
	fi
	ceph-osd -c "$CONF" -i 0 --mkfs --no-mon-config --osd-uuid "$uuid" >>"$DIR/log/setup.log" 2>&1 ||
		fail "the OSD's mkfs failed (see $DIR/log/setup.log)"
	id=$(timeout "$TIMEOUT" ceph -c "$CONF" --connect-timeout "$TIMEOUT" osd new "$uuid" 0 2>>"$DIR/log/setup.log") ||
		fail "registering the OSD failed (see $DIR/log/setup.log)"
	[ "$id" = 0 ] || fail "the OSD got id '$id', not 0"
	launch osd ceph-osd -c "$CONF" -i 0 -f
	# makes the gateway's zone and pools (waits for the OSD) and the S3 user
	timeout "$TIMEOUT" radosgw-admin -c "$CONF" -n client.rgw.a user create --uid=bkr --display-name=bkr \
		--access-key="$KEY" --secret-key="$SECRET" >>"$DIR/log/setup.log" 2>&1 ||
		fail "creating the S3 user failed (see $DIR/log/setup.log)"
	launch rgw radosgw -c "$CONF" -n client.rgw.a -f
	if [ "$port" = 0 ]; then
		port=$(until_bound rgw "$DIR/log/client.rgw.a.log" 0) || fail "the gateway could not bind a port (logs in $DIR/log)"
		# a gateway-start binds this one again
		sed -i "s/^\(rgw frontends = beast endpoint=127.0.0.1:\)0\$/\1$port/" "$CONF"
	else
		until_bound rgw "$DIR/log/client.rgw.a.log" 0 "$port" >/dev/null || fail "port $port is taken by another process"
	fi
	echo "$port" >"$DIR/port"
	until_ok "the gateway" answers
	# the first bucket creates the gateway's data pools: done here, not in the first test
	s3curl PUT bkr-warm-up && s3curl DELETE bkr-warm-up || fail "the first bucket could not be made"
	rebind=0
}

gateway_start() {
	setdir "$1"
	[ -f "$CONF" ] || fail "no server in $DIR"
	local from
	t0=$(date +%s)
	from=$(log_size "$DIR/log/client.rgw.a.log")
	launch rgw radosgw -c "$CONF" -n client.rgw.a -f
	if ! until_bound rgw "$DIR/log/client.rgw.a.log" "$from" "$(cat "$DIR/port")" >/dev/null; then
		kill_mine rgw
		fail "port $(cat "$DIR/port") is taken by another process (stop it, or start a new server)"
	fi
	until_ok "the gateway" answers
}

kill_mine() { # NAME...: TERM, then KILL, the recorded daemons of these names; forget them
	local name pid left
	for want in "$@"; do
		while read -r name pid; do
			[ "$name" = "$want" ] || continue
			mine "$pid" && kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 50); do mine "$pid" || break; sleep 0.1; done
			if mine "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
			for _ in $(seq 50); do mine "$pid" || break; sleep 0.1; done
			! mine "$pid" || fail "$name ($pid) does not die"
		done <"$DIR/pids"
		left=$(grep -v "^$want " "$DIR/pids" || true)
		printf '%s' "${left:+$left$'\n'}" >"$DIR/pids"
	done
}

gateway_stop() {
	setdir "$1"
	[ -f "$DIR/pids" ] || fail "no server in $DIR"
	kill_mine rgw
}

stop() {
	setdir "$1"
	[ -f "$DIR/pids" ] || return 0
	kill_mine rgw osd mon
	rm -f "$DIR/pids"
}

cmd=${1:-}
shift || true
case "$cmd" in
start) start "$@" ;;
stop) stop "$@" ;;
gateway-stop) gateway_stop "$@" ;;
gateway-start) gateway_start "$@" ;;
bucket) setdir "$1"; s3curl PUT "${2:?bucket NAME}" || fail "cannot create bucket $2" ;;
*) echo "usage: $0 start DIR [PORT] | bucket DIR NAME | gateway-stop DIR | gateway-start DIR | stop DIR" >&2; exit 2 ;;
esac
