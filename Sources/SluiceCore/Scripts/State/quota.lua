-- Sluice quota adjustment: grant an extension to, or set, the remaining units of a
-- quota's current window (AWS UpdateUsage). The change lasts until the window ends,
-- with the quota's state. Runs after prelude.lua.
--
-- KEYS[1]  the quota's state key
-- ARGV[1]  clock override in microseconds ("0" reads Redis TIME)
-- ARGV[2]  the quota's configured limit (or "limit,initial_offset"), ARGV[3] period ("d" | "w" | "m"), ARGV[4] offset s
-- ARGV[5]  "add" (extension += ARGV[6]) or "set" (remaining = ARGV[6])
--
-- Returns { now_ms, used, limit this window (extension included), window start s,
--           window end s, TTL in ms as set, extension }

local now_us = clock(ARGV[1])
local base, initial = quota_limit(ARGV[2])
local ws, we = window(ARGV[3], tonumber(ARGV[4]), floor(now_us / 1000000))
local used, ext = quota_state(read(KEYS[1]), ws)
local amount = tonumber(ARGV[6])
if ARGV[5] == 'add' then
  ext = ext + amount
else
  ext = amount + used - base
end
local ttl_ms = ms_up(we * 1000000 - now_us + (initial > 0 and initial_memory_us or 0))
redis.call('SET', KEYS[1], quota_value(ws, used, ext), 'PX', int_text(ttl_ms))
return { floor(now_us / 1000), used, math.max(0, base + ext), ws, we, ttl_ms, ext }
