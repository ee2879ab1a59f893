
local function lt(a, b)
  local sa = string.byte(a, 1)
  if sa == string.byte(b, 1) then
    if sa == 43 then return a < b end
    return a > b
  end
  return sa == 45 and (a ~= '-0000000000000000000' or b ~= '+0000000000000000000')
end

local function read(k, last)
  local h = redis.pcall('GETRANGE', k, '0', last)
  if type(h) == 'table' then
    if h.err and string.find(h.err, 'WRONGTYPE', 1, true) then return -2 end
    error(h)
  end
  if h == '' then return false end
  if string.byte(h, 1) == 70 then return 'F' end
  local a, b, c, e = string.match(h, '^S%d+()[+-]%d+()[+-]%d+()[+-]%d+[ua]%d+\n()')
  if a ~= 22 or b ~= 42 or c ~= 62 or e ~= 94 then return -2 end
  return 'S', h
end

local function too_old(stamp, max_age)
  if stamp == '' then return false end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(stamp)
    > tonumber(max_age)
end

local kind, h = read(KEYS[1], '92')
if kind == -2 then return -2 end
if kind ~= 'S' or string.sub(h, 2, 21) ~= ARGV[2]
    or not (lt(ARGV[1], string.sub(h, 22, 41)) and lt(ARGV[1], string.sub(h, 42, 61))) then
  return 0
end
if too_old(ARGV[3], ARGV[4]) then
  if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
  return -3
end
if not redis.call('SET', KEYS[2], ARGV[6], 'NX', 'PXAT', ARGV[5]) then return -1 end
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[1], ARGV[7], 'PXAT', ARGV[8])
else
  redis.call('DEL', KEYS[1])
end
return 1
