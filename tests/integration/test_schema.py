"""
`bbmaster upgrade-master` against what Buildbot itself does, on SQLite and on
PostgreSQL: the schema it creates in an empty database and the one it leaves
after upgrading the Buildbot 3.7 fixture are compared with the schemas Buildbot
4.3 left in the same situations (fixtures/dataapi/*.schema.sql: `sqlite3
.schema` and `pg_dump --schema-only`), and the upgraded rows with the rows of
Buildbot's own upgrade of the same database.  Also: a second run changes
nothing, and newer or foreign databases are refused untouched.
"""
import hashlib
import os
import shutil
import sqlite3
import subprocess

import psycopg2
import pytest

import dbload
from test_api import FIXTURES


def configure(master, backend):
    url = "sqlite:///state.sqlite" if backend == "sqlite" else backend
    master.configure({"w1": "pw"}, {"b1": ["w1"]}, f'  db_url = "{url}",\n')


def schema(master, backend):
    if backend != "sqlite":
        return dbload.pg_schema(backend)
    return subprocess.run(["sqlite3", os.path.join(master.dir, "state.sqlite"), ".schema"],
                          check=True, capture_output=True, text=True).stdout


def expected(backend, sqlite_file, pg_file):
    with open(os.path.join(FIXTURES, sqlite_file if backend == "sqlite" else pg_file)) as f:
        text = f.read()
    return text if backend == "sqlite" else dbload.normalize_pg(text)


def load_37(master, backend):
    if backend == "sqlite":
        shutil.copy(os.path.join(FIXTURES, "state.sqlite"), os.path.join(master.dir, "state.sqlite"))
    else:
        dbload.apply_pg_dump(backend, os.path.join(FIXTURES, "pg-3.7.schema.sql"))
        dbload.copy_rows(os.path.join(FIXTURES, "state.sqlite"), backend)


def rows(master, backend, table, cols):
    order = ", ".join(cols)
    sql = f'SELECT {order} FROM "{table}" ORDER BY {order}'
    if backend == "sqlite":
        conn = sqlite3.connect(os.path.join(master.dir, "state.sqlite"))
        out = conn.execute(sql).fetchall()
    else:
        conn = psycopg2.connect(backend)
        with conn.cursor() as cur:
            cur.execute(sql)
            out = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                   for r in cur.fetchall()]
    conn.close()
    return out


def test_created_schema_is_buildbots(master, backend):
    configure(master, backend)
    r = master.cli("upgrade-master", master.dir, check=0)
    assert "upgrade complete" in r.stdout
    assert schema(master, backend) == expected(backend, "fresh-4.3.schema.sql",
                                               "pg-fresh-4.3.schema.sql")


def test_upgrade_of_37_is_buildbots_and_idempotent(master, backend):
    configure(master, backend)
    load_37(master, backend)
    r = master.cli("upgrade-master", master.dir, check=0)
    assert "migration 066: builds.locks_duration_s" in r.stdout
    want = expected(backend, "state-upgraded-to-4.3.schema.sql", "pg-upgraded-4.3.schema.sql")
    assert schema(master, backend) == want
    buildbots = sqlite3.connect(f"file:{FIXTURES}/state-upgraded-to-4.3.sqlite?immutable=1",
                                uri=True)
    tables = [t for (t,) in buildbots.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    assert len(tables) > 30
    for t in tables:
        cols = [c[1] for c in buildbots.execute(f'PRAGMA table_info("{t}")')]
        order = ", ".join(cols)
        theirs = buildbots.execute(f'SELECT {order} FROM "{t}" ORDER BY {order}').fetchall()
        assert rows(master, backend, t, cols) == theirs, t
    r = master.cli("upgrade-master", master.dir, check=0)
    assert "already at revision 067" in r.stdout
    assert schema(master, backend) == want


def test_newer_and_foreign_databases_are_refused_untouched(master):
    configure(master, "sqlite")
    db = os.path.join(master.dir, "state.sqlite")
    shutil.copy(os.path.join(FIXTURES, "state-4.3-after-builds.sqlite"), db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE alembic_version SET version_num = '068'")
    conn.commit()
    conn.close()
    cases = [("newer than this bbmaster knows (067)", None),
             ("not a Buildbot database", "CREATE TABLE accounts (id INTEGER, name TEXT)")]
    for message, sql in cases:
        if sql:
            os.remove(db)
            conn = sqlite3.connect(db)
            conn.execute(sql)
            conn.commit()
            conn.close()
        with open(db, "rb") as f:
            before = hashlib.sha256(f.read()).hexdigest()
        for verb in ("upgrade-master", "start"):
            r = master.cli(verb, master.dir)
            assert r.returncode != 0
            assert message in r.stdout + r.stderr + master.log(), verb
        with open(db, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == before
