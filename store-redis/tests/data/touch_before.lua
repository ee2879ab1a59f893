
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

local function expire_at(ms, slack)
  local n = tonumber(ms) + tonumber(slack)
  if n > 9007199254740991 then n = 9007199254740991 elseif n < 1 then n = 1 end
  return string.format('%.0f', n)
end

local kind, h = read(KEYS[1], '92')
if kind == -2 then return -2 end
if kind ~= 'S' then return 0 end
local i, x = string.sub(h, 22, 41), string.sub(h, 42, 61)
if not (lt(ARGV[1], i) and lt(ARGV[1], x)) then return 0 end
local capped = lt(x, ARGV[2])
local n = ARGV[2]
if capped then n = x end
if lt(i, n) then
  local at = ARGV[4]
  if capped then
    if n == '-0000000000000000000' then n = '+0000000000000000000' end
    at = expire_at(x, ARGV[5])
  end
  redis.call('SETRANGE', KEYS[1], '21', n)
  redis.call('PEXPIREAT', KEYS[1], at)
end
if lt(string.sub(h, 62, 81), ARGV[3]) then
  redis.call('SETRANGE', KEYS[1], '61', ARGV[3])
end
return 1
