-- One exchange between a host and the team's spend: the host reports its
-- ledger's figures, what it reserved while Redis did not answer and the
-- reservations it ended, and may ask for a reservation, admitted only if
-- every limit it falls under keeps spent + reserved + estimate <= max.
-- Atomic, and timed by Redis alone (TIME).
--
-- KEYS[1]  the team's hash (team.lua: h:<host> is when a host last beat)
-- KEYS[2]  the reservations: <host>|<n> = "amount created_ms namespace"
-- KEYS[3]  the day's figures   KEYS[4] the month's: <ledger>|<namespace> =
--          "requests hits unpriced cost saved input cached output reasoning"
-- ARGV[1]  host    ARGV[2] ledger id    ARGV[3] host_ttl_ms
-- ARGV[4]  max_hold_ms    ARGV[5] day_expire_at_ms    ARGV[6] month_expire_at_ms
-- ARGV[7]  reservation id ("" none)    ARGV[8] its namespace    ARGV[9] its estimate
-- then     n limits, each: namespace period ("d"|"m") max
-- then     n adds, each: id namespace amount (admitted while Redis was down:
--          held without a check; an id held already is left as it is)
-- then     n releases, each: id
-- then     n figures, each: period ("d"|"m") namespace figures
-- then     nonce, sweep (a sequence number; -1 none), then n ids: with
--          sweep, the host's reservations in flight; any other of its own
--          (<host>|<nonce>.<seq>) up to that sequence number, or of another
--          nonce (an earlier process), is dropped: a reservation that a call
--          that timed out made late, after the host had given it up
--
-- Figures are a ledger's totals since the period began, so they only grow:
-- each is merged by the greater of each number, which makes a report told
-- twice (a call that timed out and ran late) or out of order harmless, and
-- a ledger that reports again (a restart) replaces its old figures.
--
-- A reservation whose owner has not beaten for host_ttl_ms (a host killed
-- while it held it), older than max_hold_ms, or swept by its owner is
-- dropped.
--
-- Reply: admitted (1/0; 1 when nothing was asked), the refused limit's
-- index (1-based; 0 none), whether this ledger had figures in the day's and
-- the month's hash before this call (1/0: a Redis restarted empty, or a
-- hash evicted, has none), the hosts alive in the team, the day's 9 sums, the month's 9 sums, then per
-- limit spent and reserved (after the reservation).
local team, held = KEYS[1], KEYS[2]
local host, id = ARGV[1], ARGV[2]
local ttl, max_hold = tonumber(ARGV[3]), tonumber(ARGV[4])
local rid, rns, rest = ARGV[7], ARGV[8], tonumber(ARGV[9])
local periods = {d = {key = KEYS[3], exp = ARGV[5]}, m = {key = KEYS[4], exp = ARGV[6]}}

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local a = 9
local function arg()
  a = a + 1
  return ARGV[a]
end
local function num(x)
  return string.format('%.0f', x)
end
local function parse(v)
  local r = {}
  for x in string.gmatch(v, '%S+') do table.insert(r, tonumber(x) or 0) end
  return r
end

local limits = {}
for _ = 1, tonumber(arg()) do
  local ns, p, mx = arg(), arg(), tonumber(arg())
  table.insert(limits, {ns = ns, p = p, max = mx})
end
for _ = 1, tonumber(arg()) do
  local hid, ns, amt = arg(), arg(), arg()
  if redis.call('HEXISTS', held, hid) == 0 then
    redis.call('HSET', held, hid, amt .. ' ' .. num(now) .. ' ' .. ns)
  end
end
for _ = 1, tonumber(arg()) do
  redis.call('HDEL', held, arg())
end

-- The figures: read, note whether this ledger had any, merge.
local prefix = id .. '|'
for _, p in pairs(periods) do
  p.f, p.mine = {}, 0
  local all = redis.call('HGETALL', p.key)
  for i = 1, #all, 2 do
    p.f[all[i]] = all[i + 1]
    if string.sub(all[i], 1, #prefix) == prefix then p.mine = 1 end
  end
end
for _ = 1, tonumber(arg()) do
  local p, ns, v = periods[arg()], arg(), arg()
  local field = prefix .. ns
  local n = parse(v)
  if p.f[field] then
    local o = parse(p.f[field])
    for j = 1, #n do n[j] = math.max(n[j], o[j] or 0) end
  end
  for j = 1, #n do n[j] = num(n[j]) end
  v = table.concat(n, ' ')
  p.f[field] = v
  redis.call('HSET', p.key, field, v)
  p.wrote = true
end
local nonce, sweep, live = arg(), tonumber(arg()), {}
for _ = 1, tonumber(arg()) do live[arg()] = true end
-- swept reports whether the sweep drops hid, a reservation of this host.
local function swept(hid)
  if sweep < 0 or live[hid] then return false end
  local n, seq = string.match(hid, '|([^|.]*)%.(%d+)$')
  return n ~= nonce or tonumber(seq) <= sweep
end
for _, p in pairs(periods) do
  if p.wrote then redis.call('PEXPIREAT', p.key, p.exp) end
  p.sum, p.cost = {0, 0, 0, 0, 0, 0, 0, 0, 0}, {}
  for field, v in pairs(p.f) do
    local ns = string.match(field, '^[^|]*|(.*)$')
    local n = parse(v)
    for j = 1, 9 do p.sum[j] = p.sum[j] + (n[j] or 0) end
    if ns then p.cost[ns] = (p.cost[ns] or 0) + (n[4] or 0) end
  end
end

-- The reservations: drop the dead, add up the living.
local seen = {}
local res_all, res_ns = 0, {}
local hall = redis.call('HGETALL', held)
for i = 1, #hall, 2 do
  local hid = hall[i]
  local amt, created, ns = string.match(hall[i + 1], '^(%S+) (%S+) (.*)$')
  amt, created = tonumber(amt), tonumber(created)
  local owner = string.match(hid, '^(.*)|[^|]*$') or hid
  local last = seen[owner]
  if last == nil then
    last = tonumber(redis.call('HGET', team, 'h:' .. owner) or '') or 0
    seen[owner] = last
  end
  if amt == nil or now - created > max_hold or (owner ~= host and now - math.max(last, created) > ttl)
      or (owner == host and swept(hid)) then
    redis.call('HDEL', held, hid)
  else
    res_all = res_all + amt
    res_ns[ns] = (res_ns[ns] or 0) + amt
  end
end

-- The hosts alive (heartbeats within the TTL): the share's divisor.
local hosts = 0
local tall = redis.call('HGETALL', team)
for i = 1, #tall, 2 do
  if string.sub(tall[i], 1, 2) == 'h:' and now - (tonumber(tall[i + 1]) or 0) <= ttl then hosts = hosts + 1 end
end

local state = {}
for i, l in ipairs(limits) do
  local p = periods[l.p]
  local spent = p.cost[l.ns] or 0
  local r = res_ns[l.ns] or 0
  if l.ns == '' then spent, r = p.sum[4], res_all end
  state[i] = {spent, r}
end

local admitted, refused = 1, 0
if rid ~= '' and redis.call('HEXISTS', held, rid) == 0 then
  for i, l in ipairs(limits) do
    if (l.ns == '' or l.ns == rns) and state[i][1] + state[i][2] + rest > l.max then
      admitted, refused = 0, i
      break
    end
  end
  if admitted == 1 then
    redis.call('HSET', held, rid, num(rest) .. ' ' .. num(now) .. ' ' .. rns)
    for i, l in ipairs(limits) do
      if l.ns == '' or l.ns == rns then state[i][2] = state[i][2] + rest end
    end
  end
end
if redis.call('EXISTS', held) == 1 then redis.call('PEXPIRE', held, max_hold) end

local reply = {admitted, refused, periods.d.mine, periods.m.mine, hosts}
for _, p in ipairs({periods.d, periods.m}) do
  for j = 1, 9 do table.insert(reply, p.sum[j]) end
end
for _, s in ipairs(state) do
  table.insert(reply, s[1]); table.insert(reply, s[2])
end
return reply
