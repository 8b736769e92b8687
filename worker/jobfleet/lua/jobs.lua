-- One page of the jobs in one state, in that state's order, from a cursor.
-- ARGV: prefix, state, limit, budget, n_bands, name ('' any), error_type ('' any),
--       cursor score ('' = from the start), cursor id, mark ('' = a new walk)
-- Orders: waiting in claim order (priority levels in turn, FIFO inside one) for the default
-- group, then each job group's (groups in byte order of their names, each in its own claim
-- order; a group's cursor score is 'G<group>|<score>'), held the same across every hold set
-- and then the held groups, delayed by due time, active by id, completed / dead / cancelled
-- newest first. A cursor is the position (score, id) of the last job looked at, found again
-- by rank (rank_of: O(log N)), so a page costs O(log N + budget) however long the line is —
-- except active, which is sorted here (the active set is as large as the fleet's slots).
-- `mark` pins the walk to the jobs that were in the state when it began: for waiting and
-- held the last sequence number then (a job that comes back gets a new one, or its old place),
-- for delayed the time (a job enters the delayed set at enqueued_at or failed_at), so a job
-- is never listed twice in one walk; completed, dead and cancelled, newest first, meet jobs
-- that arrive later only before the cursor. At most `budget` entries are looked at per call
-- (filters by name and error type are applied here, so a page may come back short, with a
-- cursor to go on).
-- Returns {more (1/0), score, id, mark, [id, score, {hash field, value, ...}] ...}.
local state, limit, budget, n_bands = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local want_name, want_error = ARGV[6], ARGV[7]
local c_score, c_id, mark = ARGV[8], ARGV[9], ARGV[10]
local filtered = want_name ~= '' or want_error ~= ''
local scanned = 0
local page = {}  -- {id, score} in order

local function fmt(x)
  return string.format('%.0f', x)
end

-- Does the job pass the filters (and the walk's mark, for delayed)?
local function accept(id, entered_by)
  if not filtered and not entered_by then
    return true
  end
  local f = redis.call('HMGET', job_key(id), 'name', 'error_type', 'enqueued_at', 'failed_at')
  if not f[1] then
    return false
  end
  if want_name ~= '' and f[1] ~= want_name then
    return false
  end
  if want_error ~= '' and f[2] ~= want_error then
    return false
  end
  if entered_by then
    local entered = math.max(tonumber(f[3]) or 0, tonumber(f[4]) or 0)
    if entered > entered_by then
      return false
    end
  end
  return true
end

-- Walk `set` over ranks first..last (step 1 or -1), adding accepted members to `into` until
-- it holds `want` or the budget is spent. Returns the last (score, id) looked at (nil if
-- none) and whether the range was walked to its end.
local function walk(set, first, last, step, want, into, pass)
  local ls, li = nil, nil
  local r = first
  while (step > 0 and r <= last) or (step < 0 and r >= last) do
    if #into >= want or scanned >= budget then
      return ls, li, false
    end
    local n = math.min(budget - scanned, 200)
    local a, b
    if step > 0 then
      a, b = r, math.min(r + n - 1, last)
    else
      a, b = math.max(r - n + 1, last), r
    end
    local chunk = redis.call('ZRANGE', set, a, b, 'WITHSCORES')
    local count = #chunk / 2
    for k = 1, count do
      local i = step > 0 and k or (count - k + 1)
      local id, score = chunk[2 * i - 1], chunk[2 * i]
      scanned = scanned + 1
      ls, li = score, id
      if pass(id, score) then
        into[#into + 1] = {id, score}
      end
      if #into >= want or scanned >= budget then
        local rank = a + i - 1
        return ls, li, rank == last
      end
    end
    r = step > 0 and b + 1 or a - 1
  end
  return ls, li, true
end

local more, n_score, n_id = 0, '', ''
local function stop_at(score, id)
  more, n_score, n_id = 1, score, id
end

local function plain(id)
  return accept(id, nil)
end

-- A new walk's mark: the last sequence number given out (waiting, held), or the time (delayed).
if mark == '' and (state == 'waiting' or state == 'held') then
  mark = redis.call('HGET', K_META, 'seq') or '0'
elseif mark == '' and state == 'delayed' then
  mark = fmt(now_ms())
end

-- Jobs groups, after the queue's own line: each group's set in claim order, groups in byte
-- order of their names; only held groups (`held`) or only the others. A cursor inside a group
-- is the score 'G<group>|<score>'.
local in_groups = string.sub(c_score, 1, 1) == 'G'
local function walk_groups(held, hwm)
  if more == 1 or #page >= limit or redis.call('HGET', K_META, 'grouped') ~= '1' then
    if more == 0 and #page >= limit and redis.call('HGET', K_META, 'grouped') == '1' then
      local last = page[#page]  -- full before the groups: start there next time
      stop_at(last[2], last[1])
    end
    return
  end
  local c_group, c_gscore = nil, nil
  if in_groups then
    c_group, c_gscore = string.match(c_score, '^G(.*)|(.*)$')
  end
  local names = redis.call('ZRANGE', G_BACKLOG, 0, -1)
  table.sort(names, lex_lt)
  for _, g in ipairs(names) do
    if (not c_group or not lex_lt(g, c_group))
        and (redis.call('ZSCORE', G_HELD, g) ~= false) == held then
      local set = group_set(g)
      local first = 0
      if g == c_group then
        first = rank_of(set, c_gscore, c_id, true)
      end
      local ls, li, ended = walk(set, first, redis.call('ZCARD', set) - 1, 1, limit, page,
        function(id, score)
          return tonumber(score) % BAND <= hwm and plain(id)
        end)
      if not ended then
        stop_at('G' .. g .. '|' .. (ls or c_gscore or '-1'), li or c_id)
        return
      end
    end
  end
end

if state == 'waiting' then
  local hwm = tonumber(mark)
  local band = 0
  if in_groups then
    band = n_bands
  elseif c_score ~= '' then
    band = math.floor(tonumber(c_score) / BAND)
  end
  while band < n_bands do
    local first
    if c_score ~= '' and math.floor(tonumber(c_score) / BAND) == band then
      first = rank_of(K_READY, c_score, c_id, true)
    else
      first = redis.call('ZCOUNT', K_READY, '-inf', '(' .. fmt(band * BAND))
    end
    local last = redis.call('ZCOUNT', K_READY, '-inf', fmt(band * BAND + hwm)) - 1
    local ls, li, ended = walk(K_READY, first, last, 1, limit, page, plain)
    if not ended then
      if ls then
        stop_at(ls, li)
      else  -- the page filled up before this level: start there next time
        stop_at(fmt(band * BAND), '')
      end
      break
    end
    band = band + 1
  end
  walk_groups(false, hwm)
elseif state == 'held' then
  local hwm = tonumber(mark)
  -- Each hold set is in claim order too: merge them. Only positions up to the least far
  -- walked set that did not end are certain; the page stops there.
  local cands, limit_pos = {}, nil
  local function pos_lt(s1, i1, s2, i2)
    local a, b = tonumber(s1), tonumber(s2)
    if a ~= b then
      return a < b
    end
    return lex_lt(i1, i2)
  end
  local hold_names = {}
  if not in_groups then
    hold_names = redis.call('ZRANGE', K_HOLDS, 0, -1)
  end
  for _, name in ipairs(hold_names) do
    local set = PREFIX .. 'hold:' .. name
    local first = 0
    if c_score ~= '' then
      first = rank_of(set, c_score, c_id, true)
    end
    local got = {}
    local ls, li, ended = walk(set, first, redis.call('ZCARD', set) - 1, 1, limit, got,
      function(id, score)
        return tonumber(score) % BAND <= hwm and plain(id)
      end)
    for _, c in ipairs(got) do
      cands[#cands + 1] = c
    end
    if not ended then
      local s, i = ls or c_score, li or c_id
      if s == '' then
        s, i = '-1', ''
      end
      if not limit_pos or pos_lt(s, i, limit_pos[1], limit_pos[2]) then
        limit_pos = {s, i}
      end
    end
  end
  table.sort(cands, function(x, y)
    return pos_lt(x[2], x[1], y[2], y[1])
  end)
  for _, c in ipairs(cands) do
    if #page >= limit then
      break
    end
    if limit_pos and pos_lt(limit_pos[1], limit_pos[2], c[2], c[1]) then
      break
    end
    page[#page + 1] = c
  end
  if #page >= limit and #cands > #page then
    local lastc = page[#page]
    stop_at(lastc[2], lastc[1])
  elseif limit_pos then
    stop_at(limit_pos[1], limit_pos[2])
  end
  walk_groups(true, hwm)
elseif state == 'delayed' then
  local since = tonumber(mark)
  local first = 0
  if c_score ~= '' then
    first = rank_of(K_DELAYED, c_score, c_id, true)
  end
  local last = redis.call('ZCARD', K_DELAYED) - 1
  local ls, li, ended = walk(K_DELAYED, first, last, 1, limit, page, function(id)
    return accept(id, since)
  end)
  if not ended then
    stop_at(ls or c_score, li or c_id)
  end
elseif state == 'active' then
  local ids = redis.call('ZRANGE', K_ACTIVE, 0, -1)
  table.sort(ids, lex_lt)
  local i = 1
  if c_id ~= '' then
    while i <= #ids and not lex_lt(c_id, ids[i]) do
      i = i + 1
    end
  end
  while i <= #ids and #page < limit and scanned < budget do
    local id = ids[i]
    scanned = scanned + 1
    if plain(id) then
      page[#page + 1] = {id, redis.call('ZSCORE', K_ACTIVE, id)}
    end
    i = i + 1
  end
  if i <= #ids then
    stop_at('', ids[i - 1] or c_id)
  end
else
  local set = ({completed = K_DONE, dead = K_DEAD, cancelled = K_CANCELLED})[state]
  if not set then
    return redis.error_reply('unknown state ' .. state)
  end
  local first = redis.call('ZCARD', set) - 1
  if c_score ~= '' then
    first = rank_of(set, c_score, c_id, false) - 1
  end
  local ls, li, ended = walk(set, first, 0, -1, limit, page, plain)
  if not ended then
    stop_at(ls or c_score, li or c_id)
  end
end

local out = {more, n_score, n_id, mark}
for _, p in ipairs(page) do
  out[#out + 1] = p[1]
  out[#out + 1] = p[2]
  out[#out + 1] = redis.call('HGETALL', job_key(p[1]))
end
return out
