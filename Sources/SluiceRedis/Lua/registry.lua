-- Sluice runtime key registry: one atomic change to the hash of runtime API keys,
-- a version bump and a notice to every instance. Runs after prelude.lua.
--
-- KEYS[1]  the registry hash (key id -> JSON record)
-- KEYS[2]  the registry's version counter
-- ARGV[1]  "create" | "update" | "delete"
-- ARGV[2]  key id
-- ARGV[3]  the record (create, update)
-- ARGV[4]  the pub/sub channel for change notices
--
-- Returns { status, version }: status 1 done, 0 refused (create: the id exists;
-- update, delete: it does not); version 0 when refused.

local op, id = ARGV[1], ARGV[2]
if op == 'create' then
  if redis.call('HSETNX', KEYS[1], id, ARGV[3]) == 0 then return { 0, 0 } end
elseif op == 'update' then
  if redis.call('HEXISTS', KEYS[1], id) == 0 then return { 0, 0 } end
  redis.call('HSET', KEYS[1], id, ARGV[3])
else
  if redis.call('HDEL', KEYS[1], id) == 0 then return { 0, 0 } end
end
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[4], 'key ' .. version .. ' ' .. id)
return { 1, version }
