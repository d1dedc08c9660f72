-- wrk script: PATCH /attempts/<random id> with the k6 script's body.
--   wrk -t2 -c64 -d15s -s bench/patch.lua http://127.0.0.1:8000
-- Environment: MAX_ID (default 100000).
local max_id = tonumber(os.getenv("MAX_ID") or "100000")
local body = '{"answers": {"1": [1], "2": [2], "3": [3], "4": [4]}}'
local headers = { ["Content-Type"] = "application/json" }

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  non2xx = 0
end

function request()
  return wrk.format("PATCH", "/attempts/" .. math.random(1, max_id), headers, body)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("non2xx")
  end
  io.write(string.format("non2xx=%d\n", total))
end
