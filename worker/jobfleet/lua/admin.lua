-- Helpers of the job-management verbs (jobs, remove, retry, cancel, clear, dead), loaded with
-- them only (scripts.NEEDS). Key suffixes are defined in worker/jobfleet/keys.py.

-- The job named by ARGV[2]: its hash key and its state (nil when there is no such job).
local function the_job()
  local id = ARGV[2]
  local key = job_key(id)
  return id, key, redis.call('HGET', key, 'state')
end

-- Where a job waits, by its hash's state: the ready set, one hold set (a held job's state is
-- still 'waiting', see flow.lua), its group's set or the delayed set. Returns the set and
-- 'waiting' | 'held' | 'delayed' (and the group, for a job in its group's set), or nil when
-- the job is in no line (active or final).
local function line_of(id, state)
  if state == 'delayed' then
    return K_DELAYED, 'delayed'
  end
  if state ~= 'waiting' then
    return nil, state
  end
  if redis.call('ZSCORE', K_READY, id) then
    return K_READY, 'waiting'
  end
  local g = redis.call('HGET', job_key(id), 'group')
  if g and redis.call('ZSCORE', group_set(g), id) then
    -- A held group's jobs are held (flow.lua group_blocked); the caller takes the job out
    -- with group_take (the group's counts and ring), not a bare ZREM.
    return group_set(g), redis.call('ZSCORE', G_HELD, g) and 'held' or 'waiting', g
  end
  for _, name in ipairs(redis.call('ZRANGE', K_HOLDS, 0, -1)) do
    local set = PREFIX .. 'hold:' .. name
    if redis.call('ZSCORE', set, id) then
      return set, 'held'
    end
  end
  return nil, state
end

-- Where a job's id is indexed in any state (nil if nowhere).
local function set_of(id, state)
  if state == 'active' then
    return K_ACTIVE
  elseif state == 'completed' then
    return K_DONE
  elseif state == 'dead' then
    return K_DEAD
  elseif state == 'cancelled' then
    return K_CANCELLED
  end
  return line_of(id, state)
end

-- Take a job out of the line `set_of` / `line_of` found (a group's set through group_take).
local function leave_line(set, id, group)
  if group then
    group_take(group, id)
  else
    redis.call('ZREM', set, id)
  end
end

-- Delete a job's hash, and its dedup key while that still points at this job.
local function forget_job(key, id)
  local dedup = redis.call('HGET', key, 'dedup_key')
  if dedup and dedup ~= '' then
    local dkey = PREFIX .. 'dedup:' .. dedup
    if redis.call('GET', dkey) == id then
      redis.call('DEL', dkey)
    end
  end
  redis.call('DEL', key)
end

-- A job out of every line becomes final as 'cancelled' (its token cleared: the fence every
-- late outcome of a running attempt meets). Kept like a completed job (retention).
local function finish_cancelled(key, id, now)
  redis.call('HSET', key, 'state', 'cancelled', 'finished_at', now, 'cancelled_at', now,
             'token', '')
  redis.call('ZADD', K_CANCELLED, now, id)
  redis.call('HINCRBY', K_STATS, 'cancelled_total', 1)
end

-- A dead letter back in line with a fresh attempt budget (`seq` from next_seq).
local function replay_dead(key, id, seq, now)
  -- The last error stays readable until the replay succeeds or fails again.
  redis.call('HSET', key, 'attempt', 0, 'stalls', 0, 'replayed_at', now)
  redis.call('HDEL', key, 'dead_reason', 'finished_at')
  redis.call('HINCRBY', key, 'replays', 1)
  local f = redis.call('HMGET', key, 'priority', 'group')
  make_ready(key, id, f[1], seq, now, f[2])
end

-- How many members of `set` sort before the position (score, id) — with `inclusive`, the
-- member (score, id) itself counts too. Scores are Redis's own strings (exact). Equal
-- scores are ordered by member: a binary search over the ties, O(log N) each step.
local function rank_of(set, score, id, inclusive)
  local below = redis.call('ZCOUNT', set, '-inf', '(' .. score)
  local lo, hi = 0, redis.call('ZCOUNT', set, score, score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local m = redis.call('ZRANGE', set, below + mid, below + mid)[1]
    if lex_lt(m, id) or (inclusive and m == id) then
      lo = mid + 1
    else
      hi = mid
    end
  end
  return below + lo
end
