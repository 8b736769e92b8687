-- Record a handler's progress on its job, fenced by the lease token.
-- ARGV: prefix, id, token, percent ('' keeps), message, stage. Returns 1, or 0 if stale.
local key = job_key(ARGV[2])
if redis.call('HGET', key, 'token') ~= ARGV[3] then
  return 0
end
local fields = {'progress_message', ARGV[5], 'progress_stage', ARGV[6]}
if ARGV[4] ~= '' then
  fields[#fields + 1] = 'progress'
  fields[#fields + 1] = ARGV[4]
end
redis.call('HSET', key, unpack(fields))
return 1
