-- Flow control, shared by claim (and only loaded with it): rate limits, circuit breakers and
-- the hold sets where jobs wait while either says no. A held job is still waiting: never
-- failed, never retried, never counted as an attempt.
--
-- FLOW (decoded from ARGV) = {rl = {max, period, field}, cb = {scope, threshold, ratio,
-- window, reset, probes}}, times in ms; either part may be absent.

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
      redis.call('ZADD', K_READY, unpack(args))
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

-- May this job start now? Returns nil, or the hold set and when to look again.
local rl_cache = {}
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
    local window = PREFIX .. 'rlw:' .. key
    local count = rl_cache[key]
    if not count then
      redis.call('ZREMRANGEBYSCORE', window, '-inf', now - rl.period)
      count = redis.call('ZCARD', window)
    end
    if count >= rl.max then
      rl_cache[key] = count
      local oldest = redis.call('ZRANGE', window, 0, 0, 'WITHSCORES')
      return 'rl:' .. key, tonumber(oldest[2]) + rl.period, false
    end
    redis.call('ZADD', window, now, id .. ':' .. attempt)
    redis.call('PEXPIRE', window, rl.period)
    rl_cache[key] = count + 1
  end
  return nil
end
