
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

local function owned(k, h, o)
  if string.sub(h, 82) == o then return true end
  return string.byte(h, 82) == 117 and #h == #o + 81 and string.sub(h, 94) == string.sub(o, 13)
    and tonumber(string.sub(h, 83, 92)) > #h - 93 and redis.call('STRLEN', k) == #h
end

local kind, h = read(KEYS[1], ARGV[3])
if kind == -2 then return -2 end
if kind ~= 'S' or string.sub(h, 2, 21) ~= ARGV[2] then return 0 end
local x = string.sub(h, 42, 61)
if not (lt(ARGV[1], string.sub(h, 22, 41)) and lt(ARGV[1], x)) then return 0 end
if ARGV[4] ~= '' and ARGV[6] ~= '1' and (lt(x, ARGV[5]) or not owned(KEYS[1], h, ARGV[4])) then
  return -4
end
redis.call('SET', KEYS[1], ARGV[8], 'PXAT', ARGV[7])
return 1
