-- wrk script: POST /v1/check spread over bench-key-00000..bench-key-09999 (random key per
-- request). The keys of the "tight" plan (every 10th key) go over their limits, so the run
-- mixes allowed and denied decisions. The body size is the same for every request.
-- done() prints machine-readable latency percentiles for scripts/bench.
local keys = tonumber(os.getenv("BENCH_KEYS") or "10000")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  denied = 0
end

function response(status, headers, body)
  if body and string.find(body, '"allowed":false', 1, true) then
    denied = denied + 1
  end
end

request = function()
  local body = string.format('{"api_key":"bench-key-%05d","route":"POST /v1/predict","cost":1}', math.random(0, keys - 1))
  return wrk.format("POST", "/v1/check", { ["Content-Type"] = "application/json" }, body)
end

done = function(summary, latency, requests)
  local total_denied = 0
  for _, thread in ipairs(threads) do
    total_denied = total_denied + (thread:get("denied") or 0)
  end
  io.write(string.format("BENCH requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d p999_us=%d non2xx=%d denied=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), summary.errors.status, total_denied))
end
