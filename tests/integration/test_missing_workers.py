"""Missing workers: Buildbot's notify_on_missing, missing_timeout and WorkerMissingGenerator
on a real buildbot-worker, mailed to a fake SMTP relay (aiosmtpd).  One mail per absence with
Buildbot's texts and the time the worker's connection really went; the presence is kept in
the database, so a master restarted while the worker is still away does not mail again
(Buildbot does, buildbot#4234); the worker back and gone again is one new mail, sent once by
the next start when the master stopped before it was due.  An IRC bot (ngIRCd) with the
`worker` event says each absence and the return."""

import email
import email.policy
import json
import os
import re
import time

from conftest import db_rows, free_port, wait_for
from test_irc import ngircd, watcher  # noqa: F401 (ngircd is a fixture)
from test_reporters import FakeSMTP

CONFIG = r'''local bbm = require "bbm"
local R = bbm.reporters
return {
  title = "Python",
  buildbotURL = "http://bb/",
  protocols = { pb = { port = %(pb)d } },
  workers = {
    bbm.worker("w1", "w1pass", { notify_on_missing = { "Owner <owner@example.org>",
      "second@example.org", "owner@example.org" }, missing_timeout = %(timeout)d }),
    bbm.worker("never", "pw", { notify_on_missing = "ghost@example.org", missing_timeout = 1 }),
    bbm.worker("quiet", "pw", { missing_timeout = 1 }),
  },
  builders = { bbm.builder{ name = "b", workernames = { "w1", "never", "quiet" },
    factory = bbm.factory{ bbm.steps.shell{ command = { "true" } } } } },
  services = {
    R.mail_notifier{ fromaddr = "buildbot@example.org", relayhost = "127.0.0.1",
      smtpPort = %(smtp)d, extraRecipients = { "list@example.org" },
      extraHeaders = { ["Reply-To"] = "list@example.org" },
      generators = { R.worker_missing_generator{ workers = "all" } } },
    R.irc{ host = "127.0.0.1", port = %(irc)d, nick = "bbmbot", channels = { "#bbm" },
      notify_events = { "worker" } },
  },
}
'''


def presence(master):
    rows = db_rows(master.dir, "sqlite",
                   "SELECT s.name, s.value_json FROM object_state s JOIN objects o "
                   "ON o.id = s.objectid WHERE o.class_name = 'bbmaster.workers.Presence'")
    return {name: json.loads(v) for name, v in rows}


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def configure(master, smtp_port, timeout, irc):
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "smtp": smtp_port, "timeout": timeout,
                          "irc": irc})


def test_one_mail_per_absence(master, workers, ngircd):
    irc_port = ngircd[0]
    chan = watcher(irc_port)

    def said():
        return [text for nick, target, text in chan.said() if nick == "bbmbot"]

    smtp_port = free_port()
    # w1 without a timeout until it attached (a worker takes seconds to start)
    configure(master, smtp_port, 0, irc_port)
    smtp = FakeSMTP(smtp_port)
    smtp.start()
    try:
        master.start()
        w1 = workers("w1", "w1pass", master.pb_port).start()
        master.wait_log(r"worker 'w1' attached")
        assert presence(master)["w1"]["connected"] is True
        # "never" never connects: reported once, one missing_timeout after this first start
        wait_for(lambda: len(smtp.mails) >= 1, what="the never-seen worker's mail")
        configure(master, smtp_port, 1, irc_port)
        assert "completed successfully" in master.cli("reconfig", master.dir, check=0).stdout
        before = time.time()
        w1.kill()
        master.wait_log(r"worker 'w1' detached")
        after = time.time()
        wait_for(lambda: len(smtp.mails) >= 2, what="w1's mail")
        wait_for(lambda: len(said()) >= 3, what="three workers said missing")
        # the master restarted while w1 is away: its absence was reported, no second mail
        master.stop()
        master.start()
        w1.start()  # back, then gone again: a new absence, a new mail
        master.wait_log(r"worker 'w1' attached", count=2)
        assert presence(master)["w1"]["connected"] is True
        wait_for(lambda: len(said()) >= 4, what="w1 said back")
        # this time the master stops before the alert (w1 without a timeout meanwhile): the
        # next start reports it from the stored time, once
        configure(master, smtp_port, 0, irc_port)
        assert "completed successfully" in master.cli("reconfig", master.dir, check=0).stdout
        before2 = time.time()
        w1.kill()
        master.wait_log(r"worker 'w1' detached", count=2)
        after2 = time.time()
        master.stop()
        assert presence(master)["w1"]["told"] is False
        configure(master, smtp_port, 1, irc_port)
        master.start()
        wait_for(lambda: len(smtp.mails) >= 3, what="w1's second mail")
        wait_for(lambda: len(said()) >= 5, what="w1 said missing again")
        master.stop()
    finally:
        smtp.stop()
    assert len(smtp.mails) == 3, [parse(m[2])["Subject"] for m in smtp.mails]
    never, first, second = (parse(m[2]) for m in smtp.mails)
    assert never["Subject"] == "Buildbot Python worker never missing"
    assert smtp.mails[0][1] == ["ghost@example.org"]
    assert re.fullmatch(
        r"The Buildbot worker named never went away\.\n\nIt last disconnected at an unknown "
        r"time \(not connected since the master started on \w{3} \w{3} [ \d]\d "
        r"\d\d:\d\d:\d\d \d{4}\)\.\n\n", never.get_content()), never.get_content()

    # to the notify addresses alone, each once (Buildbot leaves out the extra recipients)
    sender, rcpts, _, _, _ = smtp.mails[1]
    assert sender == "buildbot@example.org"
    assert sorted(rcpts) == ["owner@example.org", "second@example.org"]
    assert [a.addr_spec for a in first["To"].addresses] == ["owner@example.org",
                                                             "second@example.org"]
    assert first["Subject"] == "Buildbot Python worker w1 missing"
    assert first["Reply-To"] == "list@example.org"
    assert first["From"] == "buildbot@example.org"
    assert re.fullmatch(r"<bbmaster\.missing\.w1\.\d+\.MailNotifier@example\.org>",
                        first["Message-ID"])
    assert first.get_content_type() == "text/plain"
    # the worker's info/admin as it sends it, its newline included (so in Buildbot's text too)
    admin = open(os.path.join(w1.dir, "info", "admin")).read()
    assert admin.endswith("\n")
    body = first.get_content()
    m = re.fullmatch(r"The Buildbot worker named w1 went away\.\n\nIt last disconnected at "
                     r"(.*)\.\n\n\nThe admin on record \(as reported by WORKER:info/admin\) was "
                     + re.escape(admin) + r"\.\n\n\n", body)
    assert m, body
    # the real time the connection went (time.ctime, local time), not now - missing_timeout
    seen = time.mktime(time.strptime(m.group(1), "%a %b %d %H:%M:%S %Y"))
    assert int(before) - 1 <= seen <= after, (m.group(1), before, after)
    # the second absence has its own time (from before the restart) and Message-ID
    assert second["Subject"] == first["Subject"]
    assert second["Message-ID"] != first["Message-ID"]
    m2 = re.search(r"It last disconnected at (.*)\.\n", second.get_content())
    seen2 = time.mktime(time.strptime(m2.group(1), "%a %b %d %H:%M:%S %Y"))
    assert int(before2) - 1 <= seen2 <= after2, (m2.group(1), before2, after2)
    # Buildbot's IRC `worker` event: every missing worker (notify_on_missing or not), once per
    # absence, and w1 back online
    lines = said()
    unknown = r"an unknown time \(not connected since the master started on .*\)"
    assert len(lines) == 5, lines
    first_two = sorted(lines[:2])
    assert re.fullmatch(r"Worker `never` is missing\. It was seen last on " + unknown + r"\.",
                        first_two[0]), lines
    assert re.fullmatch(r"Worker `quiet` is missing\. It was seen last on " + unknown + r"\.",
                        first_two[1]), lines
    assert lines[2:] == [f"Worker `w1` is missing. It was seen last on {m.group(1)}.",
                         "Worker `w1` is back online.",
                         f"Worker `w1` is missing. It was seen last on {m2.group(1)}."]
    chan.close()
    log = master.log()
    assert log.rindex("worker 'w1' missing") > log.rindex("BuildMaster is running")
    rows = presence(master)
    assert rows["w1"]["told"] is True and rows["never"]["told"] is True
    assert rows["quiet"]["told"] is True  # reported to nobody: no one to tell
    assert master.count(r"worker 'w1' missing: away since") == 2
