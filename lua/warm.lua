-- Loads a sale into Redis (publishing, cache warming). Idempotent: the stock is set
-- only when absent, so publishing again never undoes sales already made.
--
-- KEYS ({sale:ID} hash tag): 1 meta, 2 stock, 3 bought, 4 orders, 5 outbox, 6 outbox_at, 7 released
-- ARGV: created_at_ms, stock to put on sale, then meta field/value pairs
-- Reply: 1 when leftover state of another sale with this id was wiped (its database
-- was recreated while Redis kept running), else 0.

local existing = redis.call('HGET', KEYS[1], 'created_at_ms')
local stale = existing and existing ~= ARGV[1]
if stale then
  redis.call('DEL', unpack(KEYS))
end
redis.call('HSET', KEYS[1], 'created_at_ms', ARGV[1], unpack(ARGV, 3))
-- A sale new to this primary is its own; one left over from another primary keeps its
-- stamp, so the first admission still sends it through a rebuild.
redis.call('HSETNX', KEYS[1], 'epoch', primary_epoch())
redis.call('SET', KEYS[2], ARGV[2], 'NX')
return stale and 1 or 0
