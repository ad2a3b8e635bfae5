--[[ bbm.re against what Python's re gives for the same calls (each expected value was
    checked with CPython 3.11).  Run by test_re.c as a master.lua: an assertion that fails
    is a load error naming its line. ]]
local re = require("bbm").re

local function eq(got, want, what)
    if got ~= want then
        error(("%s: got %q, want %q"):format(what, tostring(got), tostring(want)), 2)
    end
end

local function list(t)
    local out = {}
    for i = 1, #t do
        local v = t[i]
        if type(v) == "table" then
            v = "(" .. list(v) .. ")"
        end
        out[#out + 1] = tostring(v)
    end
    return table.concat(out, "|")
end

-- flags are Python's numbers and combine with |
eq(re.IGNORECASE, 2, "I")
eq(re.MULTILINE | re.VERBOSE, 72, "M|X")

-- search, match, fullmatch and the match object
local m = re.search("(?P<word>b+)(c)?", "aabbbd")
eq(m:group(), "bbb", "group()")
eq(m:group(0), "bbb", "group(0)")
eq(m:group(1), "bbb", "group(1)")
eq(m:group("word"), "bbb", "group(name)")
eq(m:group(2), nil, "unmatched group is nil")
eq(select("#", m:groups()), 2, "groups count")
eq(select(2, m:groups("-")), "-", "groups default")
eq(m:start(), 3, "start 1-based")
eq(m["end"](m), 5, "end inclusive")
local s, e = m:span(1)
eq(s .. "," .. e, "3,5", "span")
eq(m:start(2), nil, "start of unmatched group")
eq(m:groupdict().word, "bbb", "groupdict")
eq(re.match("b", "ab"), nil, "match anchors")
eq(re.match("a", "ab"):group(), "a", "match")
eq(re.fullmatch("a|ab", "ab"):group(), "ab", "fullmatch backtracks to the whole")
eq(re.fullmatch("a", "ab"), nil, "fullmatch")
local p = re.compile("o", re.I)
eq(p:search("fOo", 3):start(), 3, "pos")
eq(p:search("fOo", 1, 1), nil, "endpos")
eq(p.pattern, "o", "pattern")
-- init and last within a character: from the next one, to the one before
eq(re.compile("."):search("é", 2), nil, "init within a character")
eq(re.compile("."):search("aé", 1, 2):group(), "a", "last within a character")
eq(list(re.compile("."):findall("éa", 2)), "a", "findall from within a character")
local its = {}
for mm in re.compile("."):finditer("éaé", 2, 4) do its[#its + 1] = mm:group() end
eq(table.concat(its, ","), "a", "finditer within characters")
eq(p.flags, 2, "flags")
eq(re.compile("(a)(?P<x>b)").groups, 2, "groups")
eq(re.compile("(a)(?P<x>b)").groupindex.x, 2, "groupindex")

-- Unicode: \w, \d and case folding as Python's str patterns
eq(re.search("\\w+", "--été--"):group(), "été", "\\w unicode")
eq(re.search("\\d", "x٣"):group(), "٣", "\\d unicode")
eq(re.search("ÉTÉ", "été", re.I):group(), "été", "casefold")
eq(re.search("\\w+", "--été--", re.A):group(), "t", "ASCII")
-- invalid UTF-8 in the subject is matched, not refused: each byte of a bad sequence is one
-- character that is no letter, digit or space, and results are cut from the subject
eq(re.search("b", "a\xffb"):start(), 3, "invalid UTF-8 subject")
eq(re.search("b", "a\xed\xa0\x80b"):start(), 5, "a surrogate's bytes")
eq(list(re.findall("\\W", "a\xffé\xc3")), "\xff|\xc3", "bad bytes are \\W")
eq(re.search("a.b", "a\xffb"):group(), "a\xffb", "a bad byte is one character")
local bad = 0
for mm in re.finditer("x*", "\xff\xfe") do
    bad = bad + 1
end
eq(bad, 3, "empty matches step over bad bytes")

-- \Z is the very end; $ also before a final newline
eq(re.search("a\\Z", "a\n"), nil, "\\Z")
eq(re.search("a$", "a\n"):group(), "a", "$")
eq(re.search("^b", "a\nb", re.M):start(), 3, "MULTILINE")
eq(re.search("a.b", "a\nb"), nil, "dot")
eq(re.search([[\v]], "\n"), nil, "\\v is a vertical tab only")
eq(re.search("[\\v]", "x\vy"):start(), 2, "\\v in a class")
eq(re.search("[\\v]", "x\ny"), nil, "\\v in a class is a vertical tab only")
eq(re.search("a.b", "a\nb", re.S):group(), "a\nb", "DOTALL")
eq(re.search([[
    a  # a comment
    \ b
]], "xa b", re.X):group(), "a b", "VERBOSE")

-- findall: strings, a group's strings, tuples
eq(list(re.findall("\\d+", "a1b22c333")), "1|22|333", "findall")
eq(list(re.findall("(a)|b", "ab")), "a|", "findall one group")
eq(list(re.findall("(a)(b)?", "aba")), "(a|b)|(a|)", "findall tuples")
eq(list(re.findall("x*", "axb")), "|x||", "findall empty matches")

-- finditer
local got = {}
for mm in re.finditer("\\d", "a1b2") do
    got[#got + 1] = mm:group() .. "@" .. mm:start()
end
eq(table.concat(got, ","), "1@2,2@4", "finditer")

-- sub: templates, functions, count, Python 3.7's empty matches
eq(re.sub("x*", "-", "abxd"), "-a-b--d-", "sub empty matches")
eq(re.sub("(?P<n>a)", "[\\g<n>\\1\\g<1>\\n\\&]", "ba"), "b[aaa\n\\&]", "sub template")
eq(re.sub("a", function(mm) return mm:group():upper() end, "banana"), "bAnAnA", "sub function")
eq(re.sub("a", "o", "banana", 2), "bonona", "sub count")
local _, n = re.sub("a", "o", "banana")
eq(n, 3, "sub count of replacements")
eq(select(2, pcall(re.sub, "a", "\\q", "a")):match("bad escape") ~= nil, true, "bad escape")

-- split
eq(list(re.split("x*", "axbc")), "|a||b|c|", "split empty matches")
eq(list(re.split("(x)|(y)", "1x2y3")), "1|x|false|2|false|y|3", "split groups")
eq(list(re.split(",", "a,b,c", 1)), "a|b,c", "maxsplit")

-- escape
eq(re.escape("a.b*c"), "a\\.b\\*c", "escape")

-- errors are Lua errors that say what is wrong
local ok, err = pcall(re.compile, "(a")
eq(ok, false, "bad pattern fails")
eq(err:match('bad pattern "%(a"') ~= nil, true, "bad pattern message: " .. err)
ok, err = pcall(re.compile, ("a"):rep(20000))
eq(err:match("longer than the 16384 allowed") ~= nil, true, "pattern bound: " .. tostring(err))
ok, err = pcall(re.search, "(a+)+$", ("a"):rep(40) .. "b")
eq(ok, false, "catastrophic backtracking fails")
eq(err:match("needs more steps than allowed") ~= nil, true, "match limit: " .. tostring(err))
-- compiled once, as Python's cache does: the same object for the same pattern and flags
eq(re.compile("a+b") == re.compile("a+b"), true, "cached")
eq(re.compile("a+b") == re.compile("a+b", re.I), false, "cached by flags")
eq(re.compile(("x"):rep(2000)) == re.compile(("x"):rep(2000)), false, "long ones are not kept")
local first = re.compile("first")
for i = 1, 300 do eq(re.search("p" .. i, "xp" .. i):start(), 2, "pattern " .. i) end
eq(re.search("first", "the first"):start(), 5, "after the cache started afresh")
eq(first:search("first"):start(), 1, "a pattern outlives its cache")
-- a repeat deeper than the JIT's stack allows is matched by the interpreter
eq(#re.search("(a|b)*c", ("a"):rep(100000) .. "c"):group(), 100001, "deep repeat")
ok, err = pcall(re.compile, "a", 4)
eq(err:match("unsupported flags") ~= nil, true, "LOCALE refused: " .. tostring(err))

-- CPython's testsuite_utils.py patterns
local TRACEBACK = re.compile([[
     Traceback # Lines containing "Traceback"
     [\s\S]+? # Match greedy any text (preserving ASCII flags).
     (?=^(?:\d|test|\Z|\n|ok)) # Stop matching in lines starting with
]], re.MULTILINE | re.VERBOSE)
local log = "0:00:01 x\nTraceback (most recent call last):\n  File \"a.py\"\nValueError\n\ntest_x failed\n"
eq(list(TRACEBACK:findall(log)),
   "Traceback (most recent call last):\n  File \"a.py\"\nValueError\n", "traceback")
eq(#TRACEBACK:findall("Traceback\nboom"), 0, "no line start before the end")
eq(list(TRACEBACK:findall("Traceback\nboom\n")), "Traceback\nboom\n", "traceback to the end")

-- a long lazy block, as a big traceback in a test log is, stays within the limits
local big = "Traceback\n" .. ("  line of a traceback\n"):rep(20000) .. "test_x failed\n"
eq(#TRACEBACK:findall(big)[1], #big - #"test_x failed\n", "big traceback")

-- a scan over a test log's many lines costs what the lines do, not their square, whether
-- the log is valid UTF-8 or not (test_re.c calls it with the budget of a run-time call)
function many_lines(bad)
    local s = ("0:00:01 load avg: 1.00 [ 1/400] test_x passed\n"):rep(100000)
    if bad then
        s = s .. "\xff\n"
    end
    return #re.split("\n", s) + #re.findall("^0", s, re.M)
end

-- the work is charged to the call: a function looping over matches runs out of budget
function spin()
    local s = ("ab"):rep(50000)
    for _ = 1, 1000000 do
        re.findall("b", s)
    end
end

return { workers = {} }
