-- Claims a batch of a sale's orders for persistence, just before their transaction.
-- An admission undone in Redis (the shopper was told 503: its order could be kept
-- nowhere, yet an SQS send that failed ambiguously may have delivered its message) or
-- an order whose hold already ended is named, and must not be persisted: its units are
-- back on sale. Every other order is marked persisting, so an undo from now on leaves
-- it standing (release.lua), and its shopper's 503 becomes the truth's 202.
--
-- KEYS ({sale:ID} hash tag): 1 stock, 2 released, 3 persisting
-- ARGV: the order ids
-- Reply: the ids among them whose hold has ended (an empty list when the sale is not in
--        Redis: a lost sale is rebuilt from MySQL and the pending-orders table, which
--        counts these orders wherever they are)

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {}
end
local ended = {}
for i = 1, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 1 then
    ended[#ended + 1] = ARGV[i]
  else
    redis.call('SADD', KEYS[3], ARGV[i])
  end
end
-- The claims live as long as the sale's other keys.
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return ended
