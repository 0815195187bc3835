-- wrk script: each request reads a random 64 KiB range of one file.
-- Usage: FILE_BYTES=<size> wrk -t2 -c100 -d20s --latency -s benches/http/ranges.lua http://HOST/dlfs/d/file
local size = tonumber(os.getenv("FILE_BYTES") or "268435456")
local chunk = 65536
math.randomseed(os.time())

request = function()
  local off = math.random(0, size - chunk)
  return wrk.format("GET", nil, { ["Range"] = "bytes=" .. off .. "-" .. (off + chunk - 1) })
end

done = function(summary, latency, requests)
  io.write(string.format("requests/s %.0f  p50 %.2f ms  p99 %.2f ms  errors %d non-2xx %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
