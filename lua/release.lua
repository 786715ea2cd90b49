-- Puts an order's units back on sale, at most once per order: a closed or rejected
-- order may be released again after a crash, and only the first call counts.
--
-- KEYS ({sale:ID} hash tag): 1 stock, 2 bought, 3 orders, 4 outbox, 5 outbox_at, 6 released
-- ARGV: order id, user, quantity
-- Reply: 1 released now, 0 released before, -1 sale not in Redis (nothing to give back to).

if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if redis.call('SADD', KEYS[6], ARGV[1]) == 0 then
  return 0
end

local quantity = tonumber(ARGV[3])
redis.call('INCRBY', KEYS[1], quantity)

-- The shopper gets the allowance back: the order that used it did not happen.
local user = ARGV[2]
if redis.call('HINCRBY', KEYS[2], user, -quantity) <= 0 then
  redis.call('HDEL', KEYS[2], user)
end
local ids = redis.call('HGET', KEYS[3], user)
if ids then
  local kept = {}
  for id in string.gmatch(ids, '%S+') do
    if id ~= ARGV[1] then
      kept[#kept + 1] = id
    end
  end
  if #kept == 0 then
    redis.call('HDEL', KEYS[3], user)
  else
    redis.call('HSET', KEYS[3], user, table.concat(kept, ' '))
  end
end

redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
