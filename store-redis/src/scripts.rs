//! The Lua scripts: every multi-step operation is one of them, so it is
//! atomic on the server.
//!
//! Each script touches only keys of one hash tag (a cluster slot). They are
//! loaded once and called by SHA through [`redis::Script`], which sends
//! `SCRIPT LOAD` (to every master in cluster mode) and retries when a server
//! answers `NOSCRIPT` (after a restart or failover).
//!
//! Integers travel as canonical decimal text and are compared with `cmp`,
//! which is exact for all of `i64` (Lua numbers are doubles). Reply codes:
//! `1` done, `0` no live session / conflict, `-1` the target exists, `-2`
//! stored value corrupt, `-3` the user-index entry is too old (retry), `-4`
//! the user index must be written first (retry after writing it).

use std::sync::LazyLock;

use redis::Script;

/// Shared helpers, prepended to every script.
const PRELUDE: &str = r#"
local function canon(s)
  return type(s) == 'string' and #s <= 20 and (s == '0' or string.match(s, '^%-?[1-9]%d*$') ~= nil)
end
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
local MAXEXP = 9007199254740991
local function expire_arg(dec, slack)
  local n = tonumber(dec) + tonumber(slack)
  if n > MAXEXP then n = MAXEXP end
  return string.format('%.0f', n)
end
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function too_old(idx_time, max_age)
  return idx_time ~= '' and server_ms() - tonumber(idx_time) > tonumber(max_age)
end
-- The live session under k at now: 'none', 'corrupt', 'dead' or 'live', and
-- the HMGET of fields (which must start with v, i, x).
local function live_session(k, now, fields)
  local ty = redis.call('TYPE', k).ok
  if ty == 'none' then return 'none' end
  if ty ~= 'hash' then return 'corrupt' end
  local s = redis.call('HMGET', k, unpack(fields))
  if not s[1] then return 'dead', s end
  if not (canon(s[2]) and canon(s[3])) then return 'corrupt', s end
  if cmp(now, lmin(s[2], s[3])) >= 0 then return 'dead', s end
  return 'live', s
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// KEYS: entry. ARGV: index time ('' without user), max index age (ms),
/// PEXPIREAT, then field/value pairs.
pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if too_old(ARGV[1], ARGV[2]) then return -3 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
"#,
    )
});

/// KEYS: entry. ARGV: now, expected version, user, has user ('1'/'0'), new
/// absolute deadline, index written ('1'/'0'), PEXPIREAT, then field/value
/// pairs.
pub(crate) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local state, s = live_session(KEYS[1], ARGV[1], {'v', 'i', 'x', 'u'})
if state == 'corrupt' then return -2 end
if state ~= 'live' or s[1] ~= ARGV[2] then return 0 end
if ARGV[4] == '1' and ARGV[6] ~= '1' and (s[4] ~= ARGV[3] or cmp(ARGV[5], s[3]) > 0) then
  return -4
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
redis.call('PEXPIREAT', KEYS[1], ARGV[7])
return 1
"#,
    )
});

/// KEYS: entry. ARGV: now, idle deadline, last seen, TTL slack (ms).
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local state, s = live_session(KEYS[1], ARGV[1], {'v', 'i', 'x', 'l'})
if state == 'corrupt' or (state == 'live' and not canon(s[4])) then return -2 end
if state ~= 'live' then return 0 end
local ni = lmax(s[2], lmin(ARGV[2], s[3]))
local nl = lmax(s[4], ARGV[3])
if ni ~= s[2] or nl ~= s[4] then
  redis.call('HSET', KEYS[1], 'i', ni, 'l', nl)
end
if ni ~= s[2] then
  redis.call('PEXPIREAT', KEYS[1], expire_arg(lmin(ni, s[3]), ARGV[4]))
end
return 1
"#,
    )
});

/// KEYS: from, to (one slot). ARGV: now, expected version, index time ('' without
/// user), max index age (ms), PEXPIREAT of `to`, grace ('1'/'0'), successor,
/// sealed token, until, PEXPIREAT of the forwarder, then `to`'s field/value pairs.
pub(crate) static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local state, s = live_session(KEYS[1], ARGV[1], {'v', 'i', 'x'})
if state == 'corrupt' then return -2 end
if state ~= 'live' or s[1] ~= ARGV[2] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if too_old(ARGV[3], ARGV[4]) then return -3 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], unpack(ARGV, 11))
redis.call('PEXPIREAT', KEYS[2], ARGV[5])
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'f', ARGV[7], 's', ARGV[8], 't', ARGV[9])
  redis.call('PEXPIREAT', KEYS[1], ARGV[10])
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
local ty = redis.call('TYPE', KEYS[1]).ok
if ty == 'none' then return 0 end
if ty ~= 'hash' then return -2 end
local s = redis.call('HMGET', KEYS[1], 'v', 'i', 'x', 'u')
if not s[1] then return 3 end
if s[4] ~= ARGV[1] then return 4 end
redis.call('DEL', KEYS[1])
if canon(s[2]) and canon(s[3]) and cmp(ARGV[2], lmin(s[2], s[3])) < 0 then return 2 end
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
local at = tonumber(top[2]) + tonumber(ARGV[3])
if at > MAXEXP then at = MAXEXP end
at = string.format('%.0f', at)
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
