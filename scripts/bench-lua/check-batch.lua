-- wrk script: POST /v1/check/batch with BENCH_BATCH checks per request (default 100), each
-- on a random key of bench-key-00000..bench-key-09999, so a batch mixes allowed and denied
-- decisions like the single-check run. done() prints machine-readable figures for scripts/bench.
local keys = tonumber(os.getenv("BENCH_KEYS") or "10000")
local size = tonumber(os.getenv("BENCH_BATCH") or "100")

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

request = function()
  local checks = {}
  for i = 1, size do
    checks[i] = string.format('{"api_key":"bench-key-%05d","route":"POST /v1/predict","cost":1}', math.random(0, keys - 1))
  end
  local body = '{"checks":[' .. table.concat(checks, ",") .. ']}'
  return wrk.format("POST", "/v1/check/batch", { ["Content-Type"] = "application/json" }, body)
end

done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d p999_us=%d non2xx=%d batch=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), summary.errors.status, size))
end
