-- Sluice inspection script: the live state of limits, read without consuming or
-- writing anything. Runs after prelude.lua.
--
-- KEYS[i]   state key of limit i
-- ARGV[1]   clock override in microseconds ("0" reads Redis TIME)
-- ARGV[2..] four arguments per limit, as decide.lua takes them, except a bucket's fourth: the
--           dimension it counts as ledger.lua's code ('r' requests, or "0"; 'i' 'o' 't' 'c'
--           tokens or cost)
--
-- A bucket that counts tokens or cost may be in debt: an overrun taken past empty leaves its
-- theoretical arrival time beyond now + burst x interval. ledger.lua never caps such a bucket,
-- so neither does this script: its tokens read negative (the debt) and its reset runs until it
-- is full again. A requests bucket is capped at empty, as decide.lua and ledger.lua cap it
-- (only a config change that shrank it leaves it beyond).
--
-- Returns { now_ms, then six integers per limit:
--   bucket: tokens x 1000 (rounded to nearest; negative in debt), whole tokens (negative in
--           debt), ms until full, PTTL (-2 absent), 0, 0
--   quota:  used, limit this window (extension included), window start s, window end s,
--           PTTL (-2 absent), extension }

local now_us = clock(ARGV[1])
local n = (#ARGV - 1) / 4
local out = { floor(now_us / 1000) }

for i = 1, n do
  local a = 2 + (i - 1) * 4
  local o = 2 + (i - 1) * 6
  local pttl = redis.call('PTTL', KEYS[i])
  if ARGV[a] == 'b' then
    local interval = tonumber(ARGV[a + 1])
    local burst = tonumber(ARGV[a + 2])
    local tau = burst * interval
    local tat
    if ARGV[a + 3] == 'r' or ARGV[a + 3] == '0' then
      tat = bucket_tat(KEYS[i], now_us, tau)
    else
      tat = tonumber(read(KEYS[i]) or '') or 0
      if tat ~= tat or tat == math.huge or tat < now_us then tat = now_us end
    end
    local exact = (tau - (tat - now_us)) / interval
    local eps = slack(interval, burst) / interval
    out[o] = floor(exact * 1000 + 0.5)
    out[o + 1] = floor(exact + eps)
    out[o + 2] = ms_up(tat - now_us)
    out[o + 3] = pttl
    out[o + 4] = 0
    out[o + 5] = 0
  else
    local base = quota_limit(ARGV[a + 1])
    local ws, we = window(ARGV[a + 2], tonumber(ARGV[a + 3]), floor(now_us / 1000000))
    local used, ext = quota_state(read(KEYS[i]), ws)
    local limit = base + ext
    if limit < 0 then limit = 0 end
    out[o] = used
    out[o + 1] = limit
    out[o + 2] = ws
    out[o + 3] = we
    out[o + 4] = pttl
    out[o + 5] = ext
  end
end
return out
