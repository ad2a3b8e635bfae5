"""
The web UI in a real browser (Debian's headless chromium through chromium-driver and
python3-selenium): Buildbot's old '#/' links, the log viewer (anchors, ANSI colours,
the first failure, search), a running build followed live on a real buildbot-worker,
pages read with JavaScript off, and phone-sized pages that do not overflow sideways.
One master serves the Buildbot 4.3 fixture database (as test_api.py), another runs
builds on a real worker.  Screenshots go to a temporary directory, printed at the end.
Skipped without /usr/bin/chromedriver, and under sanitized builds (they look for memory
and thread errors, which these pages do not add).
"""
import os
import re
import signal
import tempfile
import urllib.error
import urllib.request

import pytest

from conftest import SANITIZED, Master, Worker, api_get, api_rpc, free_port, pid_alive, wait_for

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMEDRIVER), reason="no chromium-driver"),
    pytest.mark.skipif(SANITIZED, reason="browser tests run on the plain build"),
]
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

import test_api  # noqa: E402

FIXTURE_DB = os.path.join(os.environ.get("BBM_FIXTURES", test_api.FIXTURES),
                          "state-4.3-after-builds.sqlite")
WAIT = 20
SHOTS = []  # the screenshots' directory, once there is one

# What the "ansi" builder's step prints: colours set on one line and carried to the next,
# a progress line rewritten after '\r' (two lines in the log, as in Buildbot), markup that
# must stay text, an OSC title dropped, filler, then a regrtest failure marker.
ANSI_SH = r"""printf 'plain start\n'
printf '\033[1;31mbold red\033[0m after\n'
printf '\033[32mgreen across\nstill green\033[0m plain again\n'
printf 'progress 10%%\rprogress 100%%\n'
printf '<b>not bold</b> &amp; <script>x</script>\n'
printf '\033]0;a title\007osc gone\n'
seq 1 1200 | sed 's/^/filler /'
printf 'FAIL: test_thing (test.test_x.Case.test_thing)\n'
seq 1 300 | sed 's/^/tail /'
"""

LIVE_CONFIG = r'''local bbm = require "bbm"
return {
  title = "ui",
  protocols = { pb = { port = %(pb)d } },
  www = { port = %(www)d },
  db_url = "sqlite:///state.sqlite",
  workers = { bbm.worker("w1", "w1pass", { max_builds = 2 }) },
  builders = {
    bbm.builder{ name = "ansi", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "colours", command = { "sh", "%(ansi)s" } } } },
    bbm.builder{ name = "million", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "seq", command = { "seq", "1000000" } } } },
    bbm.builder{ name = "gated", workernames = { "w1" }, factory = bbm.factory{
      bbm.steps.shell{ name = "wait-gate", command = { "sh", "-c",
        "echo tick 1; while [ ! -e '%(gate)s' ]; do sleep 0.1; done; echo tick 2" } } } },
  },
  schedulers = {
    bbm.schedulers.force{ name = "force", builderNames = { "ansi", "million", "gated" } },
  },
}
'''


def stop(master):
    pid = master.pid()
    master.stop()
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def fixture_site(tmp_path_factory):
    """A master on the 4.3 fixture database: its web port."""
    if not os.path.exists(FIXTURE_DB):
        pytest.skip(f"no fixture database {FIXTURE_DB}")
    m = Master(tmp_path_factory.mktemp("fixture"))
    port = test_api.serve(m, FIXTURE_DB)
    yield port
    stop(m)


class Live:
    def __init__(self, base):
        self.master = Master(base / "master")
        os.makedirs(self.master.dir)
        self.port = free_port()
        self.gate = str(base / "gate")
        ansi = base / "ansi.sh"
        ansi.write_text(ANSI_SH)
        with open(os.path.join(self.master.dir, "master.lua"), "w") as f:
            f.write(LIVE_CONFIG % {"pb": self.master.pb_port, "www": self.port,
                                   "ansi": ansi, "gate": self.gate})
        self.master.start()
        self.worker = Worker(base / "worker", "w1", "w1pass", self.master.pb_port).start()
        self.master.wait_log(r"worker 'w1' attached")

    def force(self, builder):
        status, body = api_rpc(self.port, "forceschedulers/force", "force",
                               builderNames=[builder])
        assert status == 200, body
        return list(body["result"][1].values())[0]

    def build_of(self, brid):
        builds = api_get(self.port, f"buildrequests/{brid}/builds")["builds"]
        return builds[0] if builds else None

    def close(self):
        self.worker.kill()
        stop(self.master)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A master with a real buildbot-worker; the "ansi" and "million" builds are done once."""
    s = Live(tmp_path_factory.mktemp("live"))
    brids = [s.force("ansi"), s.force("million")]
    for brid in brids:
        wait_for(lambda: api_get(s.port, f"buildrequests/{brid}")["buildrequests"][0]
                 ["complete"], what=f"build request {brid}")
    s.ansi, s.million = (s.build_of(brid) for brid in brids)
    yield s
    s.close()


def chrome(javascript=True, width=1200, height=900):
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--window-size={width},{height}"):
        o.add_argument(a)
    if not javascript:
        o.add_experimental_option("prefs",
                                  {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)


@pytest.fixture(scope="module")
def browser():
    d = chrome()
    yield d
    d.quit()
    if SHOTS:
        print(f"screenshots in {SHOTS[0]}")


def shot(d, name):
    """Saves a screenshot: in $BBM_SCREENSHOTS when set (the README's come from there), else
    in a temporary directory."""
    if not SHOTS:
        where = os.environ.get("BBM_SCREENSHOTS")
        if where:
            os.makedirs(where, exist_ok=True)
        SHOTS.append(where or tempfile.mkdtemp(prefix="bbm-ui-shots-"))
    d.save_screenshot(os.path.join(SHOTS[0], name + ".png"))


def until(d, fn, what):
    return WebDriverWait(d, WAIT, poll_frequency=0.1).until(lambda _: fn(), message=what)


def text(d, css):
    """The text of the first element `css` selects, or None (read at once: the page may
    replace its elements at any time)."""
    return d.execute_script("var e = document.querySelector(arguments[0]);"
                            "return e ? e.textContent : null", css)


def follow_shown(d):
    return d.execute_script("return Array.from(document.querySelectorAll('.lv-bar button'))"
                            ".some(function(b){return b.textContent == 'Follow' && !b.hidden})")


def hl_lines(d):
    """(line number, text) of the highlighted lines the viewer shows."""
    return d.execute_script(
        "return Array.from(document.querySelectorAll('.lv .ln.hl')).map("
        "function(l){return [+l.querySelector('.no').textContent,"
        " l.textContent.slice(l.querySelector('.no').textContent.length)]})")


def in_view(d, n):
    """Line n is drawn inside the viewer's box and inside the window."""
    return d.execute_script(
        "var n=arguments[0], box=document.querySelector('.lv');"
        "var l=Array.from(box.querySelectorAll('.ln')).find(function(x){"
        " return x.querySelector('.no').textContent==String(n)});"
        "if(!l) return false; var r=l.getBoundingClientRect(), b=box.getBoundingClientRect();"
        "return r.top>=b.top && r.bottom<=b.bottom && r.top>=0 && r.bottom<=innerHeight;", n)


def lines_of(port, logid):
    """The log's lines as the API gives them (stdio: channel first)."""
    j = api_get(port, f"logs/{logid}/contents")
    return j["logchunks"][0]["content"].split("\n")[:-1]


def endpoint_answers(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30):
            return True
    except urllib.error.HTTPError as e:
        return e.code != 404


def test_old_hash_links_land_on_their_pages(fixture_site, browser):
    """Buildbot's links (/#/..., /all/#/...) are turned into the pages' paths before the
    page loads, query included, whether or not a page is there yet."""
    base = f"http://127.0.0.1:{fixture_site}"
    for old, new in [("/#/builders/1/builds/1", "/builders/1/builds/1"),
                     ("/all/#/builders?tags=%2Bx", "/builders?tags=%2Bx"),
                     ("/#/workers/1", "/workers/1"),
                     ("/all/#/grid?branch=main", "/grid?branch=main")]:
        browser.get(base + old)
        until(browser, lambda: browser.current_url == base + new, f"{old} -> {new}")
    browser.get(base + "/#/builders/1/builds/1")
    until(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#steps li"), "the steps")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("alpha #1")


def test_log_anchor_opens_highlighted_in_view(fixture_site, browser):
    """#L500 on a 20,013-line log: the viewer reads the lines around it, highlights the
    line and shows it; #L15000 is past what the server rendered; a range #L10-L12."""
    base = f"http://127.0.0.1:{fixture_site}/builders/1/builds/1/steps/7/logs/stdio"
    lines = lines_of(fixture_site, 8)
    browser.get(base + "#L500")
    until(browser, lambda: hl_lines(browser) == [[500, lines[499][1:]]], "line 500 highlighted")
    assert in_view(browser, 500)
    shot(browser, "log-L500")
    # a new anchor in the same page
    browser.execute_script("location.hash = '#L15000'")
    until(browser, lambda: hl_lines(browser) == [[15000, lines[14999][1:]]], "line 15000")
    assert in_view(browser, 15000)
    browser.get(base + "#L10-L12")
    until(browser, lambda: [n for n, _ in hl_lines(browser)] == [10, 11, 12], "lines 10-12")
    # clicking a line number sets the anchor, shift-click a range
    def number(i):
        return browser.find_elements(By.CSS_SELECTOR, ".lv .ln .no")[i]
    first = int(number(5).text)
    number(5).click()
    until(browser, lambda: browser.execute_script("return location.hash") == f"#L{first}",
          "the clicked line's anchor")
    webdriver.ActionChains(browser).key_down("\ue008").click(number(8)).key_up("\ue008") \
        .perform()
    until(browser, lambda: browser.execute_script("return location.hash")
          == f"#L{first}-L{first + 3}", "a range")
    assert [n for n, _ in hl_lines(browser)] == list(range(first, first + 4))
    # the end: the last line drawn at the bottom of the box
    browser.find_element(By.XPATH, "//button[text()='End']").click()
    until(browser, lambda: in_view(browser, len(lines)), "the last line")


def test_ansi_lines_and_first_failure(live, browser):
    """A real build's output with ANSI escapes: the viewer draws the classes the server
    uses, carries a colour across lines, keeps what follows '\\r', leaves markup as text;
    'First failure' finds the regrtest marker."""
    logs = api_get(live.port, f"builds/{live.ansi['buildid']}/steps/1/logs")["logs"]
    log = logs[0]
    lines = lines_of(live.port, log["logid"])
    at = next(i for i, line in enumerate(lines) if "bold red" in line) + 1
    page = (f"http://127.0.0.1:{live.port}/builders/{live.ansi['builderid']}/builds/"
            f"{live.ansi['number']}/steps/1/logs/{log['slug']}")
    browser.get(f"{page}#L{at}")
    until(browser, lambda: hl_lines(browser) == [[at, "bold red after"]], "the red line")
    spans = browser.execute_script(
        "var r={}; document.querySelectorAll('.lv .ln').forEach(function(l){"
        " r[l.querySelector('.no').textContent]=[l.className, Array.from(l.childNodes).slice(1)"
        ".map(function(c){return [c.className||'', c.textContent, c.nodeName]})]}); return r")
    assert spans[str(at)] == ["ln o hl", [["a-f2 a-bold", "bold red", "SPAN"],
                                          ["", " after", "#text"]]]
    assert spans[str(at + 1)][1] == [["a-f3", "green across", "SPAN"]]
    assert spans[str(at + 2)][1] == [["a-f3", "still green", "SPAN"],
                                     ["", " plain again", "#text"]]
    # the master splits lines at a lone '\r', as Buildbot does
    assert spans[str(at + 3)][1] == [["", "progress 10%", "#text"]]
    assert spans[str(at + 4)][1] == [["", "progress 100%", "#text"]]
    assert spans[str(at + 5)][1] == [["", "<b>not bold</b> &amp; <script>x</script>", "#text"]]
    assert spans[str(at + 6)][1] == [["", "osc gone", "#text"]]
    shot(browser, "log-ansi")
    fail = next(i for i, line in enumerate(lines) if line.startswith("oFAIL: ")) + 1
    browser.find_element(By.XPATH, "//button[text()='First failure']").click()
    until(browser, lambda: hl_lines(browser) == [[fail, lines[fail - 1][1:]]],
          "the failure line")
    assert in_view(browser, fail)
    # wrapping keeps the lines and their numbers
    browser.find_element(By.XPATH, "//button[text()='Wrap']").click()
    until(browser, lambda: in_view(browser, fail), "the failure line, wrapped")


def test_a_million_lines(live, browser):
    """A log of 1,000,000 lines is taller than a browser can scroll at 18 px a line: the
    scroller is scaled, and an anchor near the end and the last line still land."""
    log = api_get(live.port, f"builds/{live.million['buildid']}/steps/1/logs")["logs"][0]
    total = log["num_lines"]
    assert total > 1000000
    page = (f"http://127.0.0.1:{live.port}/builders/{live.million['builderid']}/builds/"
            f"{live.million['number']}/steps/1/logs/stdio")
    first = api_get(live.port, f"logs/{log['logid']}/contents?offset=0&limit=200")
    head = first["logchunks"][0]["content"].index("\no1\n") + 1
    head = first["logchunks"][0]["content"][:head].count("\n")  # header lines
    n = total - 1000
    browser.get(f"{page}#L{n}")
    until(browser, lambda: hl_lines(browser) == [[n, str(n - head)]], f"line {n}")
    assert in_view(browser, n)
    height = browser.execute_script("return document.querySelector('.lv').scrollHeight")
    assert height < 15.1e6, height
    # half way down the scroller: half way through the lines, each read from the server
    browser.execute_script("var b=document.querySelector('.lv');"
                           "b.scrollTop=(b.scrollHeight-b.clientHeight)/2")

    def shown():
        return browser.execute_script(
            "return Array.from(document.querySelectorAll('.lv .ln:not(.wait)')).map("
            "function(l){var no=l.querySelector('.no').textContent;"
            " return [+no, l.textContent.slice(no.length)]})")

    def half_way():
        lines = shown()
        return lines if len(lines) > 10 and abs(lines[0][0] - total // 2) < 100 else None
    lines = until(browser, half_way, "the lines half way")
    assert all(text == str(no - head) for no, text in lines), lines
    browser.find_element(By.XPATH, "//button[text()='End']").click()
    until(browser, lambda: in_view(browser, total), "the last line")
    shot(browser, "log-million")


def test_log_search(live, browser):
    """The search box asks the server and lists the matches; next and previous move to
    them."""
    log = api_get(live.port, f"builds/{live.ansi['buildid']}/steps/1/logs")["logs"][0]
    if not endpoint_answers(live.port, f"/logs/{log['logid']}/search?q=x"):
        pytest.skip("no /logs/N/search on this master")
    lines = lines_of(live.port, log["logid"])
    want = [i + 1 for i, line in enumerate(lines) if re.search(r"filler 11\d\d$", line)]
    page = (f"http://127.0.0.1:{live.port}/builders/{live.ansi['builderid']}/builds/"
            f"{live.ansi['number']}/steps/1/logs/{log['slug']}")
    browser.get(page)
    box = browser.find_element(By.CSS_SELECTOR, ".lv-search input[type=search]")
    box.send_keys("filler 11\\d\\d$")
    browser.find_element(By.CSS_SELECTOR, ".lv-search input[name=re]").click()
    box.submit()
    until(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, ".lv-res li")) == 100,
          "100 matches")
    until(browser, lambda: hl_lines(browser) == [[want[0], f"filler {1100}"]], "the first")
    browser.find_element(By.XPATH, "//button[@title='next match']").click()
    until(browser, lambda: hl_lines(browser) == [[want[1], "filler 1101"]], "the second")
    browser.find_element(By.XPATH, "//button[@title='previous match']").click()
    until(browser, lambda: hl_lines(browser) == [[want[0], "filler 1100"]], "back")
    browser.find_elements(By.CSS_SELECTOR, ".lv-res li")[50].click()
    until(browser, lambda: hl_lines(browser) == [[want[50], "filler 1150"]], "a listed one")
    assert in_view(browser, want[50])
    shot(browser, "log-search")


def test_running_build_followed_without_reload(live, browser):
    """While a real worker runs a build, its page, its log and the home page follow it in
    place: the step, status and result change to success without a reload."""
    base = f"http://127.0.0.1:{live.port}"
    browser.get(base + "/")
    home = browser.current_window_handle
    browser.execute_script("window.stayed = 1")
    assert browser.find_elements(By.CSS_SELECTOR, "#running tr[data-build]") == []
    brid = live.force("gated")
    wait_for(lambda: live.build_of(brid) is not None, what="the gated build")
    build = live.build_of(brid)
    logid = None

    def log_started():
        nonlocal logid
        logs = api_get(live.port, f"builds/{build['buildid']}/steps/1/logs")["logs"]
        if logs and logs[0]["num_lines"] > 0:
            logid = logs[0]["logid"]
        return logid is not None
    wait_for(log_started, what="the step's log")
    until(browser, lambda: browser.find_elements(
        By.CSS_SELECTOR, f"#running tr[data-build='{build['buildid']}']"), "home: running")
    shot(browser, "home-running")
    page = f"{base}/builders/{build['builderid']}/builds/{build['number']}"
    browser.switch_to.new_window("tab")
    browser.get(page)
    assert text(browser, "#result") == "running"
    browser.execute_script("window.stayed = 1")
    browser.switch_to.new_window("tab")
    browser.get(page + "/steps/1/logs/stdio")
    browser.execute_script("window.stayed = 1")
    until(browser, lambda: "tick 1" in text(browser, ".lv"), "the log so far")
    assert follow_shown(browser)
    shot(browser, "log-running")
    open(live.gate, "w").close()  # the step ends
    until(browser, lambda: "tick 2" in text(browser, ".lv"), "the log's new line")
    until(browser, lambda: not follow_shown(browser), "the log complete")
    assert browser.execute_script("return window.stayed") == 1
    browser.switch_to.window(browser.window_handles[1])
    until(browser, lambda: text(browser, "#result") == "success", "build page: success")
    assert text(browser, "#steps li .pill") == "success"
    assert text(browser, "#actions button") == "Rebuild"  # was Stop while it ran
    assert browser.execute_script("return window.stayed") == 1
    shot(browser, "build-done")
    browser.close()
    browser.switch_to.window(browser.window_handles[-1])
    browser.close()
    browser.switch_to.window(home)
    until(browser, lambda: not browser.find_elements(By.CSS_SELECTOR, "#running tr[data-build]"),
          "home: nothing running")
    assert text(browser, "#recent tbody tr").startswith("gated")
    assert browser.execute_script("return window.stayed") == 1


def test_pages_read_without_javascript(fixture_site):
    """JavaScript off: the build page and the log page are whole as the server wrote them."""
    d = chrome(javascript=False)
    try:
        base = f"http://127.0.0.1:{fixture_site}"
        d.get(base + "/builders/1/builds/1")
        steps = d.find_elements(By.CSS_SELECTOR, "#steps > li")
        assert len(steps) > 3 and "big-output" in d.find_element(By.ID, "steps").text
        assert d.find_element(By.ID, "result").text == "success"
        shot(d, "nojs-build")
        d.get(base + "/builders/1/builds/1/steps/7/logs/stdio?page=1")
        assert d.find_element(By.ID, "L1001").text == "1001output line number 990"
        assert d.find_elements(By.CSS_SELECTOR, ".lv") == []
        assert "page 2 of 21" in d.find_element(By.CSS_SELECTOR, "nav.pager").text
        shot(d, "nojs-log")
    finally:
        d.quit()


def test_phone_pages_do_not_overflow(fixture_site, live):
    """A 375x812 window: no page is wider than the screen (wide content scrolls in its
    own box)."""
    d = chrome(width=375, height=812)
    try:
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True})
        pages = [(fixture_site, "/", "home"), (fixture_site, "/builders", "builders"),
                 (fixture_site, "/builders/1", "builder"),
                 (fixture_site, "/builders/1/builds/1", "build"),
                 (fixture_site, "/builders/4/builds/1", "build-exception"),
                 (fixture_site, "/builders/1/builds/1/steps/7/logs/stdio", "log"),
                 (live.port, f"/builders/{live.ansi['builderid']}/builds/"
                             f"{live.ansi['number']}/steps/1/logs/stdio", "log-ansi")]
        for port, path, name in pages:
            d.get(f"http://127.0.0.1:{port}{path}")
            if "/logs/" in path:
                until(d, lambda: d.find_elements(By.CSS_SELECTOR, ".lv .ln:not(.wait)"),
                      "the log lines")
            width = d.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
            shot(d, "phone-" + name)
            assert width[0] <= width[1] == 375, (path, width)
    finally:
        d.quit()
