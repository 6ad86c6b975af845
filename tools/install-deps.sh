#!/usr/bin/env bash
# Install what bkrfs needs to build, run and test on Debian 12 (as root).
# Usage: tools/install-deps.sh [--tests] [--bench]
set -euo pipefail

pkgs=(meson ninja-build pkg-config gcc libc6-dev
      libfuse3-dev fuse3 zlib1g-dev libdeflate-dev libzstd-dev libssl-dev libcjson-dev
      libgit2-dev libmongoc-dev libbson-dev libcurl4-openssl-dev git)
want_node=0
for a in "$@"; do
	case "$a" in
	# clang and libclang-rt (libFuzzer) build the fuzz targets (tests/fuzz/run.sh)
	# prometheus: its promtool checks bkr health's metrics (Debian ships promtool only in it)
	# man-db, groff-base, bash-completion, systemd (systemd-analyze verify): the
	# installed man pages, completion and units (test_install); tmux: progress
	# on a real terminal (test_progress); radosgw ceph-base ceph-mon ceph-osd ceph-common
	# curl: the S3 server of test_s3.sh and test_s3_mount.sh (tools/s3-server.sh)
	--tests) pkgs+=(libcmocka-dev valgrind attr acl python3 xxd clang libclang-rt-14-dev prometheus
	                man-db groff-base bash-completion systemd tmux
	                radosgw ceph-base ceph-mon ceph-osd ceph-common curl); want_node=1 ;;
	--bench) pkgs+=(restic borgbackup python3-pyfuse3 fio time wamerican) ;;  # pyfuse3: borg mount; wamerican: the word-text corpus
	esac
done

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The MongoDB test server runs on Node.js; keep an existing node (it may not come from Debian).
if [ "$want_node" = 1 ] && ! command -v node >/dev/null 2>&1; then
	missing+=(nodejs npm)
fi
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -e /dev/fuse ] || echo "install-deps: warning: /dev/fuse is missing; mounts will fail" >&2
exit 0
