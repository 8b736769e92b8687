-- Flow control, shared by claim (and only loaded with it): rate limits, circuit breakers and
-- the hold sets where jobs wait while either says no. A held job is still waiting: never
-- failed, never retried, never counted as an attempt.
--
-- FLOW (decoded from ARGV) = {rl = {max, period, field}, cb = {scope, threshold, ratio,
-- window, reset, probes}, g = {c = group_concurrency, r = max, rp = period}}, times in ms;
-- any part may be absent.

-- Set by claim before anything runs: does this queue have grouped jobs (meta 'grouped')?
local GROUPED = false

local function hold_set(name)
  return PREFIX .. 'hold:' .. name
end

-- Jobs whose hold has run out go back to the ready set at their old place in line.
local function unhold(now, limit)
  local due = redis.call('ZRANGEBYSCORE', K_HOLDS, '-inf', now, 'LIMIT', 0, 20)
  local moved = 0
  for _, name in ipairs(due) do
    local set = hold_set(name)
    local jobs = redis.call('ZRANGE', set, 0, limit - 1, 'WITHSCORES')
    if #jobs > 0 then
      local args = {}
      for i = 1, #jobs, 2 do
        args[#args + 1] = jobs[i + 1]
        args[#args + 1] = jobs[i]
      end
      if GROUPED then  -- a grouped job goes back to its own group
        local rest = {}
        for i = 1, #args, 2 do
          local g = redis.call('HGET', job_key(args[i + 1]), 'group')
          if g and g ~= '' then
            group_add(g, tonumber(args[i]), args[i + 1])
          else
            rest[#rest + 1] = args[i]
            rest[#rest + 1] = args[i + 1]
          end
        end
        args = rest
      end
      if #args > 0 then
        redis.call('ZADD', K_READY, unpack(args))
      end
      redis.call('ZREMRANGEBYRANK', set, 0, #jobs / 2 - 1)
      moved = moved + #jobs / 2
    end
    if redis.call('EXISTS', set) == 0 then
      redis.call('ZREM', K_HOLDS, name)
    end
  end
  return moved
end

local function hold(name, until_ms, id, score, extend)
  redis.call('ZADD', hold_set(name), score, id)
  -- A breaker's hold may only grow (GT); a rate window's first release time stands (NX).
  -- Both still add the entry when it is missing.
  redis.call('ZADD', K_HOLDS, extend and 'GT' or 'NX', until_ms, name)
end

-- Circuit breaker state lives in one hash, fields '<scope>:<attr>'.
local function cb_scope(cb, name)
  if cb.scope == 'handler' then
    return name
  end
  return '*'
end

local cb_cache = {}
local function cb_state(cb, scope, now)
  local c = cb_cache[scope]
  if c then
    return c
  end
  local s = redis.call('HMGET', K_CB, scope .. ':state', scope .. ':until')
  local state, until_ms = s[1] or 'closed', tonumber(s[2]) or 0
  if state ~= 'closed' and now >= until_ms then
    -- Open long enough: let probes through. Half-open with no verdict in time: the probes
    -- were lost with their worker, so offer new ones.
    state, until_ms = 'half', now + cb.reset
    redis.call('HSET', K_CB, scope .. ':state', state, scope .. ':until', until_ms,
               scope .. ':probes', 0)
  end
  c = {state = state, until_ms = until_ms}
  cb_cache[scope] = c
  return c
end

local function cb_open(cb, scope, now)
  local until_ms = now + cb.reset
  redis.call('HSET', K_CB, scope .. ':state', 'open', scope .. ':until', until_ms,
             scope .. ':opened_at', now, scope .. ':probes', 0)
  redis.call('HINCRBY', K_CB, scope .. ':trips', 1)
  -- Jobs already held for this scope stay held until the new reset time.
  redis.call('ZADD', K_HOLDS, 'XX', 'GT', until_ms, 'cb:' .. scope)
  cb_cache[scope] = {state = 'open', until_ms = until_ms}
end

local function cb_bucket(cb, now)
  local size = math.max(1000, math.floor(cb.window / 20))
  return size, math.floor(now / size)
end

-- Record one finished attempt; `failed` false means success.
local function cb_record(cb, name, failed, now)
  local scope = cb_scope(cb, name)
  local state = cb_state(cb, scope, now).state
  local wkey = PREFIX .. 'cbw:' .. scope
  local size, bucket = cb_bucket(cb, now)
  if not failed then
    if state == 'half' then
      redis.call('HSET', K_CB, scope .. ':state', 'closed', scope .. ':until', 0)
      redis.call('DEL', wkey)
      redis.call('ZADD', K_HOLDS, 'XX', now, 'cb:' .. scope)
      cb_cache[scope] = {state = 'closed', until_ms = 0}
      wake()
    elseif cb.ratio then
      redis.call('HINCRBY', wkey, 's' .. bucket, 1)
      redis.call('PEXPIRE', wkey, cb.window + size)
    end
    return
  end
  if state == 'half' then
    cb_open(cb, scope, now)
    return
  end
  if state ~= 'closed' then
    return
  end
  redis.call('HINCRBY', wkey, 'f' .. bucket, 1)
  redis.call('PEXPIRE', wkey, cb.window + size)
  local first = math.floor((now - cb.window) / size)
  local fails, oks = 0, 0
  local all = redis.call('HGETALL', wkey)
  for i = 1, #all, 2 do
    local b = tonumber(string.sub(all[i], 2))
    if b < first then
      redis.call('HDEL', wkey, all[i])
    elseif string.sub(all[i], 1, 1) == 'f' then
      fails = fails + tonumber(all[i + 1])
    else
      oks = oks + tonumber(all[i + 1])
    end
  end
  if fails >= cb.threshold and (not cb.ratio or fails / (fails + oks) >= cb.ratio) then
    cb_open(cb, scope, now)
  end
end

-- Sliding rate windows (a queue's rate keys and its groups): a ZSET of admissions by time.
-- Counts are cached for the call: only this script adds to a window meanwhile.
local rl_cache = {}
-- nil when the window has room, else when its oldest admission leaves it.
local function window_full(window, max, period, now)
  local count = rl_cache[window]
  if not count then
    redis.call('ZREMRANGEBYSCORE', window, '-inf', now - period)
    count = redis.call('ZCARD', window)
    rl_cache[window] = count
  end
  if count >= max then
    local oldest = redis.call('ZRANGE', window, 0, 0, 'WITHSCORES')
    return tonumber(oldest[2]) + period
  end
  return nil
end

local function window_add(window, member, period, now)
  redis.call('ZADD', window, now, member)
  redis.call('PEXPIRE', window, period)
  rl_cache[window] = rl_cache[window] + 1
end

-- May this job start now? Returns nil, or the hold set and when to look again.
local function admit(flow, id, name, payload, attempt, rate_key, now)
  local cb = flow.cb
  if cb then
    local scope = cb_scope(cb, name)
    local c = cb_state(cb, scope, now)
    if c.state == 'open' then
      return 'cb:' .. scope, c.until_ms, true
    end
    if c.state == 'half' then
      if redis.call('HINCRBY', K_CB, scope .. ':probes', 1) > cb.probes then
        redis.call('HINCRBY', K_CB, scope .. ':probes', -1)
        return 'cb:' .. scope, c.until_ms, true
      end
    end
  end
  local rl = flow.rl
  if rl then
    local key = rate_key
    if (not key or key == '') and rl.field then
      local ok, doc = pcall(cjson.decode, payload)
      if ok and type(doc) == 'table' and doc[rl.field] ~= nil then
        key = tostring(doc[rl.field])
      end
    end
    key = key or ''
    local full = window_full(PREFIX .. 'rlw:' .. key, rl.max, rl.period, now)
    if full then
      return 'rl:' .. key, full, false
    end
    window_add(PREFIX .. 'rlw:' .. key, id .. ':' .. attempt, rl.period, now)
  end
  return nil
end

-- Groups: deficit round robin over the ring of each priority level (lib.lua has the keys).
-- A group's virtual time advances by 1/weight per job it is served; the ring's first group
-- (least virtual time) goes next, so a claim of n takes one job from each of n successive
-- groups. The default group (K_READY) takes part in every level with weight 1 and its own
-- virtual time (meta 'dv<band>'). While it has work its virtual time stays ahead of the
-- level's clock ('gv<band>', the virtual time of the last job served there); one at or behind
-- the clock means it was idle, and it rejoins one turn behind the clock, as any group does. Levels stay strict: a level is served while any group
-- (or the default one) has work in it.
local g_conf = {}
local function group_conf(g, gl)
  local c = g_conf[g]
  if c then
    return c
  end
  local f = redis.call('HMGET', G_LIMITS, g .. ':c', g .. ':r', g .. ':rp', g .. ':p', g .. ':w')
  c = {conc = tonumber(f[1]) or gl.c, rmax = tonumber(f[2]) or gl.r,
       rper = tonumber(f[3]) or gl.rp, paused = f[4] == '1', w = tonumber(f[5]) or 1}
  if c.rmax and c.rmax <= 0 then  -- an override of 0: no rate limit for this group
    c.rmax = nil
  end
  if c.conc and c.conc <= 0 then
    c.conc = nil
  end
  g_conf[g] = c
  return c
end

-- Why group g may not start a job now: nil, or the G_HELD score to hold it with.
local function group_blocked(g, c, now)
  if c.paused then
    return G_PAUSED
  end
  if c.conc and (tonumber(redis.call('HGET', G_INFLIGHT, g)) or 0) >= c.conc then
    return G_BUSY
  end
  if c.rmax then
    return window_full(PREFIX .. 'grw:' .. g, c.rmax, c.rper, now)
  end
  return nil
end

-- Groups whose rate window has room again go back to their ring.
local function group_unhold(now)
  local due = redis.call('ZRANGEBYSCORE', G_HELD, '-inf', now, 'LIMIT', 0, 100)
  for _, g in ipairs(due) do
    group_release(g)
  end
  return #due
end

-- Pop up to k waiting jobs in DRR order: {id, score, group (false: default), ...}. Each job
-- of a group is counted in flight at once (the next pick of its group sees it); the caller
-- calls group_done for a popped job it does not start. Held groups leave the ring; at most
-- 1000 groups are looked at per call.
local function drr_take(k, now, gl)
  local out = {}
  local band, looked, taken = 0, 0, 0
  local d_head = first_score(K_READY)
  while taken < k and band < N_LEVELS and looked < 1000 do
    local ring = group_ring(band)
    local top = redis.call('ZRANGE', ring, 0, 0, 'WITHSCORES')
    local d_here = d_head and d_head < (band + 1) * BAND
    if #top == 0 and not d_here then
      band = band + 1
    else
      local clock = tonumber(redis.call('HGET', K_META, 'gv' .. band)) or 0
      local dv = nil
      if d_here then
        dv = tonumber(redis.call('HGET', K_META, 'dv' .. band)) or 0
        if dv <= clock then  -- it was idle: it rejoins behind the clock, as any group does
          dv = clock + 1
          redis.call('HSET', K_META, 'dv' .. band, dv)
        end
      end
      if #top == 0 or (dv and dv <= tonumber(top[2])) then
        local p = redis.call('ZPOPMIN', K_READY, 1)
        out[#out + 1], out[#out + 2], out[#out + 3] = p[1], p[2], false
        taken = taken + 1
        redis.call('HSET', K_META, 'dv' .. band, dv + 1, 'gv' .. band, dv)
        d_head = first_score(K_READY)
      else
        local g, v = top[1], tonumber(top[2])
        looked = looked + 1
        local c = group_conf(g, gl)
        local why = group_blocked(g, c, now)
        if why then
          redis.call('ZREM', ring, g)
          redis.call('ZADD', G_HELD, why, g)
        else
          local set = group_set(g)
          local p = redis.call('ZPOPMIN', set, 1)
          local score = tonumber(p[2])
          out[#out + 1], out[#out + 2], out[#out + 3] = p[1], p[2], g
          taken = taken + 1
          backlog_add(g, score, -1)
          redis.call('HINCRBY', G_INFLIGHT, g, 1)
          if c.rmax then
            window_add(PREFIX .. 'grw:' .. g, p[1] .. ':' .. now, c.rper, now)
          end
          redis.call('HSET', K_META, 'gv' .. band, v)
          local head = first_score(set)
          if head and head < (band + 1) * BAND then
            redis.call('ZADD', ring, v + 1 / c.w, g)
          else
            redis.call('ZREM', ring, g)
            if head then
              ring_join(g, math.floor(head / BAND), c.w)
            end
          end
        end
      end
    end
  end
  return out
end


-- The earliest time a held group's rate window has room (nil: none is held by time).
local function group_next_release()
  local first = redis.call('ZRANGEBYSCORE', G_HELD, '-inf', '(' .. G_BUSY, 'WITHSCORES',
                           'LIMIT', 0, 1)
  if #first == 0 then
    return nil
  end
  return tonumber(first[2])
end
