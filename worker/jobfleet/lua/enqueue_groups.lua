-- The grouped half of enqueue.lua: scripts.py builds 'enqueue_grouped' from enqueue.lua with
-- this library, which alone reaches the group helpers; the plain 'enqueue' (a batch without
-- a grouped job, Engine.enqueue picks) carries none of them, nor their cost per call.
local GROUPS = true

local function grouped_add(g, score, id)
  group_add(g, score, id)
end
