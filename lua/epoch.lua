-- Prepended to every script that reads or writes a sale's state (see stores/redis.rs).
--
-- A sale's state is stamped with the epoch of the primary that holds it: the primary's
-- replication id, which a server takes anew when it starts and when a replica is
-- promoted. Replication is asynchronous, so a promoted replica may lack the last writes
-- (decrements, holders, outbox entries) while `meta` survives; its epoch then differs
-- from the stamp, and the sale is treated as lost: rebuilt from MySQL before any unit
-- is sold again.
local function primary_epoch()
  return string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
end

