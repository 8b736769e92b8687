-- Cancel one job. Waiting, held or delayed: out of its line and final as 'cancelled'.
-- Active: final as 'cancelled' too, in this same atomic step, which clears the lease token:
-- a completion or failure of the running attempt that arrives later fails the token fence
-- (claim.lua counts it stale), so a cancel and a completion have exactly one winner. The
-- worker holding the job is told through its own wake list (its idle BLPOP ends at once and
-- it renews its leases) and, in any case, by its next lease renewal (extend.lua), and stops
-- the handler. ARGV: prefix, id, bell (the message for the worker's wake list).
-- Returns 'cancelled', 'cancelling' (it was active), 'missing', or 'final:<state>' (refused).
local id = ARGV[2]
local key = job_key(id)
local f = redis.call('HMGET', key, 'state', 'worker', 'group', 'gc')
local state = f[1]
if not state then
  return 'missing'
end
local now = now_ms()
if state == 'active' then
  redis.call('ZREM', K_ACTIVE, id)
  if f[4] == '1' then
    group_done(f[3])
  end
  finish_cancelled(key, id, now)
  if f[2] then
    local own = PREFIX .. 'wake:' .. f[2]
    -- At the front: a later bell (LTRIM 0 0 in the worker) keeps this message.
    redis.call('LPUSH', own, ARGV[3])
    redis.call('PEXPIRE', own, 60000) -- gone even if nobody pops it
  end
  return 'cancelling'
end
local set, _, group = line_of(id, state)
if not set then
  return 'final:' .. state
end
leave_line(set, id, group)
finish_cancelled(key, id, now)
return 'cancelled'
