-- Who holds a sale's units, copied whole and at one moment, so that a container can
-- answer repeat clicks after the sale sold out from memory instead of asking Redis each
-- time. Only while the copy stays small: a container takes one when the sale sells out,
-- and again only once who holds what changed (holders_v).
--
-- KEYS: 1 meta, 2 bought, 3 orders (as in admit.lua)
-- ARGV: the most holders worth copying
--
-- Replies {limit, {user, units, ...}, {user, ids, ...}, holders_v} (the count of changes
-- to the holders this copy reflects, see admit.lua), or false when the sale has more
-- holders than ARGV[1] or Redis does not know it.

local meta = redis.call('HMGET', KEYS[1], 'limit', 'holders_v')
local limit = meta[1]
if not limit or redis.call('HLEN', KEYS[2]) > tonumber(ARGV[1]) then
  return false
end
return {limit, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]), meta[2] or '0'}
