-- Renew every lease a worker holds in one call, and keep the worker registered.
-- ARGV: prefix, lease_ms, worker_id, worker_ttl_ms, [id, token] * n
-- Returns the ids whose lease is no longer this worker's (recovered meanwhile): the worker
-- should stop caring about their outcome, which the token check would reject anyway.
local lease, worker, worker_ttl = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local now = now_ms()
local lost = {}
local renew = {}
for a = 5, #ARGV, 2 do
  local id, tok = ARGV[a], ARGV[a + 1]
  if redis.call('HGET', job_key(id), 'token') == tok then
    renew[#renew + 1] = now + lease
    renew[#renew + 1] = id
  else
    lost[#lost + 1] = id
  end
end
if #renew > 0 then
  redis.call('ZADD', K_ACTIVE, 'XX', unpack(renew))
end
redis.call('ZADD', K_WORKERS, now + worker_ttl, worker)
return lost
