"""The git step's parameters beyond its modes, on local repositories and a real
buildbot-worker: shallow (python.org's full/clobber shallow clone, and an incremental
--depth on clone and fetch), submodules (init on clone; sync and update after a fetch;
clean inside them for fresh), origin, config (`-c name=value` on every git command) and
getDescription (commit-description).  The commands are those Buildbot 4.3's Git step
sends, as the worker's stdio log shows them."""

import os

from conftest import free_port
from test_builds import ATTACHED, Site, commit, git

CONFIG = r'''local bbm = require "bbm"
local count = bbm.steps.shell{ name = "count", command = { "git", "rev-list", "--count", "HEAD" } }
local show = bbm.steps.shell{ name = "show",
  command = "cat file.txt sub/sub.txt; git remote; test ! -e sub/junk.txt && echo no-junk" }
local files = { ["protocol.file.allow"] = "always", ["core.autocrlf"] = false }
return {
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "shallow-clobber", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.git{ repourl = "file://%(repo)s", mode = "full", method = "clobber", shallow = true },
      count } },
    bbm.builder{ name = "shallow-incremental", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.git{ repourl = "file://%(repo)s", shallow = 2 }, count } },
    bbm.builder{ name = "sub-incremental", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.git{ repourl = "file://%(repo)s", submodules = true, origin = "upstream",
        config = files, getDescription = { tags = true, long = true, abbrev = 10 } },
      show } },
    bbm.builder{ name = "sub-fresh", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.git{ repourl = "file://%(repo)s", mode = "full", method = "fresh", submodules = true,
        config = files, getDescription = { always = true, dirty = "-x" } },
      show } },
    bbm.builder{ name = "describe", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.git{ repourl = "file://%(repo)s", mode = "full", method = "clobber",
        getDescription = true },
      show } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "shallow-clobber",
      "shallow-incremental", "sub-incremental", "sub-fresh", "describe" } },
  },
}
'''


def start(master, workers, repo):
    s = Site.__new__(Site)
    s.master, s.port, s.backend = master, free_port(), "sqlite"
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": s.port, "repo": repo})
    master.start()
    worker = workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(ATTACHED)
    return s, worker


def run(s, builder):
    """The build's result, properties, git commands (the stdio log's header lines of step
    1, without their leading 'h') and the second step's stdout lines."""
    b = s.wait_request(s.force(builder)[1])
    props = s.get(f"builds/{b['buildid']}/properties")["properties"][0]
    logs = []
    for number in (1, 2):
        chunks = s.get(f"builds/{b['buildid']}/steps/{number}/logs/stdio/contents")
        logs.append("".join(c["content"] for c in chunks["logchunks"]))
    commands = [l[1:] for l in logs[0].split("\n") if l.startswith("hgit")]
    out = [l[1:] for l in logs[1].split("\n") if l[:1] == "o"]
    return b["results"], props, commands, out


def test_shallow(master, workers, tmp_path):
    """shallow = true with full/clobber (buildbot.python.org's checkout) clones with
    --depth 1 every build; shallow = 2 in incremental mode clones, then fetches, with
    --depth 2: the worker's history is one or two commits deep."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for text in ("one", "two", "three"):
        head = commit(repo, text)
    s, _ = start(master, workers, repo)

    results, props, commands, out = run(s, "shallow-clobber")
    assert (results, props["got_revision"], out) == (0, [head, "Git"], ["1"])
    assert f"git clone --depth 1 file://{repo} . --progress" in commands, commands
    head = commit(repo, "four")
    results, props, commands, out = run(s, "shallow-clobber")
    assert (results, props["got_revision"], out) == (0, [head, "Git"], ["1"])
    assert f"git clone --depth 1 file://{repo} . --progress" in commands, commands

    results, props, commands, out = run(s, "shallow-incremental")
    assert (results, props["got_revision"], out) == (0, [head, "Git"], ["2"])
    assert f"git clone --depth 2 file://{repo} . --progress" in commands, commands
    head = commit(repo, "five")
    results, props, commands, out = run(s, "shallow-incremental")
    assert (results, props["got_revision"], out) == (0, [head, "Git"], ["2"])
    assert f"git fetch -f --depth 2 --progress file://{repo} HEAD" in commands, commands
    assert not any(c.startswith("git clone") for c in commands), commands


def test_submodules_origin_config_and_description(master, workers, tmp_path):
    """A repository with a submodule: the clone initialises it, a fetch syncs and updates
    it (to the commit the superproject moved to), fresh cleans inside it; origin names
    the clone's remote; every git command carries the config's -c options (by name, values
    as Python writes them); getDescription sets commit-description from `git describe`
    (nothing, and no failure, without a tag)."""
    sub, repo = tmp_path / "sub", tmp_path / "repo"
    for r in (sub, repo):
        r.mkdir()
        git(r, "init", "-q", "-b", "main")
    (sub / "sub.txt").write_text("s1\n")
    git(sub, "add", "sub.txt")
    git(sub, "commit", "-q", "-m", "s1")
    commit(repo, "one\n")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "sub")
    git(repo, "commit", "-q", "-m", "add sub")
    s, worker = start(master, workers, repo)
    prefix = "git -c core.autocrlf=False -c protocol.file.allow=always "

    results, props, commands, out = run(s, "sub-fresh")
    assert (results, out) == (0, ["one", "s1", "origin", "no-junk"]), commands
    assert all(c.startswith(prefix) for c in commands), commands
    assert prefix + "submodule update --init --recursive" in commands, commands
    assert commands[-1] == prefix + "describe --always --dirty=-x", commands
    assert props["commit-description"] == [git(repo, "describe", "--always"), "Git"]

    results, props, commands, out = run(s, "describe")  # no tag: nothing, and no failure
    assert (results, out) == (0, ["one", "origin", "no-junk"]), commands
    assert commands[-1] == "git describe HEAD" and "commit-description" not in props, commands

    git(repo, "tag", "-a", "v1.0", "-m", "v1.0")
    commit(repo, "two\n")
    (sub / "sub.txt").write_text("s2\n")
    git(sub, "commit", "-q", "-am", "s2")
    git(repo / "sub", "pull", "-q")
    git(repo, "commit", "-q", "-am", "sub to s2")
    head = git(repo, "rev-parse", "HEAD")

    results, props, commands, out = run(s, "describe")
    assert (results, out) == (0, ["two", "origin", "no-junk"]), commands
    assert props["commit-description"] == [git(repo, "describe", "HEAD"), "Git"]

    junk = os.path.join(worker.dir, "sub-fresh", "build", "sub", "junk.txt")
    open(junk, "w").close()
    results, props, commands, out = run(s, "sub-fresh")
    assert (results, out) == (0, ["two", "s2", "origin", "no-junk"]), commands
    assert props["got_revision"] == [head, "Git"]
    update = [c[len(prefix):] for c in commands]
    assert update[update.index("clean -f -f -d -x"):] == [
        "clean -f -f -d -x", f"fetch -f --progress file://{repo} HEAD", "checkout -f FETCH_HEAD",
        "submodule sync", "submodule update --init --recursive --force --checkout",
        "submodule foreach --recursive 'git clean -f -f -d -x'", "clean -f -f -d -x",
        "rev-parse HEAD", "describe --always --dirty=-x"], commands

    results, props, commands, out = run(s, "sub-incremental")
    assert (results, out) == (0, ["two", "s2", "upstream", "no-junk"]), commands
    assert f"{prefix}clone --origin upstream file://{repo} . --progress" in commands, commands
    assert commands[-1] == prefix + "describe --long --tags --abbrev=10 HEAD", commands
    assert props["commit-description"] == [
        git(repo, "describe", "--tags", "--long", "--abbrev=10", "HEAD"), "Git"]

    (sub / "sub.txt").write_text("s3\n")
    git(sub, "commit", "-q", "-am", "s3")
    git(repo / "sub", "pull", "-q")
    git(repo, "commit", "-q", "-am", "sub to s3")
    results, props, commands, out = run(s, "sub-incremental")
    assert (results, out) == (0, ["two", "s3", "upstream", "no-junk"]), commands
    update = [c[len(prefix):] for c in commands]
    assert update[update.index(f"fetch -f --progress file://{repo} HEAD"):] == [
        f"fetch -f --progress file://{repo} HEAD", "checkout -f FETCH_HEAD", "submodule sync",
        "submodule update --init --recursive --force --checkout", "rev-parse HEAD",
        "describe --long --tags --abbrev=10 HEAD"], commands
