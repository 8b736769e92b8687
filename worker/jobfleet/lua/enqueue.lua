-- Enqueue a batch of jobs atomically.
-- ARGV: prefix, count, then five per job (EncodedJob.arguments): id, name, priority, payload,
-- options: '' when every option is at its default, else one record, fields split by \31:
--   caller_chose_id ('1' or ''), run_at_ms (0 = now; absolute ms), delay_ms (-1 = none),
--   dedup_key, dedup_ttl_ms, max_attempts, backoff, timeout_ms, rate_key,
--   trace (a W3C traceparent, '' for none), group ('' = the default group, K_READY; a named
--   group's jobs wait in the group's own set, lib.lua group_add; only the 'enqueue_grouped'
--   build of this script takes them, see enqueue_groups.lua)
-- Returns {index, id, ...} for the jobs NOT written because they are duplicates (an existing
-- caller-chosen id, or a live dedup key): `id` is the job that already stands for them.
--
-- Arguments of their own, and options decoded only when a job has some, because decoding a
-- record cost more Redis CPU than the writes themselves (bench/RESULTS.md, "Single enqueue").
-- Constants are literals, which cost nothing per call; a table or a built string would.
local PER_JOB = 5
local count = tonumber(ARGV[2])
if count == 1 and ARGV[7] == '' then
  -- One job without options (most calls): due now, and not a duplicate (only a chosen id or a
  -- dedup key can be). The batch path below writes the same, less its tables and loops.
  local id, prio = ARGV[3], ARGV[5]
  local seq = redis.call('HINCRBY', K_META, 'seq', 1)
  redis.call('HSET', job_key(id), 'name', ARGV[4], 'payload', ARGV[6], 'priority', prio,
    'enqueued_at', now_ms(), 'state', 'waiting', 'seq', seq)
  redis.call('ZADD', K_READY, tonumber(prio) * BAND + seq, id)
  redis.call('HINCRBY', K_STATS, 'enqueued_total', 1)
  wake()
  return {}
end
-- One literal: a `..` of two would be concatenated anew on every call.
local OPTIONS = '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)$'
local CHOSEN, RUN_AT, DELAY, DEDUP, DEDUP_TTL, GROUP = 1, 2, 3, 4, 5, 11
local now = now_ms()
local out = {}
local new = {}  -- the argument base of each job to write
local options = {}  -- decoded options by argument base, for the jobs that have any
-- Duplicates must write nothing at all, so they are found before the sequence advances.
for j = 1, count do
  local base = 2 + (j - 1) * PER_JOB
  local existing = nil
  if ARGV[base + 5] ~= '' then
    local o = {string.match(ARGV[base + 5], OPTIONS)}
    options[base] = o
    if o[GROUP] ~= '' and not GROUPS then  -- refused before anything is written
      return redis.error_reply('ERR a grouped job needs the enqueue_grouped script')
    end
    if o[DEDUP] ~= '' then
      existing = redis.call('GET', PREFIX .. 'dedup:' .. o[DEDUP])
    end
    -- Generated ids are 128 random bits: only a caller-chosen id can already exist.
    if not existing and o[CHOSEN] ~= '' and redis.call('EXISTS', job_key(ARGV[base + 1])) == 1 then
      existing = ARGV[base + 1]
    end
  end
  if existing then
    out[#out + 1] = j
    out[#out + 1] = existing
  else
    new[#new + 1] = base
  end
end
if #new == 0 then
  return out
end
local seq = redis.call('HINCRBY', K_META, 'seq', #new) - #new
local ready = {}
local any_delayed, delayed_before = false, nil
local grouped = false
for n, base in ipairs(new) do
  local id, prio, o = ARGV[base + 1], ARGV[base + 3], options[base]
  if not o then
    -- Most jobs: due now, no options. One call, no table to build.
    redis.call('HSET', job_key(id), 'name', ARGV[base + 2], 'payload', ARGV[base + 4],
      'priority', prio, 'enqueued_at', now, 'state', 'waiting', 'seq', seq + n)
    ready[#ready + 1] = tonumber(prio) * BAND + seq + n
    ready[#ready + 1] = id
  else
    local fields = {'name', ARGV[base + 2], 'payload', ARGV[base + 4], 'priority', prio,
                    'enqueued_at', now}
    -- The options written to the job's hash when given: their place in the record, their field.
    local written = {DEDUP, 'dedup_key', 6, 'max_attempts', 7, 'backoff', 8, 'timeout_ms',
                     9, 'rate_key', 10, 'trace', GROUP, 'group'}
    for i = 1, #written, 2 do
      local value = o[written[i]]
      if value ~= '' then
        fields[#fields + 1] = written[i + 1]
        fields[#fields + 1] = value
      end
    end
    if o[DEDUP] ~= '' then
      redis.call('SET', PREFIX .. 'dedup:' .. o[DEDUP], id, 'PX', tonumber(o[DEDUP_TTL]))
    end
    if o[GROUP] ~= '' and not grouped then
      grouped = true
      redis.call('HSET', K_META, 'grouped', '1')
    end
    local run_at, delay = tonumber(o[RUN_AT]), tonumber(o[DELAY])
    if delay >= 0 then
      run_at = now + delay
    end
    if run_at > now then
      fields[#fields + 1] = 'state'
      fields[#fields + 1] = 'delayed'
      fields[#fields + 1] = 'run_at'
      fields[#fields + 1] = run_at
      redis.call('HSET', job_key(id), unpack(fields))
      if not any_delayed then
        any_delayed, delayed_before = true, first_score(K_DELAYED)
      end
      redis.call('ZADD', K_DELAYED, run_at, id)
    else
      -- ready_at defaults to enqueued_at; only promotions and retries write it.
      fields[#fields + 1] = 'state'
      fields[#fields + 1] = 'waiting'
      fields[#fields + 1] = 'seq'
      fields[#fields + 1] = seq + n
      redis.call('HSET', job_key(id), unpack(fields))
      if o[GROUP] ~= '' then
        grouped_add(o[GROUP], tonumber(prio) * BAND + seq + n, id)
      else
        ready[#ready + 1] = tonumber(prio) * BAND + seq + n
        ready[#ready + 1] = id
      end
    end
  end
end
redis.call('HINCRBY', K_STATS, 'enqueued_total', #new)
if #ready > 0 then
  redis.call('ZADD', K_READY, unpack(ready))
end
if #ready > 0 or grouped then
  wake()
end
if any_delayed then
  wake_if_sooner(delayed_before, first_score(K_DELAYED), now)
end
return out
