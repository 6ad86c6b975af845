#!/bin/sh
# Start a MongoDB wire-protocol server (CongoDB) on 127.0.0.1 for the tests.
#   tests/mongo/start.sh STATE_DIR
# Installs the npm packages into tests/mongo/node_modules when absent, picks a
# free port, starts the server in the background and writes STATE_DIR/port and
# STATE_DIR/pid, then waits until it accepts connections.  Stop it with
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

port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
node "$here/server.mjs" "$port" >"$state/server.log" 2>&1 &
echo $! >"$state/pid"
echo "$port" >"$state/port"
i=0
while ! node -e 'const c=require("net").connect(+process.argv[1],"127.0.0.1",()=>process.exit(0));c.on("error",()=>process.exit(1))' "$port" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
		echo "mongo test server did not start:" >&2
		cat "$state/server.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "$port"
