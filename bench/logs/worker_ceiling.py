#!/usr/bin/python3
"""bench/logs/worker_ceiling.py: how fast Debian's buildbot-worker can send a log at all.

Runs the worker's own code for a command's output, in one process, with no master and
no network: the output in the 8 KiB pieces Twisted reads from a pipe, decoded, split
into lines (its LineBoundaryFinder), buffered into messages (its BufferManager) and
each message encoded as the PB `update` call it sends (jelly and banana).  What is left
out (reading the pipe, writing the socket, reading the master's answers) only costs
more, so the figure is an upper bound on what any master can receive from this worker.
The output is testrun.py's, the test-suite lines bench/logs/run prints.
Usage: worker_ceiling.py SIZE.  Prints one line: `BYTES SECONDS` (CPU seconds).
Needs python3-twisted and buildbot-worker.
"""

import codecs
import os
import random
import sys
import time

from buildbot_worker.base import BotBase
from buildbot_worker.util import buffer_manager, lineboundaries
from twisted.spread import banana, jelly

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testrun  # noqa: E402

READ = 8192  # twisted.internet.fdesc.readFromFD


class NoTimer:
    """The reactor BufferManager asks for a flush timer: never due in this run."""

    def callLater(self, *args):
        return self

    def active(self):
        return False


def main():
    size = int(sys.argv[1])
    bot = BotBase("/nonexistent")

    def send(message):  # pb.py's protocol_send_update_message, encoding only
        for key, value in message:
            banana.encode(jelly.jelly(["update", [[{key: value[0]}, 0]]]))

    buf = buffer_manager.BufferManager(NoTimer(), send, bot.buffer_size, bot.buffer_timeout)
    lines = lineboundaries.LineBoundaryFinder(bot.max_line_length, bot.newline_re)
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    rng = random.Random(20261205)
    block = "".join(testrun.line(rng, n) for n in range((4 << 20) // testrun.WIDTH)).encode()
    t0 = time.process_time()
    done = 0
    while done < size:
        for off in range(0, len(block), READ):
            found = lines.append(decode(block[off:off + READ]), time.time())
            if found is not None:
                buf.append("stdout", found)
        done += len(block)
    buf.flush()
    print(done, time.process_time() - t0)


if __name__ == "__main__":
    main()
