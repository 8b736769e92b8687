-- Shared helpers, prepended to every script at load time (scripts cannot call each other).
--
-- Every script receives the same KEYS, all under one hash tag so a queue lives in one
-- Redis Cluster slot. Per-job hashes are PREFIX .. 'job:' .. id, under the same tag. Every key
-- name (the KEYS order, and the suffixes of the per-id keys the scripts build from PREFIX:
-- job:, dedup:, wake:, hold:, rlw:, cbw:) is defined in worker/jobfleet/keys.py.
local K_READY, K_DELAYED, K_ACTIVE, K_DEAD, K_DONE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_META, K_STATS, K_WAKE, K_TP, K_WORKERS = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local K_HOLDS, K_CB, K_DRAIN, K_CANCELLED = KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local PREFIX = ARGV[1]

-- Priority bands: score = band * 2^48 + sequence, so strict between bands, FIFO inside one.
local BAND = 281474976710656
local TP_BUCKET_MS = 5000

-- Batches travel as one string (records split by \30, fields by \31): one argument per
-- batch instead of a dozen per job, which is most of the client's cost. Payloads and results
-- are JSON, whose encoder escapes control characters, so they can never contain either.
local function split(s, sep)
  local out, pos = {}, 1
  while true do
    local i = string.find(s, sep, pos, true)
    if not i then
      out[#out + 1] = string.sub(s, pos)
      return out
    end
    out[#out + 1] = string.sub(s, pos, i - 1)
    pos = i + 1
  end
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function job_key(id)
  return PREFIX .. 'job:' .. id
end

-- Make one due job claimable. `seq` keeps its place: the original for a release, a fresh
-- one for a retry or a promoted delayed job (back of its band).
local function make_ready(key, id, prio, seq, now)
  redis.call('HSET', key, 'state', 'waiting', 'ready_at', now, 'seq', seq, 'token', '')
  redis.call('ZADD', K_READY, tonumber(prio) * BAND + seq, id)
end

local function next_seq(n)
  return redis.call('HINCRBY', K_META, 'seq', n) - n
end

-- Wake one idle worker (at most one token waits: it is a doorbell, not a count).
local function wake()
  if redis.call('LLEN', K_WAKE) == 0 then
    redis.call('RPUSH', K_WAKE, '1')
  end
end

-- Score of a sorted set's first member, or nil when it is empty.
local function first_score(set)
  local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
  if #first == 0 then
    return nil
  end
  return tonumber(first[2])
end

-- Idle workers sleep until the earliest due time a claim told them of. A job this script
-- made due sooner than that must cut one of those sleeps short; the worker woken learns the
-- new time from its own claim's reply. `before` and `after` are a set's first score before
-- and after this script added to it (nil: empty; a past `before`: those sleeps are ending).
local function wake_if_sooner(before, after, now)
  if after and (not before or before <= now or after < before) then
    wake()
  end
end

local function count_rate(kind, n, now)
  if n > 0 then
    redis.call('HINCRBY', K_TP, kind .. math.floor(now / TP_BUCKET_MS), n)
  end
end

local function dead_letter(key, id, reason, now)
  redis.call('HSET', key, 'state', 'dead', 'dead_reason', reason, 'finished_at', now, 'token', '')
  redis.call('ZADD', K_DEAD, now, id)
  redis.call('HINCRBY', K_STATS, 'dead_total', 1)
end

-- Move due delayed jobs (scheduled and retry backoff) into the ready set.
local function promote(now, limit)
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then
    return 0
  end
  local seq = next_seq(#due)
  for i, id in ipairs(due) do
    local key = job_key(id)
    local prio = redis.call('HGET', key, 'priority')
    if prio then
      make_ready(key, id, prio, seq + i, now)
    end
  end
  redis.call('ZREM', K_DELAYED, unpack(due))
  return #due
end

-- Expired leases: the worker holding them died or lost Redis for longer than its lease.
-- The attempt stays counted; a job that keeps killing its workers becomes a poison job.
local function recover(now, default_max, poison_after, limit)
  local first = redis.call('ZRANGE', K_ACTIVE, 0, 0, 'WITHSCORES')
  if #first == 0 or tonumber(first[2]) > now then
    return 0
  end
  local expired = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', now, 'LIMIT', 0, limit)
  local seq = next_seq(#expired)
  for i, id in ipairs(expired) do
    local key = job_key(id)
    local f = redis.call('HMGET', key, 'priority', 'attempt', 'max_attempts')
    if f[1] then
      local stalls = redis.call('HINCRBY', key, 'stalls', 1)
      local max = tonumber(f[3]) or default_max
      if stalls >= poison_after then
        dead_letter(key, id, 'poison: lease expired ' .. stalls .. ' times', now)
      elseif tonumber(f[2]) >= max then
        dead_letter(key, id, 'attempts exhausted: last lease expired', now)
      else
        make_ready(key, id, f[1], seq + i, now)
      end
    end
  end
  redis.call('ZREM', K_ACTIVE, unpack(expired))
  redis.call('HINCRBY', K_STATS, 'recovered_total', #expired)
  return #expired
end

local function trim(set, keep, max_age, now, limit)
  if max_age >= 0 then
    local old = redis.call('ZRANGEBYSCORE', set, '-inf', now - max_age, 'LIMIT', 0, limit)
    if #old > 0 then
      for _, id in ipairs(old) do
        redis.call('DEL', job_key(id))
      end
      redis.call('ZREM', set, unpack(old))
    end
  end
  if keep >= 0 then
    local extra = redis.call('ZCARD', set) - keep
    if extra > 0 then
      local popped = redis.call('ZPOPMIN', set, math.min(extra, limit))
      for i = 1, #popped, 2 do
        redis.call('DEL', job_key(popped[i]))
      end
    end
  end
end
