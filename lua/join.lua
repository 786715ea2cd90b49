-- A shopper joins a sale's waiting room, or finds the place they have: one place each.
--
-- KEYS ({sale:ID} hash tag): 1 meta, 2 queue (hash: user -> 'e' for a shuffled room's
--   early joiner, else their number among the later ones), 3 queue_early (sorted set:
--   early joiners by a random draw made at their join, read only once the sale opened),
--   4 the proof's key (its challenge, spent here so a solved challenge joins once)
-- ARGV: user, the draw (a random integer below 2^53, as a string), the proof's expiry
--   (ms), '' when no proof came with the request
--
-- The number served grows with time (base + rate x elapsed, see lua/queue_control.lua),
-- so while nobody waits it runs ahead of the queue, and the next crowd would be let
-- through at once. A later joiner who finds it more than the room's burst (one second
-- of its rate) past the queue's end first moves the end up to that: the places nobody
-- took are skipped, so after a lull arrivals are metered at the room's rate as a queue
-- is at the opening, and the number served never moves back.
--
-- Replies: {'joined' | 'member', held, early rank or '', early count, drawn '1'/'0', length,
--   mode}
--   {'unknown'}  {'no_queue'}  {'ended'}  {'proof_required'}  {'proof_used'}

local meta = redis.call('HMGET', KEYS[1], 'q_mode', 'starts_at_ms', 'ends_at_ms', 'q_base', 'q_since_ms',
  'q_rate', 'q_paused', 'q_late')
if not meta[2] then
  return {'unknown'}
end
if not meta[1] or meta[1] == '' then
  return {'no_queue'}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local opened = now >= tonumber(meta[2])

local answer = 'member'
local held = redis.call('HGET', KEYS[2], ARGV[1])
if not held then
  if now >= tonumber(meta[3]) then
    return {'ended'}
  end
  if ARGV[3] == '' then
    return {'proof_required'}
  end
  if not redis.call('SET', KEYS[4], '1', 'PXAT', ARGV[3], 'NX') then
    return {'proof_used'}
  end
  -- The draw is fixed at the join but ranks nobody until the opening, when the early
  -- set stops growing: everyone who came before then is in one random order.
  if meta[1] == 'shuffled' and not opened then
    redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
    held = 'e'
  else
    local base, since = tonumber(meta[4] or '0'), tonumber(meta[5] or meta[2])
    local rate = tonumber(meta[6] or '0')
    local serving = base
    if meta[7] ~= '1' and now > since then
      serving = base + math.floor((now - since) * rate / 1000)
    end
    local skipped = serving - math.max(rate, 1) - (redis.call('ZCARD', KEYS[3]) + tonumber(meta[8] or '0'))
    if skipped > 0 then
      redis.call('HINCRBY', KEYS[1], 'q_late', skipped)
    end
    held = tostring(redis.call('HINCRBY', KEYS[1], 'q_late', 1))
  end
  redis.call('HSET', KEYS[2], ARGV[1], held)
  answer = 'joined'
end
local rank = ''
if held == 'e' and opened then
  rank = tostring(redis.call('ZRANK', KEYS[3], ARGV[1]))
end
return {answer, held, rank, tostring(redis.call('ZCARD', KEYS[3])), opened and '1' or '0',
  tostring(redis.call('HLEN', KEYS[2])), meta[1]}
