-- wrk script: PATCH /attempts/<random id> with the k6 script's body, counting failed responses;
-- each request formatted once, before the run (see init()).
--
--   wrk -t2 -c64 -d15s -s bench/patch.lua http://127.0.0.1:8000                 # as fast as it goes
--   RATE=10000 THREADS=2 wrk -t2 -c256 -d15s -s bench/patch.lua http://127.0.0.1:8000   # paced
--   RATE=10000 CONNECTIONS=256 wrk -t2 -c256 ... (PACING=fixed)                   # paced, simple
--
-- Environment:
--   MAX_ID       ids are uniform in 1..MAX_ID (default 100000)
--   TOKENS       a file of bearer tokens, line s for student s (attempts-token sign-range
--                --first 1); each request carries the token of its attempt's owner (sql/seed.sql:
--                student 1 + (id - 1) % STUDENTS). Unset: no Authorization header (--auth none)
--   STUDENTS     how many students own the seeded attempts (default 20000)
--   ORIGIN       sent as the Origin field of every request, as a browser page on that origin
--                would (bench.sh --cors-compare); unset: none
--   FLOOR        1: GET /healthz instead of the PATCH, with the same header fields (the token
--                included), for the HTTP floor: parse, route, answer (bench.sh's floor row)
--   RATE         total requests/s to aim at; unset or 0 = no pacing (closed loop at full speed)
--   PACING       "schedule" (default when THREADS is set) or "fixed" (default otherwise)
--   THREADS      wrk's -t, for PACING=schedule: each thread hands out send times RATE/THREADS
--                per second, spread evenly, to whichever of its connections is free. A connection
--                with nothing to send waits for the next free slot, so the total stays at RATE as
--                long as there are enough connections (RATE x latency < connections).
--   CONNECTIONS  wrk's -c, for PACING=fixed: every request waits CONNECTIONS/RATE seconds before
--                it is sent. The rate then falls short by the response time
--                (rate = CONNECTIONS / (CONNECTIONS/RATE + latency)).
--
-- Either way wrk stays closed-loop: a connection sends its next request only after the previous
-- response arrived, and the latency wrk records starts when a request is written, not when it was
-- due (no coordinated-omission correction). Paced runs approximate a constant arrival rate; they
-- are not one (k6/attempts.js is).
--
-- done() prints two lines for scripts (bench.sh parses the second):
--   non2xx=N
--   bench: requests=N duration_us=N rps=X p50_us=N p99_us=N max_us=N mean_us=X non2xx=N
--          connect_errors=N read_errors=N write_errors=N timeout_errors=N status_errors=N
--          target_rate=X pacing=...
-- (one line; latencies in microseconds, from wrk's histogram).

local max_id = tonumber(os.getenv("MAX_ID") or "") or 100000
local students = tonumber(os.getenv("STUDENTS") or "") or 20000
local tokens_path = os.getenv("TOKENS")
local body = '{"answers": {"1": [1], "2": [2], "3": [3], "4": [4]}}'
local origin = os.getenv("ORIGIN")
if origin == "" then origin = nil end

local rate = tonumber(os.getenv("RATE") or "") or 0
local env_threads = tonumber(os.getenv("THREADS") or "")
local env_connections = tonumber(os.getenv("CONNECTIONS") or "")
local pacing = os.getenv("PACING")
if pacing == nil or pacing == "" then
  pacing = env_threads and "schedule" or "fixed"
end
if rate <= 0 then
  pacing = "none"
elseif pacing == "schedule" and not (env_threads and env_threads >= 1) then
  error("patch.lua: PACING=schedule needs THREADS (wrk's -t)")
elseif pacing == "fixed" and not (env_connections and env_connections >= 1) then
  error("patch.lua: PACING=fixed needs CONNECTIONS (wrk's -c)")
elseif pacing ~= "schedule" and pacing ~= "fixed" then
  error("patch.lua: PACING must be schedule or fixed, not " .. pacing)
end

-- Monotonic clock in milliseconds (wrk embeds LuaJIT, so the FFI is available).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } patch_lua_timespec;
  int clock_gettime(int clock_id, patch_lua_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("patch_lua_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

-- ---- main Lua state: one setup() call per thread, then done() ----------------------------------
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

-- ---- per-thread Lua states ------------------------------------------------------------------------
-- Every request this thread can send, formatted once in init(): one per attempt id, with its
-- owner's token when TOKENS is set. request() then only picks one, so the generator costs the
-- same per request whatever the server does, and nothing is allocated per request (a new header
-- table and string per call would cost the generator microseconds and LuaJIT garbage
-- collections that show up as latency spikes).
local prepared = nil
local floor = os.getenv("FLOOR") == "1"

function init(args)
  local seed = math.floor(now_ms() * 1000) % 2147483647 + 7919 * (thread_index or 0)
  math.randomseed(seed)
  local tokens = nil
  if tokens_path and tokens_path ~= "" then
    tokens = {}
    local file = assert(io.open(tokens_path, "r"), "patch.lua: cannot open TOKENS " .. tokens_path)
    for token in file:lines() do tokens[#tokens + 1] = token end
    file:close()
    assert(#tokens >= students,
      "patch.lua: TOKENS has " .. #tokens .. " tokens, fewer than STUDENTS=" .. students)
  end
  prepared = {}
  for id = 1, max_id do
    local h = { ["Content-Type"] = "application/json", ["Origin"] = origin }
    if tokens then h["Authorization"] = "Bearer " .. tokens[1 + (id - 1) % students] end
    if floor then
      h["Content-Type"] = nil
      prepared[id] = wrk.format("GET", "/healthz", h)
    else
      prepared[id] = wrk.format("PATCH", "/attempts/" .. id, h, body)
    end
  end
end

function request()
  return prepared[math.random(1, max_id)]
end

-- wrk calls delay() before every request when the function exists, so it is only defined in
-- paced mode. It returns milliseconds; wrk truncates to whole milliseconds.
if pacing == "schedule" then
  local interval_ms = 1000 * env_threads / rate -- this thread's share of RATE
  local max_lag_ms = 5 -- behind by more than this: skip the missed slots instead of bursting
  local next_slot = nil
  function delay()
    local now = now_ms()
    if next_slot == nil or next_slot < now - max_lag_ms then
      next_slot = now
    end
    local slot = next_slot
    next_slot = next_slot + interval_ms
    local wait = slot - now
    if wait < 0 then wait = 0 end
    return wait
  end
elseif pacing == "fixed" then
  local wait_ms = 1000 * env_connections / rate
  function delay()
    return wait_ms
  end
end

-- No response() callback: wrk would build a table of every response's header fields and a body
-- string for it, garbage that LuaJIT collects in pauses the latency figures then show. Failed
-- requests are wrk's own count of statuses above 399 (the service answers nothing in 1xx or 3xx).
function done(summary, latency, requests)
  local e = summary.errors
  local total = e.status
  local seconds = summary.duration / 1e6
  io.write(string.format("non2xx=%d\n", total))
  io.write(string.format(
    "bench: requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d mean_us=%.1f non2xx=%d"
      .. " connect_errors=%d read_errors=%d write_errors=%d timeout_errors=%d status_errors=%d"
      .. " target_rate=%s pacing=%s\n",
    summary.requests, summary.duration, seconds > 0 and summary.requests / seconds or 0,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean, total,
    e.connect, e.read, e.write, e.timeout, e.status,
    rate > 0 and tostring(rate) or "none", pacing))
end
