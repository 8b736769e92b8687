-- Enqueue a batch of jobs atomically.
-- ARGV: prefix, count, jobs: one record per job (see split), fields:
--   id, caller_chose_id ('1' or ''), name, priority, run_at_ms (0 = now; absolute ms),
--   delay_ms (-1 = none), dedup_key, dedup_ttl_ms, max_attempts, backoff, timeout_ms,
--   rate_key, payload, trace (a W3C traceparent, '' for none)
-- Returns {index, id, ...} for the jobs NOT written because they are duplicates (an existing
-- caller-chosen id, or a live dedup key): `id` is the job that already stands for them.
local count = tonumber(ARGV[2])
local records = split(ARGV[3], '\30')
local now = now_ms()
local out = {}
-- Duplicates must write nothing at all, so the sequence is only advanced for new jobs.
local seq = tonumber(redis.call('HGET', K_META, 'seq') or '0')
local written = 0
local ready = {}
local any_delayed, delayed_before = false, nil
for j = 1, count do
  local f = split(records[j], '\31')
  local id, name, prio = f[1], f[3], f[4]
  local run_at, delay = tonumber(f[5]), tonumber(f[6])
  local dedup = f[7]
  local key = job_key(id)
  local existing = nil
  if dedup ~= '' then
    existing = redis.call('GET', PREFIX .. 'dedup:' .. dedup)
  end
  -- Generated ids are 128 random bits: only a caller-chosen id can already exist.
  if not existing and f[2] ~= '' and redis.call('EXISTS', key) == 1 then
    existing = id
  end
  if existing then
    out[#out + 1] = j
    out[#out + 1] = existing
  else
    if delay >= 0 then
      run_at = now + delay
    end
    local fields = {'name', name, 'payload', f[13], 'priority', prio, 'enqueued_at', now}
    local opt = {'dedup_key', dedup, 'max_attempts', f[9], 'backoff', f[10],
                 'timeout_ms', f[11], 'rate_key', f[12], 'trace', f[14] or ''}
    for i = 1, #opt, 2 do
      if opt[i + 1] ~= '' then
        fields[#fields + 1] = opt[i]
        fields[#fields + 1] = opt[i + 1]
      end
    end
    written = written + 1
    if run_at > now then
      fields[#fields + 1] = 'state'
      fields[#fields + 1] = 'delayed'
      fields[#fields + 1] = 'run_at'
      fields[#fields + 1] = run_at
      redis.call('HSET', key, unpack(fields))
      if not any_delayed then
        any_delayed, delayed_before = true, first_score(K_DELAYED)
      end
      redis.call('ZADD', K_DELAYED, run_at, id)
    else
      -- ready_at defaults to enqueued_at; only promotions and retries write it.
      fields[#fields + 1] = 'state'
      fields[#fields + 1] = 'waiting'
      fields[#fields + 1] = 'seq'
      fields[#fields + 1] = seq + written
      redis.call('HSET', key, unpack(fields))
      ready[#ready + 1] = tonumber(prio) * BAND + seq + written
      ready[#ready + 1] = id
    end
    if dedup ~= '' then
      redis.call('SET', PREFIX .. 'dedup:' .. dedup, id, 'PX', tonumber(f[8]))
    end
  end
end
if written > 0 then
  redis.call('HSET', K_META, 'seq', seq + written)
  redis.call('HINCRBY', K_STATS, 'enqueued_total', written)
end
if #ready > 0 then
  redis.call('ZADD', K_READY, unpack(ready))
  wake()
end
if any_delayed then
  wake_if_sooner(delayed_before, first_score(K_DELAYED), now)
end
return out
