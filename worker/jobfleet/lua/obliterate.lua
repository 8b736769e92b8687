-- The first step of obliterating a queue: refuse while jobs are active (unless forced), else
-- pause it, so that no worker claims while the caller deletes its keys in bounded batches
-- (the meta hash, with the paused flag, goes last). ARGV: prefix, force ('1' | '').
-- Returns the number of active jobs (the queue was paused when 0 or forced).
local active = redis.call('ZCARD', K_ACTIVE)
if active > 0 and ARGV[2] ~= '1' then
  return active
end
redis.call('HSET', K_META, 'paused', '1')
return active
