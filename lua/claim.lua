-- Renews or gives up a claim (see Redis::claim), only while the caller still holds it: a
-- claim that lapsed under a slow holder and was taken by the next one stays the next
-- one's.
--
-- KEYS: 1 the claim
-- ARGV: 1 the token the caller's claim wrote; 2 (to renew) how long it holds from now, ms
-- Reply: 1 when renewed or given up, 0 when the claim was no longer the caller's.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('DEL', KEYS[1])
