-- The worker's one round trip: settle finished jobs, recover expired leases, promote due
-- delayed jobs, then claim up to n ready ones under a fresh lease.
-- ARGV: prefix, token, n, worker_id,
--       policy (one record, fields split by \31, built once per worker by ClaimPolicy:
--               lease_ms, worker_ttl_ms, default_max_attempts, poison_after, keep_done,
--               done_age_ms, keep_dead, dead_age_ms, flow (JSON, see flow.lua; '' for none)),
--       completions (records of id, token, result; '' for none),
--       n_fail, [id, token, error_type, message, traceback, delay_ms, permanent] * n_fail
-- Returns: {stale_acks, ms_until_next_delayed (-1 none), ms_until_next_lease_expiry (-1 none),
--           paused, ms_until_next_hold_release (-1 none), leases_recovered, draining,
--           id, name, payload, attempt, max_attempts, timeout_ms, backoff, trace, ...}
local token, n, worker = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local POLICY_PATTERN = '^' .. string.rep('(%-?%d+)\31', 8) .. '(.*)$'
-- One match decodes the policy: cheaper than splitting it into a table (bench/RESULTS.md).
local lease, worker_ttl, default_max, poison_after, keep_done, done_age, keep_dead, dead_age,
  flow_json = string.match(ARGV[5], POLICY_PATTERN)
lease, worker_ttl = tonumber(lease), tonumber(worker_ttl)
default_max, poison_after = tonumber(default_max), tonumber(poison_after)
keep_done, done_age = tonumber(keep_done), tonumber(done_age)
keep_dead, dead_age = tonumber(keep_dead), tonumber(dead_age)
local flow = nil
if flow_json ~= '' then
  flow = cjson.decode(flow_json)
end
local cb = flow and flow.cb
local now = now_ms()
-- Numbers given to redis.call are formatted with '%.17g' (about 2,500 instructions each, a
-- tenth of a claim's per-job cost); the per-job ones are formatted once, as integers.
local now_s = string.format('%d', now)
local meta = redis.call('HMGET', K_META, 'paused', 'grouped')
GROUPED = meta[2] == '1'
local gl = (flow and flow.g) or {}
local stale = 0

-- Completions, fenced by the lease token: a worker whose lease was recovered must not
-- overwrite the outcome of the attempt that replaced it.
local done_ids = {}
local done_groups = {}  -- group -> its counted jobs completed here (one group_done a group)
local n_complete = 0
if ARGV[6] ~= '' then
  local records = split(ARGV[6], '\30')
  n_complete = #records
  for i = 1, n_complete do
    local f = split(records[i], '\31')
    local id, tok, result = f[1], f[2], f[3]
    local key = job_key(id)
    local owned
    if GROUPED then
      local t = redis.call('HMGET', key, 'token', 'group', 'gc')
      owned = t[1] == tok
      if owned and t[3] == '1' then
        done_groups[t[2]] = (done_groups[t[2]] or 0) + 1
      end
    else
      owned = redis.call('HGET', key, 'token') == tok
    end
    if owned then
      if result == 'null' then
        redis.call('HSET', key, 'state', 'completed', 'finished_at', now_s, 'token', '')
      else
        redis.call('HSET', key, 'state', 'completed', 'finished_at', now_s, 'result', result,
                   'token', '')
      end
      done_ids[#done_ids + 1] = id
      if cb then
        cb_record(cb, redis.call('HGET', key, 'name'), false, now)
      end
    else
      stale = stale + 1
    end
  end
end
for g, c in pairs(done_groups) do
  group_done(g, c)
end
if #done_ids > 0 then
  local scored = {}
  for i, id in ipairs(done_ids) do
    scored[2 * i - 1] = now_s
    scored[2 * i] = id
  end
  redis.call('ZADD', K_DONE, unpack(scored))
  redis.call('ZREM', K_ACTIVE, unpack(done_ids))
  redis.call('HINCRBY', K_STATS, 'completed_total', #done_ids)
  count_rate('c', #done_ids, now)
end

local a = 7
local n_fail = tonumber(ARGV[a])
a = a + 1
local failed = 0
local retry_seq = nil
local any_delayed, delayed_before = false, nil
for _ = 1, n_fail do
  local id, tok = ARGV[a], ARGV[a + 1]
  local etype, emsg, tb = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local delay, permanent = tonumber(ARGV[a + 5]), ARGV[a + 6]
  a = a + 7
  local key = job_key(id)
  local f = redis.call('HMGET', key, 'token', 'attempt', 'max_attempts', 'priority', 'name',
                       'group', 'gc')
  if f[1] == tok then
    failed = failed + 1
    if f[7] == '1' then
      group_done(f[6])
    end
    if cb and permanent == '' then
      cb_record(cb, f[5], true, now)
    end
    redis.call('ZREM', K_ACTIVE, id)
    redis.call('HSET', key, 'error_type', etype, 'error_message', emsg, 'traceback', tb,
               'failed_at', now)
    local max = tonumber(f[3]) or default_max
    if permanent ~= '' then
      dead_letter(key, id, permanent, now)
    elseif tonumber(f[2]) >= max then
      dead_letter(key, id, 'attempts exhausted (' .. f[2] .. ' of ' .. max .. ')', now)
    elseif delay <= 0 then
      if not retry_seq then
        retry_seq = next_seq(n_fail)
      end
      make_ready(key, id, f[4], retry_seq + failed, now, f[6])
    else
      if not any_delayed then
        any_delayed, delayed_before = true, first_score(K_DELAYED)
      end
      redis.call('HSET', key, 'state', 'delayed', 'run_at', now + delay, 'token', '')
      redis.call('ZADD', K_DELAYED, now + delay, id)
    end
  else
    stale = stale + 1
  end
end
if failed > 0 then
  redis.call('HINCRBY', K_STATS, 'failed_total', failed)
  count_rate('f', failed, now)
end

if n_complete > 0 then
  trim(K_DONE, keep_done, done_age, now, 1000)
end
if keep_dead >= 0 or dead_age >= 0 then
  trim(K_DEAD, keep_dead, dead_age, now, 1000)
end
local recovered = recover(now, default_max, poison_after, 1000)
-- Jobs that became claimable by time alone; a claim of n = 0 (an ack) leaves them waiting.
local moved = recovered + promote(now, 1000)
if flow then
  moved = moved + unhold(now, 1000)
end
local g_held_before = false  -- false: no grouped claim looked at the groups
if GROUPED then
  moved = moved + group_unhold(now)
end
redis.call('ZADD', K_WORKERS, now + worker_ttl, worker)

local paused = meta[1] == '1'
-- A drained worker (scale-in) settles and renews but takes nothing new; an expired flag
-- counts as none, so a drain its operator forgot lapses on its own.
local drained = tonumber(redis.call('ZSCORE', K_DRAIN, worker) or '0') > now
local out = {stale, -1, -1, paused and 1 or 0, -1, recovered, drained and 1 or 0}
local claimed, holds_before = 0, false  -- false: this call popped no ready job, held none
local g_more = false  -- true: drr_take left claimable work it saw (no need to look again)
if n > 0 and not paused and not drained then
  local deadline = string.format('%d', now + lease)
  local leases = {}
  local looked = 0
  if flow then
    holds_before = first_score(K_HOLDS)
  end
  -- Grouped: {id, score (false for a grouped job), group} per job in DRR order; else {id,
  -- score} straight from K_READY.
  local stride = GROUPED and 3 or 2
  local popped
  if GROUPED then
    g_held_before = group_next_release()
    popped, g_more = drr_take(n, now, gl)
  else
    popped = redis.call('ZPOPMIN', K_READY, n)
  end
  while #popped > 0 do
    for i = 1, #popped, stride do
      local id = popped[i]
      local group = GROUPED and popped[i + 2]
      -- Counted in flight (by drr_take) only under a concurrency limit.
      local counted = group and group_conf(group, gl).conc ~= nil
      local key = job_key(id)
      local f
      if group then  -- and whether it was counted in flight before (its last attempt's 'gc')
        f = redis.call('HMGET', key, 'name', 'payload', 'attempt', 'max_attempts',
                       'timeout_ms', 'backoff', 'rate_key', 'trace', 'gc')
      else
        f = redis.call('HMGET', key, 'name', 'payload', 'attempt', 'max_attempts',
                       'timeout_ms', 'backoff', 'rate_key', 'trace')
      end
      local attempt = (tonumber(f[3]) or 0) + 1
      local hold_name, hold_until, extend = nil, nil, nil
      if f[1] and flow then
        hold_name, hold_until, extend = admit(flow, id, f[1], f[2], attempt, f[7], now)
      end
      if counted and not (f[1] and not hold_name) then
        group_done(group)  -- counted in flight by drr_take, but not started
      end
      if hold_name then
        local score = popped[i + 1]
        if not score then  -- a grouped job: drr_take read its group without scores
          local ps = redis.call('HMGET', key, 'priority', 'seq')
          score = tonumber(ps[1]) * BAND + tonumber(ps[2])
        end
        hold(hold_name, hold_until, id, score, extend)
      elseif f[1] then
        claimed = claimed + 1
        -- 'gc' is written only when it changes: a new field costs the job's hash a scan.
        if group and counted ~= (f[9] == '1') then
          redis.call('HSET', key, 'state', 'active', 'attempt', string.format('%d', attempt),
                     'token', token, 'started_at', now_s, 'worker', worker,
                     'gc', counted and '1' or '0')
        else
          redis.call('HSET', key, 'state', 'active', 'attempt', string.format('%d', attempt),
                     'token', token, 'started_at', now_s, 'worker', worker)
        end
        leases[#leases + 1] = deadline
        leases[#leases + 1] = id
        out[#out + 1] = id
        out[#out + 1] = f[1]
        out[#out + 1] = f[2]
        out[#out + 1] = attempt
        out[#out + 1] = f[4] or ''
        out[#out + 1] = f[5] or ''
        out[#out + 1] = f[6] or ''
        out[#out + 1] = f[8] or ''
      end
    end
    looked = looked + #popped / stride
    -- Held jobs left slots free: look further down the line, within reason.
    if claimed >= n or not flow or looked >= 1000 then
      break
    end
    if GROUPED then
      popped, g_more = drr_take(n - claimed, now, gl)
    else
      popped = redis.call('ZPOPMIN', K_READY, n - claimed)
    end
  end
  if #leases > 0 then
    redis.call('ZADD', K_ACTIVE, unpack(leases))
  end
end
-- More work than this worker took (or, for an ack, any): pass the wake-up on to an idle
-- worker. Never while paused: the ready jobs stay put, and a wake-up would only spin.
if (claimed > 0 or moved > 0) and not paused and (g_more or any_ready(GROUPED)) then
  wake()
end
-- The hints: when this worker should look again if nothing wakes it sooner.
local nd = first_score(K_DELAYED)
if nd then
  out[2] = math.max(0, nd - now)
end
if any_delayed then  -- a retry this call scheduled
  wake_if_sooner(delayed_before, nd, now)
end
if flow then
  local nh = first_score(K_HOLDS)
  if nh then
    out[5] = math.max(0, nh - now)
  end
  if holds_before ~= false then  -- this claim looked at ready jobs, and may have held some
    wake_if_sooner(holds_before, nh, now)
  end
end
if GROUPED then
  local gh = group_next_release()
  if gh and (out[5] < 0 or gh - now < out[5]) then
    out[5] = math.max(0, gh - now)
  end
  if g_held_before ~= false then
    wake_if_sooner(g_held_before, gh, now)
  end
end
local na = first_score(K_ACTIVE)
if na then
  out[3] = math.max(0, na - now)
end
return out
