-- One exchange between a host and a limit scope's shared budget: the host
-- reports what it holds and what it spent beyond its grants, and is granted
-- more. Atomic, and timed by Redis alone (TIME): no host clock enters the
-- shared maths.
--
-- KEYS[1]  the scope's hash     KEYS[2] the team's hash (team.lua)
-- ARGV[1]  host            ARGV[2] epoch the host knows ("" none)
-- ARGV[3]  host_ttl_ms     ARGV[4] cool_ms (a 429 here asked to wait; 0 none)
-- ARGV[5..11]   RPM: cap ask need ret charge out low
-- ARGV[12..18]  TPM: the same
--   cap     the limit (0: unknown, the dimension is skipped)
--   ask     the grant wanted; need: the least grant worth having (all or nothing)
--   ret     lease handed back unused; charge: spent beyond grants (debts, spending
--           while Redis was unreachable)
--   out     what the host holds after this exchange, before the grant: its unspent
--           lease plus its requests in flight
--   low     the lowest x-ratelimit-remaining the host read since its last exchange (-1 none)
--
-- A need refused is recorded as the host's want, first come first served:
-- until it is granted (or lapses, a second after its host's retry was due),
-- other hosts are granted only what is left above the older wants.
--
-- Invariant: level + the outstanding of every host <= cap. A host silent for
-- host_ttl_ms is dropped and its outstanding counts as spent: under-use,
-- never overshoot.
--
-- A Redis restarted empty: a scope's hash that is missing while the host
-- knew an epoch, or while the team's hash is missing too (every host writes
-- the team's hash before its first exchange), restarts empty; what hosts
-- spent meanwhile is in that emptiness, so a host that knew another epoch
-- hands back nothing, and is charged at most the refill since the new
-- bucket was created (what it spent on its safe share since). A scope first
-- used within a minute of a restart starts with the refill since then; any
-- other new scope full. (A host that finds a restart keeps to its safe
-- share for a moment, charging what it spends: limit.go, restartGrace.)
--
-- Reply: epoch, active hosts, cool_left_ms, then per dimension grant,
-- retry_ms (when a refused need could fit; 0 when granted) and level.
local k = KEYS[1]
local host = ARGV[1]
local known = ARGV[2]
local ttl = tonumber(ARGV[3])
local cool = tonumber(ARGV[4])
-- A want lasts until its host's retry is due, and this much longer: a host
-- that stopped wanting (its request went elsewhere, or gave up) frees the
-- others soon.
local want_grace = 1000

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local tk = KEYS[2]
local restart_at = tonumber(redis.call('HGET', tk, 'rs') or '')
local team_lost = not redis.call('HGET', tk, 'born')
if team_lost then
  restart_at = now
  redis.call('HSET', tk, 'born', t[1] .. '.' .. t[2], 'bms', now, 'rs', now)
end

local epoch = redis.call('HGET', k, 'epoch')
local restarted = false
if not epoch then
  epoch = t[1] .. '.' .. t[2]
  redis.call('HSET', k, 'epoch', epoch, 'ems', now)
  restarted = known ~= '' or team_lost
end
-- A host that knew another epoch: what it hands back or owes belongs to the
-- bucket Redis lost, and a bucket another host created since (not knowing
-- of the loss) holds no more than the refill since its creation.
local foreign = known ~= '' and known ~= epoch
local born_at = tonumber(redis.call('HGET', k, 'ems') or '') or now

-- Hosts: drop the silent ones, note this one.
local all = redis.call('HGETALL', k)
local seen, outs, wants = {}, {r = {}, t = {}}, {r = {}, t = {}}
-- What every host held since the last exchange, the silent ones included.
local held_then = {r = 0, t = 0}
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  local p, h = string.sub(f, 1, 2), string.sub(f, 3)
  if p == 's:' then seen[h] = tonumber(v)
  elseif p == 'r:' then outs.r[h] = tonumber(v); held_then.r = held_then.r + tonumber(v)
  elseif p == 't:' then outs.t[h] = tonumber(v); held_then.t = held_then.t + tonumber(v)
  elseif p == 'r.' or p == 't.' then
    local d, q = string.sub(f, 1, 1), string.sub(f, 3, 4)
    if q == 'w:' then
      local need, since, untl = string.match(v, '^(%S+) (%S+) (%S+)$')
      wants[d][string.sub(f, 5)] = {need = tonumber(need), since = tonumber(since), untl = tonumber(untl)}
    end
  end
end
local active = 1
for h, s in pairs(seen) do
  if h ~= host then
    if now - s > ttl then
      redis.call('HDEL', k, 's:' .. h, 'r:' .. h, 't:' .. h, 'r.w:' .. h, 't.w:' .. h)
      outs.r[h], outs.t[h], wants.r[h], wants.t[h] = nil, nil, nil, nil
    else
      active = active + 1
    end
  end
end
redis.call('HSET', k, 's:' .. host, now)

-- A 429 anywhere cools the scope everywhere.
local cool_until = tonumber(redis.call('HGET', k, 'cool') or '0')
if cool > 0 and now + cool > cool_until then
  cool_until = now + cool
  redis.call('HSET', k, 'cool', cool_until)
end
local cool_left = math.max(cool_until - now, 0)

local reply = {epoch, active, cool_left}
for i, d in ipairs({'r', 't'}) do
  local b = 4 + (i - 1) * 7
  local cap = tonumber(ARGV[b + 1])
  local ask, need = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local ret, charge = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  local out, low = tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7])
  if cap <= 0 then
    redis.call('HDEL', k, d .. ':' .. host)
    table.insert(reply, 0); table.insert(reply, 0); table.insert(reply, -1)
  else
    local lvl = tonumber(redis.call('HGET', k, d .. '.lvl') or '')
    local last = tonumber(redis.call('HGET', k, d .. '.last') or '')
    local scap = tonumber(redis.call('HGET', k, d .. '.cap') or '')
    -- What a host that knew the lost bucket spent before this one was
    -- created is in its emptiness; since then it can have spent no more
    -- than the refill.
    if foreign then ret, charge = 0, math.min(charge, (now - born_at) * cap / 60000) end
    if lvl == nil then
      if restarted then
        lvl = 0
      elseif restart_at and now - restart_at < 60000 then
        lvl = (now - restart_at) * cap / 60000
      else
        lvl = cap
      end
      last = now
    elseif scap ~= nil and scap ~= cap then
      lvl = lvl + cap - scap -- a new limit keeps what was used of the old one
    end
    -- The refill since the last exchange is capped by what the hosts held
    -- meanwhile, as recorded (held_then), not by what this host holds now:
    -- the upstream's bucket refills nothing while a lease waits unspent
    -- (it may sit full) and is charged when the lease is spent, at any
    -- moment of the interval. Capped by what is held now, the whole
    -- interval's refill came back at once when a held lease turned out
    -- spent, and was granted though the upstream did not have it.
    if now > last then
      lvl = math.min(cap - held_then[d], lvl + (now - last) * cap / 60000)
    end
    outs[d][host] = out
    local sum = 0
    for _, v in pairs(outs[d]) do sum = sum + v end
    local ceil = cap - sum
    lvl = math.min(ceil, lvl)
    if foreign then lvl = math.min(lvl, (now - born_at) * cap / 60000) end
    lvl = math.min(ceil, lvl + ret) - charge
    if low >= 0 then lvl = math.min(lvl, low) end

    -- Wants: the head-of-line requests of hosts waiting for the refill,
    -- first come first served. A host is granted only what is left above
    -- the wants older than its own (all of them when it has none): small
    -- grants elsewhere never starve a large request.
    local g, retry = 0, 0
    local mine = wants[d][host]
    if mine and mine.untl <= now then mine = nil end
    local kept = 0
    for h, w in pairs(wants[d]) do
      if h ~= host then
        if w.untl <= now then
          redis.call('HDEL', k, d .. '.w:' .. h)
        elseif mine == nil or w.since < mine.since then
          kept = kept + w.need
        end
      end
    end
    local rate = cap / 60000
    if cool_left > 0 then
      retry = cool_left
    elseif ask > 0 then
      local can = math.floor(math.min(ask, lvl - kept))
      if can >= need and can > 0 then
        g = can
        if wants[d][host] then redis.call('HDEL', k, d .. '.w:' .. host) end
      else
        if need + kept > ceil then
          retry = 250 -- fits only once other hosts spend or hand back what they hold
        else
          retry = math.max(math.ceil((math.max(need, 1) + kept - lvl) / rate), 1)
        end
        if need > 0 then
          local since = now
          if mine then since = mine.since end
          redis.call('HSET', k, d .. '.w:' .. host, need .. ' ' .. since .. ' ' .. (now + retry + want_grace))
        end
      end
    end
    lvl = lvl - g
    redis.call('HSET', k, d .. ':' .. host, out + g, d .. '.lvl', lvl, d .. '.last', now, d .. '.cap', cap)
    table.insert(reply, g); table.insert(reply, math.max(retry, 0)); table.insert(reply, math.floor(lvl))
  end
end
return reply
