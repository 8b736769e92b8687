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
local g_default = nil  -- the one settings table of every group, when no group has overrides
local any_overrides = nil  -- does G_LIMITS exist at all (read once per call)?
local function group_conf(g, gl)
  local c = g_conf[g] or g_default
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
  if any_overrides then
    g_conf[g] = c
  else  -- every group has the queue's settings: one table for all (10,000 groups: no garbage)
    g_default = c
  end
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

-- Pop up to k waiting jobs in DRR order: {id, score, group (false: default), ...}; a grouped
-- job's score is false (its group's set is read without scores: each costs Redis a '%.17g'
-- formatting, ≈3,500 instructions; the job's hash has its priority and seq). Each job
-- of a group with a concurrency limit is counted in flight at once; the caller calls
-- group_done for such a popped job it does not start. Held groups leave the ring; at most 1000 groups are looked at per call.
--
-- The picks are made on a local copy of each level: the ring's first k + 1 groups (the
-- first k can give a job each; the next bounds them: a group whose virtual time passes it
-- needs a fresh look at the ring), the first jobs of each group picked, and the default
-- group's. The sets are written back once per level (one ZADD for the ring, one pop per
-- group), so a claim costs a few calls per group it serves, not per step of the scheduler.
-- Ring order: virtual time, then the member's bytes (how a ZSET orders equal scores). `r` is
-- a candidate's rank in the ring read and read_v[r] its virtual time there: two candidates
-- read at equal times came back in their names' byte order, which spares comparing the
-- bytes. (Not a field of the candidate: a table of up to 8 fields has 8 slots, of 9 sixteen,
-- and its garbage is a good part of a claim's cost.)
local read_v = {}
local function before(a, b)
  if a.v ~= b.v then
    return a.v < b.v
  end
  if read_v[a.r] == read_v[b.r] then
    return a.r < b.r
  end
  return lex_lt(a.g, b.g)
end

-- A virtual time as redis.call gets it: a whole number formatted '%d' (Redis formats a Lua
-- number '%.17g', ≈2,500 instructions), else the number itself (the same text either way).
local function vt_arg(v)
  if v == math.floor(v) and v > -1e15 and v < 1e15 then
    return string.format('%d', v)
  end
  return v
end

-- Put candidate c back into `q` (kept in ring order) by binary search: O(log n) a pick.
local function requeue(q, c)
  local lo, hi = 1, #q + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(c, q[mid]) then
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

-- Small integers as the strings redis.call gets (a Lua number would be formatted '%.17g'),
-- formatted once per call.
local int_strings = {}
local function int_s(n)
  local s = int_strings[n]
  if not s then
    s = string.format('%d', n)
    int_strings[n] = s
  end
  return s
end

-- Make candidate `c` hold the ids of its group's first `count` jobs in this level (below
-- `hi_s`, '(<score>'), or all it has there (c.all), read in chunks that double: a group
-- served once costs one short read, one served n times log n reads; `first`: the size of
-- its first read.
local function group_jobs(c, count, hi_s, first)
  local have = c.jobs and #c.jobs or 0
  if have >= count or c.all then
    return
  end
  local upto = math.max(count, have * 2)
  if have == 0 then
    upto = math.max(upto, first)
  end
  local more = redis.call('ZRANGE', c.key, '-inf', hi_s, 'BYSCORE', 'LIMIT', int_s(have),
                          int_s(upto - have))
  if have == 0 then
    c.jobs = more
  else
    for _, x in ipairs(more) do
      c.jobs[#c.jobs + 1] = x
    end
  end
  c.all = #more < upto - have
end

local function drr_take(k, now, gl)
  local out = {}
  local more = false  -- a level written back still has claimable work (the caller's wake-up)
  local taken, looked, band = 0, 0, 0
  -- The default group's first job: no level below its own needs a look at K_READY.
  local d_head = first_score(K_READY)
  while taken < k and band < N_LEVELS and looked < 1000 do
    local ring, hi = group_ring(band), (band + 1) * BAND
    local hi_s = nil
    local want = k - taken
    local top = redis.call('ZRANGE', ring, '0', int_s(want), 'WITHSCORES')
    local dflt = {}
    if d_head and d_head < hi then
      hi_s = '(' .. string.format('%d', hi)
      dflt = redis.call('ZRANGEBYSCORE', K_READY, '-inf', hi_s, 'WITHSCORES', 'LIMIT', '0',
                        int_s(want))
    end
    if #top == 0 and #dflt == 0 then
      band = band + 1
    else
      hi_s = hi_s or '(' .. string.format('%d', hi)
      local meta = redis.call('HMGET', K_META, 'gv' .. band, 'dv' .. band, 'gw' .. band)
      local clock = tonumber(meta[1]) or 0
      local dv = tonumber(meta[2]) or 0
      if #dflt > 0 and dv <= clock then  -- it was idle: it rejoins behind the clock
        dv = clock + 1
      end
      local cands = {}
      local n_top = #top / 2
      for i = 1, math.min(n_top, want) do
        local g = ring_group(top[2 * i - 1])
        local v = tonumber(top[2 * i])
        read_v[i] = v
        cands[i] = {g = g, m = top[2 * i - 1], v = v, r = i, served = 0, jobs = false,
                    all = false, key = group_set(g)}
      end
      local bound = nil
      if n_top > want then
        local v = tonumber(top[2 * want + 2])
        read_v[want + 1] = v
        bound = {g = ring_group(top[2 * want + 1]), v = v, r = want + 1}
      end
      -- The only group read and no bound: it may give every job of this claim.
      local first = (n_top == 1 and 1 + want) or 2
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
        if d_has and (not best or dv <= best.v) and (not bound or dv <= bound.v) then
          out[#out + 1], out[#out + 2], out[#out + 3] = dflt[2 * d_pos - 1], dflt[2 * d_pos], false
          d_pos, d_taken, taken = d_pos + 1, d_taken + 1, taken + 1
          clock, dv = dv, dv + 1
        elseif best and (not bound or before(best, bound)) then
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
            group_jobs(best, p + 2, hi_s, first)  -- the job it gives now, and the one after it
            local id = best.jobs[p + 1]
            out[#out + 1], out[#out + 2], out[#out + 3] = id, false, g
            best.served, taken = p + 1, taken + 1
            if c.conc then
              inflight[g] = group_inflight(g) + 1
            end
            if c.rmax then
              window_add(PREFIX .. 'grw:' .. g, id .. ':' .. now, c.rper, now)
            end
            clock = best.v
            if best.jobs[p + 2] then  -- it has another job in this level
              best.v = best.v + 1 / c.w
              requeue(q, best)
            else
              best.v = nil  -- out of this level's ring (no work left, or only at a later level)
            end
          end
        else
          -- Nothing local can go next: the ring past what was read (or the level is done).
          refetch = bound ~= nil
          break
        end
      end
      -- Write the level back.
      -- By rank, not ZPOPMIN: its reply would format every score (3,500 instructions each).
      if d_taken > 0 then
        redis.call('ZREMRANGEBYRANK', K_READY, '0', int_s(d_taken - 1))
      end
      local zadd, zrem, left, left_sets = {}, {}, {}, {}
      local served_here = 0
      local stays = false  -- a candidate is still in the ring
      for _, c in ipairs(cands) do
        if c.served > 0 then
          redis.call('ZREMRANGEBYRANK', c.key, '0', int_s(c.served - 1))
          served_here = served_here + c.served
          if group_conf(c.g, gl).conc then
            redis.call('HINCRBY', G_INFLIGHT, c.g, int_s(c.served))
          end
        end
        if c.held then
          zrem[#zrem + 1] = c.m
          redis.call('ZADD', G_HELD, c.held, c.g)
          g_held_known = true
        elseif c.v then
          stays = true
          if c.served > 0 then
            zadd[#zadd + 1] = vt_arg(c.v)
            zadd[#zadd + 1] = c.m
          end
        else
          zrem[#zrem + 1] = c.m
          left[#left + 1] = c
          left_sets[#left_sets + 1] = c.key
        end
      end
      if #zrem > 0 then
        redis.call('ZREM', ring, unpack(zrem))
      end
      if #zadd > 0 then
        redis.call('ZADD', ring, unpack(zadd))
      end
      -- gw<band> counts this level's waiting grouped jobs exactly (inspect reads it).
      redis.call('HSET', K_META, 'gv' .. band, vt_arg(clock), 'dv' .. band, vt_arg(dv),
                 'gw' .. band, int_s((tonumber(meta[3]) or 0) - served_here))
      -- The groups that left this level: most have no work left (one EXISTS tells), the
      -- others go on in the ring of their next job's level. G_BACKLOG holds exactly the
      -- groups with work.
      if #left > 0 then
        local emptied = left
        if redis.call('EXISTS', unpack(left_sets)) > 0 then
          emptied = {}
          for _, c in ipairs(left) do
            local head = first_score(c.key)
            if head then
              ring_join(c.g, math.floor(head / BAND), group_conf(c.g, gl).w)
            else
              emptied[#emptied + 1] = c
            end
          end
        end
        local names = {}
        for i, c in ipairs(emptied) do
          names[i] = c.g
        end
        if #names > 0 then
          redis.call('ZREM', G_BACKLOG, unpack(names))
        end
      end
      -- Work this level still has for the next claim: the ring past what was read, groups
      -- that stay in it, default-group jobs read but not taken.
      more = more or bound ~= nil or stays or d_pos <= #dflt / 2
      if not refetch then
        band = band + 1
      end
    end
  end
  return out, more
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
