#!/bin/sh
# A throw-away PostgreSQL 15 cluster for tests and benchmarks: a fresh data
# directory under /tmp, listening on a free loopback port only, trust
# authentication for the superuser "bbm".  As root the server runs as the
# "postgres" user (PostgreSQL refuses to run as root).
#
#   scripts/with-pg.sh CMD ARGS...  runs CMD with BBM_TEST_PG_URL set, then
#                                    stops the cluster and removes it
#   scripts/with-pg.sh --start      starts one and prints "URL DIR"
#   scripts/with-pg.sh --stop DIR   stops and removes the one in DIR
#   scripts/with-pg.sh --pause DIR  stops its server (a fast shutdown), data kept
#   scripts/with-pg.sh --resume DIR starts it again on the same port
set -eu

PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/initdb" ] || { echo "with-pg: $PGBIN/initdb not found (apt-get install postgresql)" >&2; exit 2; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# below Linux's ephemeral range (32768-60999), so that no client connection made meanwhile
# can be given the port before the server listens on it; within BBM_PORT_RANGE (LOW-HIGH)
# when it is set (the integration tests' share of the range, tests/integration/conftest.py)
free_port() {
  /usr/bin/python3 -c '
import os, random, socket
low, high = map(int, os.environ.get("BBM_PORT_RANGE", "20000-32767").split("-"))
for _ in range(1000):
    p = random.randint(low, high)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        print(p)
        break
'
}

pg_run() { # DIR PORT
  as_owner "$PGBIN/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 60 \
    -o "-p $2 -h 127.0.0.1 -k $1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null 2>&1
}

pg_start() {
  dir=$(mktemp -d /tmp/bbm-pg.XXXXXX)
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  as_owner "$PGBIN/initdb" -D "$dir/data" -U bbm -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; rm -rf "$dir"; return 1; }
  for try in 1 2 3 4 5; do
    port=$(free_port)
    if pg_run "$dir" "$port"; then
      echo "$port" >"$dir/port"
      echo "postgresql://bbm@127.0.0.1:$port/postgres $dir"
      return 0
    fi
  done
  cat "$dir/server.log" >&2
  rm -rf "$dir"
  return 1
}

pg_stop() {
  case "$1" in /tmp/bbm-pg.*) ;; *) echo "with-pg: not a cluster made here: $1" >&2; return 2 ;; esac
  as_owner "$PGBIN/pg_ctl" -D "$1/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$1"
}

mine() {
  case "$1" in /tmp/bbm-pg.*) ;; *) echo "with-pg: not a cluster made here: $1" >&2; exit 2 ;; esac
}

case "${1:-}" in
  --start) pg_start ;;
  --stop) pg_stop "$2" ;;
  --pause) mine "$2"; as_owner "$PGBIN/pg_ctl" -D "$2/data" -m fast -w stop >/dev/null ;;
  --resume) mine "$2"; pg_run "$2" "$(cat "$2/port")" || { cat "$2/server.log" >&2; exit 1; } ;;
  "") echo "usage: $0 CMD ARGS... | --start | --stop DIR" >&2; exit 2 ;;
  *)
    started=$(pg_start)
    dir=${started#* }
    trap 'pg_stop "$dir"' EXIT INT TERM
    BBM_TEST_PG_URL=${started% *} "$@"
    ;;
esac
