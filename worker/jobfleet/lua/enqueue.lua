-- Enqueue a batch of jobs atomically.
-- ARGV: prefix, count, then per job 12 fields:
--   id, name, payload, priority, run_at_ms (0 = now; absolute Redis ms), delay_ms (-1 = none),
--   dedup_key, dedup_ttl_ms, max_attempts, backoff, timeout_ms, rate_key
-- Returns per job: id, 1 if written / 0 if a duplicate (existing id or live dedup key).
local FIELDS = 12
local count = tonumber(ARGV[2])
local now = now_ms()
local out = {}
-- Duplicates must write nothing at all, so the sequence is only advanced for new jobs.
local seq = tonumber(redis.call('HGET', K_META, 'seq') or '0')
local written, readied = 0, 0
for j = 0, count - 1 do
  local a = 3 + j * FIELDS
  local id, name, payload, prio = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local run_at, delay = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local dedup, dedup_ttl = ARGV[a + 6], tonumber(ARGV[a + 7])
  local existing = nil
  if dedup ~= '' then
    existing = redis.call('GET', PREFIX .. 'dedup:' .. dedup)
  end
  local key = job_key(id)
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  elseif redis.call('EXISTS', key) == 1 then
    out[#out + 1] = id
    out[#out + 1] = 0
  else
    if delay >= 0 then
      run_at = now + delay
    end
    local fields = {'name', name, 'payload', payload, 'priority', prio, 'attempt', 0,
                    'enqueued_at', now}
    local opt = {'dedup_key', dedup, 'max_attempts', ARGV[a + 8], 'backoff', ARGV[a + 9],
                 'timeout_ms', ARGV[a + 10], 'rate_key', ARGV[a + 11]}
    for i = 1, #opt, 2 do
      if opt[i + 1] ~= '' then
        fields[#fields + 1] = opt[i]
        fields[#fields + 1] = opt[i + 1]
      end
    end
    if run_at > now then
      fields[#fields + 1] = 'state'
      fields[#fields + 1] = 'delayed'
      fields[#fields + 1] = 'run_at'
      fields[#fields + 1] = run_at
      redis.call('HSET', key, unpack(fields))
      redis.call('ZADD', K_DELAYED, run_at, id)
    else
      fields[#fields + 1] = 'state'
      fields[#fields + 1] = 'waiting'
      fields[#fields + 1] = 'ready_at'
      fields[#fields + 1] = now
      fields[#fields + 1] = 'seq'
      fields[#fields + 1] = seq + written + 1
      redis.call('HSET', key, unpack(fields))
      redis.call('ZADD', K_READY, tonumber(prio) * BAND + seq + written + 1, id)
      readied = readied + 1
    end
    if dedup ~= '' then
      redis.call('SET', PREFIX .. 'dedup:' .. dedup, id, 'PX', dedup_ttl)
    end
    written = written + 1
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if written > 0 then
  redis.call('HSET', K_META, 'seq', seq + written)
  redis.call('HINCRBY', K_STATS, 'enqueued_total', written)
end
if readied > 0 then
  wake()
end
return out
