-- Dead letters: replay them as fresh jobs, or purge them with their data.
-- ARGV: prefix, action ('replay' | 'purge'), ids...
-- Returns how many of the given ids were dead letters and were acted on.
local action = ARGV[2]
local now = now_ms()
local hit = {}
for a = 3, #ARGV do
  local id = ARGV[a]
  if redis.call('ZSCORE', K_DEAD, id) then
    hit[#hit + 1] = id
  end
end
if #hit == 0 then
  return 0
end
redis.call('ZREM', K_DEAD, unpack(hit))
if action == 'purge' then
  for _, id in ipairs(hit) do
    redis.call('DEL', job_key(id))
  end
else
  local seq = next_seq(#hit)
  for i, id in ipairs(hit) do
    replay_dead(job_key(id), id, seq + i, now)
  end
  wake()
end
return #hit
