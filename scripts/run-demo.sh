#!/bin/sh
# `make run`: a master in MASTER_DIR running scripts/demo-master.lua (SQLite)
# with a real Debian buildbot-worker connected to it, and a build forced at
# once: the worker checks out this repository with the git step, builds
# bbmaster and runs its unit tests.  Shows the master's log until Ctrl-C,
# then stops both.  Prints the web UI's address.
set -eu
BBMASTER=$(realpath "$1")
MASTER_DIR=$2
WORKER_DIR=.run/worker
REPO=$(realpath "$(dirname "$0")/..")

mkdir -p "$(dirname "$MASTER_DIR")"
[ -d "$MASTER_DIR" ] || "$BBMASTER" create-master "$MASTER_DIR" >/dev/null
SHARED=$(realpath "$REPO/../shared" 2>/dev/null || echo "$REPO/../shared")
sed -e "s|@REPO@|$REPO|" -e "s|@SHARED@|$SHARED|" "$REPO/scripts/demo-master.lua" \
  >"$MASTER_DIR/master.lua"
"$BBMASTER" checkconfig "$MASTER_DIR"
"$BBMASTER" upgrade-master "$MASTER_DIR" >/dev/null # a master made by an older bbmaster

# The sample config's worker; a changed master.lua may name another.
PB_PORT=$(sed -n 's/.*pb *= *{ *port *= *\([0-9]*\).*/\1/p' "$MASTER_DIR/master.lua" | head -n 1)
PB_PORT=${PB_PORT:-9989}
if [ ! -f "$WORKER_DIR/buildbot.tac" ]; then
  mkdir -p .run
  buildbot-worker create-worker --umask=0o22 "$WORKER_DIR" "localhost:$PB_PORT" \
    example-worker pass >/dev/null
fi

stop_all() {
  buildbot-worker stop "$WORKER_DIR" >/dev/null 2>&1 || true
  "$BBMASTER" stop "$MASTER_DIR" || true
}
trap 'stop_all; exit 0' INT TERM

"$BBMASTER" start "$MASTER_DIR"
buildbot-worker start "$WORKER_DIR" >/dev/null
echo "worker started in $WORKER_DIR; waiting for it to attach..."
i=0
until grep -q "worker 'example-worker' attached" "$MASTER_DIR/bbmaster.log"; do
  i=$((i + 1))
  if [ $i -gt 150 ]; then
    echo "the worker did not attach within 30 s; see $WORKER_DIR/twistd.log" >&2
    stop_all
    exit 1
  fi
  sleep 0.2
done
grep "worker 'example-worker' attached" "$MASTER_DIR/bbmaster.log" | tail -n 1
WWW_PORT=$(sed -n 's/.*www *= *{ *port *= *"*\(tcp:\)*\([0-9]*\).*/\2/p' "$MASTER_DIR/master.lua" | head -n 1)
API="http://localhost:$WWW_PORT/api/v2"
FORCED=$(curl -s -X POST -H 'Content-Type: application/json' \
  -d '{"id": 1, "jsonrpc": "2.0", "method": "force", "params": {"reason": "make run"}}' \
  "$API/forceschedulers/force")
BRID=$(echo "$FORCED" | sed -n 's/.*"result":\[[0-9]*,{"[0-9]*":\([0-9]*\).*/\1/p')
echo "build forced. Open the web UI: http://localhost:$WWW_PORT/"
[ -z "$BRID" ] || echo "the build: http://localhost:$WWW_PORT/buildrequests/$BRID?redirect_to_build=true"
echo "the API: $API/builds"
echo "master and worker are running; Ctrl-C stops both. Master log follows."
tail -n 0 -f "$MASTER_DIR/bbmaster.log" &
TAIL=$!
trap 'kill $TAIL 2>/dev/null; stop_all; exit 0' INT TERM
wait $TAIL
