-- wrk script for scripts/bench/run.py: POSTs BENCH_PER alerts per request to /api/v2/alerts
-- (JSON), cycling over BENCH_DISTINCT label sets, each alert ending in a day.
local per = tonumber(os.getenv("BENCH_PER") or "1")
local distinct = tonumber(os.getenv("BENCH_DISTINCT") or "10000")
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  n = id * 7919
  ends = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 86400)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local parts = {}
  for k = 1, per do
    n = n + 1
    local i = n % distinct
    parts[k] = string.format(
      '{"labels":{"alertname":"Bench%d","instance":"host%d:9100","job":"node","severity":"warning"},'
      .. '"annotations":{"summary":"posted by scripts/bench"},"endsAt":"%s"}',
      i % 100, math.floor(i / 100), ends)
  end
  return wrk.format(nil, "/api/v2/alerts", nil, "[" .. table.concat(parts, ",") .. "]")
end
