-- Renew every lease a worker holds in one call, keep the worker registered, and apply the
-- completed-style retention to cancelled jobs (the cancel script knows no retention).
-- ARGV: prefix, lease_ms, worker_id, worker_ttl_ms, keep_cancelled, cancelled_age_ms,
--       [id, token] * n
-- Returns {lost, cancelled}: ids whose lease is no longer this worker's (recovered
-- meanwhile: their outcome would be rejected anyway), and ids cancelled while running
-- (cancel.lua): the worker stops their handlers.
local lease, worker, worker_ttl = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local now = now_ms()
local lost, cancelled = {}, {}
local renew = {}
for a = 7, #ARGV, 2 do
  local id, tok = ARGV[a], ARGV[a + 1]
  local f = redis.call('HMGET', job_key(id), 'token', 'state')
  if f[1] == tok then
    renew[#renew + 1] = now + lease
    renew[#renew + 1] = id
  elseif f[2] == 'cancelled' then
    cancelled[#cancelled + 1] = id
  else
    lost[#lost + 1] = id
  end
end
if #renew > 0 then
  redis.call('ZADD', K_ACTIVE, 'XX', unpack(renew))
end
redis.call('ZADD', K_WORKERS, now + worker_ttl, worker)
trim(K_CANCELLED, tonumber(ARGV[5]), tonumber(ARGV[6]), now, 1000)
return {lost, cancelled}
