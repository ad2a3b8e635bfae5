#!/usr/bin/python3
"""bench/api/gendb.py: fills an empty Buildbot database (SQLite or PostgreSQL)
with a benchmark-sized history, in seconds rather than hours.

The schema must already exist (`bbmaster upgrade-master DIR` for 4.3, or
`buildbot upgrade-master DIR` for Buildbot 3.7's 059; the columns 4.x added
are filled only when present).  Rows written, all with explicit ids from 1:

  masters        1 (name "bench-master", inactive)
  workers        W ("worker01"...), info '{}'
  builders       B ("builder-0001"...), name_hash = sha1 hex of the name
  buildsets      one per build, complete unless its build is running
  buildrequests  one per build (id = build id)
  builds         N; build i runs on builder ((i-1) % B) + 1 with number
                 ((i-1) // B) + 1, so every builder has numbers 1..N/B and
                 builds interleave across builders as on a real master;
                 started 30 s apart, 10 to 60 minutes long; results mostly
                 SUCCESS, every 20th FAILURE, every 50th WARNINGS, every 97th
                 EXCEPTION; the newest build of every 10th builder is still
                 running (complete_at and results NULL)
  steps, logs    one step "test" with one stdio log (type 's') on the newest
                 build of builder 1
  logchunks      the log's lines ('o' + text, some 'h' header lines) in raw
                 (compressed = 0) chunks of consecutive lines joined by '\\n',
                 at most 64 KiB each, first_line/last_line inclusive; the
                 lines without their channel character sum (with their
                 newlines) to log_bytes (or just over): the size of the /raw download
                 before its 4.3 "Builder:" prologue

SQLite: the builds, buildrequests and buildsets come from one
INSERT ... SELECT over a recursive CTE each; PostgreSQL: the same SELECTs
over generate_series, fed to psql, the log chunks through COPY, then the id
sequences are moved past the ids used and the tables VACUUM ANALYZEd (as
autovacuum would have done on a long-lived database).  SQLite is not
ANALYZEd: Buildbot never does it.

Usable alone:
  /usr/bin/python3 bench/api/gendb.py --sqlite master/state.sqlite --builds 1000000
  /usr/bin/python3 bench/api/gendb.py --pg postgresql://u:p@127.0.0.1:5432/db
"""

import argparse
import hashlib
import os
import sqlite3
import subprocess
import sys
import time

T0 = 1_700_000_000          # 2023-11-14: the first build starts here
MAX_CHUNK = 65536


class Layout:
    def __init__(self, builds=1_000_000, builders=1000, workers=10, log_bytes=100 << 20):
        if builds < builders:
            raise ValueError("need at least one build per builder")
        self.builds, self.builders, self.workers = builds, builders, workers
        self.log_bytes = log_bytes

    def builder_name(self, b):
        return f"builder-{b:04d}"

    def worker_name(self, w):
        return f"worker{w:02d}"

    def builds_of(self, b):
        """Number of builds of builder b (its newest build's number)."""
        return (self.builds - b) // self.builders + 1

    def build_id(self, b, number):
        return (number - 1) * self.builders + b

    def log_build(self):
        """(buildid, builderid, number) of the build carrying the big log."""
        n = self.builds_of(1)
        return self.build_id(1, n), 1, n


def sha1(s):
    return hashlib.sha1(s.encode()).hexdigest()


def log_chunks(nbytes):
    """Yields (first_line, last_line, content bytes) for a stdio log whose
    lines, without the channel character and with a newline each, sum to at
    least nbytes."""
    mods = ["test_os", "test_sys", "test_io", "test_re", "test_json", "test_socket",
            "test_asyncio.test_tasks", "test_unicode", "test_dict"]
    words = ["parse", "roundtrip", "large_file", "nested", "timeout", "concurrent",
             "encoding", "empty", "overflow", "signals", "unicode_names"]
    outcome = ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "skipped 'requires network'",
               "ok", "expected failure", "ok", "ok", "ok"]
    pad = "." * 80
    head = ["make buildbottest TESTOPTS=-j2",
            " in dir /buildbot/worker/build (timeout 1200 secs)",
            " watching logfiles {}", " argv: [b'make', b'buildbottest']",
            " using PTY: False"]
    tail = "hprogram finished with exit code 0"
    lines, size, first, line_no, total = [], 0, 0, 0, 0

    def flush():
        return first, line_no - 1, "\n".join(lines).encode()

    k = 0
    done = False
    while not done:
        if line_no < len(head):
            text = "h" + head[line_no]
        elif total + len(tail) >= nbytes:
            text, done = tail, True
        else:
            text = (f"o{k:07d} test_{words[k % 11]}_{k % 1009} "
                    f"(test.{mods[k % 9]}.Tests.test_{words[(k * 7) % 11]}) "
                    f"{pad[:(k * 13) % 61]} {outcome[k % 13]}")
            k += 1
        raw = len(text)                   # channel char dropped, newline added
        b = len(text.encode())
        if lines and size + 1 + b > MAX_CHUNK:
            yield flush()
            lines, size, first = [], 0, line_no
        size += b + (1 if lines else 0)
        lines.append(text)
        line_no += 1
        total += raw
    yield flush()


# The build history as dialect-neutral SQL over a row source `src(i)`, i = 1..N.
def _build_rows(L, src):
    B, N = L.builders, L.builds
    return f"""
      SELECT i, b, num, started, running, ((i - 1) % {L.workers}) + 1 AS workerid,
             CASE WHEN running = 1 THEN NULL
                  ELSE started + 600 + ((i * 37) % 3000) END AS complete_at,
             CASE WHEN running = 1 THEN NULL WHEN i % 97 = 0 THEN 4 WHEN i % 20 = 0 THEN 2
                  WHEN i % 50 = 1 THEN 1 ELSE 0 END AS results,
             CASE WHEN running = 1 THEN 'building'
                  WHEN i % 97 = 0 THEN 'exception test (exception)'
                  WHEN i % 20 = 0 THEN 'failed test (failure)'
                  WHEN i % 50 = 1 THEN 'warnings compile (warnings)'
                  ELSE 'build successful' END AS state
      FROM (SELECT i, b, num, {T0} + (i - 1) * 30 AS started,
                   CASE WHEN b % 10 = 0 AND num = ({N} - b) / {B} + 1 THEN 1 ELSE 0 END AS running
            FROM (SELECT i, ((i - 1) % {B}) + 1 AS b, ((i - 1) / {B}) + 1 AS num
                  FROM {src}) x) y"""


def history_sql(L, columns, src):
    """The three INSERT ... SELECT statements; `src` is the row source clause and
    `columns` maps table -> set of its column names (for 3.7 vs 4.3)."""
    rows = _build_rows(L, src)
    bs = ("INSERT INTO buildsets (id, external_idstring, reason, submitted_at, complete, "
          "complete_at, results, parent_buildid, parent_relationship) "
          "SELECT i, NULL, 'The SingleBranchScheduler scheduler named ''main'' triggered "
          "this build', started - 5, 1 - running, complete_at, results, NULL, NULL "
          "FROM (" + rows + ") r")
    br = ("INSERT INTO buildrequests (id, buildsetid, builderid, priority, complete, results, "
          "submitted_at, complete_at, waited_for) "
          "SELECT i, i, b, 0, 1 - running, results, started - 5, complete_at, 0 "
          "FROM (" + rows + ") r")
    cols = ["id", "number", "builderid", "buildrequestid", "workerid", "masterid", "started_at",
            "complete_at", "state_string", "results"]
    vals = ["i", "num", "b", "i", "workerid", "1", "started", "complete_at", "state", "results"]
    if "locks_duration_s" in columns["builds"]:
        cols.append("locks_duration_s")
        vals.append("0")
    bu = (f"INSERT INTO builds ({', '.join(cols)}) SELECT {', '.join(vals)} FROM (" + rows + ") r")
    return [bs, br, bu]


def small_rows(L, columns):
    """(table, columns, rows) for masters, workers, builders."""
    out = [("masters", ["id", "name", "name_hash", "active", "last_active"],
            [(1, "bench-master", sha1("bench-master"), 0, T0)]),
           ("workers", ["id", "name", "info", "paused", "graceful"],
            [(w, L.worker_name(w), "{}", 0, 0) for w in range(1, L.workers + 1)]),
           ("builders", ["id", "name", "name_hash"],
            [(b, L.builder_name(b), sha1(L.builder_name(b))) for b in range(1, L.builders + 1)])]
    return out


def step_rows(L, columns):
    """(table, columns, rows) for the step of the big log (after builds: the
    foreign key is enforced on PostgreSQL)."""
    buildid, _, _ = L.log_build()
    started = T0 + (buildid - 1) * 30
    scols = ["id", "number", "name", "buildid", "started_at", "complete_at", "state_string",
             "results", "urls_json", "hidden"]
    srow = [1, 0, "test", buildid, started + 60, started + 500, "test", 0, "[]", 0]
    if "locks_acquired_at" in columns["steps"]:
        scols.append("locks_acquired_at")
        srow.append(started + 60)
    return [("steps", scols, [tuple(srow)])]


def log_row(num_lines):
    return ("logs", ["id", "name", "slug", "stepid", "complete", "num_lines", "type"],
            [(1, "stdio", "stdio", 1, 1, num_lines, "s")])


def generate_sqlite(path, L, progress=print):
    db = sqlite3.connect(path, isolation_level=None)
    columns = {t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")}
               for t in ("builds", "steps")}
    if not columns["builds"]:
        sys.exit(f"{path}: no builds table: create the schema first (upgrade-master)")
    if db.execute("SELECT count(*) FROM builds").fetchone()[0]:
        sys.exit(f"{path}: builds is not empty")
    wal = db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    db.execute("BEGIN")
    t = time.monotonic()
    for table, cols, rows in small_rows(L, columns):
        db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                       f"({', '.join('?' * len(cols))})", rows)
    cte = ("WITH RECURSIVE src(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM src "
           f"WHERE i < {L.builds}) ")
    for stmt in history_sql(L, columns, "src"):
        db.execute(cte + stmt)
    for table, cols, rows in step_rows(L, columns):
        db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                       f"({', '.join('?' * len(cols))})", rows)
    progress(f"  {L.builds:,} builds, buildrequests, buildsets: {time.monotonic() - t:.1f} s")
    t = time.monotonic()
    chunks = list(log_chunks(L.log_bytes))
    table, cols, rows = log_row(chunks[-1][1] + 1)
    db.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
               rows[0])
    db.executemany("INSERT INTO logchunks (logid, first_line, last_line, content, compressed) "
                   "VALUES (1, ?, ?, ?, 0)", chunks)
    db.execute("COMMIT")
    progress(f"  log: {chunks[-1][1] + 1:,} lines, "
             f"{sum(len(c[2]) for c in chunks) / 1048576:.1f} MB in {len(chunks)} chunks: "
             f"{time.monotonic() - t:.1f} s")
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
    db.close()


def _pg_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def psql(url, sql, capture=False):
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-At"],
                       input=sql.encode() if isinstance(sql, str) else sql,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if r.returncode:
        sys.exit(f"psql failed: {r.stderr.decode().strip()}")
    return r.stdout.decode() if capture else None


def generate_pg(url, L, progress=print):
    cols = psql(url, "SELECT table_name, column_name FROM information_schema.columns "
                     "WHERE table_schema = 'public' AND table_name IN ('builds', 'steps');",
                capture=True)
    columns = {"builds": set(), "steps": set()}
    for line in cols.splitlines():
        t, c = line.split("|")
        columns[t].add(c)
    if not columns["builds"]:
        sys.exit("no builds table: create the schema first (upgrade-master)")
    if psql(url, "SELECT count(*) FROM builds;", capture=True).strip() != "0":
        sys.exit("builds is not empty")
    t = time.monotonic()
    # Skips the per-row foreign-key triggers when allowed (superuser): the rows
    # are consistent by construction; otherwise they are checked, a bit slower.
    sql = ["SET synchronous_commit = off;",
           "DO $$BEGIN SET session_replication_role = replica; "
           "EXCEPTION WHEN insufficient_privilege THEN NULL; END$$;", "BEGIN;"]
    for table, cs, rows in small_rows(L, columns):
        sql.append(f"INSERT INTO {table} ({', '.join(cs)}) VALUES\n" + ",\n".join(
            "(" + ", ".join(_pg_literal(v) for v in r) + ")" for r in rows) + ";")
    src = f"generate_series(1, {L.builds}) AS src(i)"
    sql += [s + ";" for s in history_sql(L, columns, src)]
    for table, cs, rows in step_rows(L, columns):
        sql.append(f"INSERT INTO {table} ({', '.join(cs)}) VALUES\n" + ",\n".join(
            "(" + ", ".join(_pg_literal(v) for v in r) + ")" for r in rows) + ";")
    sql.append("COMMIT;")
    psql(url, "\n".join(sql))
    progress(f"  {L.builds:,} builds, buildrequests, buildsets: {time.monotonic() - t:.1f} s")
    t = time.monotonic()
    chunks = list(log_chunks(L.log_bytes))
    table, cs, rows = log_row(chunks[-1][1] + 1)
    parts = [b"SET synchronous_commit = off;\nBEGIN;\n",
             (f"INSERT INTO {table} ({', '.join(cs)}) VALUES (" +
              ", ".join(_pg_literal(v) for v in rows[0]) + ");\n").encode(),
             b"COPY logchunks (logid, first_line, last_line, content, compressed) FROM STDIN;\n"]
    for first, last, content in chunks:
        parts.append(b"1\t%d\t%d\t\\\\x%s\t0\n" % (first, last, content.hex().encode()))
    parts.append(b"\\.\nCOMMIT;\n")
    psql(url, b"".join(parts))
    progress(f"  log: {chunks[-1][1] + 1:,} lines, "
             f"{sum(len(c[2]) for c in chunks) / 1048576:.1f} MB in {len(chunks)} chunks: "
             f"{time.monotonic() - t:.1f} s")
    t = time.monotonic()
    tables = ("masters", "workers", "builders", "buildsets", "buildrequests", "builds", "steps",
              "logs")
    seqs = "".join(f"SELECT setval(pg_get_serial_sequence('{tb}', 'id'), "
                   f"(SELECT max(id) FROM {tb}));\n" for tb in tables)
    psql(url, seqs + "VACUUM ANALYZE;\n")
    progress(f"  sequences, VACUUM ANALYZE: {time.monotonic() - t:.1f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--sqlite", metavar="FILE")
    g.add_argument("--pg", metavar="URL")
    ap.add_argument("--builds", type=int, default=1_000_000)
    ap.add_argument("--builders", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--log-mb", type=float, default=100)
    a = ap.parse_args()
    L = Layout(a.builds, a.builders, a.workers, int(a.log_mb * 1048576))
    t = time.monotonic()
    if a.sqlite:
        if not os.path.exists(a.sqlite):
            sys.exit(f"{a.sqlite}: no such file: create the schema first (upgrade-master)")
        generate_sqlite(a.sqlite, L)
    else:
        generate_pg(a.pg, L)
    print(f"generated in {time.monotonic() - t:.1f} s")


if __name__ == "__main__":
    main()
