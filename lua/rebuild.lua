-- Rebuilds a sale's Redis state from MySQL, the truth: after Redis lost it (failover,
-- restart, flush), or on an operator's re-sync. Outbox entries are kept (and those
-- given in the snapshot added): orders MySQL does not have yet still hold their units.
--
-- KEYS ({sale:ID} hash tag): 1 meta, 2 stock, 3 bought, 4 orders, 5 outbox, 6 outbox_at,
--   7 released, 8 lost_at, ..., 10 the waiting room's places (SaleKeys::all's order)
-- ARGV[1]: the snapshot, JSON, read from MySQL under the sale's row lock:
--   force        rebuild even when the sale is in Redis (a re-sync)
--   meta         [field, value, ...] as lua/warm.lua writes them
--   stock, sold  the sale's stock and MySQL's sold
--   holds        [[user, order id, quantity], ...] the orders that hold units (UNPAID,
--                PAID, DISPUTED, REFUNDED at the provider: OrderStatus::holds_units)
--   settled      [order id, ...] the orders whose hold ended (CLOSED, REJECTED, REFUNDED
--                after the close): never released again
--   pending      [order message JSON, ...] the orders recorded in the pending-orders
--                table (every order sent to SQS is), put back in the outbox: MySQL
--                lacks them, so they hold their units here
-- Reply: the stock now on sale, or -1 when the sale was in Redis, written on this primary
-- (epoch.lua), and force was not set.

local snapshot = cjson.decode(ARGV[1])
local epoch = primary_epoch()
if not snapshot.force and redis.call('HGET', KEYS[1], 'epoch') == epoch then
  return -1
end

for _, message in ipairs(snapshot.pending) do
  local order = cjson.decode(message)
  -- A record of an admission undone here (its shopper told 503) is not an order: it
  -- outlived the undo's forget, and reconcile forgets it.
  if redis.call('SISMEMBER', KEYS[7], order.order_id) == 0
      and redis.call('HSETNX', KEYS[5], order.order_id, message) == 1 then
    -- Score 0: stale at once, so the next check-back sends it (again, most likely:
    -- persisting it twice is a no-op).
    redis.call('ZADD', KEYS[6], 0, order.order_id)
  end
end

-- The released set stays: an order whose hold ended never holds units again, and an
-- undone admission (which MySQL never sees) is known only there. So do the waiting
-- room's places, with the meta fields that count them and give its serving number: the
-- running room's own (its base was rebased with its rate and pause, whatever MySQL says).
local room_fields = {'q_late', 'q_base', 'q_since_ms', 'q_rate', 'q_paused', 'q_difficulty'}
local room = redis.call('HMGET', KEYS[1], unpack(room_fields))
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[8])
-- A count of changes to the holders no copy taken before can carry: copies are retaken.
local time = redis.call('TIME')
-- Concatenated: Lua would print a number this large in exponent form.
local holders_v = time[1] .. string.format('%06d', tonumber(time[2]))
redis.call('HSET', KEYS[1], 'epoch', epoch, 'holders_v', holders_v, unpack(snapshot.meta))
for i, field in ipairs(room_fields) do
  if room[i] then
    redis.call('HSET', KEYS[1], field, room[i])
  end
end
-- Places that outlived their count: later joiners are numbered after the last one.
if not room[1] and KEYS[10] then
  local last = 0
  for _, held in ipairs(redis.call('HVALS', KEYS[10])) do
    last = math.max(last, tonumber(held) or 0)
  end
  if last > 0 then
    redis.call('HSET', KEYS[1], 'q_late', last)
  end
end

local bought, orders, known = {}, {}, {}
local function hold(user, id, quantity)
  bought[user] = (bought[user] or 0) + quantity
  orders[user] = orders[user] and (orders[user] .. ' ' .. id) or id
end
for _, h in ipairs(snapshot.holds) do
  known[h[2]] = true
  hold(h[1], h[2], tonumber(h[3]))
end
for _, id in ipairs(snapshot.settled) do
  known[id] = true
  redis.call('SADD', KEYS[7], id)
end

-- Outbox entries MySQL already has are counted there (and done with: their clear may be
-- what a failover lost); the others hold their units here.
local pending = 0
local outbox = redis.call('HGETALL', KEYS[5])
for i = 1, #outbox, 2 do
  if known[outbox[i]] then
    redis.call('HDEL', KEYS[5], outbox[i])
    redis.call('ZREM', KEYS[6], outbox[i])
  else
    local order = cjson.decode(outbox[i + 1])
    pending = pending + tonumber(order.quantity)
    hold(order.user_id, outbox[i], tonumber(order.quantity))
  end
end
redis.call('HSET', KEYS[1], 'outbox_units', pending)
for user, units in pairs(bought) do
  redis.call('HSET', KEYS[3], user, units)
  redis.call('HSET', KEYS[4], user, orders[user])
end

local remaining = math.max(0, tonumber(snapshot.stock) - tonumber(snapshot.sold) - pending)
redis.call('SET', KEYS[2], remaining)
return remaining
