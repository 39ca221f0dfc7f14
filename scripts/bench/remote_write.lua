-- wrk script for scripts/bench/run.py: POSTs remote_write requests. BENCH_BODIES is a
-- directory of snappy bodies (0.bin, 1.bin, ...; BENCH_COUNT of them) whose every sample
-- timestamp is the 6-byte placeholder "\255\254\253\252\251\127"; each request puts the next
-- millisecond in its place. Each thread (one connection each) sends its own share of the
-- bodies, so every series' timestamps increase.
local dir = os.getenv("BENCH_BODIES")
local count = tonumber(os.getenv("BENCH_COUNT"))
local placeholder = "\255\254\253\252\251\127"
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local function split(s)
  local pieces, at = {}, 1
  while true do
    local i = string.find(s, placeholder, at, true)
    if not i then
      pieces[#pieces + 1] = string.sub(s, at)
      return pieces
    end
    pieces[#pieces + 1] = string.sub(s, at, i - 1)
    at = i + #placeholder
  end
end

local function varint(v)
  local out = {}
  repeat
    local b = v % 128
    v = math.floor(v / 128)
    if v > 0 then b = b + 128 end
    out[#out + 1] = string.char(b)
  until v == 0
  return table.concat(out)
end

function init(args)
  local step = tonumber(args[1])
  bodies = {}
  for k = id, count - 1, step do
    local f = assert(io.open(dir .. "/" .. k .. ".bin", "rb"))
    bodies[#bodies + 1] = split(f:read("*a"))
    f:close()
  end
  next_body, ts = 1, os.time() * 1000
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-protobuf"
  wrk.headers["Content-Encoding"] = "snappy"
  wrk.headers["X-Prometheus-Remote-Write-Version"] = "0.1.0"
end

function request()
  local pieces = bodies[next_body]
  next_body = next_body + 1
  if next_body > #bodies then
    next_body = 1
    ts = ts + 1
  end
  return wrk.format(nil, "/api/v1/write", nil, table.concat(pieces, varint(ts)))
end
