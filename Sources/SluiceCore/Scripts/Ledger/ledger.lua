-- Sluice ledger script: decisions of plans with token limits or a concurrency limit, and
-- reservations (reserve, settle, renew, cancel) on any plan. Runs after prelude.lua.
-- docs/ARCHITECTURE.md, "Token limits, reservations and leases", states the rules; this file
-- is their only implementation.
--
-- ARGV[1] op: 'c' check (admit and charge now), 'r' reserve, 'a' charge after the fact,
--             's' settle, 'x' cancel, 'n' renew, 'v' view (admin; changes nothing but expiry)
-- ARGV[2] clock override in microseconds ("0": Redis TIME; only tests send another value)
--
-- KEYS (every op; all of one API key, one hash tag):
-- KEYS[1] the reservation's record (check and charge: any key of the API key, unused)
-- KEYS[2] the idempotency key's entry (KEYS[1] again when there is none)
-- KEYS[3] open reservations, a sorted set of id -> expiry (ms)
-- KEYS[4] leases, a sorted set of id -> expiry (ms)
-- KEYS[5] the usage record (hash day -> requests), as decide.lua keeps it
-- KEYS[6] the token usage record (hash "<day>:<i|o|k|c>" -> units; "day" -> last trim)
-- KEYS[7..] check, reserve, charge: the state key of each limit, in ARGV order
--
-- Check, reserve, charge ARGV:
--   [3] request units (requests-counting limits take this; 0 for charge)
--   [4] input tokens, [5] output tokens, [6] cached input tokens
--   [7] [8] [9] price per input, output, cached input token, in millionths of a cost unit
--   [10] usage retention in days (0: no usage record), [11] the usage day's offset in seconds
--   [12] reservation TTL (ms), [13] concurrency limit (0: none), [14] lease TTL (ms)
--   [15] the new reservation's id, [16] how long a settled record is remembered (ms)
--   [17..] six per limit: kind ('b' | 'q'), three parameters (a bucket: emission interval
--          in microseconds, burst, "0"; a quota: limit, period 'd' | 'w' | 'm', offset in
--          seconds), dimension ('r' | 'i' | 'o' | 't' | 'c'), name
--   Returns { allowed, now_ms, reservation id or "", expires_at_ms, reclaimed, replay,
--             concurrency limit, remaining, reset_ms, retry_ms (0 0 0 0 without one),
--             then five per limit as decide.lua: remaining, reset_ms, retry_ms, window_s, limit }
--
-- Settle ('s') and cancel ('x') ARGV: [3] input, [4] output, [5] cached input tokens,
--   [6] usage retention in days, [7] memory (ms), [8] the reservation's id.
--   Returns { status, now_ms, replay, reclaimed, estimate r i o t c, actual r i o t c,
--             limit count, then four per limit: name, limit, remaining, reset_ms }
--   status: 1 done now, 0 unknown or expired, 2 already settled, 3 already cancelled.
--   A settle of a settled reservation returns the first answer with replay = 1.
-- Renew ('n') ARGV: [3] TTL (ms; "0": the reservation's own), [4] memory (ms), [5] id.
--   Returns { status, now_ms, expires_at_ms, lease (1 held, 0 lost, -1 none), reclaimed }
-- View ('v'): Returns { now_ms, reclaimed, open reservations, leases held,
--   estimates held r i o t c (of the first 1000 open reservations) }
--
-- A reservation's record (msgpack): s state ('o' open, 's' settled, 'x' cancelled),
-- x expiry (ms), t TTL (ms), lt lease TTL (ms, 0: none), d usage day (-1: none),
-- e estimate {r, i, o, k, c}, p prices {input, output, cached input}, ik idempotency entry ("" none), a the settle answer,
-- L limits taken, nine values each in one flat list: name, key suffix, kind, dimension, amount,
-- p1, p2, p3, window start. A settled record keeps only s, a (the answer) and ik; a cancelled
-- one s and ik.

local op = ARGV[1]
local now_us = clock(ARGV[2])
local now_ms = floor(now_us / 1000)
local now_s = floor(now_us / 1000000)
local prefix = string.sub(KEYS[3], 1, #KEYS[3] - 2)

-- Expired reservations count at their estimate (taken when reserved: nothing to do) and
-- expired leases are free: dropping them is all there is, exactly once, by whichever call
-- touches the key first.
-- A set of the wrong type (written by something else) counts as empty and is replaced.
local function drop_expired(key)
  local n = redis.pcall('ZREMRANGEBYSCORE', key, '-inf', now_ms)
  if type(n) == 'number' then return n end
  redis.call('DEL', key)
  return 0
end
local reclaimed = drop_expired(KEYS[3])
drop_expired(KEYS[4])

-- Cost units of some tokens: ceil(sum of tokens x price / 1e6), exact in doubles for
-- tokens below 1e12 and prices below 1e6 (each product is split into parts below 2^53).
local function cost_of(i, o, k, pi, po, pk)
  local whole, frac = 0, 0
  local function add(t, p)
    if t <= 0 or p <= 0 then return end
    local pw = floor(p / 1000000)
    local pf = p - pw * 1000000
    local th = floor(t / 1000000)
    local tl = t - th * 1000000
    whole = whole + t * pw + th * pf
    frac = frac + tl * pf
  end
  add(i - k, pi)
  add(k, pk)
  add(o, po)
  return whole + ceil(frac / 1000000)
end

local function amount_of(dim, e)
  if dim == 'r' then return e.r
  elseif dim == 'i' then return e.i
  elseif dim == 'o' then return e.o
  elseif dim == 't' then return e.i + e.o
  end
  return e.c
end

-- The sets' lives, set on every write: past any member's score (a reservation lives at most
-- a day, a lease an hour), and a day more for the reservations, so that a late call still
-- counts an expiry. One PEXPIRE, no read of the current TTL.
local reservations_life = '172800000'
local leases_life = '3600000'

-- Adds to the usage records of `day` (requests in KEYS[5], tokens in KEYS[6]). An
-- adjustment (a settle's or cancel's difference to the estimate, counted on the reserve's
-- day) changes nothing once that day has left the records.
local function add_usage(day, retention, e, adjust)
  if retention <= 0 or day < 0 then return end
  local day_text = int_text(day)
  if adjust then
    if e.r ~= 0 and redis.call('TYPE', KEYS[5]).ok == 'hash' and redis.call('HEXISTS', KEYS[5], day_text) == 1 then
      redis.call('HINCRBY', KEYS[5], day_text, int_text(e.r))
    end
    local marker = redis.pcall('HGET', KEYS[6], 'day')
    if type(marker) ~= 'string' then return end
    local latest = tonumber(marker)
    if not latest or day <= latest - retention then return end
    if e.i ~= 0 then redis.call('HINCRBY', KEYS[6], day_text .. ':i', int_text(e.i)) end
    if e.o ~= 0 then redis.call('HINCRBY', KEYS[6], day_text .. ':o', int_text(e.o)) end
    if e.k ~= 0 then redis.call('HINCRBY', KEYS[6], day_text .. ':k', int_text(e.k)) end
    if e.c ~= 0 then redis.call('HINCRBY', KEYS[6], day_text .. ':c', int_text(e.c)) end
    return
  end
  if e.r ~= 0 then add_day_usage(KEYS[5], day, e.r, retention) end
  if e.i == 0 and e.o == 0 and e.k == 0 and e.c == 0 then return end
  local marker = redis.pcall('HGET', KEYS[6], 'day')
  if type(marker) == 'table' and marker.err then
    redis.call('DEL', KEYS[6])
    marker = false
  end
  if marker ~= day_text then
    for _, field in ipairs(redis.call('HKEYS', KEYS[6])) do
      local d = tonumber(string.match(field, '^(%-?%d+):') or '')
      if field ~= 'day' and (not d or d <= day - retention) then redis.call('HDEL', KEYS[6], field) end
    end
    redis.call('HSET', KEYS[6], 'day', day_text)
    redis.call('EXPIRE', KEYS[6], int_text((retention + 1) * 86400))
  end
  if e.i ~= 0 then redis.call('HINCRBY', KEYS[6], day_text .. ':i', int_text(e.i)) end
  if e.o ~= 0 then redis.call('HINCRBY', KEYS[6], day_text .. ':o', int_text(e.o)) end
  if e.k ~= 0 then redis.call('HINCRBY', KEYS[6], day_text .. ':k', int_text(e.k)) end
  if e.c ~= 0 then redis.call('HINCRBY', KEYS[6], day_text .. ':c', int_text(e.c)) end
end

-- The state of a bucket at `tat`: whole tokens left (negative in debt), reset (ms).
local function bucket_report(tat, interval, burst)
  local tau = burst * interval
  local tokens = floor((tau - (tat - now_us) + slack(interval, burst)) / interval)
  return tokens, ms_up(tat - now_us)
end

-- A bucket's theoretical arrival time. A bucket that counts tokens may be in debt (past
-- empty: an overrun was taken), so only a requests bucket is capped at empty (a config
-- change that shrank it), as decide.lua caps it.
local function read_tat(key, tau, dim)
  local tat = tonumber(read(key) or '') or 0
  if tat ~= tat or tat == math.huge or tat < now_us then return now_us end
  if dim == 'r' and tat > now_us + tau then return now_us + tau end
  return tat
end

local function write_tat(key, tat)
  if tat > now_us then
    redis.call('SET', key, tat_text(tat), 'PX', int_text(ms_up(tat - now_us)))
  else
    redis.call('DEL', key)
  end
end

-- `keep_us`: how long past the window's end the state is kept (a quota with an initial
-- offset remembers that the key is not new, as decide.lua does).
local function write_quota(key, ws, we, used, ext, keep_us)
  redis.call('SET', key, quota_value(ws, used, ext), 'PX', int_text(ms_up(we * 1000000 - now_us + keep_us)))
end

if op == 'c' or op == 'r' or op == 'a' then
  local reserve = op == 'r'
  local force = op == 'a'
  if reserve and KEYS[2] ~= KEYS[1] then
    -- The same idempotency key: the first answer, consuming nothing more.
    local prior = read(KEYS[2])
    if prior then
      local ok, first = pcall(cmsgpack.unpack, prior)
      if ok and type(first) == 'table' and #first >= 10 then
        first[5] = reclaimed
        first[6] = 1
        return first
      end
    end
  end
  local e = {
    r = tonumber(ARGV[3]), i = tonumber(ARGV[4]), o = tonumber(ARGV[5]), k = tonumber(ARGV[6])
  }
  e.c = cost_of(e.i, e.o, e.k, tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]))
  local retention = tonumber(ARGV[10])
  local usage_offset = tonumber(ARGV[11])
  local ttl_ms = tonumber(ARGV[12])
  local conc_limit = tonumber(ARGV[13])
  local lease_ttl = tonumber(ARGV[14])
  local rid = ARGV[15]
  local memory_ms = tonumber(ARGV[16])
  local n = (#ARGV - 16) / 6
  local out = { 1, now_ms, '', 0, reclaimed, 0, 0, 0, 0, 0 }
  local header = #out
  local writes = {}
  local unconsumed = {}
  local initial_marks = {}
  local taken = {}
  local allowed = true
  for idx = 1, n do
    local a = 17 + (idx - 1) * 6
    local kind, p1, p2, p3, dim, name = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
    local key = KEYS[6 + idx]
    local amount = amount_of(dim, e)
    local peek = amount == 0
    local need = peek and 1 or amount
    local remaining, reset_ms, retry_ms, window_s, capacity
    local ws = 0
    if kind == 'b' then
      local interval, burst = tonumber(p1), tonumber(p2)
      local tau = burst * interval
      local tat = read_tat(key, tau, dim)
      local tokens
      tokens, reset_ms = bucket_report(tat, interval, burst)
      capacity, window_s = burst, 0
      if force then
        remaining, retry_ms = tokens - amount, 0
        if not peek then
          local new_tat = tat + amount * interval
          writes[#writes + 1] = function() write_tat(key, new_tat) end
          reset_ms = ms_up(new_tat - now_us)
        end
      elseif need > burst then
        allowed = false
        remaining, retry_ms = tokens, -1
      else
        local new_tat = tat + need * interval
        local allow_at = new_tat - tau
        if allow_at <= now_us + slack(interval, burst) then
          if peek then
            remaining, retry_ms = tokens, 0
          else
            remaining, retry_ms = tokens - need, 0
            unconsumed[idx] = { tokens, reset_ms }
            reset_ms = ms_up(new_tat - now_us)
            writes[#writes + 1] = function() write_tat(key, new_tat) end
          end
        else
          allowed = false
          remaining, retry_ms = tokens, ms_up(allow_at - now_us)
        end
      end
    else
      local base, initial = quota_limit(p1)
      local period, offset = p2, tonumber(p3)
      local we
      ws, we = window(period, offset, now_s)
      window_s = we - ws
      local stored = read(key)
      local used, ext = quota_state(stored, ws)
      local keep_us = 0
      if initial > 0 then
        -- The key's initial window (no state on record, no usage): the limit is lowered by
        -- the initial offset, and that window has begun even if this request is denied.
        keep_us = initial_memory_us
        if not stored and redis.call('EXISTS', KEYS[5]) == 0 then
          ext = -initial
          local mark = quota_value(ws, 0, ext)
          initial_marks[#initial_marks + 1] = function()
            redis.call('SET', key, mark, 'PX', int_text(ms_up(we * 1000000 - now_us + keep_us)))
          end
        end
      end
      local limit = base + ext
      if limit < 0 then limit = 0 end
      capacity = limit
      local left = limit - used
      if left < 0 then left = 0 end
      reset_ms = ms_up(we * 1000000 - now_us)
      if force then
        remaining, retry_ms = left - amount, 0
        if not peek then
          writes[#writes + 1] = function() write_quota(key, ws, we, used + amount, ext, keep_us) end
        end
      elseif need > math.max(base, limit) then
        allowed = false
        remaining, retry_ms = left, -1
      elseif used + need <= limit then
        if peek then
          remaining, retry_ms = left, 0
        else
          remaining, retry_ms = left - need, 0
          unconsumed[idx] = { left, reset_ms }
          writes[#writes + 1] = function() write_quota(key, ws, we, used + need, ext, keep_us) end
        end
      else
        allowed = false
        remaining, retry_ms = left, reset_ms
      end
    end
    if remaining < 0 then remaining = 0 end
    local o = header + 1 + (idx - 1) * 5
    out[o], out[o + 1], out[o + 2], out[o + 3], out[o + 4] = remaining, reset_ms, retry_ms, window_s, capacity
    if reserve then
      local t = #taken
      taken[t + 1], taken[t + 2], taken[t + 3], taken[t + 4], taken[t + 5] = name, string.sub(key, #prefix + 1), kind, dim, peek and 0 or amount
      taken[t + 6], taken[t + 7], taken[t + 8], taken[t + 9] = p1, p2, p3, ws
    end
  end

  if reserve and conc_limit > 0 then
    local held = redis.call('ZCARD', KEYS[4])
    local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    local until_free = first[2] and math.max(1, tonumber(first[2]) - now_ms) or 0
    local retry = 0
    if held >= conc_limit then
      allowed = false
      retry = until_free
    end
    out[7], out[8], out[9], out[10] = conc_limit, math.max(0, conc_limit - held), until_free, retry
  end

  if allowed then
    for _, write in ipairs(writes) do write() end
    local day = -1
    if retention > 0 then day = floor((now_s - usage_offset) / 86400) end
    add_usage(day, retention, e)
    if reserve then
      local expires = now_ms + ttl_ms
      local record = {
        s = 'o', x = expires, t = ttl_ms, lt = 0, d = day,
        e = { e.r, e.i, e.o, e.k, e.c }, ik = '', L = taken,
        p = { tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]) }
      }
      if KEYS[2] ~= KEYS[1] then record.ik = KEYS[2] end
      redis.call('ZADD', KEYS[3], expires, rid)
      -- Kept a day past its last expiry, so that a late call still counts the expiry.
      redis.call('PEXPIRE', KEYS[3], reservations_life)
      if conc_limit > 0 then
        record.lt = lease_ttl
        -- A lease never outlives its reservation.
        redis.call('ZADD', KEYS[4], math.min(now_ms + lease_ttl, expires), rid)
        redis.call('PEXPIRE', KEYS[4], leases_life)
        out[8] = out[8] - 1
        -- Until a slot is sure to be free: the earliest lease's expiry, this one's included.
        local own = math.min(lease_ttl, ttl_ms)
        if out[9] == 0 or out[9] > own then out[9] = own end
      end
      redis.call('SET', KEYS[1], cmsgpack.pack(record), 'PX', int_text(ttl_ms + memory_ms))
      out[3], out[4] = rid, expires
      if KEYS[2] ~= KEYS[1] then
        redis.call('SET', KEYS[2], cmsgpack.pack(out), 'PX', int_text(ttl_ms + memory_ms))
      end
    end
  else
    out[1] = 0
    if not force then
      for _, mark in ipairs(initial_marks) do mark() end
    end
    for idx, state in pairs(unconsumed) do
      local o = header + 1 + (idx - 1) * 5
      out[o], out[o + 1] = state[1], state[2]
    end
  end
  return out
end

-- The reservation's record, or the status that says why there is none to act on.
local function open_record(member)
  local text = read(KEYS[1])
  if not text then return nil, 0 end
  local ok, rec = pcall(cmsgpack.unpack, text)
  if not ok or type(rec) ~= 'table' or type(rec.ik) ~= 'string' then return nil, 0 end
  if rec.s == 's' and type(rec.a) == 'table' then return rec, 2 end
  if rec.s == 'x' then return rec, 3 end
  if rec.s ~= 'o' or type(rec.x) ~= 'number' or type(rec.t) ~= 'number' or type(rec.lt) ~= 'number'
    or type(rec.d) ~= 'number' or type(rec.e) ~= 'table' or #rec.e ~= 5 or type(rec.p) ~= 'table' or #rec.p ~= 3
    or type(rec.L) ~= 'table' or #rec.L % 9 ~= 0 then
    return nil, 0
  end
  local L = rec.L
  for b = 0, #L - 9, 9 do
    if type(L[b + 2]) ~= 'string' or type(L[b + 5]) ~= 'number' then return nil, 0 end
  end
  if rec.x <= now_ms or not redis.call('ZSCORE', KEYS[3], member) then return nil, 0 end
  return rec, 1
end

if op == 's' or op == 'x' then
  local member = ARGV[8]
  local rec, status = open_record(member)
  if status == 2 and op == 's' then
    rec.a[3] = 1
    rec.a[4] = reclaimed
    return rec.a
  end
  if status ~= 1 then return { status, now_ms, 0, reclaimed } end
  local est = { r = rec.e[1], i = rec.e[2], o = rec.e[3], k = rec.e[4], c = rec.e[5] }
  local act
  if op == 's' then
    act = { r = est.r, i = tonumber(ARGV[3]), o = tonumber(ARGV[4]), k = tonumber(ARGV[5]) }
    -- Priced as when reserved (a reload in between changes nothing for it).
    act.c = cost_of(act.i, act.o, act.k, rec.p[1], rec.p[2], rec.p[3])
  else
    act = { r = 0, i = 0, o = 0, k = 0, c = 0 }
  end
  local out = {
    1, now_ms, 0, reclaimed,
    est.r, est.i, est.o, est.i + est.o, est.c,
    act.r, act.i, act.o, act.i + act.o, act.c,
    0
  }
  local L = rec.L
  for b = 0, #L - 9, 9 do
    local name, suffix, kind, dim, amount = L[b + 1], L[b + 2], L[b + 3], L[b + 4], L[b + 5]
    local p1, p2, p3, taken_ws = L[b + 6], L[b + 7], L[b + 8], L[b + 9]
    -- A settle never changes a requests limit (the request happened as reserved): neither
    -- read nor reported. A cancel gives its unit back.
    if dim ~= 'r' or op == 'x' then
      local key = prefix .. suffix
      local delta = amount_of(dim, act) - amount
      local capacity, remaining, reset_ms
      if kind == 'b' then
        local interval, burst = tonumber(p1), tonumber(p2)
        local tat = tonumber(read(key) or '') or 0
        if tat ~= tat or tat == math.huge or tat < now_us then tat = now_us end
        if delta ~= 0 then
          -- A refund never fills past full; an overrun is taken past empty (debt).
          tat = tat + delta * interval
          if tat < now_us then tat = now_us end
          write_tat(key, tat)
        end
        capacity = burst
        remaining, reset_ms = bucket_report(tat, interval, burst)
      else
        local base, initial = quota_limit(p1)
        local period, offset = p2, tonumber(p3)
        local keep_us = initial > 0 and initial_memory_us or 0
        local ws, we = window(period, offset, now_s)
        local used, ext = quota_state(read(key), ws)
        if delta > 0 then
          -- An overrun is charged to the window open now, whichever window the estimate went to.
          used = used + delta
          write_quota(key, ws, we, used, ext, keep_us)
        elseif delta < 0 and ws == taken_ws then
          -- A refund goes back to the window it was taken from, while that window is open.
          used = used + delta
          if used < 0 then used = 0 end
          write_quota(key, ws, we, used, ext, keep_us)
        end
        capacity = base + ext
        if capacity < 0 then capacity = 0 end
        remaining = capacity - used
        reset_ms = ms_up(we * 1000000 - now_us)
      end
      if remaining < 0 then remaining = 0 end
      out[#out + 1] = name
      out[#out + 1] = capacity
      out[#out + 1] = remaining
      out[#out + 1] = reset_ms
      out[15] = out[15] + 1
    end
  end
  redis.call('ZREM', KEYS[3], member)
  redis.call('ZREM', KEYS[4], member)
  local retention = tonumber(ARGV[6])
  add_usage(rec.d, retention, { r = act.r - est.r, i = act.i - est.i, o = act.o - est.o, k = act.k - est.k, c = act.c - est.c }, true)
  local memory_ms = tonumber(ARGV[7])
  -- Kept for a retried settle (its answer) or cancel: nothing else.
  local done = { s = 'x', ik = rec.ik }
  if op == 's' then done.s, done.a = 's', out end
  redis.call('SET', KEYS[1], cmsgpack.pack(done), 'PX', int_text(memory_ms))
  if rec.ik ~= '' then redis.call('PEXPIRE', rec.ik, int_text(memory_ms)) end
  return out
end

if op == 'n' then
  local member = ARGV[5]
  local rec, status = open_record(member)
  if status ~= 1 then return { status, now_ms, 0, 0, reclaimed } end
  local ttl = tonumber(ARGV[3])
  if ttl <= 0 then ttl = rec.t end
  local memory_ms = tonumber(ARGV[4])
  rec.x = now_ms + ttl
  redis.call('ZADD', KEYS[3], rec.x, member)
  redis.call('PEXPIRE', KEYS[3], reservations_life)
  local lease = -1
  if rec.lt > 0 then
    -- A lease already given up (expired and taken by others) is not taken back.
    if redis.call('ZSCORE', KEYS[4], member) then
      redis.call('ZADD', KEYS[4], math.min(now_ms + rec.lt, rec.x), member)
      redis.call('PEXPIRE', KEYS[4], leases_life)
      lease = 1
    else
      lease = 0
    end
  end
  redis.call('SET', KEYS[1], cmsgpack.pack(rec), 'PX', int_text(ttl + memory_ms))
  if rec.ik ~= '' then redis.call('PEXPIRE', rec.ik, int_text(ttl + memory_ms)) end
  return { 1, now_ms, rec.x, lease, reclaimed }
end

if op == 'v' then
  local open = redis.call('ZCARD', KEYS[3])
  local leases = redis.call('ZCARD', KEYS[4])
  local sums = { 0, 0, 0, 0, 0 }
  for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, 999)) do
    local text = read(prefix .. 'v:' .. member)
    local ok, rec = pcall(cmsgpack.unpack, text or '')
    if text and ok and type(rec) == 'table' and type(rec.e) == 'table' then
      sums[1] = sums[1] + rec.e[1]
      sums[2] = sums[2] + rec.e[2]
      sums[3] = sums[3] + rec.e[3]
      sums[4] = sums[4] + rec.e[2] + rec.e[3]
      sums[5] = sums[5] + rec.e[5]
    end
  end
  return { now_ms, reclaimed, open, leases, sums[1], sums[2], sums[3], sums[4], sums[5] }
end

return redis.error_reply('ERR unknown ledger op')
