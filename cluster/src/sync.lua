-- One replica's sync: its reports in, the cluster's revocation changes out.
-- Runs atomically (Redis runs one script at a time), so two replicas'
-- changes to one key are ordered, and the latest (by changed_ms) wins.
--
-- ARGV: prefix, now_ms, since, replica, epoch, max_names, n, then n key reports:
--   name, has_change, revoked, by, at_secs, changed_ms,
--   max_addresses, window_secs, revoke_on_leak,
--   n_seen, n_seen x (tag, last_seen),
--   n_days, n_days x (day, admitted, rate_limited, rejected),
--   request_count, last_used
-- Keys (all under the prefix `rg:{<domain>}`, one hash slot):
--   :rev       hash  name -> "revoked,by,at_secs,changed_ms"
--   :revlog    zset  name scored by the version of its last change
--   :revver    counter of changes
--   :epoch     drawn (from TIME) when missing: a Redis that lost its data,
--              or another domain, has another epoch, and a replica whose
--              epoch differs gets every record (its `since` counts as 0)
--   :addr:<name>             zset  address tag -> last seen (Unix s)
--   :use:<name>:<day>        hash  replica -> "admitted,rate_limited,rejected"
--   :usemeta:<name>          hash  replica -> "request_count,last_used"
-- Returns {epoch, version, n_rev, n_rev x (name, revoked, by, at, changed),
--          n_leaks, n_leaks x (name, distinct)}. The records are those
-- changed since `since`, plus those newer than the change a replica
-- reported (so a replica that missed one, whatever its version, gets it).
local p = ARGV[1]
local now_ms = tonumber(ARGV[2])
local now = math.floor(now_ms / 1000)
local since = tonumber(ARGV[3])
local replica = ARGV[4]
local max_names = tonumber(ARGV[6])
local n = tonumber(ARGV[7])
local revkey, logkey, verkey = p .. ':rev', p .. ':revlog', p .. ':revver'
local epoch = redis.call('GET', p .. ':epoch')
if not epoch then
  local t = redis.call('TIME')
  -- Seconds and microseconds as digits (a Lua number would print as a float).
  epoch = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('SET', p .. ':epoch', epoch)
end
if epoch ~= ARGV[5] then
  since = 0
end
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
local stale = {}
local i = 8
for _ = 1, n do
  local name = ARGV[i]
  if tonumber(ARGV[i + 1]) == 1 then
    local changed = tonumber(ARGV[i + 5])
    set_rev(name, tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), changed)
    local now_rec = current(name)
    if now_rec and now_rec[4] > changed then
      stale[#stale + 1] = name
    end
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
      if seen > floor and seen > now - window then
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

local out = {epoch, 0, 0}
local changed = redis.call('ZRANGEBYSCORE', logkey, since + 1, '+inf', 'WITHSCORES', 'LIMIT', 0, 4096)
local version = since
local n_rev = 0
local sent = {}
local function send(name)
  local cur = current(name)
  if cur and not sent[name] then
    sent[name] = true
    out[#out + 1] = name
    for f = 1, 4 do out[#out + 1] = cur[f] end
    n_rev = n_rev + 1
  end
end
for k = 1, #changed, 2 do
  version = tonumber(changed[k + 1])
  send(changed[k])
end
for _, name in ipairs(stale) do
  send(name)
end
if #changed == 0 then
  version = math.max(since, tonumber(redis.call('GET', verkey) or '0'))
end
out[2] = version
out[3] = n_rev
out[#out + 1] = #leaks / 2
for k = 1, #leaks do out[#out + 1] = leaks[k] end
return out
