-- A host's heartbeat in the team: it notes the host, drops the silent ones
-- and says how many are alive. Timed by Redis alone (TIME).
--
-- KEYS[1]  the team's hash: born (the team's epoch) and bms (the same in ms),
--          rs (when Redis was found restarted empty, ms), h:<host> (last
--          seen, ms)
-- ARGV[1]  host    ARGV[2] the team epoch the host knows ("" none, "?" it
--          could not reach Redis when it started)    ARGV[3] host_ttl_ms
--
-- A missing hash that a host knew, or a hash born after the epoch a host
-- knew, is a Redis restarted empty: rs marks when, and limit.lua starts
-- every bucket created in the next minute no fuller than the refill since
-- then.
--
-- Reply: the team epoch, the hosts alive (this one included).
local k = KEYS[1]
local host, known, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local born = redis.call('HGET', k, 'born')
if not born then
  born = t[1] .. '.' .. t[2]
  redis.call('HSET', k, 'born', born, 'bms', now)
  if known ~= '' then redis.call('HSET', k, 'rs', now) end
elseif known ~= '' and known ~= '?' and known ~= born then
  -- The team this host knew was lost, and a host that never knew it wrote
  -- the hash first: the restart was no later than that.
  local bms = tonumber(redis.call('HGET', k, 'bms') or '0')
  local rs = tonumber(redis.call('HGET', k, 'rs') or '')
  if rs == nil or rs < bms then redis.call('HSET', k, 'rs', bms) end
end
redis.call('HSET', k, 'h:' .. host, now)

local all = redis.call('HGETALL', k)
local alive = 0
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 2) == 'h:' then
    if now - tonumber(all[i + 1]) > ttl then
      redis.call('HDEL', k, f)
    else
      alive = alive + 1
    end
  end
end
return {born, alive}
