-- Remove up to `limit` jobs that wait (never an active one) with their hashes and dedup
-- keys; the caller repeats the call until it returns less than `limit`, so a huge queue
-- never blocks Redis for long. ARGV: prefix, limit, lines ('waiting' | 'held' | 'delayed')...
-- Returns how many jobs were removed.
local limit = tonumber(ARGV[2])
local removed = 0
local function drop(set)
  local ids = redis.call('ZRANGE', set, 0, limit - removed - 1)
  for _, id in ipairs(ids) do
    forget_job(job_key(id), id)
  end
  if #ids > 0 then
    redis.call('ZREM', set, unpack(ids))
  end
  removed = removed + #ids
end
-- A group's jobs (held ones when `held`, else the others), through group_take.
local function drop_groups(held)
  local groups = redis.call('ZRANGE', G_BACKLOG, 0, -1)
  for _, g in ipairs(groups) do
    if removed >= limit then
      return
    end
    if (redis.call('ZSCORE', G_HELD, g) ~= false) == held then
      local ids = redis.call('ZRANGE', group_set(g), 0, limit - removed - 1)
      for _, id in ipairs(ids) do
        group_take(g, id)
        forget_job(job_key(id), id)
      end
      removed = removed + #ids
    end
  end
end
for a = 3, #ARGV do
  local line = ARGV[a]
  if line == 'waiting' then
    drop(K_READY)
    drop_groups(false)
  elseif line == 'delayed' then
    drop(K_DELAYED)
  elseif line == 'held' then
    drop_groups(true)
    for _, name in ipairs(redis.call('ZRANGE', K_HOLDS, 0, -1)) do
      if removed >= limit then
        break
      end
      drop(PREFIX .. 'hold:' .. name)
      if redis.call('EXISTS', PREFIX .. 'hold:' .. name) == 0 then
        redis.call('ZREM', K_HOLDS, name)
      end
    end
  end
  if removed >= limit then
    break
  end
end
if removed > 0 then
  redis.call('HINCRBY', K_STATS, 'removed_total', removed)
end
return removed
