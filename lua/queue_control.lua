-- Staff change a waiting room's rate, pause or resume it, or change its difficulty. The
-- number it serves is rebased to what it is now, so it never jumps or moves back.
--
-- KEYS ({sale:ID} hash tag): 1 meta
-- ARGV: rate, paused ('1' or '0'), difficulty
-- Reply: 1, or 0 when Redis does not hold the sale or it has no waiting room.

local m = redis.call('HMGET', KEYS[1], 'q_mode', 'q_rate', 'q_paused', 'q_base', 'q_since_ms', 'starts_at_ms')
if not m[6] or not m[1] or m[1] == '' then
  return 0
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local base = tonumber(m[4] or '0')
local since = tonumber(m[5] or m[6])
local rate = tonumber(m[2] or '0')
local serving, rebased = base, math.max(now, since)
if m[3] ~= '1' and now > since and rate > 0 then
  serving = base + math.floor((now - since) * rate / 1000)
  -- From the instant the last whole place was reached, not from now: frequent changes
  -- do not stall a slow room.
  rebased = since + math.ceil((serving - base) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'q_base', string.format('%d', serving),
  'q_since_ms', string.format('%d', rebased),
  'q_rate', ARGV[1], 'q_paused', ARGV[2], 'q_difficulty', ARGV[3])
return 1
