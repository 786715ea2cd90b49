-- Whether a sale's state is in Redis and was written on this primary (see epoch.lua).
--
-- KEYS ({sale:ID} hash tag): 1 meta
-- Reply: 1 when present and current, 0 when missing or left over from another primary.

local epoch = redis.call('HGET', KEYS[1], 'epoch')
return (epoch and epoch == primary_epoch()) and 1 or 0
