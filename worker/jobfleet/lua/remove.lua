-- Remove one job that is not running: out of whichever set holds it, its hash, and its dedup
-- key while that still points at it (a later enqueue with that key is then new).
-- ARGV: prefix, id. Returns 'ok', 'missing' or 'active' (refused: cancel it first).
local id, key, state = the_job()
if not state then
  return 'missing'
end
if state == 'active' then
  return 'active'
end
local set, _, group = set_of(id, state)
if set then
  leave_line(set, id, group)
end
forget_job(key, id)
redis.call('HINCRBY', K_STATS, 'removed_total', 1)
return 'ok'
