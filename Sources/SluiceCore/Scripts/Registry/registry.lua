-- Sluice runtime key registry: one atomic change to the hash of runtime API keys,
-- a version bump, a new change token and a notice to every instance. Runs after
-- prelude.lua.
--
-- KEYS[1]  the registry hash (key id -> JSON record)
-- KEYS[2]  the registry's version counter
-- KEYS[3]  the token of the registry's last change
-- ARGV[1]  "create" | "update" | "delete"
-- ARGV[2]  key id
-- ARGV[3]  the record (create, update)
-- ARGV[4]  the pub/sub channel for change notices
--
-- The token names one change for good (Redis's time and the version): a mirror that holds
-- version v with token t holds exactly the registry that change made. After Redis loses data
-- or goes back to an older state (restart without persistence, an older snapshot, a replica
-- that lagged), a version can come back with another token, so instances compare both, and
-- a notice names the token before its change: it applies on top of that state only.
--
-- Returns { status, version, token, previous token }: status 1 done, 0 refused (create:
-- the id exists; update, delete: it does not), then version 0 and empty tokens.

local op, id = ARGV[1], ARGV[2]
if op == 'create' then
  if redis.call('HSETNX', KEYS[1], id, ARGV[3]) == 0 then return { 0, 0, '', '' } end
elseif op == 'update' then
  if redis.call('HEXISTS', KEYS[1], id) == 0 then return { 0, 0, '', '' } end
  redis.call('HSET', KEYS[1], id, ARGV[3])
else
  if redis.call('HDEL', KEYS[1], id) == 0 then return { 0, 0, '', '' } end
end
local previous = read(KEYS[3]) or ''
local version = redis.call('INCR', KEYS[2])
local t = redis.call('TIME')
local token = t[1] .. '.' .. t[2] .. '.' .. version
redis.call('SET', KEYS[3], token)
redis.call('PUBLISH', ARGV[4], 'key ' .. version .. ' ' .. id .. ' ' .. token .. ' ' .. previous)
return { 1, version, token, previous }
