-- wrk script for scripts/bench-llm: one kind of operation per run, on a random key of
-- BENCH_KEY_PREFIX00000..(BENCH_KEYS - 1) a request. BENCH_LLM_OP:
--   check-classic  POST /v1/check (route, cost 1), as scripts/bench's decisions
--   check-llm      POST /v1/check with a model and tokens (a plan with token limits)
--   pair           POST /v1/reserve, then POST /v1/settle of the id it returned, in turn
-- Run with as many threads as connections (wrk -tN -cN): each thread's Lua state then drives
-- one connection, so request() and response() alternate and each answer's latency, per kind,
-- is timed here (CLOCK_MONOTONIC through LuaJIT's ffi), and a settle follows its own reserve on
-- the same connection. done() prints one BENCH line for scripts/bench-llm.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local op = os.getenv("BENCH_LLM_OP") or "pair"
local keys = tonumber(os.getenv("BENCH_KEYS") or "2000")
local prefix = os.getenv("BENCH_KEY_PREFIX") or "llm-key-"
local input = tonumber(os.getenv("BENCH_INPUT_TOKENS") or "1000")
local output = tonumber(os.getenv("BENCH_OUTPUT_TOKENS") or "500")
local actual_output = tonumber(os.getenv("BENCH_ACTUAL_OUTPUT_TOKENS") or "200")
local headers = { ["Content-Type"] = "application/json" }
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  -- wrk initialises the threads one after another: the clock's microseconds tell them apart.
  math.randomseed(os.time() + math.floor(now_us() % 1000000000))
  -- Flat globals: done() reads them with thread:get, which crashes on nested tables (wrk 4.1).
  lat_check, lat_reserve, lat_settle = {}, {}, {}
  ok_check, ok_reserve, ok_settle = 0, 0, 0
  bad_check, bad_reserve, bad_settle = 0, 0, 0
  denied = 0
  bad_codes = ""  -- the status of each answer that was not a 200 (rare: a string will do)
  pending = nil  -- the reservation id this connection settles next
  kind, started = nil, 0
end

local function key()
  return string.format("%s%05d", prefix, math.random(0, keys - 1))
end

request = function()
  local path, body
  if op == "check-classic" then
    kind, path = "check", "/v1/check"
    body = string.format('{"api_key":"%s","route":"POST /v1/predict","cost":1}', key())
  elseif op == "check-llm" then
    kind, path = "check", "/v1/check"
    body = string.format('{"api_key":"%s","route":"POST /v1/predict","cost":1,"model":"bench-model",'
      .. '"tokens":{"input_tokens":%d,"output_tokens":%d}}', key(), input, output)
  elseif pending then
    kind, path = "settle", "/v1/settle"
    body = string.format('{"reservation_id":"%s","actual":{"input_tokens":%d,"output_tokens":%d}}', pending, input, actual_output)
    pending = nil
  else
    kind, path = "reserve", "/v1/reserve"
    body = string.format('{"api_key":"%s","model":"bench-model","estimate":{"input_tokens":%d,"output_tokens":%d}}', key(), input, output)
  end
  started = now_us()
  return wrk.format("POST", path, headers, body)
end

response = function(status, _, body)
  local elapsed = now_us() - started
  if status ~= 200 then
    _G["bad_" .. kind] = _G["bad_" .. kind] + 1
    bad_codes = bad_codes .. kind .. ":" .. status .. " "
    return
  end
  if string.find(body, '"allowed":false', 1, true) then
    denied = denied + 1
  elseif kind == "reserve" then
    pending = string.match(body, '"reservation_id":"([^"]+)"')
    if not pending then
      bad_reserve = bad_reserve + 1
      return
    end
  end
  _G["ok_" .. kind] = _G["ok_" .. kind] + 1
  local l = _G["lat_" .. kind]
  l[#l + 1] = elapsed
end

local function percentile(sorted, p)
  if #sorted == 0 then return -1 end
  local i = math.floor(p / 100 * (#sorted - 1) + 0.5) + 1
  return sorted[i]
end

done = function(summary, latency, requests)
  local all = { check = {}, reserve = {}, settle = {} }
  local oks = { check = 0, reserve = 0, settle = 0 }
  local bads = { check = 0, reserve = 0, settle = 0 }
  local total_denied = 0
  local codes = {}
  for _, thread in ipairs(threads) do
    for name, into in pairs(all) do
      for _, v in ipairs(thread:get("lat_" .. name)) do into[#into + 1] = v end
      oks[name] = oks[name] + thread:get("ok_" .. name)
      bads[name] = bads[name] + thread:get("bad_" .. name)
    end
    total_denied = total_denied + thread:get("denied")
    for code in string.gmatch(thread:get("bad_codes"), "%S+") do codes[code] = (codes[code] or 0) + 1 end
  end
  local code_list = {}
  for code, count in pairs(codes) do code_list[#code_list + 1] = code .. "x" .. count end
  table.sort(code_list)
  local line = string.format("BENCH requests=%d duration_us=%d errors=%d non2xx=%d denied=%d wrk_p50_us=%d wrk_p99_us=%d",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, total_denied, latency:percentile(50), latency:percentile(99))
  for _, name in ipairs({ "check", "reserve", "settle" }) do
    table.sort(all[name])
    line = line .. string.format(" %s_ok=%d %s_bad=%d %s_p50_us=%.1f %s_p99_us=%.1f", name, oks[name], name, bads[name],
      name, percentile(all[name], 50), name, percentile(all[name], 99))
  end
  io.write(line .. " codes=" .. (#code_list > 0 and table.concat(code_list, ",") or "none") .. "\n")
end
