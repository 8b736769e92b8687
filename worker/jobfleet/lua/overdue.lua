-- Mark the running attempt of a job as past its timeout while its handler, which cannot be
-- interrupted, runs on; fenced by the lease token. ARGV: prefix, id, token. Returns 1, or 0
-- if stale. The token is kept with the time so the mark lapses with the attempt.
local key = job_key(ARGV[2])
if redis.call('HGET', key, 'token') ~= ARGV[3] then
  return 0
end
redis.call('HSET', key, 'overdue_since', now_ms(), 'overdue_token', ARGV[3])
return 1
