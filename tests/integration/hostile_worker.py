"""A real buildbot-worker (Debian's, its own Python code) that logs in and works
normally, except for the commands whose path or command line carries one of the
markers below: for those it misbehaves the way a compromised worker could.

    hostile_worker.py BASEDIR

Markers (the last component of a transfer's worker path, or a word of a glob pattern
or shell command):
    unpack-twice       a directory upload that calls unpack twice
    plant-link         an archive holding a symbolic link x -> $BBM_VICTIM
    through-link       an archive holding x/file (written through a link named x)
    escape             an archive holding ../escape-file, $BBM_VICTIM/abs-file and
                       sub/../../dotdot-file
    many-entries       an archive of 100,001 entries
    write-after-close  a file upload that writes again after close
    close-twice        a file upload that closes twice
    glob-dotdot        a glob answered with ['..']
    glob-abs           a glob answered with ['/etc/passwd']
    spam-logs          a shell command that sends output for 20,000 log names (and for
                       the declared log 'declared')
    setup-fails        a shell command whose setup raises, so that startCommand is
                       answered with the error and complete never comes (as for an
                       unknown command)
"""

import gzip
import io
import os
import sys
import tarfile

from twisted.internet import defer

from buildbot_worker.commands import fs, shell, transfer

VICTIM = os.environ.get("BBM_VICTIM", "/nonexistent-victim")


def archive(members, compress=None):
    """A tar (gzip-compressed when `compress` is "gz") of (TarInfo, bytes or None) pairs."""
    out = io.BytesIO()
    mode = "w:gz" if compress == "gz" else "w"
    with tarfile.open(fileobj=out, mode=mode, format=tarfile.GNU_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def many_entries(n, compress):
    """A tar of `n` entries: the same empty file's header, n times."""
    header = tarfile.TarInfo("f").tobuf(format=tarfile.GNU_FORMAT)
    data = header * n + b"\0" * 1024
    return gzip.compress(data, compresslevel=1) if compress == "gz" else data


def file_member(name, data=b"x\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link_member(name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


ARCHIVES = {
    "unpack-twice": lambda z: archive([file_member("a.txt")], z),
    "plant-link": lambda z: archive([link_member("x", VICTIM)], z),
    "through-link": lambda z: archive([file_member("x/file")], z),
    "escape": lambda z: archive([file_member("../escape-file"),
                                 file_member(VICTIM + "/abs-file"),
                                 file_member("sub/../../dotdot-file")], z),
    "many-entries": lambda z: many_entries(100001, z),
}

original_dir_start = transfer.WorkerDirectoryUploadCommand.start
original_file_start = transfer.WorkerFileUploadCommand.start
original_glob_start = fs.GlobPath.start
original_shell_start = shell.WorkerShellCommand.start
original_shell_setup = shell.WorkerShellCommand.setup


@defer.inlineCallbacks
def dir_start(self):
    trick = os.path.basename(self.path.rstrip("/"))
    if trick not in ARCHIVES:
        result = yield original_dir_start(self)
        return result
    data, pc = ARCHIVES[trick](self.compress), self.protocol_command
    for i in range(0, len(data), 16384):
        yield pc.protocol_update_upload_directory_write(self.writer, data[i:i + 16384])
    yield pc.protocol_update_upload_directory(self.writer)
    if trick == "unpack-twice":
        yield pc.protocol_update_upload_directory(self.writer)
    pc.send_update([("rc", 0)])


@defer.inlineCallbacks
def file_start(self):
    trick = os.path.basename(self.path)
    if trick not in ("write-after-close", "close-twice"):
        result = yield original_file_start(self)
        return result
    pc = self.protocol_command
    yield pc.protocol_update_upload_file_write(self.writer, b"first\n")
    yield pc.protocol_update_upload_file_close(self.writer)
    if trick == "write-after-close":
        yield pc.protocol_update_upload_file_write(self.writer, b"after close\n")
    else:
        yield pc.protocol_update_upload_file_close(self.writer)
    pc.send_update([("rc", 0)])


def glob_start(self):
    path = self.args["path"]
    for trick, files in (("glob-dotdot", [".."]), ("glob-abs", ["/etc/passwd"])):
        if trick in path:
            self.sendStatus([("files", files), ("rc", 0)])
            return None
    return original_glob_start(self)


def shell_start(self):
    if "spam-logs" not in str(self.args["command"]):
        return original_shell_start(self)
    for i in range(20000):
        self.sendStatus([("log", (f"spam-{i}", "x\n"))])
    self.sendStatus([("log", ("declared", "declared output\n"))])
    self.sendStatus([("stdout", "spammed\n"), ("rc", 0)])
    return defer.succeed(None)


def shell_setup(self, args):
    if "setup-fails" in str(args.get("command")):
        raise ValueError("setup-fails: this worker cannot run that")
    return original_shell_setup(self, args)


transfer.WorkerDirectoryUploadCommand.start = dir_start
transfer.WorkerFileUploadCommand.start = file_start
fs.GlobPath.start = glob_start
shell.WorkerShellCommand.start = shell_start
shell.WorkerShellCommand.setup = shell_setup

if __name__ == "__main__":
    from buildbot_worker.scripts import runner
    sys.argv = ["buildbot-worker", "start", "--nodaemon", sys.argv[1]]
    runner.run()
