-- A queue's counts, oldest wait and recent rates at one instant of the Redis clock.
-- ARGV: prefix, n_bands, window_buckets, top_groups. Returns a flat list of field/value pairs.
local n_bands, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local TOP_GROUPS = tonumber(ARGV[4]) or 10
local OLDEST_GROUPS = 100  -- groups per level whose first job inspect looks at
local HELD_GROUPS = 1000  -- held groups whose jobs inspect counts per level (the first by release)
local BACKLOG_FIXES = 1000  -- stale backlog bounds corrected per call (the rest next call)
local now = now_ms()
local out = {'time_ms', now,
             'waiting', redis.call('ZCARD', K_READY),
             'delayed', redis.call('ZCARD', K_DELAYED),
             'active', redis.call('ZCARD', K_ACTIVE),
             'dead', redis.call('ZCARD', K_DEAD),
             'completed', redis.call('ZCARD', K_DONE),
             'cancelled', redis.call('ZCARD', K_CANCELLED),
             'workers', redis.call('ZCOUNT', K_WORKERS, now, '+inf')}
local meta = redis.call('HMGET', K_META, 'paused', 'grouped')
out[#out + 1] = 'paused'
out[#out + 1] = meta[1] or '0'
-- Groups: their jobs count as waiting unless their group is held (then as held, below);
-- per level from the counters lib.lua backlog_add keeps, less the held groups' jobs there.
local grouped = meta[2] == '1'
-- The ready line by level: from the first job at or past a level's start, the level it is
-- in (the levels before it are empty), its count, and its head; done once every waiting job
-- is counted. Most queues use one or two levels: a few calls instead of two per level.
local ready_count, ready_head = {}, {}
local left = out[4]
local band = 0
while left > 0 and band < n_bands do
  local first = redis.call('ZRANGEBYSCORE', K_READY, band * BAND, '+inf', 'WITHSCORES',
                           'LIMIT', 0, 1)
  if #first == 0 then
    break
  end
  band = math.floor(tonumber(first[2]) / BAND)
  if band >= n_bands then
    break
  end
  local count = redis.call('ZCOUNT', K_READY, band * BAND,
                           '(' .. string.format('%.0f', (band + 1) * BAND))
  ready_count[band], ready_head[band] = count, first[1]
  left = left - count
  band = band + 1
end
local g_wait, g_held = {}, {}
local g_held_total = 0
if grouped then
  local fields = {}
  for band = 0, n_bands - 1 do
    fields[band + 1] = 'gw' .. band
  end
  local gw = redis.call('HMGET', K_META, unpack(fields))
  for band = 0, n_bands - 1 do
    g_wait[band], g_held[band] = tonumber(gw[band + 1]) or 0, 0
  end
  -- One look per held group and level, for at most HELD_GROUPS groups: past that, the jobs
  -- of the other held groups count as waiting (the held count is then a lower bound).
  for _, g in ipairs(redis.call('ZRANGE', G_HELD, 0, HELD_GROUPS - 1)) do
    local set = group_set(g)
    for band = 0, n_bands - 1 do
      local c = redis.call('ZCOUNT', set, band * BAND,
                           '(' .. string.format('%.0f', (band + 1) * BAND))
      g_held[band] = g_held[band] + c
      g_held_total = g_held_total + c
    end
  end
  for band = 0, n_bands - 1 do
    out[4] = out[4] + g_wait[band] - g_held[band]
  end
end
for band = 0, n_bands - 1 do
  local count = ready_count[band] or 0
  out[#out + 1] = 'waiting:' .. band
  if grouped then
    out[#out + 1] = count + g_wait[band] - g_held[band]
  else
    out[#out + 1] = count
  end
  out[#out + 1] = 'oldest_ms:' .. band
  local heads = {ready_head[band]}
  if grouped then
    -- The first jobs of the groups longest without a turn (the ring's first, by virtual
    -- time): a bounded look, so with many groups a lower bound of the oldest wait.
    for _, m in ipairs(redis.call('ZRANGE', group_ring(band), 0, OLDEST_GROUPS - 1)) do
      local head = redis.call('ZRANGE', group_set(ring_group(m)), 0, 0)
      heads[#heads + 1] = head[1]
    end
  end
  local oldest = 0
  for _, id in ipairs(heads) do
    local t = redis.call('HMGET', job_key(id), 'ready_at', 'enqueued_at')
    oldest = math.max(oldest, now - (tonumber(t[1]) or tonumber(t[2]) or now))
  end
  out[#out + 1] = oldest
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
out[#out + 1] = held + g_held_total
if grouped then
  -- Groups with work (held ones too) and the ten with the most waiting jobs.
  out[#out + 1] = 'groups'
  out[#out + 1] = redis.call('ZCARD', G_BACKLOG)
  out[#out + 1] = 'groups_held'
  out[#out + 1] = redis.call('ZCARD', G_HELD)
  local total = 0
  for band = 0, n_bands - 1 do
    total = total + g_wait[band]
  end
  out[#out + 1] = 'group_jobs'  -- waiting in any group, held ones too
  out[#out + 1] = total
  -- G_BACKLOG's scores are upper bounds (claims do not count down): correct the first ones
  -- until they are exact. Then no other group can have more, as its bound is no higher.
  local top, fixes = {}, 0
  repeat
    local exact = true
    top = redis.call('ZREVRANGE', G_BACKLOG, 0, TOP_GROUPS - 1, 'WITHSCORES')
    for i = 1, #top, 2 do
      local n = redis.call('ZCARD', group_set(top[i]))
      if n ~= tonumber(top[i + 1]) then
        exact, fixes = false, fixes + 1
        top[i + 1] = n
        if n == 0 then
          redis.call('ZREM', G_BACKLOG, top[i])
        else
          redis.call('ZADD', G_BACKLOG, n, top[i])
        end
      end
    end
  until exact or fixes >= BACKLOG_FIXES
  for i = 1, #top, 2 do
    if tonumber(top[i + 1]) > 0 then
      out[#out + 1] = 'group:' .. top[i]
      out[#out + 1] = top[i + 1]
    end
  end
end
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
