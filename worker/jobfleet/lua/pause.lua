-- Pause or resume a queue. A resume rings the wake list when jobs are waiting: idle workers
-- went back to sleep while the queue was paused and would otherwise only look again at
-- their idle interval.
-- ARGV: prefix, paused ('1' or '0')
redis.call('HSET', K_META, 'paused', ARGV[2])
if ARGV[2] == '0' and any_ready(redis.call('HGET', K_META, 'grouped') == '1') then
  wake()
end
return 1
