-- Give claimed jobs back without counting the attempt (graceful shutdown).
-- ARGV: prefix, worker_id, [id, token] * n. Returns how many were released.
local now = now_ms()
local released = {}
for a = 3, #ARGV, 2 do
  local id, tok = ARGV[a], ARGV[a + 1]
  local key = job_key(id)
  local f = redis.call('HMGET', key, 'token', 'priority', 'seq', 'group', 'gc')
  if f[1] == tok then
    if f[5] == '1' then
      group_done(f[4])
    end
    redis.call('HINCRBY', key, 'attempt', -1)
    -- The attempt does not count, but it happened: kept so an interruption stays visible.
    redis.call('HINCRBY', key, 'releases', 1)
    -- Back to its old place in line, ahead of jobs enqueued after it.
    make_ready(key, id, f[2], tonumber(f[3]) or next_seq(1), now, f[4])
    released[#released + 1] = id
  end
end
if #released > 0 then
  redis.call('ZREM', K_ACTIVE, unpack(released))
  wake()
end
redis.call('ZREM', K_WORKERS, ARGV[2])
return #released
