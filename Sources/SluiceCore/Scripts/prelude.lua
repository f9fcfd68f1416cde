-- Sluice's shared Lua prelude: helpers every script uses. Each script's source is
-- this file followed by the script's own file (see RedisScript in Swift).

-- Redis < 5 needs this before writing after TIME; later versions always replicate effects.
if redis.replicate_commands then redis.replicate_commands() end

local floor = math.floor
local ceil = math.ceil

-- Microseconds since the epoch: `override` when it is not "0" (tests only), else Redis TIME.
local function clock(override)
  local now = tonumber(override)
  if now and now ~= 0 then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The string value of a key, or nil when it is absent or not a string.
local function read(key)
  local value = redis.pcall('GET', key)
  if type(value) ~= 'string' then return nil end
  return value
end

-- Timestamps near 1.8e15 us are doubles spaced 0.25 us apart, so each addition of a
-- fractional emission interval may round by up to 0.125 us. Comparisons allow that much
-- per token of the burst (and never half an interval or more), so that a request at an
-- exact token boundary counts as on time.
local function slack(interval, burst)
  return math.min(interval / 2, 0.5 + 0.125 * burst)
end

-- A bucket's theoretical arrival time (GCRA) at `now_us`: its stored value, or `now_us`
-- (full) when absent, unreadable or past; at most `now_us + tau` (empty), which only a config
-- change (smaller burst, slower rate) can exceed.
local function bucket_tat(key, now_us, tau)
  local tat = tonumber(read(key) or '') or 0
  if tat ~= tat or tat == math.huge or tat < now_us then
    return now_us
  elseif tat > now_us + tau then
    return now_us + tau
  end
  return tat
end

-- The decimal text of an integral number. Lua turns numbers into text with "%.17g", which
-- is several times slower; Redis commands' numeric arguments are passed through this.
local function int_text(x)
  return string.format('%d', x)
end

-- A bucket's stored value: its theoretical arrival time in microseconds, exactly. An
-- integral time (any rate that divides a second into whole microseconds) is written as an
-- integer, the same text "%.17g" gives it, only faster.
local function tat_text(tat)
  if tat == floor(tat) then return string.format('%d', tat) end
  return string.format('%.17g', tat)
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

-- The quota state of `stored` for the window starting at `ws`: used units and the
-- extension (signed) granted for that window; zeros when the state is of another
-- window, absent or unreadable. Format: "window_start_s:used[:extension]".
local function quota_state(stored, ws)
  if not stored then return 0, 0 end
  local s, u, e = string.match(stored, '^(%-?%d+):(%d+):?(%-?%d*)$')
  if not s or tonumber(s) ~= ws then return 0, 0 end
  local used = tonumber(u) or 0
  local ext = tonumber(e) or 0
  return used, ext
end

-- A quota's configured limit and initial offset from its script argument, "limit" or
-- "limit,initial_offset" (AWS's offset: units subtracted in a key's initial window).
local function quota_limit(text)
  local l, o = string.match(text, '^(%d+),(%d+)$')
  if l then return tonumber(l), tonumber(o) end
  return tonumber(text), 0
end

-- How long a quota with an initial offset keeps its state past the window's end, so that
-- the next window knows the key is not new: 400 days, in microseconds. A key idle longer
-- than that counts as new again.
local initial_memory_us = 400 * 86400 * 1000000

-- The stored form of a quota state.
local function quota_value(ws, used, ext)
  if ext == 0 then return string.format('%d:%d', ws, used) end
  return string.format('%d:%d:%d', ws, used, ext)
end

-- Adds `units` to `day`'s field of the usage record `key` (a hash of day -> units). The first
-- units of a day drop the days past the retention and renew the record's TTL. A record that is
-- not a hash (or holds a garbage field) is started again rather than failing the call.
local function add_day_usage(key, day, units, retention)
  local day_field = int_text(day)
  local total = redis.pcall('HINCRBY', key, day_field, int_text(units))
  if type(total) ~= 'number' then
    redis.call('DEL', key)
    total = redis.call('HINCRBY', key, day_field, int_text(units))
  end
  if total == units then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      local d = tonumber(field)
      if not d or d <= day - retention then redis.call('HDEL', key, field) end
    end
    redis.call('EXPIRE', key, int_text((retention + 1) * 86400))
  end
end
