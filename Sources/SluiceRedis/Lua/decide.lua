-- Sluice decision script: every limit that applies to one request, checked and
-- consumed atomically. All-or-nothing: if any limit denies, nothing is written.
--
-- KEYS[i]   state key of limit i (all keys of one API key share one hash tag)
-- ARGV[1]   clock override in microseconds since the epoch; "0" reads Redis TIME.
--           Only tests send a non-zero value.
-- ARGV[2]   cost (integer >= 0; 0 is a peek: would a request of cost 1 pass?)
-- ARGV[3..] four arguments per limit, in KEYS order:
--           "b", emission interval in microseconds (1e6 / rate), burst, "0"
--           "q", limit, period ("d" | "w" | "m"), offset in seconds
--
-- Returns { allowed, now_ms, then four integers per limit:
--           remaining, reset_after_ms, retry_after_ms (0 = admits, -1 = never),
--           window_s (a quota's current window length; 0 for a bucket) }
--
-- State: a bucket is one number, its theoretical arrival time in microseconds
-- (GCRA), stored exactly (no rounding drift); the bucket is full once that time has
-- passed, which is when its key expires. A quota is "window_start_s:used" and
-- expires when its window ends. A value that cannot be read (wrong type, garbage)
-- counts as absent: the next write replaces it.

-- Redis < 5 needs this before writing after TIME; later versions always replicate effects.
if redis.replicate_commands then redis.replicate_commands() end

local now_us = tonumber(ARGV[1])
if now_us == 0 then
  local t = redis.call('TIME')
  now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local cost = tonumber(ARGV[2])
local peek = cost == 0
local need = peek and 1 or cost
local floor = math.floor
local ceil = math.ceil

-- Timestamps near 1.8e15 us are doubles spaced 0.25 us apart, so each addition of a
-- fractional emission interval may round by up to 0.125 us. Comparisons allow that much
-- per token of the burst (and never half an interval or more), so that a request at an
-- exact token boundary counts as on time.
local function slack(interval, burst)
  return math.min(interval / 2, 0.5 + 0.125 * burst)
end

-- The string value of a key, or nil when it is absent or not a string.
local function read(key)
  local value = redis.pcall('GET', key)
  if type(value) ~= 'string' then return nil end
  return value
end

-- Whole milliseconds, rounded up, of a non-negative span in microseconds.
local function ms_up(us)
  if us <= 0 then return 0 end
  return ceil(us / 1000)
end

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m > 2) and (m - 3) or (m + 9)
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- Year and month of a day count since 1970-01-01.
local function civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local m = (mp < 10) and (mp + 3) or (mp - 9)
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end

-- Start and end, in seconds, of the calendar window holding `now_s`.
local function window(period, offset, now_s)
  local t = now_s - offset
  if period == 'd' then
    local start = floor(t / 86400) * 86400
    return start + offset, start + 86400 + offset
  elseif period == 'w' then
    -- 1970-01-05 (day 4) was a Monday.
    local start = floor((t - 345600) / 604800) * 604800 + 345600
    return start + offset, start + 604800 + offset
  else
    local y, m = civil_from_days(floor(t / 86400))
    local ny, nm = y, m + 1
    if nm == 13 then ny, nm = y + 1, 1 end
    return days_from_civil(y, m, 1) * 86400 + offset, days_from_civil(ny, nm, 1) * 86400 + offset
  end
end

local n = #KEYS
local out = { 1, floor(now_us / 1000) }
local writes = {}
-- What an admitting limit reports if another limit denies: its state untouched.
local unconsumed = {}
local allowed = true

for i = 1, n do
  local a = 3 + (i - 1) * 4
  local kind = ARGV[a]
  local remaining, reset_us, retry_ms, window_s
  if kind == 'b' then
    local interval = tonumber(ARGV[a + 1])
    local burst = tonumber(ARGV[a + 2])
    local tau = burst * interval
    local tat = tonumber(read(KEYS[i]) or '') or 0
    if tat ~= tat or tat == math.huge or tat < now_us then
      tat = now_us
    elseif tat > now_us + tau then
      -- Only after a config change (smaller burst, slower rate): an empty bucket, not a full one.
      tat = now_us + tau
    end
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
          writes[#writes + 1] = { KEYS[i], string.format('%.17g', new_tat), ms_up(new_tat - now_us) }
          unconsumed[i] = { tokens, ms_up(tat - now_us) }
        end
      else
        allowed = false
        remaining, reset_us, retry_ms = tokens, tat - now_us, ms_up(allow_at - now_us)
      end
    end
  else
    local limit = tonumber(ARGV[a + 1])
    local period = ARGV[a + 2]
    local offset = tonumber(ARGV[a + 3])
    local now_s = floor(now_us / 1000000)
    local ws, we = window(period, offset, now_s)
    window_s = we - ws
    local used = 0
    local stored = read(KEYS[i])
    if stored then
      local sep = string.find(stored, ':', 1, true)
      if sep and tonumber(string.sub(stored, 1, sep - 1)) == ws then
        used = tonumber(string.sub(stored, sep + 1)) or 0
        if used ~= used or used < 0 then used = 0 end
      end
    end
    local left = limit - used
    if left < 0 then left = 0 end
    reset_us = we * 1000000 - now_us
    if need > limit then
      allowed = false
      remaining, retry_ms = left, -1
    elseif used + need <= limit then
      if peek then
        remaining, retry_ms = left, 0
      else
        remaining, retry_ms = left - need, 0
        writes[#writes + 1] = { KEYS[i], string.format('%d:%d', ws, used + need), ms_up(reset_us) }
        unconsumed[i] = { left, ms_up(reset_us) }
      end
    else
      allowed = false
      remaining, retry_ms = left, ms_up(reset_us)
    end
  end
  local o = 3 + (i - 1) * 4
  out[o] = remaining
  out[o + 1] = ms_up(reset_us)
  out[o + 2] = retry_ms
  out[o + 3] = window_s
end

if allowed then
  for _, w in ipairs(writes) do
    redis.call('SET', w[1], w[2], 'PX', w[3])
  end
else
  out[1] = 0
  for i, state in pairs(unconsumed) do
    local o = 3 + (i - 1) * 4
    out[o] = state[1]
    out[o + 1] = state[2]
  end
end
return out
