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
local N_LEVELS = 5  -- priority levels, len(job.Priority) (tests/unit/test_keys.py checks it)

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

-- Byte order, as sorted sets order equal scores (Lua's `<` on strings follows the locale).
local function lex_lt(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- Score of a sorted set's first member, or nil when it is empty.
local function first_score(set)
  local first = redis.call('ZRANGE', set, '0', '0', 'WITHSCORES')  -- strings: no formatting
  if #first == 0 then
    return nil
  end
  return tonumber(first[2])
end

-- Wake one idle worker (at most one token waits: it is a doorbell, not a count).
local function wake()
  if redis.call('LLEN', K_WAKE) == 0 then
    redis.call('RPUSH', K_WAKE, '1')
  end
end

-- Groups (issue #14; key suffixes in keys.py, GROUP_*). Jobs without a group are the
-- default group and stay in K_READY; the group keys below exist only once a grouped job
-- arrives (meta 'grouped'), so a queue without groups pays nothing for them. A group's
-- waiting jobs are one ZSET (score as K_READY's); a group with work that is not held sits
-- in the ring of its first job's priority level, scored by virtual time (deficit round
-- robin, see flow.lua drr_take).
-- ZSET: exactly the groups with waiting jobs (held ones too), each scored with an upper bound
-- of its waiting jobs. Enqueues count up; a claim drops a group it empties but does not count
-- the others down (one command per group served less); inspect corrects the top it reports.
local G_BACKLOG = PREFIX .. 'gbacklog'
local G_HELD = PREFIX .. 'gheld'          -- ZSET group -> release time (ms) or G_BUSY/G_PAUSED
-- HASH group -> its active jobs counted for a concurrency limit (job field 'gc' = '1'):
-- a group without a limit is not counted, so its claims and completions skip the hash.
local G_INFLIGHT = PREFIX .. 'ginflight'
local G_LIMITS = PREFIX .. 'glimits'      -- HASH '<group>:<c|r|rp|p|w>' -> run-time overrides
local G_BUSY, G_PAUSED = 4e15, 8e15       -- held until a job ends / until resumed
local function group_set(g)
  return PREFIX .. 'gq:' .. g
end
local function group_ring(band)
  return PREFIX .. 'gring:' .. band
end
-- A ring's members are the group names behind one fixed 64-byte prefix. A sorted set with a
-- member longer than zset-max-listpack-value (64) is a skiplist from its first ZADD, where a
-- group's move to the back of the ring costs O(log G); as a listpack (any ring of up to 128
-- groups) every move scanned the whole ring twice, which made 100 groups cost more per job
-- than 10,000 (bench/RESULTS.md, "Groups: cheaper claims, second pass"). A prefix shared by
-- every member keeps the ring's order: equal scores still sort by the group names' bytes.
local RING_PAD = '~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'
local function ring_member(g)
  return RING_PAD .. g
end

-- The group a ring member stands for.
local function ring_group(member)
  return string.sub(member, 65)
end

local function group_weight(g)
  return tonumber(redis.call('HGET', G_LIMITS, g .. ':w')) or 1
end

-- A group (back) in the ring of `band`, just behind the level's virtual clock: what it
-- waited while out of the ring earns it nothing, and it cannot jump the groups in the ring.
local function ring_join(g, band, weight)
  local v = tonumber(redis.call('HGET', K_META, 'gv' .. band)) or 0
  redis.call('ZADD', group_ring(band), v + 1 / (weight or group_weight(g)), ring_member(g))
end

-- After a group's set changed (its first job was `old_head`, a score or nil): keep it in the
-- ring of its first job's level, or out of every ring when it has no work (or is held).
local function group_reseat(g, old_head)
  local head = first_score(group_set(g))
  local ob = old_head and math.floor(old_head / BAND)
  local nb = head and math.floor(head / BAND)
  if ob == nb then
    return
  end
  if redis.call('ZSCORE', G_HELD, g) then
    if not nb then
      redis.call('ZREM', G_HELD, g)
    end
    return
  end
  if ob then
    redis.call('ZREM', group_ring(ob), ring_member(g))
  end
  if nb then
    ring_join(g, nb)
  end
end

-- The count of a group's waiting jobs (an upper bound, see G_BACKLOG) and per level (meta
-- 'gw<level>', exact, for inspect).
local function backlog_add(g, score, d)
  redis.call('ZINCRBY', G_BACKLOG, d, g)
  redis.call('HINCRBY', K_META, 'gw' .. math.floor(score / BAND), d)
end

-- Is any group held? Read once per script (most claims find none), and set by whoever
-- holds one (a true may be stale once the last is released: a look too many, never one too
-- few).
local g_held_known = nil
local function any_held()
  if g_held_known == nil then
    g_held_known = redis.call('EXISTS', G_HELD) == 1
  end
  return g_held_known
end

local function held_score(g)
  if not any_held() then
    return nil
  end
  return tonumber(redis.call('ZSCORE', G_HELD, g))
end

local function group_add(g, score, id)
  local set = group_set(g)
  local head = first_score(set)
  redis.call('ZADD', set, score, id)
  backlog_add(g, score, 1)
  if not head or score < head then
    group_reseat(g, head)
  end
end

-- Take a waiting job out of its group (cancel, remove, clear); false if it is not there.
local function group_take(g, id)
  local set = group_set(g)
  local score = redis.call('ZSCORE', set, id)
  if not score then
    return false
  end
  local head = first_score(set)
  redis.call('ZREM', set, id)
  backlog_add(g, tonumber(score), -1)
  if redis.call('ZCARD', set) == 0 then  -- its bound may still count jobs claims took
    redis.call('ZREM', G_BACKLOG, g)
  end
  group_reseat(g, head)
  return true
end

-- A held group goes back to the ring of its first job's level (when it has work), and an
-- idle worker is told. Returns whether it was held.
local function group_release(g)
  if redis.call('ZREM', G_HELD, g) == 0 then
    return false
  end
  local head = first_score(group_set(g))
  if head then
    ring_join(g, math.floor(head / BAND))
    wake()
  end
  return true
end

-- `n` (default 1) jobs of group `g` that were counted in flight (job field 'gc' = '1')
-- stopped being active (completion, failure, lease recovery, release, cancel): counted out
-- exactly once per claimed attempt, behind the token fence. A group held for its concurrency
-- gets back in the ring (claim checks its limits again).
local function group_done(g, n)
  if redis.call('HINCRBY', G_INFLIGHT, g, string.format('%d', -(n or 1))) <= 0 then
    redis.call('HDEL', G_INFLIGHT, g)
  end
  if held_score(g) == G_BUSY then
    group_release(g)
  end
end

-- Is any job claimable: the default group's, or a group's in a ring (`grouped`: the queue
-- has seen grouped jobs, meta 'grouped')?
local function any_ready(grouped)
  if redis.call('ZCARD', K_READY) > 0 then
    return true
  end
  if grouped then
    local rings = {}
    for band = 0, N_LEVELS - 1 do
      rings[band + 1] = group_ring(band)
    end
    return redis.call('EXISTS', unpack(rings)) > 0  -- one call for every level's ring
  end
  return false
end

-- Make one due job claimable. `seq` keeps its place: the original for a release, a fresh
-- one for a retry or a promoted delayed job (back of its band). A grouped job goes back to
-- its own group.
local function make_ready(key, id, prio, seq, now, group)
  redis.call('HSET', key, 'state', 'waiting', 'ready_at', now, 'seq', seq, 'token', '')
  if group and group ~= '' then
    group_add(group, tonumber(prio) * BAND + seq, id)
  else
    redis.call('ZADD', K_READY, tonumber(prio) * BAND + seq, id)
  end
end

local function next_seq(n)
  return redis.call('HINCRBY', K_META, 'seq', n) - n
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
    local f = redis.call('HMGET', key, 'priority', 'group')
    if f[1] then
      make_ready(key, id, f[1], seq + i, now, f[2])
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
    local f = redis.call('HMGET', key, 'priority', 'attempt', 'max_attempts', 'group', 'gc')
    if f[5] == '1' then
      group_done(f[4])
    end
    if f[1] then
      local stalls = redis.call('HINCRBY', key, 'stalls', 1)
      local max = tonumber(f[3]) or default_max
      if stalls >= poison_after then
        dead_letter(key, id, 'poison: lease expired ' .. stalls .. ' times', now)
      elseif tonumber(f[2]) >= max then
        dead_letter(key, id, 'attempts exhausted: last lease expired', now)
      else
        make_ready(key, id, f[1], seq + i, now, f[4])
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
