-- claude_rbac: one governed call's buckets in one atomic script (the argument layout is in quota/_redis.py).
-- 1. Apply the settlements owed: 'add' always counts, 'give' returns to a window that still holds
--    something (never below zero, never leaving a counter behind), 'drop' removes moving-window entries.
-- 2. Check every bucket; with ARGV[2] == '1', take from all of them only if all admit.
-- Replies {admitted (1/0), index of the first refusal (0: none), then 3 fields per bucket}.

local text = string.gmatch(ARGV[1], '%S+') -- the arguments, one string: cheaper for the client to send
local now_text = text()
local now = tonumber(now_text)
local take = text() == '1'

local function number()
  return tonumber(text())
end

-- Every redis.call costs the server more than the Lua around it, so the common case makes as few as it can:
-- a give-back is one DECRBY (a window left at or below zero is deleted: a missing counter reads as zero), the
-- counters are read in one MGET, a counter's expiry is set when a write creates it, a list is trimmed only
-- once it is longer than its limit.
for _ = 1, number() do
  local op, key, amount, extra = text(), KEYS[number()], number(), text()
  if op == 'add' then
    if redis.call('INCRBY', key, amount) == amount then
      redis.call('EXPIRE', key, extra)
    end
  elseif op == 'give' then
    if redis.call('DECRBY', key, amount) <= 0 then
      redis.call('DEL', key)
    end
  else
    redis.call('LREM', key, amount, extra)
  end
end

local checks, reads = {}, {}
for index = 1, number() do
  local check = {strategy = text()}
  if check.strategy == 'moving' then
    check.key, check.limit, check.cost, check.period = KEYS[number()], number(), number(), number()
  else
    if check.strategy == 'sliding' then
      check.previous = KEYS[number()]
      reads[#reads + 1] = check.previous
      check.previous_at = #reads
    end
    check.key, check.limit, check.cost, check.ttl = KEYS[number()], number(), number(), number()
    reads[#reads + 1] = check.key
    check.at = #reads
    if check.strategy == 'sliding' then
      check.elapsed, check.width = number(), number()
    end
  end
  checks[index] = check
end
local values = #reads > 0 and redis.call('MGET', unpack(reads)) or {}

local function counted(at)
  return tonumber(values[at] or '0')
end

local reply = {1, 0}
for index, check in ipairs(checks) do
  local fits
  local limit, cost = check.limit, check.cost
  if check.strategy == 'moving' then
    -- entry times, newest first, at most `limit` kept: the call fits unless the entry at index
    -- limit - cost is still inside the window (that entry's leaving is when it would fit)
    local since = now - check.period
    local count, oldest, leaving = 0, '', ''
    if take then
      local entry = cost <= limit and redis.call('LINDEX', check.key, math.max(limit - cost, 0))
      if entry and tonumber(entry) >= since then
        leaving = entry
      end
      fits = cost <= limit and leaving == ''
    else -- a read for remaining(): count the newest limit + 1 entries still inside
      for _, entry in ipairs(redis.call('LRANGE', check.key, 0, limit)) do
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
  else
    local count = counted(check.at)
    if check.strategy == 'sliding' then
      local width = check.width
      local previous = counted(check.previous_at)
      fits = previous * (width - check.elapsed) + (count + cost) * width <= limit * width
      reply[#reply + 1] = count
      reply[#reply + 1] = previous
    else
      fits = count + cost <= limit
      reply[#reply + 1] = count
      reply[#reply + 1] = 0
    end
    reply[#reply + 1] = ''
  end
  if not fits and reply[2] == 0 then
    reply[1] = 0
    reply[2] = index
  end
end

if take and reply[1] == 1 then
  for _, check in ipairs(checks) do
    local key, cost = check.key, check.cost
    if check.period then
      local length = 0
      for _ = 1, cost do
        length = redis.call('LPUSH', key, now_text)
      end
      if cost > 0 then
        if length > check.limit then
          redis.call('LTRIM', key, 0, check.limit - 1)
        end
        redis.call('EXPIRE', key, math.ceil(check.period) + 1)
      end
    elseif cost > 0 and redis.call('INCRBY', key, cost) == cost then
      redis.call('EXPIRE', key, check.ttl)
    end
  end
end
return reply
