-- Sluice decision script: every limit that applies to one request, checked and
-- consumed atomically. All-or-nothing: if any limit denies, nothing is written.
-- Runs after prelude.lua.
--
-- KEYS[1..n] state key of limit i (all keys of one API key share one hash tag)
-- KEYS[n+1]  optional: the key's usage record (a hash of day -> units admitted)
-- ARGV[1]    clock override in microseconds since the epoch; "0" reads Redis TIME.
--            Only tests send a non-zero value.
-- ARGV[2]    cost (integer >= 0; 0 is a peek: would a request of cost 1 pass?)
-- ARGV[3]    usage retention in days ("0": no usage record)
-- ARGV[4..]  four arguments per limit, in KEYS order:
--            "b", emission interval in microseconds (1e6 / rate), burst, "0"
--            "q", limit (or "limit,initial_offset"), period ("d" | "w" | "m"), offset in seconds
--
-- Returns { allowed, now_ms, then five integers per limit:
--           remaining, reset_after_ms, retry_after_ms (0 = admits, -1 = never),
--           window_s (a quota's current window length; 0 for a bucket),
--           limit (a quota's units this window, extension included; a bucket's burst) }
--
-- State: a bucket is one number, its theoretical arrival time in microseconds
-- (GCRA), stored exactly (no rounding drift); the bucket is full once that time has
-- passed, which is when its key expires. A quota is "window_start_s:used[:extension]"
-- and expires when its window ends (400 days later for a quota with an initial offset, so
-- that a key's later windows are not taken for its initial one). A value that cannot be read (wrong type, garbage)
-- counts as absent: the next write replaces it.
--
-- Usage: an admitted request that a quota counts adds its cost to the field of its
-- day (days start at the quota's offset) in the usage hash. The hash's TTL is renewed
-- when a day's field is created, and fields older than the retention are dropped then.

local now_us = clock(ARGV[1])
local cost = tonumber(ARGV[2])
local retention_days = tonumber(ARGV[3])
local peek = cost == 0
local need = peek and 1 or cost

local n = (#ARGV - 3) / 4
local out = { 1, floor(now_us / 1000) }
local writes = {}
-- What an admitting limit reports if another limit denies: its state untouched.
local unconsumed = {}
local allowed = true
local usage_offset = nil
-- Initial windows (initial offset) begun by this request, written even if it is denied: a
-- denial consumes nothing, but the key's initial window has begun and must end with it.
local initial_marks = {}

for i = 1, n do
  local a = 4 + (i - 1) * 4
  local kind = ARGV[a]
  local remaining, reset_us, retry_ms, window_s, capacity
  if kind == 'b' then
    local interval = tonumber(ARGV[a + 1])
    local burst = tonumber(ARGV[a + 2])
    capacity = burst
    local tau = burst * interval
    local tat = bucket_tat(KEYS[i], now_us, tau)
    local eps = slack(interval, burst)
    local tokens = floor((tau - (tat - now_us) + eps) / interval)
    window_s = 0
    if need > burst then
      allowed = false
      remaining, reset_us, retry_ms = tokens, tat - now_us, -1
    else
      local new_tat = tat + need * interval
      local allow_at = new_tat - tau
      if allow_at <= now_us + eps then
        if peek then
          remaining, reset_us, retry_ms = tokens, tat - now_us, 0
        else
          remaining, reset_us, retry_ms = tokens - need, new_tat - now_us, 0
          writes[#writes + 1] = { KEYS[i], tat_text(new_tat), ms_up(new_tat - now_us) }
          unconsumed[i] = { tokens, ms_up(tat - now_us) }
        end
      else
        allowed = false
        remaining, reset_us, retry_ms = tokens, tat - now_us, ms_up(allow_at - now_us)
      end
    end
  else
    local base, initial = quota_limit(ARGV[a + 1])
    local period = ARGV[a + 2]
    local offset = tonumber(ARGV[a + 3])
    usage_offset = usage_offset or offset
    local now_s = floor(now_us / 1000000)
    local ws, we = window(period, offset, now_s)
    window_s = we - ws
    local stored = read(KEYS[i])
    local used, ext = quota_state(stored, ws)
    local keep_us = 0
    if initial > 0 then
      keep_us = initial_memory_us
      -- No window of this quota on record for the key, and no usage recorded: its initial
      -- window, which starts with the limit lowered by the initial offset.
      local usage_key = KEYS[n + 1]
      if not stored and not (usage_key and redis.call('EXISTS', usage_key) == 1) then
        ext = -initial
        initial_marks[#initial_marks + 1] = { KEYS[i], quota_value(ws, 0, ext), ms_up(we * 1000000 - now_us + keep_us) }
      end
    end
    local limit = base + ext
    if limit < 0 then limit = 0 end
    capacity = limit
    local left = limit - used
    if left < 0 then left = 0 end
    reset_us = we * 1000000 - now_us
    if need > math.max(base, limit) then
      -- More than any window holds: never passes. (Over an operator's lowered limit only
      -- until the window ends.)
      allowed = false
      remaining, retry_ms = left, -1
    elseif used + need <= limit then
      if peek then
        remaining, retry_ms = left, 0
      else
        remaining, retry_ms = left - need, 0
        writes[#writes + 1] = { KEYS[i], quota_value(ws, used + need, ext), ms_up(reset_us + keep_us) }
        unconsumed[i] = { left, ms_up(reset_us) }
      end
    else
      allowed = false
      remaining, retry_ms = left, ms_up(reset_us)
    end
  end
  local o = 3 + (i - 1) * 5
  out[o] = remaining
  out[o + 1] = ms_up(reset_us)
  out[o + 2] = retry_ms
  out[o + 3] = window_s
  out[o + 4] = capacity
end

if allowed then
  for _, w in ipairs(writes) do
    redis.call('SET', w[1], w[2], 'PX', int_text(w[3]))
  end
  local usage_key = KEYS[n + 1]
  if usage_key and usage_offset and not peek and retention_days > 0 then
    add_day_usage(usage_key, floor((floor(now_us / 1000000) - usage_offset) / 86400), cost, retention_days)
  end
else
  out[1] = 0
  if not peek then
    for _, w in ipairs(initial_marks) do
      redis.call('SET', w[1], w[2], 'PX', int_text(w[3]))
    end
  end
  for i, state in pairs(unconsumed) do
    local o = 3 + (i - 1) * 5
    out[o] = state[1]
    out[o + 1] = state[2]
  end
end
return out
