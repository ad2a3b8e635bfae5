"""MailNotifier with BuildSetStatusGenerator (mode "problem", as buildbot.python.org has it),
on buildsets of several builders that a real buildbot-worker builds, mailing a fake SMTP
relay (aiosmtpd) that records what it receives.  One mail for the buildset, listing every
build that newly fails: Buildbot 4.3 raises KeyError 'buildername' making that mail when it
has two builds with logs, and sends nothing."""

import email
import email.policy
import os

from conftest import api_get, api_rpc, free_port, wait_for
from test_reporters import FakeSMTP, outbox_rows

CONFIG = r'''local bbm = require "bbm"
local R = bbm.reporters
local function builder(name)
  return bbm.builder{ name = name, workernames = { "w1" }, tags = { "t-" .. name },
    factory = bbm.factory{ bbm.steps.shell{ name = "check", command = { "sh", "-c",
      bbm.interpolate("echo %(prop:buildername)s; exit %(prop:rc:-0)s") } } } }
end
return {
  title = "Buildsets",
  buildbotURL = "http://bb/",
  protocols = { pb = { port = PB } },
  www = { port = WWW },
  workers = { bbm.worker("w1", "w1pass") },
  builders = { builder("alpha"), builder("beta"), builder("gamma") },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "alpha", "beta", "gamma" },
      properties = { bbm.params.string{ name = "rc", default = "0" } } },
  },
  services = {
    R.mail_notifier{ fromaddr = "bb@example.org", relayhost = "127.0.0.1", smtpPort = SMTP,
      extraRecipients = { "list@example.org" }, sendToInterestedUsers = false,
      extraHeaders = { ["Reply-To"] = "list@example.org" },
      generators = { R.build_set_status_generator{ mode = "problem",
        builders = { "alpha", "beta" }, add_logs = { "check.stdio" },
        message_formatter = R.message_formatter{
          template = "{{ status_detected }} on {{ buildername }} (buildset {{ is_buildset }}, "
            .. "#{{ build.number }}, was {{ previous_result_name }})\n\n" } } } },
    R.mail_notifier{ name = "Gamma", fromaddr = "bb@example.org", relayhost = "127.0.0.1",
      smtpPort = SMTP, extraRecipients = { "gamma@example.org" },
      generators = { R.build_set_status_generator{ mode = "failing", builders = { "gamma" },
        message_formatter = R.message_formatter_renderable{
          template = bbm.interpolate("%(prop:buildername)s failed; ") } } } },
    R.mail_notifier{ name = "Tagged", fromaddr = "bb@example.org", relayhost = "127.0.0.1",
      smtpPort = SMTP, extraRecipients = { "tagged@example.org" }, sendToInterestedUsers = false,
      generators = { R.build_set_status_generator{ mode = "failing", tags = { "t-beta" },
        message_formatter = R.message_formatter_renderable{
          template = bbm.interpolate("%(prop:buildername)s is tagged; ") } } } },
  },
}
'''


def force(www, builders, **params):
    status, body = api_rpc(www, "forceschedulers/force", "force", builderNames=builders,
                           project="python/cpython", **params)
    assert status == 200, body
    return body["result"]


def built(www, result):
    """The builds of the forced buildset, once it is complete."""
    bsid, brids = result
    wait_for(lambda: api_get(www, f"buildsets/{bsid}")["buildsets"][0]["complete"],
             what=f"buildset {bsid} complete")
    return bsid, [api_get(www, f"buildrequests/{brid}/builds")["builds"][-1]
                  for brid in brids.values()]


def test_buildset_mail(master, workers):
    """Buildset 1 passes (nothing: no failure); buildset 2 fails on alpha, beta and gamma: one
    mail for alpha and beta, whose previous builds passed (gamma is not one of the builders),
    the bodies joined, the default subject of a buildset, each log attached as
    builder.step.log; buildset 3 fails again (nothing: not new), buildset 4 passes (nothing
    in problem mode); buildset 5, alpha alone, newly fails: its mail is the second, so
    buildsets 3 and 4, completed before it, sent none.  A second reporter, for gamma alone
    (mode "failing"), mails buildset 2 with a renderable formatter; a third, for the tag of
    beta, mails buildsets 2 and 3 with beta's build alone."""
    www, smtp_port = free_port(), free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG.replace("PB", str(master.pb_port)).replace("WWW", str(www))
                .replace("SMTP", str(smtp_port)))
    smtp = FakeSMTP(smtp_port)
    smtp.start()
    try:
        master.start()
        workers("w1", "w1pass", master.pb_port).start()
        master.wait_log(r"worker 'w1' attached")
        built(www, force(www, ["alpha", "beta"]))
        bsid2, builds2 = built(www, force(www, ["alpha", "beta", "gamma"], rc="1"))
        built(www, force(www, ["alpha", "beta"], rc="1"))
        built(www, force(www, ["alpha", "beta"]))
        bsid5, builds5 = built(www, force(www, ["alpha"], rc="1"))
        wait_for(lambda: len(smtp.mails) == 5 and not outbox_rows(master),
                 what="five mails delivered")
    finally:
        smtp.stop()
    assert [b["results"] for b in builds2] == [2, 2, 2]
    [gamma] = [m for m in smtp.mails if m[1] == ["gamma@example.org"]]
    (sender, rcpts, content, _, _), (_, _, content5, _, _) = [
        m for m in smtp.mails if m[1] == ["list@example.org"]]
    # by tag: the failing buildsets 2 and 3, beta's build alone; not buildset 5 (alpha)
    tagged = [email.message_from_bytes(m[2], policy=email.policy.default).get_content()
              for m in smtp.mails if m[1] == ["tagged@example.org"]]
    assert tagged == ["beta is tagged; \n\n"] * 2
    # a formatter without a subject: the generator's, for the whole buildset and its results
    msg = email.message_from_bytes(gamma[2], policy=email.policy.default)
    assert msg["Subject"] == "Buildbot failure in Buildsets on whole buildset"
    assert msg.get_content() == "gamma failed; \n\n"
    assert (sender, rcpts) == ("bb@example.org", ["list@example.org"])
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert msg["To"] == "list@example.org" and msg["Reply-To"] == "list@example.org"
    assert msg["CC"] is None
    assert msg["Message-ID"] == f"<bbmaster.buildset.{bsid2}.MailNotifier@example.org>"
    # Buildbot's default subject with is_buildset: the project, not the builder
    assert msg["Subject"] == ("\u2620 Buildbot (Buildsets): python/cpython - failed 'sh -c ...' "
                              "(failure) ((unknown revision))")
    text, *logs = msg.iter_parts()
    alpha, beta = sorted(builds2, key=lambda b: b["buildid"])[:2]
    # each body one line (Jinja drops the template's last newline), joined, then "\n\n"
    assert text.get_content() == (
        f"new failure on alpha (buildset True, #{alpha['number']}, was success)\n"
        f"new failure on beta (buildset True, #{beta['number']}, was success)\n\n\n")
    assert [p.get_filename() for p in logs] == ["alpha.check.stdio", "beta.check.stdio"]
    assert ["oalpha" in logs[0].get_content().splitlines(),
            "obeta" in logs[1].get_content().splitlines()] == [True, True]
    msg5 = email.message_from_bytes(content5, policy=email.policy.default)
    assert msg5["Message-ID"] == f"<bbmaster.buildset.{bsid5}.MailNotifier@example.org>"
    assert msg5.get_body(("plain",)).get_content() == (
        f"new failure on alpha (buildset True, #{builds5[0]['number']}, was success)\n\n\n")
    # one attachment: a mail of one build names its logs step.log, as Buildbot
    assert [p.get_filename() for p in msg5.iter_attachments()] == ["check.stdio"]
    assert master.count(r"MailNotifier: sent mail <bbmaster\.buildset") == 2
    assert master.count(r"Gamma: sent mail <bbmaster\.buildset") == 1
