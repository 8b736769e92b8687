-- Drain or undrain workers: a drained worker settles and renews its jobs but claims nothing.
-- ARGV: prefix, 'drain' | 'undrain', ttl_ms, worker_id...
-- A drain lapses after ttl_ms unless renewed (the caller repeats it while it waits), so a
-- flag can never outlive the process that set it by more than that. Every worker whose state
-- changes is woken through its own wake list (which its idle wait watches) to learn it now.
-- Returns how many workers changed state.
local action, ttl = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', K_DRAIN, '-inf', now)
local changed = 0
for a = 4, #ARGV do
  local id = ARGV[a]
  local was = redis.call('ZSCORE', K_DRAIN, id)
  local flip = false
  if action == 'drain' then
    redis.call('ZADD', K_DRAIN, now + ttl, id)
    flip = not was
  elseif was then
    redis.call('ZREM', K_DRAIN, id)
    flip = true
  end
  if flip then
    changed = changed + 1
    local own = PREFIX .. 'wake:' .. id
    redis.call('RPUSH', own, action)
    redis.call('PEXPIRE', own, 60000) -- gone even if nobody pops it
  end
end
return changed
