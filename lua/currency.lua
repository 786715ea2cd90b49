-- Keeps a sale's currency in its meta when the meta has none: a sale warmed by a
-- release that did not keep it there (before prices were counted in each currency's
-- minor unit). Only while the meta holds the sale (its created_at_ms), so a meta that
-- expired or was wiped meanwhile is not brought back holding a currency alone.
--
-- KEYS ({sale:ID} hash tag): 1 meta
-- ARGV: 1 the sale's currency, as MySQL holds it
-- Reply: 1 when this call kept it, else 0.

if redis.call('HGET', KEYS[1], 'created_at_ms') then
  return redis.call('HSETNX', KEYS[1], 'currency', ARGV[1])
end
return 0
