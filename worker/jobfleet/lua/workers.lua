-- The live workers of a queue, how many jobs each holds now, and whether each is drained
-- (for scale-in choices). Drain flags that expired or whose worker is gone are dropped here.
-- ARGV: prefix. Returns {worker_id, in_flight, draining (0/1), ...} for every registered,
-- unexpired worker.
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
redis.call('ZREMRANGEBYSCORE', K_DRAIN, '-inf', now)
local drained = {}
for _, id in ipairs(redis.call('ZRANGE', K_DRAIN, 0, -1)) do
  if load[id] then
    drained[id] = true
  else
    redis.call('ZREM', K_DRAIN, id)
  end
end
local out = {}
for worker, n in pairs(load) do
  out[#out + 1] = worker
  out[#out + 1] = n
  out[#out + 1] = drained[worker] and 1 or 0
end
return out
