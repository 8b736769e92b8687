-- The plain build of enqueue.lua (see enqueue_groups.lua): it refuses a grouped job before
-- writing anything, so its grouped_add is never reached.
local GROUPS = false

local function grouped_add()
  error('a grouped job needs the enqueue_grouped script')
end
