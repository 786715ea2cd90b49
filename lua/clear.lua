-- Forgets outbox entries (and their persistence claims) once MySQL holds their orders,
-- taking their units off meta's outbox_units, so the console reads the outbox's units
-- without reading the outbox. Entries already gone count nothing.
--
-- KEYS ({sale:ID} hash tag): 1 meta, 2 outbox, 3 outbox_at, 4 persisting
-- ARGV: order ids
-- Reply: the units taken off.

local units = 0
for i = 1, #ARGV do
  local message = redis.call('HGET', KEYS[2], ARGV[i])
  if message then
    units = units + tonumber(cjson.decode(message).quantity)
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
  redis.call('ZREM', KEYS[3], ARGV[i])
  redis.call('SREM', KEYS[4], ARGV[i])
end
-- Never a meta of nothing but this field: a sale without meta is one Redis lost.
if units > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'outbox_units', -units)
end
return units
