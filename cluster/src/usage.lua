-- The cluster's usage totals: every replica's counts of some keys and days,
-- summed. Read-only.
-- ARGV: prefix, first_day, last_day, names...
-- Returns, per name: name, request_count, last_used, n_days,
-- n_days x (day, admitted, rate_limited, rejected) (days with counts only).
local p = ARGV[1]
local first, last = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for k = 4, #ARGV do
  local name = ARGV[k]
  local count, last_used = 0, 0
  for _, v in ipairs(redis.call('HVALS', p .. ':usemeta:' .. name)) do
    local c, l = string.match(v, '^(%d+),(%d+)$')
    if c then
      count = count + tonumber(c)
      last_used = math.max(last_used, tonumber(l))
    end
  end
  local days = {}
  -- A key no replica reported usage for has no days to read.
  local reported = redis.call('EXISTS', p .. ':usemeta:' .. name) == 1
  for day = first, last do
    if not reported then break end
    local a, r, j = 0, 0, 0
    local vals = redis.call('HVALS', p .. ':use:' .. name .. ':' .. day)
    for _, v in ipairs(vals) do
      local x, y, z = string.match(v, '^(%d+),(%d+),(%d+)$')
      if x then
        a, r, j = a + tonumber(x), r + tonumber(y), j + tonumber(z)
      end
    end
    if #vals > 0 then
      days[#days + 1] = {day, a, r, j}
    end
  end
  out[#out + 1] = name
  out[#out + 1] = count
  out[#out + 1] = last_used
  out[#out + 1] = #days
  for _, d in ipairs(days) do
    for f = 1, 4 do out[#out + 1] = d[f] end
  end
end
return out
