"""The Lua scripts of the Redis store (redis.py), one per write, each atomic.

Redis runs nothing else while a script runs, and each script makes all its checks before its
first write, so a refused call writes nothing. ``#!lua`` makes Redis refuse a script up front
(not half-way) when it is out of memory. The keys and arguments each one takes are read in
redis.py, beside the call; the key layout is drawn in redis.py's docstring.
"""

CREATE = """#!lua
if KEYS[7] then
  local existing = redis.call('HMGET', KEYS[7], 'rollout', 'digest')
  if existing[1] then
    local same = existing[2] == ARGV[6] and 1 or 0
    return {'existing', existing[1], same}
  end
end
local record = redis.call('HMGET', KEYS[1], 'state', 'revision')
if record[2] then
  if record[2] == '1' and record[1] == ARGV[2] then return {'replayed'} end
  return {'taken'}
end
local latest = redis.call('GET', KEYS[3]) or ''
if latest ~= ARGV[3] then return {'lane', latest} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'revision', 1)
redis.call('SET', KEYS[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1]) end
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[5], ARGV[1])
if KEYS[7] then
  redis.call('HSET', KEYS[7], 'rollout', ARGV[1], 'digest', ARGV[6])
  redis.call('PEXPIRE', KEYS[7], ARGV[7])
end
for i = 9, #ARGV do redis.call('XADD', KEYS[2], '*', 'event', ARGV[i], 'format', ARGV[8]) end
return {'created'}
"""

SAVE = """#!lua
local record = redis.call('HMGET', KEYS[1], 'state', 'revision')
if not record[2] then return {'missing'} end
local expected, revision = tonumber(ARGV[2]), tonumber(record[2])
if revision == expected + 1 and record[1] == ARGV[3] then return {'saved', revision} end
if revision ~= expected then return {'stale', revision} end
if ARGV[5] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[5] then return {'lease'} end
revision = revision + 1
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'revision', revision)
if ARGV[4] == '' then redis.call('ZREM', KEYS[3], ARGV[1])
else redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) end
local events = tonumber(ARGV[7])
for i = 10, 9 + events do
  redis.call('XADD', KEYS[2], '*', 'event', ARGV[i], 'format', ARGV[8])
end
for i = 6, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local at = 10 + events + (i - 6) * 2
    redis.call('HSET', KEYS[i], 'id', ARGV[at], 'rollout_id', ARGV[1],
      'payload', ARGV[at + 1], 'format', ARGV[9], 'attempts', 0)
    redis.call('ZADD', KEYS[5], ARGV[6], ARGV[at])
  end
end
return {'saved', revision}
"""

CLAIM = """#!lua
local claimed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])) do
  local key = ARGV[5] .. id
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('HINCRBY', key, 'attempts', 1)
  redis.call('HSET', key, 'claimed_by', ARGV[4])
  claimed[#claimed + 1] = redis.call('HGETALL', key)
end
return claimed
"""

SETTLE = """#!lua
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[2], 'delivered') == 1 then return 1 end
if redis.call('HEXISTS', KEYS[2], 'given_up') == 1 then return 1 end
redis.call('HDEL', KEYS[2], 'claimed_by')
if ARGV[2] == 'ack' then
  redis.call('HSET', KEYS[2], 'delivered', 1)
  redis.call('ZREM', KEYS[1], ARGV[1])
elseif ARGV[2] == 'give_up' then
  redis.call('HSET', KEYS[2], 'given_up', 1, 'last_error', ARGV[3])
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[2], 'last_error', ARGV[3])
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
end
return 1
"""

ACQUIRE = """#!lua
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

RELEASE = """#!lua
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Remove and return the schedule's members due by ARGV[1], at most ARGV[2], earliest first.
TAKE_DUE = """#!lua
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""
