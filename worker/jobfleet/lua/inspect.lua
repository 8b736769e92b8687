-- A queue's counts, oldest wait and recent rates at one instant of the Redis clock.
-- ARGV: prefix, n_bands, window_buckets. Returns a flat list of field/value pairs.
local n_bands, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local out = {'time_ms', now,
             'waiting', redis.call('ZCARD', K_READY),
             'delayed', redis.call('ZCARD', K_DELAYED),
             'active', redis.call('ZCARD', K_ACTIVE),
             'dead', redis.call('ZCARD', K_DEAD),
             'completed', redis.call('ZCARD', K_DONE),
             'cancelled', redis.call('ZCARD', K_CANCELLED),
             'workers', redis.call('ZCOUNT', K_WORKERS, now, '+inf'),
             'paused', redis.call('HGET', K_META, 'paused') or '0'}
local any_waiting = out[4] > 0
for band = 0, n_bands - 1 do
  local lo, hi = band * BAND, (band + 1) * BAND
  local count = 0
  if any_waiting then  -- an empty line needs no look per level (most queues, most of the time)
    count = redis.call('ZCOUNT', K_READY, lo, '(' .. string.format('%.0f', hi))
  end
  out[#out + 1] = 'waiting:' .. band
  out[#out + 1] = count
  out[#out + 1] = 'oldest_ms:' .. band
  if count > 0 then
    local first = redis.call('ZRANGEBYSCORE', K_READY, lo, '(' .. string.format('%.0f', hi),
                             'LIMIT', 0, 1)
    local t = redis.call('HMGET', job_key(first[1]), 'ready_at', 'enqueued_at')
    local ready_at = tonumber(t[1]) or tonumber(t[2]) or now
    out[#out + 1] = math.max(0, now - ready_at)
  else
    out[#out + 1] = 0
  end
end
local stats = redis.call('HGETALL', K_STATS)
for i = 1, #stats do
  out[#out + 1] = stats[i]
end
-- Rates over the last `window` whole buckets plus the current partial one; older buckets
-- are dropped here so the hash stays small on idle queues.
local current = math.floor(now / TP_BUCKET_MS)
local completed, failed = 0, 0
local buckets = redis.call('HGETALL', K_TP)
for i = 1, #buckets, 2 do
  local field = buckets[i]
  local bucket = tonumber(string.sub(field, 2))
  if bucket < current - window then
    redis.call('HDEL', K_TP, field)
  else
    local v = tonumber(buckets[i + 1])
    if string.sub(field, 1, 1) == 'c' then
      completed = completed + v
    else
      failed = failed + v
    end
  end
end
redis.call('ZREMRANGEBYSCORE', K_WORKERS, '-inf', now)
-- Jobs held back by a rate limit or an open circuit: waiting, but no worker can take them.
local held = 0
for _, name in ipairs(redis.call('ZRANGE', K_HOLDS, 0, -1)) do
  held = held + redis.call('ZCARD', PREFIX .. 'hold:' .. name)
end
out[#out + 1] = 'held'
out[#out + 1] = held
local cb = redis.call('HGETALL', K_CB)
for i = 1, #cb, 2 do
  out[#out + 1] = 'cb:' .. cb[i]
  out[#out + 1] = cb[i + 1]
end
out[#out + 1] = 'window_completed'
out[#out + 1] = completed
out[#out + 1] = 'window_failed'
out[#out + 1] = failed
out[#out + 1] = 'window_ms'
out[#out + 1] = window * TP_BUCKET_MS + (now % TP_BUCKET_MS)
return out
