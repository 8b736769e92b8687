-- One group's run-time settings and state (issue #14; the keys are lib.lua's G_*).
-- ARGV: prefix, action, group, then per action:
--   'limits': concurrency, rate max, rate period ms, weight ('' = back to the queue's)
--   'pause' | 'resume' | 'stats': nothing more
-- Returns 'ok', or for 'stats' a flat list of field/value pairs.
local action, g = ARGV[2], ARGV[3]
local set = group_set(g)

-- The group's active jobs, from the active set: claims count a group's jobs in flight
-- (G_INFLIGHT) only under a concurrency limit, so the count is taken here, in O(active jobs
-- of the queue), bounded by the fleet's concurrency rather than by any backlog. `mark`:
-- count the uncounted ones in (a limit may apply from now on).
local function active_jobs(mark)
  local n, uncounted = 0, 0
  for _, id in ipairs(redis.call('ZRANGE', K_ACTIVE, 0, -1)) do
    local f = redis.call('HMGET', job_key(id), 'group', 'gc')
    if f[1] == g then
      n = n + 1
      if mark and f[2] ~= '1' then
        redis.call('HSET', job_key(id), 'gc', '1')
        uncounted = uncounted + 1
      end
    end
  end
  if uncounted > 0 then
    redis.call('HINCRBY', G_INFLIGHT, g, uncounted)
  end
  return n
end

if action == 'limits' then
  local fields = {'c', 'r', 'rp', 'w'}
  for i, f in ipairs(fields) do
    local v = ARGV[3 + i]
    if v == '' then
      redis.call('HDEL', G_LIMITS, g .. ':' .. f)
    else
      redis.call('HSET', G_LIMITS, g .. ':' .. f, v)
    end
  end
  -- Jobs started while the group had no limit count towards the one it may have now.
  active_jobs(true)
  if redis.call('HGET', G_LIMITS, g .. ':p') ~= '1' then
    group_release(g)  -- claim looks at its limits again
  end
  return 'ok'
elseif action == 'pause' then
  redis.call('HSET', G_LIMITS, g .. ':p', '1')
  redis.call('HSET', K_META, 'grouped', '1')
  -- Held at once (not at its next turn), so inspect counts its jobs as held from now on.
  local head = first_score(set)
  if head and not redis.call('ZSCORE', G_HELD, g) then
    redis.call('ZREM', group_ring(math.floor(head / BAND)), ring_member(g))
  end
  if head then
    redis.call('ZADD', G_HELD, G_PAUSED, g)
  end
  return 'ok'
elseif action == 'resume' then
  redis.call('HDEL', G_LIMITS, g .. ':p')
  group_release(g)  -- claim looks at its limits again
  return 'ok'
elseif action == 'stats' then
  local f = redis.call('HMGET', G_LIMITS, g .. ':c', g .. ':r', g .. ':rp', g .. ':w', g .. ':p')
  local held = tonumber(redis.call('ZSCORE', G_HELD, g))
  local why = ''
  if held == G_PAUSED then
    why = 'paused'
  elseif held == G_BUSY then
    why = 'concurrency'
  elseif held then
    why = 'rate'
  end
  return {'waiting', redis.call('ZCARD', set),
          'active', active_jobs(false),
          'held', why,
          'paused', f[5] == '1' and 1 or 0,
          'concurrency', f[1] or '', 'rate_max', f[2] or '', 'rate_period_ms', f[3] or '',
          'weight', f[4] or ''}
end
return redis.error_reply('unknown group action ' .. tostring(action))
