"""Every configuration in examples/ passes `bbmaster checkconfig` with the settings file
beside it, and loads what it says: a master started from examples/github.lua shows its
builders, workers and schedulers in /api/v2."""

import glob
import os
import shutil

import pytest

from conftest import REPO, api_get, free_port

EXAMPLES = sorted(glob.glob(os.path.join(REPO, "examples", "*.lua")))


def setup_example(master, path):
    shutil.copy(path, os.path.join(master.dir, "master.lua"))
    example = os.path.join(os.path.dirname(path), "settings.yaml.example")
    if os.path.exists(example):
        with open(example) as f:
            text = f.read()
        www = free_port()
        text = text.replace("worker_port: 9989", f"worker_port: {master.pb_port}")
        text = text.replace("web_port: 8010", f"web_port: {www}")
        with open(os.path.join(master.dir, "settings.yaml"), "w") as f:
            f.write(text)
        return www
    return None


def test_there_are_examples():
    assert [os.path.basename(p) for p in EXAMPLES] == ["github.lua"]


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_passes_checkconfig(master, path):
    setup_example(master, path)
    r = master.cli("checkconfig", ".", cwd=master.dir)
    assert r.returncode == 0 and "Config file is good!" in r.stdout, (r.stdout, r.stderr)


def test_github_example_loads_what_it_says(master):
    www = setup_example(master, os.path.join(REPO, "examples", "github.lua"))
    master.cli("upgrade-master", ".", cwd=master.dir, check=0)
    master.cli("start", ".", cwd=master.dir, check=0)
    builders = {b["name"]: b["tags"] for b in api_get(www, "builders")["builders"]}
    assert builders == {"debian 3.x": ["3.x", "stable"],
                        "debian slow 3.x": ["3.x", "unstable"]}
    assert sorted(w["name"] for w in api_get(www, "workers")["workers"]) == \
        ["debian-1", "debian-2"]
    assert sorted(s["name"] for s in api_get(www, "schedulers")["schedulers"]) == \
        ["force", "main", "nightly", "pull requests"]
