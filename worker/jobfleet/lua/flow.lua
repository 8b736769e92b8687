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
    -- A partition of a partitioned queue: the shared window gets its share (`share`, max / K),
    -- a keyed one the whole max (docs/partitions.md "Rate limits").
    local limit = rl.max
    if key == '' and rl.share then
      limit = rl.share
    end
    local full = window_full(PREFIX .. 'rlw:' .. key, limit, rl.period, now)
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
local any_overrides = nil  -- does G_LIMITS exist at all (read once per call)?
local function group_conf(g, gl)
  local c = g_conf[g]
  if c then
    return c
  end
  if any_overrides == nil then
    any_overrides = redis.call('EXISTS', G_LIMITS) == 1
  end
  local f = {}
  if any_overrides then
    f = redis.call('HMGET', G_LIMITS, g .. ':c', g .. ':r', g .. ':rp', g .. ':p', g .. ':w')
  end
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

-- Groups whose rate window has room again go back to their ring.
local function group_unhold(now)
  if not any_held() then
    return 0
  end
  local due = redis.call('ZRANGEBYSCORE', G_HELD, '-inf', now, 'LIMIT', 0, 100)
  for _, g in ipairs(due) do
    group_release(g)
  end
  return #due
end

-- Pop up to k waiting jobs in DRR order: {id, score, group (false: default), ...}. Each job
-- of a group with a concurrency limit is counted in flight at once; the caller calls
-- group_done for such a popped job it does not start. Held groups leave the ring; at most 1000 groups are looked at per call.
--
-- The picks are made on a local copy of each level: the ring's first k + 1 groups (the
-- first k can give a job each; the next bounds them: a group whose virtual time passes it
-- needs a fresh look at the ring), the first jobs of each group picked, and the default
-- group's. The sets are written back once per level (one ZADD for the ring, one pop per
-- group), so a claim costs a few calls per group it serves, not per step of the scheduler.
-- Ring order: virtual time, then the member's bytes (how a ZSET orders equal scores).
local function before(v1, g1, v2, g2)
  return v1 < v2 or (v1 == v2 and lex_lt(g1, g2))
end

-- Put candidate c back into `q` (kept in ring order) by binary search: O(log n) a pick.
local function requeue(q, c)
  local lo, hi = 1, #q + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(c.v, c.g, q[mid].v, q[mid].g) then
      hi = mid
    else
      lo = mid + 1
    end
  end
  table.insert(q, lo, c)
end

local inflight = {}  -- group -> jobs in flight, read once per call
local function group_inflight(g)
  local n = inflight[g]
  if not n then
    n = tonumber(redis.call('HGET', G_INFLIGHT, g)) or 0
    inflight[g] = n
  end
  return n
end

-- Make candidate `c` hold its group's first `count` jobs (or all it has), read in chunks
-- that double: a group served once costs one short read, one served n times log n reads.
local function group_jobs(c, count)
  local have = #c.jobs / 2
  if have >= count or c.all then
    return
  end
  local upto = math.max(count, have * 2)
  local more = redis.call('ZRANGE', group_set(c.g), string.format('%d', have),
                          string.format('%d', upto - 1), 'WITHSCORES')
  for _, x in ipairs(more) do
    c.jobs[#c.jobs + 1] = x
  end
  c.all = #more / 2 < upto - have
end

local function drr_take(k, now, gl)
  local out = {}
  local taken, looked, band = 0, 0, 0
  -- The default group's first job: no level below its own needs a look at K_READY.
  local d_head = first_score(K_READY)
  while taken < k and band < N_LEVELS and looked < 1000 do
    local ring, hi = group_ring(band), (band + 1) * BAND
    local want = k - taken
    local top = redis.call('ZRANGE', ring, '0', string.format('%d', want), 'WITHSCORES')
    local dflt = {}
    if d_head and d_head < hi then
      dflt = redis.call('ZRANGEBYSCORE', K_READY, '-inf', '(' .. string.format('%.0f', hi),
                        'WITHSCORES', 'LIMIT', '0', string.format('%d', want))
    end
    if #top == 0 and #dflt == 0 then
      band = band + 1
    else
      local meta = redis.call('HMGET', K_META, 'gv' .. band, 'dv' .. band)
      local clock = tonumber(meta[1]) or 0
      local dv = tonumber(meta[2]) or 0
      if #dflt > 0 and dv <= clock then  -- it was idle: it rejoins behind the clock
        dv = clock + 1
      end
      local cands = {}
      local n_top = #top / 2
      for i = 1, math.min(n_top, want) do
        cands[i] = {g = top[2 * i - 1], v = tonumber(top[2 * i]), served = 0, jobs = {}}
      end
      local bound_g, bound_v = nil, nil
      if n_top > want then
        bound_g, bound_v = top[2 * want + 1], tonumber(top[2 * want + 2])
      end
      -- The candidates still in the ring, in ring order (the ZRANGE's): the first goes next.
      local q = {}
      for i, c in ipairs(cands) do
        q[i] = c
      end
      local d_pos, d_taken = 1, 0
      local refetch = false
      while taken < k and looked < 1000 do
        local best = q[1]
        local d_has = d_pos <= #dflt / 2
        if d_has and (not best or dv <= best.v) and (not bound_v or dv <= bound_v) then
          out[#out + 1], out[#out + 2], out[#out + 3] = dflt[2 * d_pos - 1], dflt[2 * d_pos], false
          d_pos, d_taken, taken = d_pos + 1, d_taken + 1, taken + 1
          clock, dv = dv, dv + 1
        elseif best and (not bound_v or before(best.v, best.g, bound_v, bound_g)) then
          table.remove(q, 1)
          local g, c = best.g, group_conf(best.g, gl)
          looked = looked + 1
          local why = nil
          if c.paused then
            why = G_PAUSED
          elseif c.conc and group_inflight(g) >= c.conc then
            why = G_BUSY
          elseif c.rmax then
            why = window_full(PREFIX .. 'grw:' .. g, c.rmax, c.rper, now)
          end
          if why then
            best.v, best.held = nil, why
          else
            local p = best.served
            group_jobs(best, p + 2)  -- the job it gives now, and the one after it
            out[#out + 1], out[#out + 2], out[#out + 3] = best.jobs[2 * p + 1], best.jobs[2 * p + 2], g
            best.served, taken = p + 1, taken + 1
            if c.conc then
              inflight[g] = group_inflight(g) + 1
            end
            if c.rmax then
              window_add(PREFIX .. 'grw:' .. g, best.jobs[2 * p + 1] .. ':' .. now, c.rper, now)
            end
            clock = best.v
            local nxt = tonumber(best.jobs[2 * p + 4])
            if nxt and nxt < hi then
              best.v = best.v + 1 / c.w
              requeue(q, best)
            else
              best.v, best.next = nil, nxt  -- out of this level's ring (empty, or a later level)
            end
          end
        else
          -- Nothing local can go next: the ring past what was read (or the level is done).
          refetch = bound_v ~= nil
          break
        end
      end
      -- Write the level back.
      -- By rank, not ZPOPMIN: its reply would format every score (3,500 instructions each).
      if d_taken > 0 then
        redis.call('ZREMRANGEBYRANK', K_READY, '0', string.format('%d', d_taken - 1))
      end
      local zadd, zrem, emptied, emptied_sets = {}, {}, {}, {}
      local served_here = 0
      for _, c in ipairs(cands) do
        if c.served > 0 then
          if c.all and c.served * 2 == #c.jobs then  -- served its last job: one DEL for all
            emptied[#emptied + 1] = c.g
            emptied_sets[#emptied_sets + 1] = group_set(c.g)
          else
            redis.call('ZREMRANGEBYRANK', group_set(c.g), '0', string.format('%d', c.served - 1))
          end
          served_here = served_here + c.served
          if group_conf(c.g, gl).conc then
            redis.call('HINCRBY', G_INFLIGHT, c.g, string.format('%d', c.served))
          end
        end
        if c.held then
          zrem[#zrem + 1] = c.g
          redis.call('ZADD', G_HELD, c.held, c.g)
          g_held_known = true
        elseif c.v then
          if c.served > 0 then
            zadd[#zadd + 1] = c.v
            zadd[#zadd + 1] = c.g
          end
        else
          zrem[#zrem + 1] = c.g
        end
      end
      if served_here > 0 then
        redis.call('HINCRBY', K_META, 'gw' .. band, -served_here)
      end
      if #emptied > 0 then  -- G_BACKLOG holds exactly the groups with work
        redis.call('DEL', unpack(emptied_sets))
        redis.call('ZREM', G_BACKLOG, unpack(emptied))
      end
      if #zrem > 0 then
        redis.call('ZREM', ring, unpack(zrem))
      end
      if #zadd > 0 then
        redis.call('ZADD', ring, unpack(zadd))
      end
      redis.call('HSET', K_META, 'gv' .. band, clock, 'dv' .. band, dv)
      for _, c in ipairs(cands) do
        if c.next and not c.held then  -- its next job is at a later level
          ring_join(c.g, math.floor(c.next / BAND), group_conf(c.g, gl).w)
        end
      end
      if not refetch then
        band = band + 1
      end
    end
  end
  return out
end

-- The earliest time a held group's rate window has room (nil: none is held by time).
local function group_next_release()
  if not any_held() then
    return nil
  end
  local first = redis.call('ZRANGEBYSCORE', G_HELD, '-inf', '(' .. G_BUSY, 'WITHSCORES',
                           'LIMIT', 0, 1)
  if #first == 0 then
    return nil
  end
  return tonumber(first[2])
end
