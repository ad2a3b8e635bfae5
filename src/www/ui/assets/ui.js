/* bbmaster's web UI: progressive enhancement over server-rendered pages.
   Times in the viewer's zone and relative ages; a running build's page and
   the home page's running builds refresh in place; a log page becomes a
   viewer of the whole log.  Everything reads without it.  Hand-written
   ES2017, no eval, no inline script, nothing but same-origin requests. */
"use strict";
(function () {
  var $ = function (sel, root) { return (root || document).querySelector(sel); };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function rel(s) {
    var a = Math.abs(s), u;
    if (a < 60) u = Math.round(a) + " s";
    else if (a < 3600) u = Math.round(a / 60) + " min";
    else if (a < 86400) u = Math.round(a / 3600) + " h";
    else u = Math.round(a / 86400) + " d";
    return s >= 0 ? u + " ago" : "in " + u;
  }
  function times(root) {
    var now = Date.now() / 1000;
    (root || document).querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      t.title = d.toLocaleString();
      t.textContent = rel(now - d.getTime() / 1000);
    });
  }
  times();
  setInterval(times, 30000);

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { var e = new Error("HTTP " + r.status); e.status = r.status; throw e; }
      return r.json();
    });
  }

  /* Calls `refresh` every `ms` while the page is shown, or on each message of the
     event stream of `topics` when /events answers (polling again if it goes).
     `refresh` returns a promise of false once there is nothing more to follow. */
  function live(topics, ms, refresh) {
    var timer = null, busy = false, done = false, es = null, again = false;
    function run() {
      if (done) return;
      if (busy) { again = true; return; }
      if (document.hidden) return;
      busy = true;
      Promise.resolve().then(refresh).then(function (more) {
        if (more === false) stop();
      }, function () {}).then(function () {
        busy = false;
        if (again) { again = false; run(); }
      });
    }
    function poll(every) {
      clearInterval(timer);
      timer = done ? null : setInterval(run, every);
    }
    function stop() {
      done = true;
      clearInterval(timer);
      if (es) es.close();
    }
    document.addEventListener("visibilitychange", function () { if (!document.hidden) run(); });
    poll(ms);
    if (window.EventSource && topics.length) {
      es = new EventSource("/events?" + topics.map(function (t) {
        return "topic=" + encodeURIComponent(t);
      }).join("&"));
      es.onopen = function () { poll(Math.max(ms, 15000)); run(); };
      es.onmessage = run;
      es.addEventListener("resync", run);
      es.onerror = function () { poll(ms); }; /* no stream here, or it is away: poll */
    }
    return { run: run, stop: stop };
  }

  /* Replaces each element of `sels` (selectors) with its counterpart in a fresh copy
     of this page, <details> kept open or closed as they were; false once `doneSel`
     (the mark of a page still changing) is gone. */
  function swapper(sels, doneSel) {
    return function () {
      return fetch(location.pathname + location.search, { credentials: "same-origin" })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.text();
        }).then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          sels.forEach(function (sel) {
            var old = $(sel), nu = $(sel, doc);
            if (!old || !nu) return;
            var open = {};
            old.querySelectorAll("details[open]").forEach(function (d) {
              var li = d.closest("[id]"); if (li) open[li.id] = 1;
            });
            old.querySelectorAll("details:not([open])").forEach(function (d) {
              var li = d.closest("[id]"); if (li) open[li.id] = 0;
            });
            nu = document.importNode(nu, true);
            nu.querySelectorAll("details").forEach(function (d) {
              var li = d.closest("[id]");
              if (li && li.id in open) d.open = !!open[li.id];
            });
            times(nu);
            old.replaceWith(nu);
          });
          return doneSel ? !!$(doneSel, doc) : true;
        });
    };
  }

  /* A running build's page: its steps, status and result follow the build. */
  var build = $("div[data-build]");
  if (build && build.getAttribute("data-complete") === "0") {
    var bid = build.getAttribute("data-build");
    live(["builds/" + bid + "/*", "builds/" + bid + "/steps/*/*"], 3000,
      swapper(["#result", "dl.kv", "#actions", "#steps"], 'div[data-build][data-complete="0"]'));
  }
  /* The home page: what runs now and what finished last. */
  if ($("#running")) {
    live(["builds/*/*"], 3000, swapper(["#running", "#recent"]));
  }

  /* ANSI SGR colours and styles, as ansi.c: the state carries from line to line. */
  var FG = 0x1f, BG = 0x1f << 5, BOLD = 1 << 10, DIM = 1 << 11, IT = 1 << 12, UL = 1 << 13;
  function sgr(st, p) {
    if (!p.length) return 0;
    for (var i = 0; i < p.length; i++) {
      var v = p[i];
      if (v === 0) st = 0;
      else if (v === 1) st |= BOLD;
      else if (v === 2) st |= DIM;
      else if (v === 3) st |= IT;
      else if (v === 4) st |= UL;
      else if (v === 22) st &= ~(BOLD | DIM);
      else if (v === 23) st &= ~IT;
      else if (v === 24) st &= ~UL;
      else if (v >= 30 && v <= 37) st = (st & ~FG) | (v - 29);
      else if (v >= 90 && v <= 97) st = (st & ~FG) | (v - 81);
      else if (v === 39) st &= ~FG;
      else if (v >= 40 && v <= 47) st = (st & ~BG) | ((v - 39) << 5);
      else if (v >= 100 && v <= 107) st = (st & ~BG) | ((v - 91) << 5);
      else if (v === 49) st &= ~BG;
      else if ((v === 38 || v === 48) && i + 1 < p.length) i += p[i + 1] === 5 ? 2 : p[i + 1] === 2 ? 4 : 1;
    }
    return st;
  }
  function classes(st) {
    var c = [];
    if (st & FG) c.push("a-f" + (st & FG));
    if (st & BG) c.push("a-b" + ((st & BG) >> 5));
    if (st & BOLD) c.push("a-bold");
    if (st & DIM) c.push("a-dim");
    if (st & IT) c.push("a-it");
    if (st & UL) c.push("a-ul");
    return c.join(" ");
  }
  /* The end of the escape sequence at s[i] (an ESC), and for SGR its parameters. */
  function escape(s, i) {
    var len = s.length, j;
    if (i + 1 >= len) return [len];
    var k = s.charAt(i + 1);
    if (k === "]") { /* OSC: up to BEL or ESC \ */
      for (j = i + 2; j < len; j++) {
        if (s.charAt(j) === "\x07") return [j + 1];
        if (s.charAt(j) === "\x1b" && s.charAt(j + 1) === "\\") return [j + 2];
      }
      return [len];
    }
    if (k !== "[") return [i + 2];
    var p = [], cur = 0, have = false;
    for (j = i + 2; j < len; j++) {
      var c = s.charCodeAt(j);
      if (c >= 48 && c <= 57) {
        if (cur < 100000) cur = cur * 10 + c - 48;
        have = true;
      } else if (c === 59 || c === 58) {
        if (p.length < 16) p.push(have ? cur : 0);
        cur = 0;
        have = false;
      } else if (c >= 0x40 && c <= 0x7e) {
        if ((have || p.length) && p.length < 16) p.push(cur);
        return [j + 1, c === 109 ? p : null];
      } else if (c < 0x20 || c > 0x7e) {
        return [j]; /* not a sequence after all */
      }
    }
    return [len];
  }
  /* One line: [[[state, text]...], the state after it].  A carriage return followed by
     text starts the line again, as a terminal shows it. */
  function ansi(s, st) {
    var segs = [], i = 0, len = s.length;
    while (i < len) {
      var j = i, c;
      while (j < len && (c = s.charAt(j)) !== "\x1b" && c !== "\r") j++;
      if (j > i) segs.push([st, s.slice(i, j)]);
      if (j === len) break;
      if (c === "\r") {
        i = j + 1;
        if (i < len) segs = [];
        continue;
      }
      var e = escape(s, j);
      i = e[0];
      if (e[1]) st = sgr(st, e[1]);
    }
    return [segs, st];
  }

  /* The log page's viewer (#viewer: data-logid, data-lines, data-complete, data-type,
     and optionally data-fail-patterns, a JSON list of regular expressions for "First
     failure").  A scroller of fixed-height lines drawing only those in view, read from
     /api/v2/logs/N/contents in windows of BLK lines, at most MAXB windows kept; a log
     taller than MAXH pixels is scrolled in proportion.  Anchors #L12 and #L10-L20,
     search on the server (/logs/N/search), and the end of a log still being written. */
  function logViewer(viewer) {
    var logid = viewer.getAttribute("data-logid");
    var total = +viewer.getAttribute("data-lines") || 0;
    var complete = viewer.getAttribute("data-complete") === "1";
    var stdio = (viewer.getAttribute("data-type") || "s") === "s";
    var failPats;
    try { failPats = JSON.parse(viewer.getAttribute("data-fail-patterns") || "null"); } catch (e) { failPats = null; }
    if (!Array.isArray(failPats) || !failPats.length) {
      failPats = ["^(FAIL|ERROR): ", "^Traceback \\(most recent call last\\)", "^\\d+ tests? failed",
        "== Tests result: FAILURE"];
    }
    var failRe = new RegExp(failPats.join("|"));
    var BLK = 2000, MAXB = 10, MAXH = 15e6;
    var blocks = new Map(); /* block number -> {lines, parsed, st0, st1} */
    var lh = 18, hlA = -1, hlB = -1, wrap = false, follow = false, touched = 0;

    /* The frame: a bar of controls, the search results, and the scroller. */
    document.querySelectorAll("nav.pager").forEach(function (n) { n.hidden = true; });
    var bar = el("div", "bar lv-bar");
    function button(label, title, fn) {
      var b = el("button", null, label);
      b.type = "button";
      b.title = title;
      b.addEventListener("click", fn);
      bar.appendChild(b);
      return b;
    }
    var form = el("form", "lv-search");
    form.setAttribute("role", "search");
    var q = el("input");
    q.type = "search"; q.name = "q"; q.placeholder = "Search the log"; q.setAttribute("aria-label", "search");
    function check(name, label) {
      var l = el("label", null, " " + label), c = el("input");
      c.type = "checkbox"; c.name = name;
      l.insertBefore(c, l.firstChild);
      return l;
    }
    var reBox = check("re", "regex"), caseBox = check("case", "case");
    var go = el("button", null, "Search");
    var prev = el("button", null, "\u2191"), next = el("button", null, "\u2193");
    prev.type = next.type = "button";
    prev.title = "previous match"; next.title = "next match";
    var found = el("span", "mut lv-found");
    [q, reBox, caseBox, go, prev, next, found].forEach(function (x) { form.appendChild(x); });
    bar.appendChild(form);
    button("End", "jump to the last line", function () { setFollow(false); goLine(total - 1, false); });
    button("First failure", "jump to the first line that reports a failure", firstFailure);
    var wrapBtn = button("Wrap", "wrap long lines", function () {
      wrap = !wrap;
      wrapBtn.setAttribute("aria-pressed", wrap);
      box.classList.toggle("wrapped", wrap);
      draw();
    });
    wrapBtn.setAttribute("aria-pressed", "false");
    var followBtn = button("Follow", "follow the end of the log as it grows", function () {
      setFollow(!follow);
    });
    var status = el("span", "mut lv-status");
    bar.appendChild(status);
    var results = el("ol", "lv-res");
    results.hidden = true;

    var box = el("div", "log lv");
    box.tabIndex = 0;
    box.setAttribute("aria-label", "log lines");
    var space = el("div", "lv-space"), win = el("div", "lv-win");
    space.appendChild(win);
    box.appendChild(space);
    viewer.textContent = "";
    viewer.appendChild(bar);
    viewer.appendChild(results);
    viewer.appendChild(box);
    var probe = el("span", "ln", "0");
    win.appendChild(probe);
    lh = probe.getBoundingClientRect().height || 18;
    win.textContent = "";

    function setFollow(on) {
      follow = on && !complete;
      followBtn.setAttribute("aria-pressed", follow);
      followBtn.hidden = complete;
      if (follow) goLine(total - 1, false);
    }

    /* Geometry: line t (fractional) at the top of the view <-> scrollTop. */
    function rows() { return Math.max(1, Math.floor(box.clientHeight / lh)); }
    function height() { return Math.min(total * lh, MAXH); }
    function scaled() { return total * lh > MAXH; }
    function topLine() {
      var span = Math.max(0, total - rows());
      if (!scaled()) return Math.min(box.scrollTop / lh, span);
      var room = height() - box.clientHeight;
      return room > 0 ? box.scrollTop / room * span : 0;
    }
    function scrollFor(t) {
      var span = Math.max(0, total - rows());
      t = Math.max(0, Math.min(t, span));
      if (!scaled()) return t * lh;
      return span > 0 ? t / span * (height() - box.clientHeight) : 0;
    }
    function atEnd() { return box.scrollTop + box.clientHeight >= height() - 2; }

    /* Lines in memory: blocks of BLK lines, at most MAXB of them, the least recently
       used dropped first. */
    function want(k) {
      if (k < 0 || k * BLK >= total) return;
      var b = blocks.get(k);
      if (b) { blocks.delete(k); blocks.set(k, b); return; } /* used now */
      b = { lines: null };
      blocks.set(k, b);
      getJSON("/api/v2/logs/" + logid + "/contents?offset=" + k * BLK + "&limit=" + BLK)
        .then(function (j) {
          var c = j.logchunks && j.logchunks[0] ? j.logchunks[0].content : "";
          var lines = c.split("\n");
          lines.pop();
          b.lines = lines;
          status.textContent = "";
          if (k * BLK < shown[1] && (k + 1) * BLK > shown[0]) draw(); /* it is in view */
        }, function () {
          status.textContent = "could not read lines; retrying";
          setTimeout(function () { if (blocks.get(k) === b) blocks.delete(k); draw(); }, 2000);
        });
      while (blocks.size > MAXB) blocks.delete(blocks.keys().next().value);
    }
    function loaded(k) { var b = blocks.get(k); return b && b.lines ? b : null; }
    /* Parsed lines of block k, its ANSI state carried from block k-1 when it is here. */
    function parsed(k) {
      var b = loaded(k);
      if (!b) return null;
      var st = 0;
      if (k > 0 && loaded(k - 1)) st = parsed(k - 1).st1;
      if (!b.parsed || b.st0 !== st || b.parsed.length !== b.lines.length) {
        b.st0 = st;
        b.parsed = b.lines.map(function (line) {
          var ch = "o";
          if (stdio && line) {
            var c = line.charAt(0);
            ch = c === "e" || c === "h" ? c : "o";
            line = line.slice(1);
          }
          var r = ansi(line, st);
          st = r[1];
          return [ch, r[0]];
        });
        b.st1 = st;
      }
      return b;
    }
    function lineNode(n, p) {
      var s = el("span", "ln " + p[0]);
      if (n >= hlA && n <= hlB) s.classList.add("hl");
      var a = el("a", "no", String(n + 1));
      a.href = "#L" + (n + 1);
      s.appendChild(a);
      p[1].forEach(function (seg) {
        if (seg[0]) s.appendChild(el("span", classes(seg[0]), seg[1]));
        else s.appendChild(document.createTextNode(seg[1]));
      });
      return s;
    }

    var drawn = false, shown = [0, 0]; /* the lines drawn: [first, last + 1) */
    function draw() {
      if (drawn) return;
      drawn = true;
      requestAnimationFrame(function () { drawn = false; paint(); });
    }
    function paint() {
      space.style.height = height() + "px";
      var t = topLine(), first = Math.floor(t), n = rows() + 2;
      var end = wrap && atEnd() && total > 0;
      if (end) first = Math.max(0, total - n);
      var last = Math.min(total, first + n);
      shown = [first, last];
      for (var k = Math.floor(first / BLK); k * BLK < last; k++) want(k);
      /* a window of BLK lines around the view, fetched ahead */
      var f0 = Math.floor((first - BLK / 2) / BLK), f1 = Math.floor((last + BLK / 2) / BLK);
      for (k = f0; k <= f1; k++) if (blocks.size < MAXB && !blocks.has(k)) want(k);
      var frag = document.createDocumentFragment();
      for (var i = first; i < last; i++) {
        var b = parsed(Math.floor(i / BLK)), p = b && b.parsed[i % BLK];
        if (p) frag.appendChild(lineNode(i, p));
        else {
          var s = el("span", "ln wait");
          s.appendChild(el("a", "no", String(i + 1)));
          frag.appendChild(s);
        }
      }
      win.textContent = "";
      win.appendChild(frag);
      var top = box.scrollTop - (wrap ? 0 : (t - first) * lh);
      if (end) top = box.scrollTop + box.clientHeight - win.offsetHeight;
      win.style.top = Math.max(0, top) + "px";
    }

    /* Puts line n (from 0) in view: at the middle, or else at the bottom. */
    function goLine(n, middle) {
      n = Math.max(0, Math.min(n, total - 1));
      space.style.height = height() + "px";
      box.scrollTop = n >= total - 1 && !middle ? height() : scrollFor(middle ? n - rows() / 2 : n - rows() + 1);
      var r = box.getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight) box.scrollIntoView({ block: "nearest" });
      paint();
    }
    function fromHash() {
      var m = /^#L(\d+)(?:-L?(\d+))?$/.exec(location.hash);
      if (!m) return false;
      var a = +m[1] - 1, b = m[2] ? +m[2] - 1 : a;
      hlA = Math.min(a, b); hlB = Math.max(a, b);
      setFollow(false);
      goLine(hlA, true);
      return true;
    }
    box.addEventListener("click", function (e) {
      var a = e.target.closest("a.no");
      if (!a) return;
      e.preventDefault();
      var n = +a.textContent - 1;
      if (e.shiftKey && hlA >= 0) {
        hlA = Math.min(hlA, n); hlB = Math.max(hlB, n);
        if (n > hlA && n < hlB) hlB = n;
      } else {
        hlA = hlB = n;
      }
      history.replaceState(null, "", hlA === hlB ? "#L" + (hlA + 1) : "#L" + (hlA + 1) + "-L" + (hlB + 1));
      paint();
    });
    window.addEventListener("hashchange", fromHash);
    box.addEventListener("scroll", function () {
      if (follow && Date.now() - touched < 1000 && !atEnd()) setFollow(false);
      draw();
    });
    ["wheel", "touchstart", "keydown", "mousedown"].forEach(function (ev) {
      box.addEventListener(ev, function () { touched = Date.now(); }, { passive: true });
    });
    window.addEventListener("resize", draw);

    /* The log as it grows. */
    function grew(n, done) {
      if (n !== total) {
        var k = Math.floor(Math.max(0, total - 1) / BLK);
        for (; k * BLK < n; k++) blocks.delete(k); /* the partial block, read again */
        total = n;
        var sp = $("#logbar .mut");
        if (sp) sp.textContent = total + " lines";
      }
      if (done && !complete) {
        complete = true;
        setFollow(false);
      }
      if (follow) goLine(total - 1, false);
      else draw();
    }
    if (!complete) {
      live(["logs/" + logid + "/*"], 2000, function () {
        return getJSON("/api/v2/logs/" + logid).then(function (j) {
          var l = j.logs[0];
          grew(l.num_lines, l.complete);
          return !l.complete;
        });
      });
    }

    /* Search on the server: results as links, next and previous. */
    var matches = [], cur = -1, more = null, qs = "";
    function query() {
      return "/logs/" + logid + "/search?q=" + encodeURIComponent(q.value) +
        "&re=" + (reBox.firstChild.checked ? 1 : 0) + "&case=" + (caseBox.firstChild.checked ? 1 : 0) +
        "&limit=100";
    }
    function showMatch(i) {
      if (!matches.length) return;
      cur = (i + matches.length) % matches.length;
      results.querySelectorAll(".cur").forEach(function (x) { x.classList.remove("cur"); });
      var li = results.children[cur];
      if (li) { li.classList.add("cur"); li.scrollIntoView({ block: "nearest" }); }
      hlA = hlB = matches[cur].line;
      history.replaceState(null, "", "#L" + (hlA + 1));
      setFollow(false);
      goLine(hlA, true);
      found.textContent = (cur + 1) + " / " + matches.length + (more != null ? "+" : "");
    }
    function fetchMore() {
      var s = qs;
      found.textContent = "searching\u2026";
      return getJSON(s + "&from=" + more).then(function (j) {
        if (s !== qs) return;
        j.matches.forEach(function (m) {
          matches.push(m);
          var li = el("li"), a = el("a", "no", String(m.line + 1));
          a.href = "#L" + (m.line + 1);
          li.appendChild(a);
          li.appendChild(el("span", m.stream === "e" ? "e" : null, m.text));
          results.appendChild(li);
        });
        more = j.next;
        results.hidden = !matches.length;
        /* the server scans a while per request: go on while nothing is found */
        if (!matches.length && more != null) return fetchMore();
        found.textContent = matches.length ? (cur + 1) + " / " + matches.length + (more != null ? "+" : "")
          : "no match";
      }, function (e) {
        found.textContent = e.status === 404 ? "search unavailable" : "search failed";
        more = null;
      });
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!q.value) return;
      matches = []; cur = -1; more = 0;
      results.textContent = "";
      qs = query();
      fetchMore().then(function () { if (matches.length) showMatch(0); });
    });
    next.addEventListener("click", function () {
      if (cur + 1 >= matches.length && more != null) fetchMore().then(function () { showMatch(cur + 1); });
      else showMatch(cur + 1);
    });
    prev.addEventListener("click", function () { showMatch(cur - 1); });
    results.addEventListener("click", function (e) {
      var li = e.target.closest("li");
      if (!li) return;
      e.preventDefault();
      showMatch(Array.prototype.indexOf.call(results.children, li));
    });

    /* The first line that says a test failed: asked of the search endpoint, else read
       window by window here. */
    function firstFailure() {
      status.textContent = "looking for a failure\u2026";
      var base = "/logs/" + logid + "/search?re=1&case=1&limit=1&q=" + encodeURIComponent(failPats.join("|"));
      function land(n) {
        if (n == null) { status.textContent = "no failure found"; return; }
        status.textContent = "";
        hlA = hlB = n;
        history.replaceState(null, "", "#L" + (n + 1));
        setFollow(false);
        goLine(n, true);
      }
      function server(from) {
        return getJSON(base + "&from=" + from).then(function (j) {
          if (j.matches.length) return j.matches[0].line;
          return j.next != null ? server(j.next) : null;
        });
      }
      function local(from) {
        if (from >= total) return Promise.resolve(null);
        return getJSON("/api/v2/logs/" + logid + "/contents?offset=" + from + "&limit=" + BLK).then(function (j) {
          var lines = (j.logchunks[0] ? j.logchunks[0].content : "").split("\n");
          lines.pop();
          for (var i = 0; i < lines.length; i++) {
            if (failRe.test(stdio ? lines[i].slice(1) : lines[i])) return from + i;
          }
          return lines.length ? local(from + lines.length) : null;
        });
      }
      server(0).catch(function (e) {
        if (e.status === 404) return local(0);
        throw e;
      }).then(land, function () { status.textContent = "could not read the log"; });
    }

    followBtn.hidden = complete;
    if (!fromHash()) {
      var page = /[?&]page=(\d+)/.exec(location.search);
      if (!complete && !page) setFollow(true);
      else if (page) {
        space.style.height = height() + "px";
        box.scrollTop = scrollFor(+page[1] * 1000);
      }
      paint();
    }
  }

  var viewer = $("#viewer[data-logid]");
  if (viewer) logViewer(viewer);
})();
