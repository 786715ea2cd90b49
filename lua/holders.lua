-- Who holds a sale's units, copied whole and at one moment, so that a container can
-- answer repeat clicks after the sale sold out from memory instead of asking Redis each
-- time. Only while the copy stays small: a container takes one per sold-out memo period.
--
-- KEYS: 1 meta, 2 bought, 3 orders (as in admit.lua)
-- ARGV: the most holders worth copying
--
-- Replies {limit, {user, units, ...}, {user, ids, ...}}, or false when the sale has more
-- holders than ARGV[1] or Redis does not know it.

local limit = redis.call('HGET', KEYS[1], 'limit')
if not limit or redis.call('HLEN', KEYS[2]) > tonumber(ARGV[1]) then
  return false
end
return {limit, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3])}
