-- Ends an order's hold on a sale's stock in Redis, at most once per order: a closed,
-- refused or undone order may be settled again after a crash, and only the first
-- call counts.
--
-- KEYS ({sale:ID} hash tag): 1 stock, 2 bought, 3 orders, 4 outbox, 5 outbox_at, 6 released,
--   7 meta, 8 persisting
-- ARGV: mode, order id, user, quantity, then for 'reject': sale stock, MySQL sold and the
--       ids of outbox entries MySQL already has (read under the sale's row lock, so no
--       order commits or closes meanwhile)
-- Modes:
--   close   the order timed out unpaid: its units go back on sale.
--   undo    its admission is taken back before the shopper was told (its order message
--           could be kept nowhere): only while it is still in the outbox and no consumer
--           has claimed it for persistence (lua/persisting.lua).
--   reject  MySQL refused it: a unit MySQL had no room for never existed, so instead of
--           giving it back the stock is set to what MySQL and the outbox leave over.
-- Reply: the stock now on sale; -1 when the sale is not in Redis (or is another
--        primary's copy: the rebuild from MySQL counts the close or refusal), -2 when
--        settled before, -3 when an undo finds the order claimed for persistence (it
--        stands), -4 when an undo finds it gone from the outbox (in MySQL, or lost with
--        a failover: the caller asks MySQL).

local mode, order_id, user, quantity = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
-- An undo takes back this admission wherever it stands; the rebuild keeps the outbox.
if mode ~= 'undo' and redis.call('HGET', KEYS[7], 'epoch') ~= primary_epoch() then
  return -1
end
if mode == 'undo' and redis.call('SISMEMBER', KEYS[8], order_id) == 1 then
  return -3
end
if mode == 'undo' and redis.call('HEXISTS', KEYS[4], order_id) == 0 then
  return -4
end
if redis.call('SADD', KEYS[6], order_id) == 0 then
  return -2
end
-- Who holds what changes: containers' copies of the holders are stale.
redis.call('HINCRBY', KEYS[7], 'holders_v', 1)

-- The shopper gets the allowance back: the order that used it did not happen.
if redis.call('HINCRBY', KEYS[2], user, -quantity) <= 0 then
  redis.call('HDEL', KEYS[2], user)
end
local ids = redis.call('HGET', KEYS[3], user)
if ids then
  local kept = {}
  for id in string.gmatch(ids, '%S+') do
    if id ~= order_id then
      kept[#kept + 1] = id
    end
  end
  if #kept == 0 then
    redis.call('HDEL', KEYS[3], user)
  else
    redis.call('HSET', KEYS[3], user, table.concat(kept, ' '))
  end
end
if redis.call('HDEL', KEYS[4], order_id) == 1 and redis.call('EXISTS', KEYS[7]) == 1 then
  redis.call('HINCRBY', KEYS[7], 'outbox_units', -quantity)
end
redis.call('ZREM', KEYS[5], order_id)

if mode ~= 'reject' then
  return redis.call('INCRBY', KEYS[1], quantity)
end
-- Every unit is on sale, in the outbox, or sold in MySQL: what is not in the other two
-- is on sale. A unit MySQL refused for lack of room is in none of them. The outbox's
-- units are meta's tally, less the entries MySQL already has: O(those), not O(outbox),
-- while the caller holds the sale's row lock.
local pending = tonumber(redis.call('HGET', KEYS[7], 'outbox_units') or '0')
for i = 7, #ARGV do
  local message = redis.call('HGET', KEYS[4], ARGV[i])
  if message then
    pending = pending - tonumber(cjson.decode(message).quantity)
  end
end
local remaining = math.max(0, tonumber(ARGV[5]) - tonumber(ARGV[6]) - pending)
redis.call('SET', KEYS[1], remaining)
return remaining
