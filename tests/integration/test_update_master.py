"""scripts/update-master.sh (`make update-master`), the */15 cron job of a configuration in
git: silent when nothing changed; a pushed change is checked and reconfigured into the
running master (no restart: same pid); a change that fails the check is reported and the
master keeps its configuration; off main, nothing is pulled.  And `make worker-password`
prints 14 letters and digits."""

import os
import re
import subprocess

from conftest import BBMASTER, REPO, api_get, free_port, wait_for

SCRIPT = os.path.join(REPO, "scripts", "update-master.sh")

CONFIG = '''local bbm = require "bbm"
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "pw") },
  builders = { %(builders)s },
}
'''


def git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, "GIT_AUTHOR_NAME": "A",
                                          "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "A",
                                          "GIT_COMMITTER_EMAIL": "a@x"}).stdout.strip()


def publish(origin, ports, names, extra=""):
    builders = ", ".join(f'bbm.builder{{ name = "{n}", workernames = {{ "w1" }}, '
                         f'factory = bbm.factory{{}} }}' for n in names)
    with open(origin / "master.lua", "w") as f:
        f.write(extra + CONFIG % {**ports, "builders": builders})
    git(origin, "add", "master.lua")
    git(origin, "commit", "-q", "-m", "config")


def update(master):
    return subprocess.run(["sh", SCRIPT, BBMASTER, master.dir], capture_output=True, text=True,
                          env=master.env, timeout=120)


def test_update_master_pulls_checks_and_reconfigs(master, tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    ports = {"pb": master.pb_port, "www": free_port()}
    publish(origin, ports, ["a"])
    git(tmp_path, "clone", "-q", str(origin), master.dir)
    master.start()
    pid = master.pid()

    def names():
        return sorted(b["name"] for b in api_get(ports["www"], "builders")["builders"])

    assert names() == ["a"]
    r = update(master)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")

    publish(origin, ports, ["a", "b"])
    r = update(master)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert re.search(r"update-master: configuration [0-9a-f]{40} -> [0-9a-f]{40}", r.stdout)
    wait_for(lambda: names() == ["a", "b"], what="builder b after the reconfig")
    assert master.pid() == pid

    publish(origin, ports, ["a", "b", "c"], extra="error(\"broken on purpose\")\n")
    r = update(master)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "broken on purpose" in r.stderr and "keeps running the old one" in r.stderr
    assert names() == ["a", "b"] and master.pid() == pid

    git(master.dir, "checkout", "-q", "-b", "experiment")
    r = update(master)
    assert r.returncode == 0
    assert "is on 'experiment', not main: not pulling updates" in r.stdout


def test_worker_password():
    out = subprocess.run(["make", "-s", "-C", REPO, "worker-password"], capture_output=True,
                         text=True, check=True).stdout
    assert re.fullmatch(r"[A-Za-z0-9]{14}\n", out), out
