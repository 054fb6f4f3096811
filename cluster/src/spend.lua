-- Checks and spends all windows of one rate limit request at once.
-- KEYS: the windows' counters. ARGV: for each window, in KEYS order, three
-- values: limit, hits, and the Unix second the window ends (the counter
-- expires then). Nothing is spent unless every window has room for its hits.
-- Returns {over, count_1, ..., count_n}: over = 1 when some window is full;
-- count_i is window i's count after this request (before it when over).
local n = #KEYS
local counts = {}
local over = 0
for i = 1, n do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  counts[i] = count
  if count + tonumber(ARGV[3 * i - 1]) > tonumber(ARGV[3 * i - 2]) then
    over = 1
  end
end
if over == 0 then
  for i = 1, n do
    local hits = tonumber(ARGV[3 * i - 1])
    if hits > 0 then
      counts[i] = redis.call('INCRBY', KEYS[i], hits)
      redis.call('EXPIREAT', KEYS[i], tonumber(ARGV[3 * i]) + 1)
    end
  end
end
local out = {over}
for i = 1, n do
  out[i + 1] = counts[i]
end
return out
