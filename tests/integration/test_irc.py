"""The IRC reporter (Buildbot's IRC): a real ngIRCd on a loopback port, a small IRC client
in the test that joins the channel and records what the master's bot says of builds a real
buildbot-worker runs; and SASL against a fake IRC server that answers as an IRCv3 server
does (ngIRCd has no SASL): success, a NAK, a failure (904) and a server without sasl, the
last three falling back to NickServ IDENTIFY, plus PING, an overlong line and a reconnect.
Configuration refusals name file and line."""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import threading

import pytest

from conftest import BBMASTER, api_get, db_rows, free_port, pid_alive, wait_for
from test_reporters import built, force

NGIRCD = shutil.which("ngircd") or "/usr/sbin/ngircd"

CONFIG = r'''local bbm = require "bbm"
local R = bbm.reporters
local nicks = {}
for i = 1, 63 do nicks[i] = "nobody" .. i end
return {
  title = "irc",
  db_url = "sqlite:///state.sqlite",
  buildbotURL = "http://buildbot.example/all/",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "alpha", workernames = { "w1" }, tags = { "t-alpha" },
      factory = bbm.factory{ bbm.steps.shell{ command = { "sh", "-c",
        bbm.interpolate("exit %%(prop:rc:-0)s") } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "alpha" },
      properties = { bbm.params.string{ name = "rc", default = "0" } } },
  },
  services = {
    R.irc{ host = "127.0.0.1", port = %(irc)d, nick = "bbmbot", channels = { "#bbm" },
      pm_to_nicks = { "watcher" }, notify_events = { "failure", "recovery" },
      tags = { "t-alpha" } },
    R.irc{ name = "other", host = "127.0.0.1", port = %(irc)d, nick = "otherbot",
      channels = { { channel = "#bbm" } }, notify_events = { "finished" },
      tags = { "nothing" } },
    R.irc{ name = "tls", host = "127.0.0.1", port = %(tls)d, useSSL = true, nick = "tlsbot",
      channels = { "#bbm" }, notify_events = { "started" } },
    -- 64 targets and two events a build: the queue overflows its 256 lines
    R.irc{ name = "flood", host = "127.0.0.1", port = %(irc)d, nick = "floodbot",
      channels = { "#flood" }, pm_to_nicks = nicks,
      notify_events = { "started", "finished" } },
    -- the certificate names 127.0.0.1, not localhost: refused
    R.irc{ name = "badtls", host = "localhost", port = %(tls)d, useSSL = true,
      nick = "badbot", channels = { "#bbm" }, notify_events = { "started" } },
  },
}
'''


class Client:
    """A line-based IRC connection with a reader thread that answers PING and records
    every line."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def _read(self):
        data = b""
        while True:
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            data += chunk
            while b"\r\n" in data:
                line, data = data.split(b"\r\n", 1)
                text = line.decode("utf-8", "replace")
                if text.startswith("PING "):
                    self.send("PONG " + text[5:])
                with self.lock:
                    self.lines.append(text)

    def said(self):
        """(target, text) of each PRIVMSG or NOTICE received, with the sender's nick."""
        out = []
        with self.lock:
            for line in self.lines:
                m = re.match(r":([^! ]+)\S* (PRIVMSG|NOTICE) (\S+) :(.*)", line)
                if m:
                    out.append((m.group(1), m.group(3), m.group(4)))
        return out

    def close(self):
        self.sock.close()


def make_certificates(d):
    """A CA and a server certificate for 127.0.0.1 signed by it (P-256: quick to make)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=bbmaster test CA")
    run("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext")


@pytest.fixture
def ngircd(tmp_path):
    """ngIRCd on two loopback ports, plain and TLS: (port, tls port, CA file)."""
    port, tls = free_port(), free_port()
    make_certificates(tmp_path)
    conf = tmp_path / "ngircd.conf"
    conf.write_text(f"""[Global]
Name = irc.bbmaster.test
Info = bbmaster test server
AdminInfo1 = test
AdminInfo2 = test
AdminEMail = test@localhost
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = test
[Limits]
MaxConnectionsIP = 0
[Options]
DNS = no
Ident = no
PAM = no
[SSL]
CertFile = {tmp_path}/srv.pem
KeyFile = {tmp_path}/srv.key
Ports = {tls}
""")
    proc = subprocess.Popen([NGIRCD, "-n", "-f", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)

    def listening():
        try:
            for p in (port, tls):
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
            return True
        except OSError:
            return False

    wait_for(listening, what="ngircd listening")
    yield port, tls, str(tmp_path / "ca.pem")
    proc.terminate()
    proc.wait(timeout=10)


def watcher(port):
    c = Client(port)
    c.send("NICK watcher")
    c.send("USER watcher 0 * :watcher")
    wait_for(lambda: any(" 001 " in line for line in c.lines), what="watcher signed on")
    c.send("JOIN #bbm")
    wait_for(lambda: any(" 366 " in line for line in c.lines), what="watcher joined")
    return c


def test_builds_said_on_ngircd(master, workers, ngircd):
    port, tls, ca = ngircd
    www = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(CONFIG % {"pb": master.pb_port, "www": www, "irc": port, "tls": tls})
    master.env["SSL_CERT_FILE"] = ca  # OpenSSL's default authorities: the test's CA
    w = watcher(port)
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    master.wait_log(r"IRC: signed on to 127\.0\.0\.1:\d+ as bbmbot")

    first = built(www, force(www, "alpha"))  # no previous build: nothing to say
    failed = built(www, force(www, "alpha", rc="1"))  # "failure"
    fixed = built(www, force(www, "alpha"))  # "recovery"
    assert (first["results"], failed["results"], fixed["results"]) == (0, 2, 0)
    wait_for(lambda: len(w.said()) >= 7, what="seven lines said")

    url = f"http://buildbot.example/all/#/builders/{failed['builderid']}/builds"
    fail_text = (f"Build [#{failed['number']}]({url}/{failed['number']}) of `alpha` "
                 f"\x034failed\x0f: {failed['state_string']}")
    fix_text = (f"Build [#{fixed['number']}]({url}/{fixed['number']}) of `alpha` "
                f"\x033completed successfully\x0f.")
    said = w.said()
    assert [s for s in said if s[0] == "bbmbot"] == [
        ("bbmbot", "#bbm", fail_text), ("bbmbot", "watcher", fail_text),
        ("bbmbot", "#bbm", fix_text), ("bbmbot", "watcher", fix_text)]
    # over TLS, the certificate verified
    assert [s for s in said if s[0] == "tlsbot"] == [
        ("tlsbot", "#bbm", f"Build [#{b['number']}]({url}/{b['number']}) of `alpha` started.")
        for b in (first, failed, fixed)]
    assert master.count(r"tls: TLS \(TLSv1\.[23]\) with 127\.0\.0\.1:\d+, certificate "
                        r"verified") == 1
    assert master.count(r"badtls: localhost:\d+: TLS handshake: the certificate is refused: "
                        r"hostname mismatch") >= 1
    assert not [s for s in said if s[0] == "badbot"]
    # 6 x 64 lines: past the 256 that may wait for the line rate, lines are counted
    master.wait_log(r"flood: 256 lines wait for the line rate: more are dropped, and counted, "
                    r"until they have gone")
    assert master.count(r"flood: 256 lines wait") == 1
    # the second bot joined and, its tags matching no builder, said nothing
    master.wait_log(r"other: signed on to 127\.0\.0\.1:\d+ as otherbot")
    w.send("NAMES #bbm")
    master.wait_log(r"tls: signed on to 127\.0\.0\.1:\d+ as tlsbot")
    wait_for(lambda: any(re.search(r" 353 .*otherbot", line) for line in w.lines),
             what="otherbot in the channel")
    w.close()


class FakeSASLServer:
    """An IRCv3 server's registration, by nick: "okbot" is offered sasl and authenticates
    (903), "nakbot" has its CAP REQ refused (NAK), "failbot" fails (904) and is then dropped
    once, to reconnect, and "plainbot" is offered no sasl.  Each connection's lines are
    recorded; after 001 the server sends a PING and an overlong line."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []  # (nick, [lines received]) per connection
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        got = []
        entry = [None, got]
        with self.lock:
            self.conns.append(entry)
        f = s.makefile("rb")
        nick = None

        def send(line):
            s.sendall(line.encode() + b"\r\n")

        def welcome():
            send(f":fake.test 001 {nick}{'_' if nick == 'dupbot' else ''} :Welcome")
            send("PING :tok-1")
            send(":fake.test NOTICE " + nick + " :" + "x" * 600)
            send(f":fake.test 376 {nick} :End of MOTD")

        for raw in f:
            line = raw.decode().rstrip("\r\n")
            got.append(line)
            cmd = line.split(" ")
            if cmd[0] == "NICK" and cmd[1] == "dupbot":  # taken: the bot adds a "_"
                nick = entry[0] = cmd[1]
                send(f":fake.test 433 * {nick} :Nickname is already in use")
            elif cmd[0] == "NICK" and cmd[1] == "dupbot_":  # no CAP: registered at once
                welcome()
            elif cmd[0] == "NICK":  # the capabilities depend on the nick: answered now
                nick = entry[0] = cmd[1]
                send(":fake.test CAP * LS * :multi-prefix")
                send(":fake.test CAP * LS :" + ("away-notify" if nick == "plainbot"
                                                 else "sasl=PLAIN,EXTERNAL account-tag"))
            elif line == "CAP REQ :sasl":
                send(f":fake.test CAP {nick} {'NAK' if nick == 'nakbot' else 'ACK'} :sasl")
            elif line == "AUTHENTICATE PLAIN":
                send("AUTHENTICATE +")
            elif cmd[0] == "AUTHENTICATE":
                if nick == "okbot":
                    send(f":fake.test 900 {nick} {nick}!u@h {nick} :You are now logged in")
                    send(f":fake.test 903 {nick} :SASL authentication successful")
                else:
                    send(f":fake.test 904 {nick} :SASL authentication failed")
            elif line == "CAP END":
                welcome()
            elif cmd[0] == "JOIN" and nick == "failbot" and \
                    sum(1 for n, _ in self.conns if n == "failbot") == 1:
                send("ERROR :Closing Link: test")
                s.shutdown(socket.SHUT_WR)  # the bot sees the end, then closes its side
                for raw in f:
                    got.append(raw.decode().rstrip("\r\n"))
                s.close()
                return
        s.close()

    def lines_of(self, nick):
        with self.lock:
            return [lines for n, lines in self.conns if n == nick]

    def close(self):
        self.sock.close()


SASL_CONFIG = r'''local bbm = require "bbm"
local R = bbm.reporters
local function bot(nick, chan)
  return R.irc{ name = nick, host = "127.0.0.1", port = %(port)d, nick = nick,
    password = "s3cret", useSASL = true,
    channels = { { channel = chan or "#c", password = "key" } },
    notify_events = { "finished" } }
end
return {
  db_url = "sqlite:///state.sqlite",
  www = { port = %(www)d },
  workers = {},
  services = { bot("okbot"), bot("nakbot"), bot("failbot"), bot("plainbot", "%(chan)s"),
    -- Buildbot's registration without SASL: the password as PASS, then NickServ
    R.irc{ name = "dupbot", host = "127.0.0.1", port = %(port)d, nick = "dupbot",
      password = "s3cret", channels = { "#c" } } },
}
'''


def test_sasl_and_its_fallback(master):
    fake = FakeSASLServer()
    www = free_port()

    def write(chan):
        with open(os.path.join(master.dir, "master.lua"), "w") as f:
            f.write(SASL_CONFIG % {"port": fake.port, "www": www, "chan": chan})

    write("#c")
    master.start()
    for nick in ("okbot", "nakbot", "plainbot"):
        wait_for(lambda: any("JOIN #c key" in lines for lines in fake.lines_of(nick)),
                 what=f"{nick} joined")
    wait_for(lambda: "PONG :tok-1" in fake.lines_of("dupbot")[0], what="dupbot registered")
    assert fake.lines_of("dupbot")[0] == [
        "PASS s3cret", "NICK dupbot", "USER dupbot foo bar :None", "NICK dupbot_",
        "PRIVMSG NickServ :IDENTIFY s3cret", "JOIN #c", "PONG :tok-1"]
    assert master.count(r"dupbot: signed on to 127\.0\.0\.1:\d+ as dupbot_") == 1
    wait_for(lambda: len(fake.lines_of("failbot")) == 2 and
             "JOIN #c key" in fake.lines_of("failbot")[1], what="failbot back and joined")
    wait_for(lambda: all("PONG :tok-1" in fake.lines_of(n)[-1] for n in
                         ("okbot", "nakbot", "plainbot")), what="PONGs")

    plain = base64.b64encode(b"okbot\0okbot\0s3cret").decode()
    ok = fake.lines_of("okbot")[0]
    assert ok == ["CAP LS 302", "NICK okbot", "USER okbot foo bar :None", "CAP REQ :sasl",
                  "AUTHENTICATE PLAIN", f"AUTHENTICATE {plain}", "CAP END", "JOIN #c key",
                  "PONG :tok-1"]
    nak = fake.lines_of("nakbot")[0]
    assert nak == ["CAP LS 302", "NICK nakbot", "USER nakbot foo bar :None", "CAP REQ :sasl",
                   "CAP END", "PRIVMSG NickServ :IDENTIFY s3cret", "JOIN #c key",
                   "PONG :tok-1"]
    fail_b64 = base64.b64encode(b"failbot\0failbot\0s3cret").decode()
    for lines in fake.lines_of("failbot"):
        assert lines[:9] == ["CAP LS 302", "NICK failbot", "USER failbot foo bar :None",
                             "CAP REQ :sasl", "AUTHENTICATE PLAIN",
                             f"AUTHENTICATE {fail_b64}", "CAP END",
                             "PRIVMSG NickServ :IDENTIFY s3cret", "JOIN #c key"]
    plainbot = fake.lines_of("plainbot")[0]
    assert plainbot == ["CAP LS 302", "NICK plainbot", "USER plainbot foo bar :None",
                        "CAP END", "PRIVMSG NickServ :IDENTIFY s3cret", "JOIN #c key",
                        "PONG :tok-1"]
    assert master.count(r"okbot: SASL authentication succeeded") == 1
    assert master.count(r"nakbot: .*the server refused the sasl capability; identifying "
                        r"with NickServ instead") == 1
    assert master.count(r"failbot: .*SASL authentication failed; identifying with NickServ "
                        r"instead") == 2
    assert master.count(r"plainbot: .*the server offers no SASL") == 1
    assert master.count(r"failbot: the server says: Closing Link: test") == 1
    assert master.count(r"failbot: 127\.0\.0\.1:\d+: the server closed the connection; "
                        r"connecting again in [12]\.\d s") == 1
    assert master.count(r"a line of the server longer than 512 bytes skipped") == 6
    assert "s3cret" not in master.log()

    # a reconfig that changes plainbot's channel: it quits and a new one joins; the others
    # stay connected
    write("#d")
    r = master.cli("reconfig", master.dir, check=0)
    assert "completed successfully" in r.stdout, r.stdout
    wait_for(lambda: len(fake.lines_of("plainbot")) == 2 and
             "JOIN #d key" in fake.lines_of("plainbot")[1], what="the new plainbot joined")
    wait_for(lambda: fake.lines_of("plainbot")[0][-1] ==
             "QUIT :buildmaster reconfigured: bot disconnecting", what="the old one quit")
    assert [len(fake.lines_of(n)) for n in ("okbot", "nakbot", "failbot", "dupbot")] == \
        [1, 1, 2, 1]
    master.stop()
    wait_for(lambda: fake.lines_of("okbot")[0][-1] == "QUIT :buildmaster stopping",
             what="okbot quit")
    fake.close()


@pytest.mark.parametrize("service,message", [
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = { "#c" }, authz = { ["!"] = "al" } }',
     "authz values must be bool or a list of nicks"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = { "#c" }, authz = { froce = true } }',
     "authz: 'froce' is not a command of the bot"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = { "#c" }, '
     'authz = { [{ "force", "source" }] = { "al" } } }',
     "authz: the bot's 'source' command is not implemented by bbmaster"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = { "#c" }, authz = {}, '
     'allowForce = true }', "If you specify authz, you must not use allowForce anymore"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = { "#c" }, allowForce = "yes" }',
     "allowForce must be boolean"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = { "#c" }, allowShutdown = 1 }',
     "allowShutdown must be boolean"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = { "#c" }, authz = {}, '
     'allowShutdown = true }', "If you specify authz, you must not use allowShutdown anymore"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = { "#c" }, lostDelay = 5 }',
     "'lostDelay' is not implemented by bbmaster"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = { "#c" }, '
     'notify_events = { "sucess" } }', "notify_events: \"sucess\" is not an event of Buildbot's"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = { 5 } }',
     "channels[1] must be a name or {channel = ..., password = ...}"),
    ('bbm.reporters.irc{ host = "h", nick = "n" }', "missing required parameter 'channels'"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = {}, port = 70000 }',
     "'port' must be between 1 and 65535"),
    ('bbm.reporters.irc{ host = "h", nick = "n", channels = {}, pm_to_nick = {} }',
     "pm_to_nick"),
])
def test_checkconfig_refuses(master, service, message):
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write('local bbm = require "bbm"\nreturn {\n  workers = {},\n'
                f'  services = {{\n    {service},\n  }},\n}}\n')
    r = master.cli("checkconfig", master.dir)
    assert r.returncode != 0
    assert re.search(r"master\.lua:5: .*" + re.escape(message), r.stdout + r.stderr), \
        r.stdout + r.stderr


def test_cpython_master_with_irc(tmp_path):
    """cpython/master.lua with irc_notice (the example has an irc_password): BPO's IRC
    reporter, ported."""
    here = os.path.dirname(os.path.abspath(__file__))
    cpython = os.path.join(here, "..", "..", "cpython")
    settings = tmp_path / "settings.yaml"
    with open(os.path.join(cpython, "settings.yaml.example")) as f:
        example = f.read()
    settings.write_text(example.replace("irc_notice: false", "irc_notice: true") +
                        '\nirc_notify_events: ["better", "sucess"]\n')
    env = dict(os.environ, CI="1", PYBUILDBOT_SETTINGS_PATH=str(settings))
    r = subprocess.run([BBMASTER, "checkconfig", cpython], capture_output=True,
                       text=True, env=env, timeout=120)
    # the misspelt event is refused at the line of the call in cpython/master.lua
    assert r.returncode != 0
    assert re.search(r"master\.lua:\d+: bbm\.reporters\.irc: notify_events: \"sucess\" is not "
                     r"an event of Buildbot's", r.stdout + r.stderr), r.stdout + r.stderr
    settings.write_text(example.replace("irc_notice: false", "irc_notice: true"))
    r = subprocess.run([BBMASTER, "checkconfig", cpython], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_checkconfig_accepts_buildbot_python_org(master):
    """BPO's configuration, as ported (REPORTERS-AUTH.md)."""
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write('local bbm = require "bbm"\nreturn {\n  workers = {},\n  services = {\n'
                '    bbm.reporters.irc{ host = "irc.libera.chat", nick = "py-bb-test",\n'
                '      channels = { { channel = "#python-dev-notifs" } },\n'
                '      notify_events = { "better", "worse", "exception" },\n'
                '      useColors = true, useSASL = true, password = "pw",\n'
                '      allowForce = false, showBlameList = true },\n'
                '  },\n}\n')
    r = master.cli("checkconfig", master.dir)
    assert r.returncode == 0, r.stdout + r.stderr


COMMANDS_CONFIG = r"""local bbm = require "bbm"
return {
  title = "irc",
  db_url = "sqlite:///state.sqlite",
  buildbotURL = "http://buildbot.example/",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  workers = { bbm.worker("w1", "w1pass") },
  builders = {
    bbm.builder{ name = "alpha", workernames = { "w1" },
      factory = bbm.factory{ bbm.steps.shell{ name = "nap", command = { "sh", "-c",
        bbm.interpolate("exec sleep %%(prop:s:-0)s") } } } },
  },
  services = {
    bbm.reporters.irc{ host = "127.0.0.1", port = %(irc)d, nick = "cmdbot", channels = { "#cmd" },
      useColors = false, authz = { force = { "Boss" }, stop = { "boss" } } },
  },
}
"""


def client(port, nick, channel=None):
    c = Client(port)
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{nick}")
    wait_for(lambda: any(" 001 " in line for line in c.lines), what=f"{nick} signed on")
    if channel:
        c.send(f"JOIN {channel}")
        wait_for(lambda: any(" 366 " in line for line in c.lines), what=f"{nick} joined")
    return c


def cmdbot_site(master, workers, port, config=COMMANDS_CONFIG):
    """A master on `config` (COMMANDS_CONFIG's form) with its worker attached, and boss in
    #cmd before the bot, so that ngIRCd makes boss the channel's operator: (web port, boss)."""
    www = free_port()
    with open(os.path.join(master.dir, "master.lua"), "w") as f:
        f.write(config % {"pb": master.pb_port, "www": www, "irc": port})
    boss = client(port, "boss", "#cmd")
    master.start()
    workers("w1", "w1pass", master.pb_port).start()
    master.wait_log(r"worker 'w1' attached")
    wait_for(lambda: any(":cmdbot!" in line and " JOIN " in line for line in boss.lines),
             what="cmdbot in #cmd")
    return www, boss


def answers(c, n, target):
    """What cmdbot said to `target` as `c` received it, once there are at least n lines."""
    wait_for(lambda: len([s for s in c.said() if s[:2] == ("cmdbot", target)]) >= n,
             what=f"{n} answers")
    return [s[2] for s in c.said() if s[:2] == ("cmdbot", target)]


def test_commands_on_ngircd(master, workers, ngircd):
    """words.py's commands said to the bot on a real ngIRCd: a force that a real
    buildbot-worker builds, last, status of a running build, stop (the nick is in authz),
    and a nick that is not."""
    port = ngircd[0]
    www, boss = cmdbot_site(master, workers, port)

    def answers(c, n):  # (target, text) of each of the bot's lines
        wait_for(lambda: len([s for s in c.said() if s[0] == "cmdbot"]) >= n,
                 what=f"{n} answers")
        return [s[1:] for s in c.said() if s[0] == "cmdbot"]

    def build(number, complete=True):
        rows = [b for b in api_get(www, "builds")["builds"] if b["number"] == number]
        return rows[0] if rows and (rows[0]["complete"] or not complete) else None

    boss.send("PRIVMSG #cmd :someone: force build alpha")  # not for the bot
    boss.send("PRIVMSG #cmd :CMDBOT, force build --branch=main alpha because 'it is' time")
    assert answers(boss, 1) == [("#cmd", "Force build successfully requested.")]
    wait_for(lambda: build(1), what="the forced build")
    first = build(1)
    assert first["results"] == 0
    props = api_get(www, f"builds/{first['buildid']}/properties")["properties"][0]
    assert props["owner"] == ["boss on #cmd", "Force Build Chat"]
    assert props["reason"] == ["because it is time", "Force Build Chat"]
    bset = api_get(www, "buildsets")["buildsets"][-1]
    assert bset["reason"] == "forced: by boss on #cmd: because it is time"
    assert [(s["branch"], s["revision"]) for s in bset["sourcestamps"]] == [("main", "HEAD")]

    boss.send("PRIVMSG #cmd :cmdbot: last alpha")
    boss.send("PRIVMSG #cmd :cmdbot: force build --props=s=60 alpha")
    said = answers(boss, 3)
    assert re.fullmatch(r"`alpha`: last build completed successfully \((a moment|\d+ seconds) "
                        r"ago\)", said[1][1]), said[1]
    assert said[2] == ("#cmd", "Force build successfully requested.")
    wait_for(lambda: build(2, complete=False), what="the second build running")
    url = f"http://buildbot.example/#/builders/{first['builderid']}/builds/2"
    boss.send("PRIVMSG #cmd :cmdbot: status alpha")
    said = answers(boss, 4)
    assert re.fullmatch(r"`alpha`: running: build \[#2\]\(" + re.escape(url) + r"\) \(.+\)",
                        said[3][1]), said[3]
    boss.send("PRIVMSG #cmd :cmdbot: stop build alpha enough now")
    assert answers(boss, 5)[4] == ("#cmd", f"Build [#2]({url}) of `alpha` interrupted.")
    wait_for(lambda: build(2), what="the second build stopped")
    assert build(2)["results"] == 6  # CANCELLED
    assert "(stopped: by boss on #cmd: enough now)" in build(2)["state_string"], build(2)

    # another nick, privately: not in authz; the online builders, the workers, the changes
    eve = client(port, "Eve")
    for command in ("force build alpha", "status", "list all workers", "list 3 changes"):
        eve.send(f"PRIVMSG cmdbot :{command}")
    wait_for(lambda: len([s for s in eve.said() if s[0] == "cmdbot"]) >= 4, what="eve's answers")
    said = [s[1:] for s in eve.said() if s[0] == "cmdbot"]
    assert re.fullmatch(r"`alpha`: idle  last build (a moment|\d+ seconds) ago, Cancelled",
                        said[1][1]), said
    assert said[:1] + said[2:] == [
        ("Eve", "Thou shall not pass, eve!!!"), ("Eve", "I found the following workers: w1"),
        ("Eve", "I found the following recent changes:")]
    assert len(api_get(www, "builds")["builds"]) == 2
    assert master.count(r"IRC: received command `force` from Eve\n") == 1
    boss.close()
    eve.close()


def test_mute_on_ngircd(master, workers, ngircd):
    """irc.py's mute and unmute on a real ngIRCd: in a channel only an operator (asked of the
    server with NAMES; boss joined first, so ngIRCd made him one) may mute the bot, which then
    says nothing there, neither answers nor notifications, until an operator unmutes it; a
    private chat is muted by its nick alone."""
    port = ngircd[0]
    www, boss = cmdbot_site(master, workers, port, COMMANDS_CONFIG.replace(
        'useColors = false,', 'useColors = false, notify_events = { "started" },'))
    eve = client(port, "eve", "#cmd")

    def builds():
        return [b for b in api_get(www, "builds")["builds"] if b["complete"]]

    eve.send("PRIVMSG #cmd :cmdbot: mute")
    assert answers(boss, 1, "#cmd") == [
        "Only channel operators or explicitly allowed users can mute me here, eve... Blah, "
        "blah, blah..."]
    boss.send("PRIVMSG #cmd :cmdbot: mute")
    assert answers(boss, 2, "#cmd")[1] == "Shutting up for now."
    boss.send("PRIVMSG #cmd :cmdbot: force build alpha")  # answered and notified: not said
    wait_for(lambda: len(builds()) == 1, what="the first build")
    eve.send("PRIVMSG #cmd :cmdbot: unmute")  # not an operator: nothing happens
    boss.send("PRIVMSG #cmd :cmdbot: unmute")
    assert answers(boss, 3, "#cmd")[2] == "I'm baaaaaaaaaaack!"
    boss.send("PRIVMSG #cmd :cmdbot: unmute")
    assert answers(boss, 4, "#cmd")[3] == \
        "No one had told me to be quiet, but it's the thought that counts, right?"
    boss.send("PRIVMSG #cmd :cmdbot: force build alpha")
    said = answers(boss, 6, "#cmd")
    assert said[4:] in (["Force build successfully requested.", said[5]],
                        [said[4], "Force build successfully requested."])
    assert any(re.search(r"Build \[#2\]\(.*\) of `alpha` started", s) for s in said[4:]), said
    assert not any("#1" in s for s in said), said
    assert master.count(r"IRC: muted in #cmd by boss") == 1
    assert master.count(r"IRC: unmuted in #cmd by boss") == 1

    # privately: the nick's own chat, no operator needed
    for command in ("mute", "status", "unmute"):
        eve.send(f"PRIVMSG cmdbot :{command}")
        if command == "mute":
            answers(eve, 1, "eve")
    assert answers(eve, 2, "eve") == ["Shutting up for now.", "I'm baaaaaaaaaaack!"]
    boss.close()
    eve.close()


def test_notify_on_ngircd(master, workers, ngircd):
    """words.py's notify: a channel's events changed by its operator (a nick that is not one is
    refused, as irc.py answers), a private chat's by its nick; each chat then hears the
    builds its events want; the events are kept where Buildbot's IrcStatusBot keeps them
    (object_state) and a restarted master has them again."""
    port = ngircd[0]
    www, boss = cmdbot_site(master, workers, port)
    eve = client(port, "eve", "#cmd")

    eve.send("PRIVMSG #cmd :cmdbot: notify on started")
    assert answers(boss, 1, "#cmd") == ["Only channel operators can change notified events "
                                        "for this channel. And you, eve, are neither!"]
    eve.send("PRIVMSG #cmd :cmdbot: notify list")
    assert answers(boss, 2, "#cmd")[1] == "No events are being notified."
    boss.send("PRIVMSG #cmd :cmdbot: notify on finished started")
    assert answers(boss, 3, "#cmd")[2] == \
        "The following events are being notified: finished, started."
    boss.send("PRIVMSG #cmd :cmdbot: notify on bogus")
    assert answers(boss, 4, "#cmd")[3] == "Try 'notify on|off _EVENT_'."
    eve.send("PRIVMSG cmdbot :notify on-quiet failure")  # privately: no operator needed
    eve.send("PRIVMSG cmdbot :notify list")
    assert answers(eve, 1, "eve") == ["The following events are being notified: failure."]

    boss.send("PRIVMSG #cmd :cmdbot: force build alpha")
    said = answers(boss, 7, "#cmd")
    assert "Force build successfully requested." in said[4:]
    assert any(re.search(r"Build \[#1\]\(.*\) of `alpha` started", s) for s in said[4:]), said
    assert any(re.search(r"Build \[#1\]\(.*\) of `alpha` completed successfully\.", s)
               for s in said[4:]), said
    assert answers(eve, 1, "eve") == ["The following events are being notified: failure."]
    rows = db_rows(master.dir, "sqlite",
                   "SELECT o.name, s.value_json FROM object_state s JOIN objects o "
                   "ON o.id = s.objectid WHERE o.class_name = ? AND s.name = ?",
                   "buildbot.reporters.irc.IrcStatusBot", "notify_events")
    assert [(n, json.loads(v)) for n, v in rows] == [
        ("cmdbot", [["#cmd", ["finished", "started"]], ["eve", ["failure"]]])]

    master.stop()
    master.start()
    wait_for(lambda: len([line for line in boss.lines if ":cmdbot!" in line and " JOIN " in line])
             >= 2, what="cmdbot in #cmd again")
    boss.send("PRIVMSG #cmd :cmdbot: notify list")
    assert answers(boss, 8, "#cmd")[7] == \
        "The following events are being notified: finished, started."
    boss.send("PRIVMSG #cmd :cmdbot: notify off")
    assert answers(boss, 9, "#cmd")[8] == "No events are being notified."
    rows = db_rows(master.dir, "sqlite",
                   "SELECT s.value_json FROM object_state s JOIN objects o ON o.id = s.objectid "
                   "WHERE o.class_name = ? AND s.name = ?",
                   "buildbot.reporters.irc.IrcStatusBot", "notify_events")
    assert [json.loads(v) for (v,) in rows] == [[["eve", ["failure"]]]]
    boss.close()
    eve.close()


def test_watch_on_ngircd(master, workers, ngircd):
    """words.py's watch: the chat that asked hears the running builds of the builder finish,
    once, whatever its events (here none)."""
    port = ngircd[0]
    www, boss = cmdbot_site(master, workers, port)
    eve = client(port, "eve")

    eve.send("PRIVMSG cmdbot :watch alpha")
    eve.send("PRIVMSG cmdbot :watch")
    eve.send("PRIVMSG cmdbot :watch nosuch")
    assert answers(eve, 3, "eve") == ["There are no currently running builds.",
                                      "Try 'watch _builder_'.", "no such builder 'nosuch'"]
    boss.send("PRIVMSG #cmd :cmdbot: force build --props=s=3 alpha")
    assert answers(boss, 1, "#cmd") == ["Force build successfully requested."]
    wait_for(lambda: any(not b["complete"] for b in api_get(www, "builds")["builds"]),
             what="the build running")
    builderid = api_get(www, "builders/alpha")["builders"][0]["builderid"]
    url = f"http://buildbot.example/#/builders/{builderid}/builds/1"
    eve.send("PRIVMSG cmdbot :watch alpha")
    assert answers(eve, 4, "eve")[3] == \
        f"Watching build [#1]({url}) of `alpha` until it finishes..."
    assert answers(eve, 5, "eve")[4] == f"Build [#1]({url}) of `alpha` completed successfully."
    assert len(answers(boss, 1, "#cmd")) == 1  # the channel has no events: nothing said
    boss.close()
    eve.close()


def test_join_and_leave_on_ngircd(master, workers, ngircd):
    """irc.py's join and leave, dangerous commands behind authz: a channel joined hears the
    configured notify_events; leave parts it."""
    port = ngircd[0]
    www, boss = cmdbot_site(master, workers, port, COMMANDS_CONFIG.replace(
        'stop = { "boss" }', 'stop = { "boss" }, [{ "join", "leave" }] = { "boss" }').replace(
        'useColors = false,', 'useColors = false, notify_events = { "started" },'))
    boss.send("JOIN #other")
    eve = client(port, "eve")
    eve.send("PRIVMSG cmdbot :join #elsewhere")
    wait_for(lambda: [s for s in eve.said() if s[0] == "cmdbot"], what="eve's answer")
    assert [s[2] for s in eve.said() if s[0] == "cmdbot"] == ["Thou shall not pass, eve!!!"]
    boss.send("PRIVMSG cmdbot :join #other")
    wait_for(lambda: any(re.match(r":cmdbot!\S* JOIN :?#other", line) for line in boss.lines),
             what="cmdbot in #other")
    boss.send("PRIVMSG #cmd :cmdbot: force build alpha")
    wait_for(lambda: [s for s in boss.said() if s[:2] == ("cmdbot", "#other")],
             what="the build said in #other")
    assert re.fullmatch(r"Build \[#1\]\(.*\) of `alpha` started\.",
                        [s for s in boss.said() if s[:2] == ("cmdbot", "#other")][0][2])
    boss.send("PRIVMSG cmdbot :leave #other")
    wait_for(lambda: any(re.match(r":cmdbot!\S* PART #other", line) for line in boss.lines),
             what="cmdbot gone from #other")
    assert master.count(r"IRC: joining #other \(asked by boss\)") == 1
    boss.close()
    eve.close()


def test_shutdown_on_ngircd(master, workers, ngircd):
    """words.py's shutdown, a dangerous command: check, start (a clean shutdown: no new
    build starts), stop (cancelled: the queued build starts once the running one ends, and
    the master stays up), now (the master stops).  Its help is in test_ircbot.c."""
    port = ngircd[0]
    www, boss = cmdbot_site(master, workers, port, COMMANDS_CONFIG.replace(
        'force = { "Boss" }, stop = { "boss" }',
        'force = { "Boss", "ann" }, stop = { "ann" }, shutdown = { "boss", "ann" }'))
    pid = master.pid()
    eve, ann = client(port, "eve"), client(port, "ann")

    def ask(c, text, n):  # at most 5 at once from one nick: the bot's command rate
        nick = "boss" if c is boss else "ann" if c is ann else "eve"
        c.send(f"PRIVMSG cmdbot :{text}")
        return answers(c, n, nick)[n - 1]

    assert ask(eve, "shutdown now", 1) == "Thou shall not pass, eve!!!"
    assert ask(boss, "shutdown", 1) == "Try 'shutdown check|start|stop|now'."
    assert ask(boss, "shutdown check", 2) == "Status: buildbot is running."
    assert ask(boss, "force build --props=s=60 alpha", 3) == "Force build successfully requested."
    wait_for(lambda: api_get(www, "builds")["builds"], what="the long build running")
    assert ask(boss, "shutdown start", 4) == "Starting clean shutdown."
    assert ask(boss, "shutdown start", 5) == "Shutdown already started."
    assert ask(ann, "shutdown check", 1) == "Status: buildbot is shutting down."
    assert ask(ann, "force build alpha", 2) == "Force build successfully requested."
    assert ask(ann, "shutdown stop", 3) == "Stopping clean shutdown."
    assert ask(ann, "shutdown stop", 4) == "There is no ongoing shutdown to stop."
    assert ask(ann, "stop build alpha not now", 5).endswith("of `alpha` interrupted.")
    wait_for(lambda: [b["results"] for b in api_get(www, "builds")["builds"]] == [6, 0],
             what="the queued build ran after the cancelled shutdown")
    assert pid_alive(pid)
    assert ask(boss, "shutdown now", 6) == "Stopping buildbot."
    wait_for(lambda: not pid_alive(pid), what="the master stopped")
    log = master.log()
    assert "IRC 'IRC': boss started a clean shutdown" in log, log
    assert "IRC 'IRC': ann cancelled the clean shutdown" in log
    assert "asked to stop now: shutting down" in log
    for c in (boss, eve, ann):
        c.close()


def test_destroy_and_hustle_on_ngircd(master, workers, ngircd):
    """irc.py's destroy and hustle: a CTCP ACTION (/me) to the chat, or words when destroy
    names the bot itself; help hustle gives irc.py's usage."""
    port = ngircd[0]
    www, boss = cmdbot_site(master, workers, port)
    boss.send("PRIVMSG #cmd :cmdbot: destroy the bugs")
    boss.send("PRIVMSG #cmd :cmdbot: hustle")
    boss.send("PRIVMSG cmdbot :destroy cmdbot")
    boss.send("PRIVMSG cmdbot :help hustle")
    assert answers(boss, 2, "#cmd") == ["\x01ACTION readies phasers\x01",
                                        "\x01ACTION does the hustle\x01"]
    assert answers(boss, 2, "boss") == [
        "Better destroy yourself, boss!",
        "Usage: dondon on #qutebrowser: qutebrowser-bb needs to learn to do the hustle"]
    boss.close()
