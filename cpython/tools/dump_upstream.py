#!/usr/bin/python3
"""What buildbot.python.org's own configuration defines, as JSON: the reference the Lua
port in cpython/ is checked against (tests/integration/test_cpython_config.py).

    cpython/tools/dump_upstream.py GIT_DIR [COMMIT] > cpython/tools/upstream.json

GIT_DIR is a clone (or bare mirror) of https://github.com/python/buildmaster-config and
COMMIT the commit to read (default HEAD).  Its master/ directory is extracted to a
temporary directory and master/master.cfg is run there with Buildbot's own classes
(Debian's buildbot 3.7 package), without a settings file, as `buildbot checkconfig` would
run it.  What 3.7 or this machine lacks is stubbed: sentry_sdk, the release dashboard's
Flask app, and two f-strings of Python 3.12's syntax (rewritten to 3.11's).

The JSON holds, in the configuration's order: the workers (name, max_builds,
keepalive_interval), the builders (name, tags, workernames, builddir, whether they have a
canStartBuild, and their steps as indexes into "steps") and the schedulers (name, kind,
builderNames, treeStableTimer, ...).  "steps" lists each distinct step once, with its
effective settings: its kind named after the bbm.steps.* constructor it maps to, name,
command, env, workdir, timeouts, result flags...  One entry a line, to diff.
A Buildbot Interpolate shows as {"interpolate": FMT}, a renderer or Python callable as
{"function": NAME}.
"""

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import types

# Python 3.12 f-strings that Python 3.11 cannot parse, and their 3.11 spelling.
PY312_FIXES = {
    "custom/factories.py": (
        'testopts.append(f"-uall,{",".join(f"-{r}" for r in exclude_test_resources)}")',
        'testopts.append("-uall," + ",".join(f"-{r}" for r in exclude_test_resources))',
    ),
    "custom/builders.py": (
        "print(f'  [{' '.join(sorted(d.tags))}]')",
        "print('  [' + ' '.join(sorted(d.tags)) + ']')",
    ),
}


def extract(git_dir, commit, dest):
    data = subprocess.run(["git", "--git-dir", git_dir, "archive", commit, "master"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest)
    master = os.path.join(dest, "master")
    for rel, (old, new) in PY312_FIXES.items():
        path = os.path.join(master, rel)
        with open(path) as f:
            text = f.read()
        if old in text:
            with open(path, "w") as f:
                f.write(text.replace(old, new))
    # the release dashboard is a Flask app: not needed here, and Flask is not installed
    with open(os.path.join(master, "custom", "release_dashboard.py"), "w") as f:
        f.write("def get_release_status_app(*args, **kwargs):\n    return None\n")
    return master


def stub_modules():
    sentry = types.ModuleType("sentry_sdk")
    sentry.init = lambda **kw: None
    sentry.capture_exception = lambda *a: None
    integrations = types.ModuleType("sentry_sdk.integrations")
    sqla = types.ModuleType("sentry_sdk.integrations.sqlalchemy")
    sqla.SqlalchemyIntegration = lambda: None
    sys.modules.update({
        "sentry_sdk": sentry,
        "sentry_sdk.integrations": integrations,
        "sentry_sdk.integrations.sqlalchemy": sqla,
    })


def run_master_cfg(master):
    os.chdir(master)
    sys.path.insert(0, master)
    os.environ["CI"] = "1"  # Settings stays quiet about missing settings
    os.environ["PYBUILDBOT_SETTINGS_PATH"] = os.path.join(master, "no-settings.yaml")
    stub_modules()
    from twisted.python import log
    log.err = lambda *a, **kw: None
    path = os.path.join(master, "master.cfg")
    env = {"__file__": path, "__name__": "__buildbot_config__"}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), env)
    return env["BuildmasterConfig"]


def value(v):
    """A step parameter as JSON: renderables named, tuples as lists, patterns as text."""
    from buildbot.process.properties import Interpolate, _Renderer
    if isinstance(v, Interpolate):
        out = {"interpolate": v.fmtstring}
        if v.args:
            out["args"] = [value(a) for a in v.args]
        return out
    if isinstance(v, _Renderer):
        return {"function": v.fn.__name__}
    if isinstance(v, re.Pattern):
        return v.pattern
    if callable(v):
        return {"function": getattr(v, "__name__", type(v).__name__)}
    if isinstance(v, (list, tuple)):
        return [value(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return sorted(value(x) for x in v)
    if isinstance(v, dict):
        return {str(k): value(x) for k, x in v.items()}
    return v


def kind_of(step):
    from buildbot.steps import shell, transfer
    from buildbot.steps.source.git import Git
    from buildbot.steps.source.github import GitHub
    order = [
        (GitHub, "github"),
        (Git, "git"),
        (transfer.FileUpload, "file_upload"),
        (shell.SetPropertyFromCommand, "set_property_from_command"),
        (shell.Test, "test"),
        (shell.Compile, "compile"),
        (shell.Configure, "configure"),
        (shell.ShellCommand, "shell"),
    ]
    for cls, kind in order:
        if isinstance(step, cls):
            return kind
    raise SystemExit(f"no bbm.steps.* kind for {type(step).__name__}")


def text_list(v):
    if v is None:
        return None
    return [v] if isinstance(v, str) else list(v)


def step_info(sf):
    step = sf.buildStep()
    kind = kind_of(step)
    info = {
        "kind": kind,
        "class": type(step).__name__,
        "name": step.name,
        "haltOnFailure": bool(step.haltOnFailure),
        "flunkOnFailure": bool(step.flunkOnFailure),
        "warnOnFailure": bool(step.warnOnFailure),
        "warnOnWarnings": bool(step.warnOnWarnings),
        "flunkOnWarnings": bool(step.flunkOnWarnings),
        "alwaysRun": bool(step.alwaysRun),
        "doStepIf": value(step.doStepIf),
        "workdir": value(step.workdir),
    }
    if kind in ("git", "github"):
        info.update(repourl=step.repourl, branch=step.branch, mode=step.mode,
                    method=step.method, filters=step.filters,
                    clobberOnFailure=bool(step.clobberOnFailure), timeout=step.timeout,
                    shallow=step.shallow or None)
    elif kind == "file_upload":
        info.update(workersrc=value(step.workersrc), masterdest=value(step.masterdest),
                    mode=step.mode)
    else:
        info.update(command=value(step.command), env=value(step.env or {}),
                    timeout=step.timeout, maxTime=step.maxTime, sigtermTime=step.sigtermTime,
                    usePTY=step.usePTY,
                    decodeRC={str(k): v for k, v in sorted(step.decodeRC.items())},
                    description=text_list(step.description),
                    descriptionDone=text_list(step.descriptionDone))
        if kind in ("test", "compile"):
            info["warningPattern"] = value(step.warningPattern)
        if kind == "set_property_from_command":
            info["property"] = step.property
        if "evaluateCommand" in type(step).__dict__:
            info["evaluateCommand"] = True
    return info


def builder_info(b, steps):
    """The builder; its steps go to `steps` (text -> index) and are named by index."""
    indexes = []
    for sf in b.factory.steps:
        text = json.dumps(step_info(sf), sort_keys=True)
        indexes.append(steps.setdefault(text, len(steps)))
    return {
        "name": b.name,
        "tags": list(b.tags),
        "workernames": list(b.workernames),
        "builddir": b.builddir,
        "canStartBuild": b.canStartBuild is not None,
        "steps": indexes,
    }


def write(out):
    """The JSON of `out`, one entry of each list a line."""
    sys.stdout.write("{\n")
    keys = list(out)
    for i, key in enumerate(keys):
        value = out[key]
        sys.stdout.write(f"{json.dumps(key)}: ")
        if isinstance(value, list):
            lines = ",\n  ".join(json.dumps(v, sort_keys=True) for v in value)
            sys.stdout.write(f"[\n  {lines}\n]")
        else:
            sys.stdout.write(json.dumps(value))
        sys.stdout.write(",\n" if i + 1 < len(keys) else "\n")
    sys.stdout.write("}\n")


def scheduler_info(s):
    from buildbot.schedulers.forcesched import ForceScheduler
    from buildbot.schedulers.basic import SingleBranchScheduler, AnyBranchScheduler
    out = {"name": s.name, "builderNames": list(s.builderNames)}
    if isinstance(s, ForceScheduler):
        out["kind"] = "force"
        return out
    if type(s).__name__ == "GitHubPrScheduler":
        out["kind"] = "pull_request"
        out["stableBuilderNames"] = sorted(s.stable_builder_names)
    elif isinstance(s, SingleBranchScheduler):
        out["kind"] = "single_branch"
    elif isinstance(s, AnyBranchScheduler):
        out["kind"] = "any_branch"
    out["treeStableTimer"] = s.treeStableTimer
    out["fileIsImportant"] = s.fileIsImportant is not None
    filt = s.change_filter
    branch = None
    for f in getattr(filt, "filters", []):  # Buildbot 3.7's ChangeFilter
        if getattr(f, "prop", None) == "branch" and getattr(f, "values", None):
            branch = list(f.values)
    out["change_filter_branch"] = branch
    return out


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":
        # builder tags come partly from frozensets: one hash seed, one order
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    git_dir = os.path.abspath(sys.argv[1])
    commit = sys.argv[2] if len(sys.argv) == 3 else "HEAD"
    sha = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", commit + "^{commit}"],
                         check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        c = run_master_cfg(extract(git_dir, sha, tmp))
        steps = {}
        builders = [builder_info(b, steps) for b in c["builders"]]
        out = {
            "source": "https://github.com/python/buildmaster-config",
            "commit": sha,
            "workers": [{"name": w.workername, "max_builds": w.max_builds,
                         "keepalive_interval": w._config_kwargs.get("keepalive_interval")} for w in c["workers"]],
            "steps": [json.loads(text) for text in steps],
            "builders": builders,
            "schedulers": [scheduler_info(s) for s in c["schedulers"]],
        }
    write(out)


if __name__ == "__main__":
    main()
