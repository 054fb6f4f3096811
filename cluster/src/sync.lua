-- One replica's sync: its reports in, the cluster's revocation changes out.
-- Runs atomically (Redis runs one script at a time), so two replicas'
-- changes to one key are ordered, and the latest (by changed_ms) wins.
--
-- ARGV: prefix, now_ms, since, replica, max_names, n, then n key reports:
--   name, has_change, revoked, by, at_secs, changed_ms,
--   max_addresses, window_secs, revoke_on_leak,
--   n_seen, n_seen x (tag, last_seen),
--   n_days, n_days x (day, admitted, rate_limited, rejected),
--   request_count, last_used
-- Keys (all under the prefix `rg:{<domain>}`, one hash slot):
--   :rev       hash  name -> "revoked,by,at_secs,changed_ms"
--   :revlog    zset  name scored by the version of its last change
--   :revver    counter of changes
--   :addr:<name>             zset  address tag -> last seen (Unix s)
--   :use:<name>:<day>        hash  replica -> "admitted,rate_limited,rejected"
--   :usemeta:<name>          hash  replica -> "request_count,last_used"
-- Returns {version, n_rev, n_rev x (name, revoked, by, at, changed),
--          n_leaks, n_leaks x (name, distinct)}.
local p = ARGV[1]
local now_ms = tonumber(ARGV[2])
local now = math.floor(now_ms / 1000)
local since = tonumber(ARGV[3])
local replica = ARGV[4]
local max_names = tonumber(ARGV[5])
local n = tonumber(ARGV[6])
local revkey, logkey, verkey = p .. ':rev', p .. ':revlog', p .. ':revver'
local max_addresses_kept = 64
local usage_ttl = 40 * 86400

local function current(name)
  local cur = redis.call('HGET', revkey, name)
  if not cur then return nil end
  local r, b, a, c = string.match(cur, '^(%d+),(%d+),(%d+),(%d+)$')
  return {tonumber(r), tonumber(b), tonumber(a), tonumber(c)}
end

local function set_rev(name, revoked, by, at, changed)
  local cur = current(name)
  if cur then
    if cur[4] >= changed then return end
  elseif redis.call('HLEN', revkey) >= max_names then
    return
  end
  redis.call('HSET', revkey, name, revoked .. ',' .. by .. ',' .. at .. ',' .. changed)
  redis.call('ZADD', logkey, redis.call('INCR', verkey), name)
  if revoked == 0 then
    redis.call('DEL', p .. ':addr:' .. name)
  end
end

local leaks = {}
local i = 7
for _ = 1, n do
  local name = ARGV[i]
  if tonumber(ARGV[i + 1]) == 1 then
    set_rev(name, tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]),
      tonumber(ARGV[i + 5]))
  end
  local max, window, revoke = tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7]), tonumber(ARGV[i + 8])
  local n_seen = tonumber(ARGV[i + 9])
  i = i + 10
  if n_seen > 0 then
    local akey = p .. ':addr:' .. name
    local cur = current(name)
    -- Addresses seen before the key's last change (a restore) do not count.
    local floor = 0
    if cur then floor = math.floor(cur[4] / 1000) end
    local before = redis.call('ZCOUNT', akey, now - window + 1, '+inf')
    for s = 0, n_seen - 1 do
      local tag, seen = ARGV[i + 2 * s], tonumber(ARGV[i + 2 * s + 1])
      if seen >= floor and seen > now - window then
        redis.call('ZADD', akey, 'GT', seen, tag)
      end
    end
    i = i + 2 * n_seen
    redis.call('ZREMRANGEBYSCORE', akey, '-inf', now - window)
    local count = redis.call('ZCARD', akey)
    if count > max_addresses_kept then
      redis.call('ZPOPMIN', akey, count - max_addresses_kept)
      count = max_addresses_kept
    end
    if count > 0 then
      redis.call('EXPIRE', akey, window + 60)
    end
    if count > max then
      local revoked = cur and cur[1] == 1
      if revoke == 1 and not revoked then
        set_rev(name, 1, 2, now, now_ms)
      elseif revoke == 0 and before <= max then
        leaks[#leaks + 1] = name
        leaks[#leaks + 1] = count
      end
    end
  end
  local n_days = tonumber(ARGV[i])
  i = i + 1
  for d = 0, n_days - 1 do
    local j = i + 4 * d
    local ukey = p .. ':use:' .. name .. ':' .. ARGV[j]
    redis.call('HSET', ukey, replica, ARGV[j + 1] .. ',' .. ARGV[j + 2] .. ',' .. ARGV[j + 3])
    redis.call('EXPIRE', ukey, usage_ttl)
  end
  i = i + 4 * n_days
  if tonumber(ARGV[i]) > 0 then
    local mkey = p .. ':usemeta:' .. name
    redis.call('HSET', mkey, replica, ARGV[i] .. ',' .. ARGV[i + 1])
    redis.call('EXPIRE', mkey, usage_ttl)
  end
  i = i + 2
end

local out = {0, 0}
local changed = redis.call('ZRANGEBYSCORE', logkey, since + 1, '+inf', 'WITHSCORES', 'LIMIT', 0, 4096)
local version = since
local n_rev = 0
for k = 1, #changed, 2 do
  local name = changed[k]
  version = tonumber(changed[k + 1])
  local cur = current(name)
  if cur then
    out[#out + 1] = name
    for f = 1, 4 do out[#out + 1] = cur[f] end
    n_rev = n_rev + 1
  end
end
if #changed == 0 then
  version = math.max(since, tonumber(redis.call('GET', verkey) or '0'))
end
out[1] = version
out[2] = n_rev
out[#out + 1] = #leaks / 2
for k = 1, #leaks do out[#out + 1] = leaks[k] end
return out
