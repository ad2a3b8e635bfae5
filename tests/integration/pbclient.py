"""A scripted PB client made of Twisted's own classes (Debian's python3-twisted, as
buildbot-worker uses them): logs in `count` times, each on a new connection from a
chosen source address, and prints one outcome per attempt as a JSON list:
"ok", "unauthorized" (twisted.cred.error.UnauthorizedLogin) or the failure's type.

    pbclient.py PORT BIND_ADDRESS NAME PASSWORD [COUNT]

NAME and PASSWORD are Python string literals (so that tests can pass control bytes)."""

import ast
import json
import sys

from twisted.cred import credentials, error
from twisted.internet import defer, reactor
from twisted.spread import pb


@defer.inlineCallbacks
def attempt(port, bind, name, password):
    factory = pb.PBClientFactory()
    reactor.connectTCP("127.0.0.1", port, factory, timeout=10, bindAddress=(bind, 0))
    d = factory.login(credentials.UsernamePassword(name, password))
    d.addCallbacks(lambda _: "ok",
                   lambda f: "unauthorized" if f.check(error.UnauthorizedLogin)
                   else str(getattr(f, "type", f)))
    outcome = yield d
    factory.disconnect()
    return outcome


@defer.inlineCallbacks
def main():
    port, bind = int(sys.argv[1]), sys.argv[2]
    name = ast.literal_eval(sys.argv[3]).encode()
    password = ast.literal_eval(sys.argv[4]).encode()
    count = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    outcomes = []
    try:
        for _ in range(count):
            outcomes.append((yield attempt(port, bind, name, password)))
    finally:
        print(json.dumps(outcomes))
        reactor.stop()


reactor.callWhenRunning(main)
reactor.run()
