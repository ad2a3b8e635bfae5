#!/usr/bin/python3
"""bench/logs/testrun.py SIZE: print SIZE bytes that read like a test suite's run.

80-byte lines (79 characters and a newline) as CPython's regrtest and unittest print
them: test names from a few hundred modules and classes, results, timings, counters,
and on every line a random hex hash, so that the output compresses as a real build's
log does (about 3-4x with zstd) and not as one repeated character.  The lines are made
once, 8 MiB of them from a fixed seed, and written again until SIZE bytes are out: a
log chunk (64 KiB) never sees a repeat, and the generator costs next to nothing beside
the worker and the master it feeds.
"""

import random
import sys

WIDTH = 80
POOL = 8 << 20

WORDS = ("abc", "ast", "asyncio", "bytes", "codecs", "collections", "compile", "csv",
         "datetime", "decimal", "dict", "email", "enum", "fileio", "float", "format",
         "functools", "gc", "glob", "hashlib", "heapq", "http", "imaplib", "importlib",
         "inspect", "io", "itertools", "json", "list", "logging", "long", "math",
         "mmap", "os", "pathlib", "pickle", "posix", "re", "select", "set", "shutil",
         "signal", "socket", "sqlite3", "ssl", "struct", "subprocess", "sys", "tarfile",
         "tempfile", "threading", "time", "tokenize", "typing", "unicode", "urllib",
         "uuid", "weakref", "xml", "zipfile", "zlib")
VERBS = ("read", "write", "parse", "close", "open", "encode", "decode", "copy", "send",
         "recv", "join", "split", "repr", "hash", "compare", "pickle", "iter", "call")
RESULTS = ("ok", "ok", "ok", "ok", "ok", "ok", "skipped 'requires network'", "FAIL",
           "expected failure", "ok", "ok", "ERROR")


def line(rng, n):
    mod, cls = rng.choice(WORDS), rng.choice(WORDS).capitalize()
    name = f"test_{rng.choice(VERBS)}_{rng.choice(WORDS)}"
    hexhash = f"{rng.getrandbits(64):016x}"
    kind = rng.randrange(4)
    if kind == 0:
        text = (f"{name} ({cls}Tests) ... {rng.choice(RESULTS)} {rng.random():.3f}s "
                f"{hexhash}")
    elif kind == 1:
        m, s = divmod(n // 7, 60)
        text = (f"0:{m % 60:02d}:{s:02d} load avg: {rng.random() * 4:.2f} "
                f"[{n % 489 + 1:3d}/489] test_{mod} passed {hexhash}")
    elif kind == 2:
        text = (f"  File \"Lib/test/test_{mod}.py\", line {rng.randrange(1, 4000)} "
                f"{hexhash}")
    else:
        text = (f"{cls}Tests.{name}: {rng.randrange(1, 10000)} iterations, "
                f"{rng.random() * 100:.2f} ms {hexhash}")
    return text[:WIDTH - 1].ljust(WIDTH - 1) + "\n"


def main():
    size = int(sys.argv[1])
    rng = random.Random(20261205)
    pool = "".join(line(rng, n) for n in range(POOL // WIDTH)).encode()
    out = sys.stdout.buffer
    done = 0
    while done < size:
        piece = pool[:size - done]
        out.write(piece)
        done += len(piece)
    out.flush()


if __name__ == "__main__":
    main()
