-- Records when a sale's state was first found missing, and says how long ago that was.
-- Both are read on Redis's clock, the one clock every container shares: a container
-- whose clock was stepped back must not shorten every other container's wait for the
-- orders in flight (see recovery/detect.rs). The record carries the primary's epoch
-- (epoch.lua): one a failover brought back from an earlier loss is not this loss's.
--
-- KEYS ({sale:ID} hash tag): 1 lost_at
-- Reply: milliseconds since the first finder found it missing on this primary.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local epoch = primary_epoch()
local found = redis.call('GET', KEYS[1])
local since = found and string.match(found, '^' .. epoch .. ' (%d+)$')
if not since then
  since = now
  redis.call('SET', KEYS[1], epoch .. ' ' .. now, 'EX', 3600)
end
return now - tonumber(since)
