-- Records when a sale's state was first found missing, and says how long ago that was.
-- Both are read on Redis's clock, the one clock every container shares: a container
-- whose clock was stepped back must not shorten every other container's wait for the
-- orders in flight (see recovery/detect.rs).
--
-- KEYS ({sale:ID} hash tag): 1 lost_at
-- Reply: milliseconds since the first finder found it missing.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('SET', KEYS[1], now, 'NX', 'EX', 3600)
return now - tonumber(redis.call('GET', KEYS[1]))
