#!/bin/sh
# Start a MongoDB wire-protocol server (CongoDB) on 127.0.0.1 for the tests.
#   tests/mongo/start.sh STATE_DIR
# Installs the npm packages into tests/mongo/node_modules when absent, starts
# the server in the background on a port the kernel picks, writes STATE_DIR/pid,
# and waits until the server has written STATE_DIR/port (it listens by then).  Stop it with
#   kill "$(cat STATE_DIR/pid)"
# Set BKR_TEST_MONGO_URI to use a real MongoDB instead (then nothing starts).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
state=${1:?usage: start.sh STATE_DIR}
mkdir -p "$state"

if [ ! -f "$here/node_modules/@push.rocks/smartmongo/dist_ts/congodb/index.js" ]; then
	(
		cd "$here"
		[ -f package.json ] || echo '{"name":"bkr-test-mongo","private":true,"type":"module"}' > package.json
		npm install --no-audit --no-fund --silent --ignore-scripts \
			bson@6.10.4 mingo@7.2.7 @push.rocks/smartfs@1.5.0 @push.rocks/smartpath@6.0.0 \
			@push.rocks/smartpromise@4.2.3 @push.rocks/smartrx@3.0.10 >&2
		tgz=$(npm pack --silent @push.rocks/smartmongo@2.2.0)
		mkdir -p node_modules/@push.rocks/smartmongo
		tar -xzf "$tgz" -C node_modules/@push.rocks/smartmongo --strip-components=1
		rm -f "$tgz"
	)
fi

# Port 0: the server takes a free port itself and writes it once listening,
# so no other process can take the port between choosing and binding it.
rm -f "$state/port"
node "$here/server.mjs" 0 "$state/port" >"$state/server.log" 2>&1 &
echo $! >"$state/pid"
i=0
while [ ! -s "$state/port" ]; do
	i=$((i + 1))
	if [ $i -gt 600 ] || ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
		echo "mongo test server did not start:" >&2
		cat "$state/server.log" >&2
		exit 1
	fi
	sleep 0.1
done
cat "$state/port"
