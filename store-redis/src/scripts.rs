//! The Lua scripts: every multi-step operation is one of them, so it is
//! atomic on the server.
//!
//! Each script touches only keys of one hash tag (a cluster slot). They are
//! loaded once and called by SHA through [`redis::Script`], which sends
//! `SCRIPT LOAD` (to every master in cluster mode) and retries when a server
//! answers `NOSCRIPT` (after a restart or failover).
//!
//! Scripts read the fixed-width header of an entry (see the `schema` module)
//! and the user id with one `GETRANGE`, not the data. Integers are handled as
//! canonical decimal text and compared with `cmp`, exact for all of `i64` (Lua numbers are
//! doubles). Reply codes: `1` done, `0` no live session / conflict, `-1` the
//! target exists, `-2` stored value corrupt, `-3` the user-index entry is too
//! old (retry), `-4` the user index must be written first (retry after
//! writing it).

use std::sync::LazyLock;

use redis::Script;

/// Shared helpers, prepended to every script.
const PRELUDE: &str = r#"
local function cmp(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then
    if na then return -1 else return 1 end
  end
  local r
  if #a ~= #b then
    if #a < #b then r = -1 else r = 1 end
  elseif a == b then
    return 0
  elseif a < b then
    r = -1
  else
    r = 1
  end
  if na then return -r end
  return r
end
local function lmin(a, b) if cmp(a, b) <= 0 then return a end return b end
local function lmax(a, b) if cmp(a, b) >= 0 then return a end return b end
-- sign + 19 digits <-> canonical decimal
local function from_fixed(s)
  local p = string.find(s, '[1-9]', 2)
  if not p then return '0' end
  if string.byte(s, 1) == 45 then return '-' .. string.sub(s, p) end
  return string.sub(s, p)
end
local function to_fixed(c)
  local sign = '+'
  if string.sub(c, 1, 1) == '-' then
    sign = '-'
    c = string.sub(c, 2)
  end
  return sign .. string.rep('0', 19 - #c) .. c
end
local MAXEXP = 9007199254740991
local function expire_arg(dec, slack)
  local n = tonumber(dec) + tonumber(slack)
  if n > MAXEXP then n = MAXEXP end
  if n < 1 then n = 1 end
  return string.format('%.0f', n)
end
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function too_old(idx_time, max_age)
  return idx_time ~= '' and server_ms() - tonumber(idx_time) > tonumber(max_age)
end
-- The entry under k: 'none', 'corrupt', 'forwarder' or 'session', and for a
-- session its raw header followed by up to `extra` bytes (the user id). One
-- GETRANGE; a key of another type is 'corrupt'. Fields are parsed lazily.
local function sign(b) return b == 43 or b == 45 end
local function entry(k, extra)
  local h = redis.pcall('GETRANGE', k, 0, 92 + extra)
  if type(h) == 'table' then
    if h.err and string.find(h.err, 'WRONGTYPE', 1, true) then return 'corrupt' end
    error(h)
  end
  if h == '' then return 'none' end
  local kind = string.byte(h, 1)
  if kind == 70 then return 'forwarder' end
  if kind ~= 83 or #h < 93
      or not string.find(string.sub(h, 1, 93), '^S%d+[+-]%d+[+-]%d+[+-]%d+[ua]%d+\n$')
      or not (sign(string.byte(h, 22)) and sign(string.byte(h, 42)) and sign(string.byte(h, 62))) then
    return 'corrupt'
  end
  return 'session', h
end
local function h_v(h) return string.sub(h, 2, 21) end
local function h_i(h) return from_fixed(string.sub(h, 22, 41)) end
local function h_x(h) return from_fixed(string.sub(h, 42, 61)) end
local function h_l(h) return from_fixed(string.sub(h, 62, 81)) end
-- The user id of session k (header h), or false when anonymous.
local function owner(k, h)
  if string.byte(h, 82) ~= 117 then return false end
  local n = tonumber(string.sub(h, 83, 92))
  if n == 0 then return '' end
  if #h >= 93 + n then return string.sub(h, 94, 93 + n) end
  return redis.call('GETRANGE', k, 93, 93 + n - 1)
end
local function live(h, now)
  return cmp(now, lmin(h_i(h), h_x(h))) < 0
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// KEYS: entry. ARGV: index time, max index age (ms), PXAT, value.
/// (Anonymous sessions are created with a plain `SET NX PXAT`.)
pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if too_old(ARGV[1], ARGV[2]) then return -3 end
redis.call('SET', KEYS[1], ARGV[4], 'PXAT', ARGV[3])
return 1
"#,
    )
});

/// KEYS: entry. ARGV: now, expected version (20 digits), user, has user
/// ('1'/'0'), new absolute deadline, index written ('1'/'0'), PXAT, value.
pub(crate) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local state, h = entry(KEYS[1], #ARGV[3])
if state == 'corrupt' then return -2 end
if state ~= 'session' or h_v(h) ~= ARGV[2] or not live(h, ARGV[1]) then return 0 end
if ARGV[4] == '1' and ARGV[6] ~= '1' and (cmp(ARGV[5], h_x(h)) > 0 or owner(KEYS[1], h) ~= ARGV[3]) then
  return -4
end
redis.call('SET', KEYS[1], ARGV[8], 'PXAT', ARGV[7])
return 1
"#,
    )
});

/// KEYS: entry. ARGV: now, idle deadline, last seen, TTL slack (ms).
/// Patches the two header fields in place; the data is not rewritten.
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local state, h = entry(KEYS[1], 0)
if state == 'corrupt' then return -2 end
if state ~= 'session' then return 0 end
local i, x, l = h_i(h), h_x(h), h_l(h)
if cmp(ARGV[1], lmin(i, x)) >= 0 then return 0 end
local ni = lmax(i, lmin(ARGV[2], x))
local nl = lmax(l, ARGV[3])
if ni ~= i then
  redis.call('SETRANGE', KEYS[1], 21, to_fixed(ni))
  redis.call('PEXPIREAT', KEYS[1], expire_arg(lmin(ni, x), ARGV[4]))
end
if nl ~= l then
  redis.call('SETRANGE', KEYS[1], 61, to_fixed(nl))
end
return 1
"#,
    )
});

/// KEYS: from, to (one slot). ARGV: now, expected version (20 digits), index
/// time ('' without user), max index age (ms), PXAT of `to`, value of `to`,
/// forwarder value ('' without grace), PXAT of the forwarder.
pub(crate) static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local state, h = entry(KEYS[1], 0)
if state == 'corrupt' then return -2 end
if state ~= 'session' or h_v(h) ~= ARGV[2] or not live(h, ARGV[1]) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if too_old(ARGV[3], ARGV[4]) then return -3 end
redis.call('SET', KEYS[2], ARGV[6], 'PXAT', ARGV[5])
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[1], ARGV[7], 'PXAT', ARGV[8])
else
  redis.call('DEL', KEYS[1])
end
return 1
"#,
    )
});

/// KEYS: entry. ARGV: user, now. Deletes the entry if it is a session of
/// `user`. Returns 0 missing, 1 deleted (not live), 2 deleted (live),
/// 3 forwarder (kept), 4 another owner (kept), -2 corrupt.
pub(crate) static DELETE_OWNED: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local state, h = entry(KEYS[1], #ARGV[1])
if state == 'none' then return 0 end
if state == 'corrupt' then return -2 end
if state == 'forwarder' then return 3 end
if owner(KEYS[1], h) ~= ARGV[1] then return 4 end
redis.call('DEL', KEYS[1])
if live(h, ARGV[2]) then return 2 end
return 1
"#,
    )
});

/// KEYS: user zset, user times hash. ARGV: member, score (absolute deadline),
/// TTL slack (ms). Adds (or raises) the member, stamps it with the server
/// time, moves both keys' expiry to the highest score. Returns the stamp.
pub(crate) static INDEX_ADD: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local now = string.format('%.0f', server_ms())
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local at = expire_arg(top[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], at)
redis.call('PEXPIREAT', KEYS[2], at)
return now
"#,
    )
});

/// KEYS: user zset, user times hash. ARGV: TTL slack (ms), guard (ms). Drops
/// members whose record Redis has certainly expired by its own clock (score,
/// the absolute deadline, plus slack plus guard before the server's time) and
/// returns the others. The caller's `now` plays no part: a manual clock far
/// ahead of Redis must not drop entries whose records still exist.
pub(crate) static INDEX_MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local limit = string.format('(%.0f', server_ms() - tonumber(ARGV[1]) - tonumber(ARGV[2]))
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', limit)
for i = 1, #dead, 500 do
  local chunk = {unpack(dead, i, math.min(i + 499, #dead))}
  redis.call('ZREM', KEYS[1], unpack(chunk))
  redis.call('HDEL', KEYS[2], unpack(chunk))
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"#,
    )
});

/// KEYS: user zset, user times hash. ARGV: guard (ms), n, then members: the
/// first n are removed unconditionally (verified dead for good), the rest
/// only if they were added more than `guard` ago (their record is missing).
/// Returns how many were removed.
pub(crate) static INDEX_PRUNE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local now = server_ms()
local guard = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local removed = 0
for i = 3, #ARGV do
  local m = ARGV[i]
  local ok = i - 2 <= n
  if not ok then
    local t = tonumber(redis.call('HGET', KEYS[2], m))
    ok = (not t) or (now - t > guard)
  end
  if ok then
    removed = removed + redis.call('ZREM', KEYS[1], m)
    redis.call('HDEL', KEYS[2], m)
  end
end
return removed
"#,
    )
});
