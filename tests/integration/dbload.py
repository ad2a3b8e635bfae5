"""Puts a fixture database's rows into PostgreSQL, the way an operator's
Buildbot database on PostgreSQL holds them: the schema comes from bbmaster
(`upgrade-master` on an empty database) or from Buildbot's own pg_dump (the
3.7 fixture), and every row and id of the SQLite fixture is copied into it,
sequences advanced past the ids as Buildbot's inserts would have left them."""

import re
import sqlite3
import subprocess

import psycopg2


def apply_pg_dump(url, dump_file):
    """Creates the tables of a `pg_dump --schema-only` file (owners dropped:
    the throw-away cluster has no "postgres" role)."""
    with open(dump_file) as f:
        sql = "".join(line for line in f if " OWNER TO " not in line)
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def copy_rows(sqlite_file, url):
    """Copies every table of sqlite_file into the same tables at url."""
    src = sqlite3.connect(f"file:{sqlite_file}?immutable=1", uri=True)
    dst = psycopg2.connect(url)
    with dst, dst.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # load in any table order
        tables = [r[0] for r in src.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for t in tables:
            cols = [r[1] for r in src.execute(f'PRAGMA table_info("{t}")')]
            names = ", ".join(f'"{c}"' for c in cols)
            rows = src.execute(f'SELECT {names} FROM "{t}"').fetchall()
            cur.execute(f'DELETE FROM "{t}"')
            cur.executemany(f'INSERT INTO "{t}" ({names}) VALUES ({", ".join(["%s"] * len(cols))})',
                            rows)
            if "id" in cols:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('\"{t}\"', 'id'), "
                            f'COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM "{t}"')
    dst.close()
    src.close()


def pg_schema(url):
    """The schema as pg_dump prints it, comments and blank lines dropped."""
    out = subprocess.run(["pg_dump", "--schema-only", "--no-owner", url], check=True,
                         capture_output=True, text=True).stdout
    return normalize_pg(out)


def normalize_pg(text):
    lines = [l for l in text.splitlines()
             if l.strip() and not l.startswith("--") and " OWNER TO " not in l
             and not l.startswith("\\restrict") and not l.startswith("\\unrestrict")]
    return re.sub(r"\n{2,}", "\n", "\n".join(lines))
