"""What master.lua says of a builder -- description, description_format, project, tags --
reaches the database as Buildbot's updateBuilderInfo writes it, at start and at every
reconfig, and /api/v2/builders shows it (tags__contains filters on it); a reconfig that
drops a tag unlinks it and keeps the tag's row; a reconfig that changes nothing rewrites
nothing (and, when no builder, worker or scheduler changed at all, reads nothing); the
builders' and workers' links follow the configuration and keep their rows.
On SQLite and on PostgreSQL."""

import os
import sqlite3

import psycopg2

from conftest import api_get, db_rows, free_port

CONFIG = r'''local bbm = require "bbm"
local f = bbm.factory{ bbm.steps.shell{ command = { "true" } } }
return {
  title = "info",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "pw") },
  builders = {
    bbm.builder{ name = "a", workernames = { "w1" }, factory = f,
                 tags = { %(tags)s }, description = %(description)s,
                 description_format = %(format)s, project = %(project)s },
    bbm.builder{ name = "b", workernames = { "w1" }, factory = f, tags = { "unix" } },
    bbm.builder{ name = "c", workernames = { "w1" }, factory = f },
  },
}
'''

FIRST = {"tags": '"unix", "fast"', "description": '"A builder"', "format": "nil",
         "project": '"cpython"'}
SECOND = {"tags": '"slow", "unix"', "description": '"The *a* builder"',
          "format": '"markdown"', "project": "nil"}


class Site:
    def __init__(self, master, backend):
        self.master = master
        self.backend = backend
        self.port = free_port()

    def write(self, **kw):
        db = "sqlite:///state.sqlite" if self.backend == "sqlite" else self.backend
        with open(os.path.join(self.master.dir, "master.lua"), "w") as f:
            f.write(CONFIG % {"pb": self.master.pb_port, "www": self.port, "db": db, **kw})

    def reconfig(self, **kw):
        self.write(**kw)
        r = self.master.cli("reconfig", self.master.dir, check=0)
        assert "completed successfully" in r.stdout, r.stdout

    def builders(self, query=""):
        got = api_get(self.port, "builders" + query)["builders"]
        return {b["name"]: b for b in got}

    def rows(self, sql):
        return db_rows(self.master.dir, self.backend, sql)

    def write_db(self, sql):
        if self.backend == "sqlite":
            db = sqlite3.connect(os.path.join(self.master.dir, "state.sqlite"))
        else:
            db = psycopg2.connect(self.backend)
        with db:
            db.cursor().execute(sql)
        db.close()


def start(master, backend):
    site = Site(master, backend)
    site.write(**FIRST)
    master.start()
    return site


def test_builders_show_description_project_and_tags(master, backend):
    site = start(master, backend)
    b = site.builders()
    assert (b["a"]["tags"], b["b"]["tags"], b["c"]["tags"]) == (["unix", "fast"], ["unix"], [])
    assert (b["a"]["description"], b["a"]["description_format"]) == ("A builder", None)
    assert b["b"]["description"] is None and b["c"]["projectid"] is None
    [project] = api_get(site.port, "projects")["projects"]
    assert (project["name"], project["slug"]) == ("cpython", "cpython")
    assert b["a"]["projectid"] == project["projectid"]
    assert sorted(site.builders("?tags__contains=unix")) == ["a", "b"]
    assert sorted(site.builders("?tags__contains=fast")) == ["a"]
    assert site.builders("?tags__contains=slow") == {}


def test_reconfig_replaces_description_and_tags(master, backend):
    site = start(master, backend)
    site.reconfig(**SECOND)
    a = site.builders()["a"]
    assert a["tags"] == ["slow", "unix"]
    assert (a["description"], a["description_format"], a["projectid"]) == \
        ("The *a* builder", "markdown", None)
    assert sorted(site.builders("?tags__contains=fast")) == []
    assert sorted(site.builders("?tags__contains=slow")) == ["a"]
    # the tag no builder uses any more stays, as in Buildbot; each link is there once
    assert sorted(n for (n,) in site.rows("SELECT name FROM tags")) == ["fast", "slow", "unix"]
    assert site.rows("SELECT COUNT(*) FROM builders_tags") == [(3,)]
    site.reconfig(**FIRST)
    assert site.builders()["a"]["tags"] == ["unix", "fast"]
    assert site.builders()["a"]["description_format"] is None


def test_reconfig_that_changes_nothing_writes_nothing(master, backend):
    site = start(master, backend)
    links = site.rows("SELECT id, builderid, tagid FROM builders_tags ORDER BY id")
    assert len(links) == 3
    site.reconfig(**FIRST)
    site.reconfig(**FIRST)
    assert site.rows("SELECT id, builderid, tagid FROM builders_tags ORDER BY id") == links
    # a reconfig with what the last one registered does not even read the rows: a row changed
    # behind the master's back stays so until a reconfig that changes something of a builder
    site.write_db("UPDATE builders SET description = 'changed behind' WHERE name = 'a'")
    site.reconfig(**FIRST)
    described = "SELECT description FROM builders WHERE name = 'a'"
    assert site.rows(described) == [("changed behind",)]
    site.reconfig(**dict(FIRST, tags='"unix", "fast", "new"'))
    assert site.rows(described) == [("A builder",)]
    site.reconfig(**FIRST)
    links = site.rows("SELECT id, builderid, tagid FROM builders_tags ORDER BY id")
    # only the builder whose tags changed gets new links
    site.reconfig(**dict(FIRST, tags='"unix"'))
    after = site.rows("SELECT id, builderid, tagid FROM builders_tags ORDER BY id")
    b = [link for link in links if link[1] != site.builders()["a"]["builderid"]]
    assert [link for link in after if link in b] == b and len(after) == 2


def test_stored_html_stays_while_the_description_does(master, backend):
    """description_html (which Buildbot renders from Markdown) is kept while the
    description and its format stay, whatever else changes; a new description clears it."""
    site = start(master, backend)
    master.stop()
    site.write_db("UPDATE builders SET description_html = '<p>A builder</p>' WHERE name = 'a'")
    site.write(**dict(FIRST, project="nil", tags='"unix"'))
    master.cli("start", master.dir, check=0)
    a = site.builders()["a"]
    assert (a["description_html"], a["projectid"], a["tags"]) == ("<p>A builder</p>", None,
                                                                  ["unix"])
    site.reconfig(**dict(FIRST, description='"Another"'))
    a = site.builders()["a"]
    assert (a["description"], a["description_html"]) == ("Another", None)


def test_duplicate_tags_are_refused(master):
    site = Site(master, "sqlite")
    site.write(**dict(FIRST, tags='"unix", "fast", "unix"'))
    r = master.cli("checkconfig", master.dir)
    assert r.returncode != 0
    assert "master.lua:10: builder 'a': tags list contains duplicate tags: unix" in \
        r.stdout + r.stderr, r.stdout + r.stderr


LINKS = r'''local bbm = require "bbm"
local f = bbm.factory{ bbm.steps.shell{ command = { "true" } } }
return {
  title = "links",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "%(db)s",
  workers = { bbm.worker("w1", "pw"), bbm.worker("w2", "pw"), bbm.worker("w3", "pw") },
  builders = { %(builders)s },
}
'''


def test_reconfig_keeps_the_links_it_still_has(master, backend):
    """builder_masters and configured_workers say what the configuration says after each
    reconfig, as Buildbot's updateBuilderList and workerConfigured leave them: links that
    stay keep their rows, removed ones go, new ones come."""
    site = Site(master, backend)

    def write(builders):
        db = "sqlite:///state.sqlite" if backend == "sqlite" else backend
        lua = ", ".join('bbm.builder{ name = "%s", workernames = { %s }, factory = f }'
                        % (name, ", ".join('"%s"' % w for w in workers))
                        for name, workers in builders)
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(LINKS % {"pb": master.pb_port, "www": site.port, "db": db,
                             "builders": lua})

    def links():
        return {(b, w): (bmid, cwid) for b, w, bmid, cwid in site.rows(
            "SELECT b.name, w.name, bm.id, cw.id FROM configured_workers cw "
            "JOIN builder_masters bm ON bm.id = cw.buildermasterid "
            "JOIN builders b ON b.id = bm.builderid JOIN workers w ON w.id = cw.workerid")}

    write([("a", ["w1"]), ("b", ["w1", "w2"]), ("c", ["w2"])])
    master.start()
    first = links()
    assert sorted(first) == [("a", "w1"), ("b", "w1"), ("b", "w2"), ("c", "w2")]
    r = master.cli("reconfig", master.dir, check=0)
    assert "completed successfully" in r.stdout, r.stdout
    assert links() == first
    write([("a", ["w1", "w2"]), ("b", ["w2"]), ("d", ["w3", "w3"])])
    r = master.cli("reconfig", master.dir, check=0)
    assert "completed successfully" in r.stdout, r.stdout
    after = links()
    assert sorted(after) == [("a", "w1"), ("a", "w2"), ("b", "w2"), ("d", "w3")]
    assert after[("a", "w1")] == first[("a", "w1")] and after[("b", "w2")] == first[("b", "w2")]
    assert sorted(n for (n,) in site.rows(
        "SELECT b.name FROM builder_masters bm JOIN builders b ON b.id = bm.builderid")) == \
        ["a", "b", "d"]
    configured = {w["name"]: sorted(c["builderid"] for c in w["configured_on"])
                  for w in api_get(site.port, "workers")["workers"]}
    ids = {n: b["builderid"] for n, b in site.builders().items()}
    assert configured == {"w1": [ids["a"]], "w2": sorted([ids["a"], ids["b"]]),
                          "w3": [ids["d"]]}
