-- Admits one purchase atomically, or says why not. One call per "Buy" press.
--
-- KEYS (all share the hash tag {sale:ID}, so this runs on a Redis cluster too):
--   1 meta      hash: limit, starts_at_ms, ends_at_ms, ..., outbox_units (the units of
--               the outbox's orders, kept with it: lua/clear.lua, release.lua, rebuild.lua)
--   2 stock     units still on sale
--   3 bought    hash: user -> units the user holds
--   4 orders    hash: user -> space-separated order ids the user holds
--   5 outbox    hash: order id -> order message, until MySQL has the order
--   6 outbox_at sorted set: order id by admission time (ms), so stale entries are found by age
--   7 passes    hash: waiting-room pass id -> the order it bought (a pass buys once)
--   8 released  set: orders whose hold ended; a pass whose order was undone (its shopper
--               told 503, retry) or closed buys again
-- ARGV: user, quantity, order id (a string: Lua numbers are doubles), order message (JSON),
--   the id of the purchase's waiting-room pass ('' when none; its signature, shopper,
--   sale and expiry were checked before this call)
--
-- Replies, as arrays of strings:
--   {'admitted', order_id, remaining}   {'limit', limit, ids}
--   {'sold_out', remaining, holders_v}  (holders_v: meta's count of changes to who holds
--                                        what, so a container's copy of the holders is
--                                        taken again only once it changed)
--   {'not_started', starts_at_ms}       {'ended'}              {'unknown'}
--   {'bad_quantity', limit}             {'stale'}              {'id_taken', order_id}
--   {'pass_required'}                   {'pass_used'}

local meta = redis.call('HMGET', KEYS[1], 'limit', 'starts_at_ms', 'ends_at_ms', 'epoch', 'holders_v', 'q_mode')
if not meta[1] then
  return {'unknown'}
end

-- A call retried after a time-out may find its own admission done: the same answer.
-- Another admission under this id is a fault of the id generator, never this order.
local kept = redis.call('HGET', KEYS[5], ARGV[3])
if kept then
  if kept ~= ARGV[4] then
    return {'id_taken', ARGV[3]}
  end
  return {'admitted', ARGV[3], redis.call('GET', KEYS[2]) or '0'}
end

-- The sale window is judged by Redis's clock, the one clock every container shares.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if now < tonumber(meta[2]) then
  return {'not_started', meta[2]}
end
if now >= tonumber(meta[3]) then
  return {'ended'}
end

-- A sale behind a waiting room sells only to a pass, and to each pass once.
local pass = ARGV[5]
if meta[6] and meta[6] ~= '' then
  if pass == '' then
    return {'pass_required'}
  end
  local bought = redis.call('HGET', KEYS[7], pass)
  if bought and redis.call('SISMEMBER', KEYS[8], bought) == 0 then
    return {'pass_used'}
  end
end

local limit = tonumber(meta[1])
local quantity = tonumber(ARGV[2])
if not quantity or quantity < 1 or quantity > limit or quantity ~= math.floor(quantity) then
  return {'bad_quantity', meta[1]}
end

-- The per-user limit is checked before any deduction: repeat clicks must not drain stock.
local user = ARGV[1]
local held = tonumber(redis.call('HGET', KEYS[3], user) or '0')
if held + quantity > limit then
  return {'limit', meta[1], redis.call('HGET', KEYS[4], user) or ''}
end

local remaining = tonumber(redis.call('GET', KEYS[2]) or '0')
if remaining < quantity then
  return {'sold_out', tostring(remaining), meta[5] or '0'}
end

-- Only a deduction needs the state to be this primary's: a turned-away answer from a
-- promoted replica's older copy is still true (it held more stock and fewer holdings).
if meta[4] ~= primary_epoch() then
  return {'stale'}
end

local order_id = ARGV[3]
redis.call('DECRBY', KEYS[2], quantity)
redis.call('HINCRBY', KEYS[3], user, quantity)
local ids = redis.call('HGET', KEYS[4], user)
redis.call('HSET', KEYS[4], user, ids and (ids .. ' ' .. order_id) or order_id)
redis.call('HSET', KEYS[5], order_id, ARGV[4])
redis.call('HINCRBY', KEYS[1], 'outbox_units', quantity)
redis.call('ZADD', KEYS[6], now, order_id)
redis.call('HINCRBY', KEYS[1], 'holders_v', 1)
if pass ~= '' then
  redis.call('HSET', KEYS[7], pass, order_id)
end
return {'admitted', order_id, tostring(remaining - quantity)}
