-- The payment account's budget of provider calls, shared by every container: a token
-- bucket that refills at ARGV[1] calls a second (by Redis's clock, one clock for all)
-- and holds at most ARGV[2], so a burst after a lull never passes more than the
-- provider's own per-second limit allows. Takes one call's token.
--
-- KEYS[1] the account's budget (hash: tokens, at_ms)
-- Returns 0 when a token was taken, else the milliseconds until one is there.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at_ms')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now_ms
if now_ms > at then
  tokens = math.min(burst, tokens + (now_ms - at) * rate / 1000)
  at = now_ms
end
if tokens < 1 then
  return math.ceil((1 - tokens) * 1000 / rate)
end
-- Tokens are fractional: kept as a string (a Lua float is not a Redis argument).
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at_ms', tostring(at))
-- Once it would be full again it is forgotten: an absent budget is a full one.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return 0
