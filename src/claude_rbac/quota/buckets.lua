-- claude_rbac: one governed call's buckets in one atomic script (the argument layout is in quota/_redis.py).
-- 1. Apply the settlements owed: 'add' always counts, 'give' returns to a window that still holds
--    something (never below zero, never creating it), 'drop' removes moving-window entries.
-- 2. Check every bucket; with ARGV[2] == '1', take from all of them only if all admit.
-- Replies {admitted (1/0), index of the first refusal (0: none), then 3 fields per bucket}.

local text = string.gmatch(ARGV[1], '%S+') -- the arguments, one string: cheaper for the client to send
local now_text = text()
local now = tonumber(now_text)
local take = text() == '1'

local function number()
  return tonumber(text())
end

local function held(key)
  return tonumber(redis.call('GET', key) or '0')
end

for _ = 1, number() do
  local op, key, amount, extra = text(), KEYS[number()], number(), text()
  if op == 'add' then
    redis.call('INCRBY', key, amount)
    redis.call('EXPIRE', key, extra)
  elseif op == 'give' then
    local count = held(key)
    if count > 0 then
      redis.call('DECRBY', key, math.min(count, amount))
    end
  else
    redis.call('LREM', key, amount, extra)
  end
end

local reply = {1, 0}
local writes = {}
for index = 1, number() do
  local strategy = text()
  local fits
  if strategy == 'moving' then
    -- entry times, newest first, at most `limit` kept: the call fits unless the entry at index
    -- limit - cost is still inside the window (that entry's leaving is when it would fit)
    local key, limit, cost, period = KEYS[number()], number(), number(), number()
    local since = now - period
    local count, oldest, leaving = 0, '', ''
    if take then
      local entry = cost <= limit and redis.call('LINDEX', key, math.max(limit - cost, 0))
      if entry and tonumber(entry) >= since then
        leaving = entry
      end
      fits = cost <= limit and leaving == ''
    else -- a read for remaining(): count the newest limit + 1 entries still inside
      for _, entry in ipairs(redis.call('LRANGE', key, 0, limit)) do
        if tonumber(entry) >= since then
          count = count + 1
          if oldest == '' or tonumber(entry) < tonumber(oldest) then
            oldest = entry
          end
        end
      end
      fits = count + cost <= limit
    end
    reply[#reply + 1] = count
    reply[#reply + 1] = oldest
    reply[#reply + 1] = leaving
    writes[#writes + 1] = {key, cost, limit, period}
  else
    local previous_key = ''
    if strategy == 'sliding' then
      previous_key = KEYS[number()]
    end
    local key, limit, cost, ttl = KEYS[number()], number(), number(), number()
    local count = held(key)
    if strategy == 'sliding' then
      local elapsed, width = number(), number()
      local previous = held(previous_key)
      fits = previous * (width - elapsed) + (count + cost) * width <= limit * width
      reply[#reply + 1] = count
      reply[#reply + 1] = previous
    else
      fits = count + cost <= limit
      reply[#reply + 1] = count
      reply[#reply + 1] = 0
    end
    reply[#reply + 1] = ''
    writes[#writes + 1] = {key, cost, ttl}
  end
  if not fits and reply[2] == 0 then
    reply[1] = 0
    reply[2] = index
  end
end

if take and reply[1] == 1 then
  for _, write in ipairs(writes) do
    local key, cost = write[1], write[2]
    if write[4] then
      for _ = 1, cost do
        redis.call('LPUSH', key, now_text)
      end
      if cost > 0 then
        redis.call('LTRIM', key, 0, write[3] - 1)
        redis.call('EXPIRE', key, math.ceil(write[4]) + 1)
      end
    elseif cost > 0 then
      redis.call('INCRBY', key, cost)
      redis.call('EXPIRE', key, write[3])
    end
  end
end
return reply
