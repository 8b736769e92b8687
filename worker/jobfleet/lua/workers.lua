-- The live workers of a queue and how many jobs each holds now (for scale-in choices).
-- ARGV: prefix. Returns {worker_id, in_flight, ...} for every registered, unexpired worker.
local now = now_ms()
local load = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_WORKERS, now, '+inf')) do
  load[id] = 0
end
for _, id in ipairs(redis.call('ZRANGE', K_ACTIVE, 0, -1)) do
  local worker = redis.call('HGET', job_key(id), 'worker')
  if worker and load[worker] then
    load[worker] = load[worker] + 1
  end
end
local out = {}
for worker, n in pairs(load) do
  out[#out + 1] = worker
  out[#out + 1] = n
end
return out
