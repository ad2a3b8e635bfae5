-- wrk script for bench/api/run: prints one parseable line at the end,
--   BENCH p50_us=.. p95_us=.. p99_us=.. max_us=.. requests=.. duration_us=.. rps=..
--         bytes=.. errors=.. non2xx=.. timeouts=..
-- Latencies are wrk's (microseconds, from its HdrHistogram over every
-- connection); rps = completed requests / wall time.
-- With BENCH_COLD=1 every request carries a different ignored filter
-- (bench__eq=<thread>.<n>), so that no answer comes from the master's cache
-- of unchanged answers: what a busy master, whose database changes all
-- the time, costs per request.
local made = 0
function setup(thread)
   made = made + 1
   thread:set("tid", made)
end

local n = 0
if os.getenv("BENCH_COLD") == "1" then
   request = function()
      n = n + 1
      local sep = string.find(wrk.path, "?", 1, true) and "&" or "?"
      return wrk.format(nil, wrk.path .. sep .. "bench__eq=" .. tid .. "." .. n)
   end
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH p50_us=%d p95_us=%d p99_us=%d max_us=%d requests=%d duration_us=%d " ..
      "rps=%.1f bytes=%d errors=%d non2xx=%d timeouts=%d\n",
      latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      summary.bytes, e.connect + e.read + e.write + e.timeout, e.status, e.timeout))
end
