-- Retry one dead job: back to waiting (the back of its priority level) with its attempts reset.
-- ARGV: prefix, id. Returns 'ok', 'missing', or the state the job is in (not dead).
local id, key, state = the_job()
if not state then
  return 'missing'
end
if state ~= 'dead' then
  return state
end
redis.call('ZREM', K_DEAD, id)
replay_dead(key, id, next_seq(1) + 1, now_ms())
wake()
return 'ok'
