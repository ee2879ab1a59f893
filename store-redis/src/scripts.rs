//! The Lua scripts: every multi-step operation is one of them, so it is
//! atomic on the server.
//!
//! Each script touches only keys of one hash tag (a cluster slot). They are
//! loaded once and called by SHA (`EVALSHA`); when a server answers
//! `NOSCRIPT` (after a restart or failover) the store sends `SCRIPT LOAD`
//! (to every master in cluster mode) and retries.
//!
//! Scripts read the fixed-width header of an entry (see the `schema` module)
//! and the user id with one `GETRANGE`, not the data. Instants are compared
//! as the header stores them, a sign and 19 digits, exact for all of `i64`
//! (Lua numbers are doubles): the client passes its instants in the same
//! fixed width and every argument of a server command as a string, so the
//! hot paths (`SAVE`, `TOUCH`) convert no number to text. Each script is
//! built from only the helpers it uses: whatever a script defines is
//! re-created on every call. Reply codes: `1` done, `0` no live session /
//! conflict, `-1` the target exists, `-2` stored value corrupt (a header
//! that is not exactly the fixed-width layout, or a key of another type),
//! `-3` the user-index entry is too old (retry), `-4` the user index must be
//! written first (retry after writing it); `DELETE_OWNED` has its own. The
//! client decodes them in one place, the table in the `reply` module.

use std::sync::LazyLock;

use redis::Script;

/// `lt(a, b)`: `a < b` for two instants in the stored form, sign and 19
/// digits. Same sign: the digits compare as text (reversed when negative);
/// `-0000000000000000000` equals `+0000000000000000000`.
const LUA_LT: &str = r#"
local function lt(a, b)
  local sa = string.byte(a, 1)
  if sa == string.byte(b, 1) then
    if sa == 43 then return a < b end
    return a > b
  end
  return sa == 45 and (a ~= '-0000000000000000000' or b ~= '+0000000000000000000')
end
"#;

/// `read(k, last)`: the entry under `k`, its bytes `0..=last` (`last` a
/// string, at least `'92'`, so that the header and possibly the user id
/// come back). Returns `false` (none), `'F'` (a forwarder), `-2` (corrupt: a
/// key of another type, an unknown kind, or a session header that is not
/// 'S', 20 digits, 3 x (sign and 19 digits), digits around one 'u'|'a',
/// '\n' at byte 93: one anchored match, the field positions from its
/// position captures) or `'S'` and the bytes.
const LUA_READ: &str = r#"
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
"#;

/// `owned(k, h, o)`: whether session `k` (bytes `h` from `read` through the
/// header plus the user's length) belongs to the user whose stored form
/// (`'u'`, length (10 digits), `'\n'`, user) is `o`. Compared as stored; a
/// value cut short right after the user's bytes while its header announces a
/// longer user id also counts (the `STRLEN` runs only then).
const LUA_OWNED: &str = r#"
local function owned(k, h, o)
  if string.sub(h, 82) == o then return true end
  return string.byte(h, 82) == 117 and #h == #o + 81 and string.sub(h, 94) == string.sub(o, 13)
    and tonumber(string.sub(h, 83, 92)) > #h - 93 and redis.call('STRLEN', k) == #h
end
"#;

/// `too_old(stamp, max_age)`: whether the user-index entry stamped `stamp`
/// (server ms, `''` for none) is older than `max_age` ms by the server clock.
const LUA_TOO_OLD: &str = r#"
local function too_old(stamp, max_age)
  if stamp == '' then return false end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(stamp)
    > tonumber(max_age)
end
"#;

/// `expire_at(ms, slack)`: the `PEXPIREAT` argument for a deadline `ms` (any
/// decimal form `tonumber` reads) plus `slack`, clamped to `[1, 2^53 - 1]`
/// exactly as the client's `schema::ttl_at`.
const LUA_EXPIRE_AT: &str = r#"
local function expire_at(ms, slack)
  local n = tonumber(ms) + tonumber(slack)
  if n > 9007199254740991 then n = 9007199254740991 elseif n < 1 then n = 1 end
  return string.format('%.0f', n)
end
"#;

/// `server_ms()`: the server's clock in ms, a number.
const LUA_SERVER_MS: &str = r#"
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"#;

/// KEYS: entry. ARGV: index time, max index age (ms), PXAT, value.
/// (Anonymous sessions are created with a plain `SET NX PXAT`.) An existing
/// entry is `-1` whatever the index time.
const LUA_CREATE: &str = r#"
if too_old(ARGV[1], ARGV[2]) then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
  return -3
end
if not redis.call('SET', KEYS[1], ARGV[4], 'NX', 'PXAT', ARGV[3]) then return -1 end
return 1
"#;

/// KEYS: entry. ARGV: now (fixed width), expected version (20 digits), last
/// byte to read (`92` + user length), owner (`''` without user, else the
/// stored form `'u'`, length (10 digits), `'\n'`, user), new absolute deadline
/// (fixed width), index written (`'1'`/`'0'`), PXAT, value.
const LUA_SAVE: &str = r#"
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
"#;

/// KEYS: entry. ARGV: now, idle deadline, last seen (fixed width), PXAT for
/// the idle deadline, TTL slack (ms). Patches the two header fields in
/// place; the data is not rewritten. The idle deadline becomes
/// `max(stored, min(idle, absolute))`, last seen `max(stored, last seen)`.
const LUA_TOUCH: &str = r#"
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
"#;

/// KEYS: from, to (one slot). ARGV: now (fixed width), expected version (20
/// digits), index time (`''` without user), max index age (ms), PXAT of `to`,
/// value of `to`, forwarder value (`''` without grace), PXAT of the
/// forwarder.
const LUA_ROTATE: &str = r#"
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
"#;

/// KEYS: entry. ARGV: owner (the stored form, as for `SAVE`), now (fixed
/// width), last byte to read (`92` + user length). Deletes the entry if it
/// is a session of that user. Returns 0 missing, 1 deleted (not live),
/// 2 deleted (live), 3 forwarder (kept), 4 another owner (kept), -2 corrupt.
const LUA_DELETE_OWNED: &str = r#"
local kind, h = read(KEYS[1], ARGV[3])
if kind == false then return 0 end
if kind == -2 then return -2 end
if kind == 'F' then return 3 end
if not owned(KEYS[1], h, ARGV[1]) then return 4 end
redis.call('DEL', KEYS[1])
if lt(ARGV[2], string.sub(h, 22, 41)) and lt(ARGV[2], string.sub(h, 42, 61)) then return 2 end
return 1
"#;

/// KEYS: user zset, user times hash. ARGV: member, score (absolute deadline),
/// TTL slack (ms), PEXPIREAT for that score. Adds (or raises) the member,
/// stamps it with the server time, moves both keys' expiry to the highest
/// score. Returns the stamp.
const LUA_INDEX_ADD: &str = r#"
local t = redis.call('TIME')
local now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], now)
local top = redis.call('ZRANGE', KEYS[1], '-1', '-1', 'WITHSCORES')
local at = ARGV[4]
if top[2] ~= ARGV[2] then at = expire_at(top[2], ARGV[3]) end
redis.call('PEXPIREAT', KEYS[1], at)
redis.call('PEXPIREAT', KEYS[2], at)
return now
"#;

/// KEYS: user zset, user times hash. ARGV: TTL slack (ms), guard (ms). Drops
/// members whose record Redis has certainly expired by its own clock (score,
/// the absolute deadline, plus slack plus guard before the server's time) and
/// returns the others. The caller's `now` plays no part: a manual clock far
/// ahead of Redis must not drop entries whose records still exist.
const LUA_INDEX_MEMBERS: &str = r#"
local limit = string.format('(%.0f', server_ms() - tonumber(ARGV[1]) - tonumber(ARGV[2]))
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', limit)
for i = 1, #dead, 500 do
  local chunk = {unpack(dead, i, math.min(i + 499, #dead))}
  redis.call('ZREM', KEYS[1], unpack(chunk))
  redis.call('HDEL', KEYS[2], unpack(chunk))
end
return redis.call('ZRANGE', KEYS[1], '0', '-1')
"#;

/// KEYS: user zset, user times hash. ARGV: guard (ms), n, then members: the
/// first n are removed unconditionally (verified dead for good), the rest
/// only if they were added more than `guard` ago (their record is missing).
/// Returns how many were removed.
const LUA_INDEX_PRUNE: &str = r#"
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
"#;

/// A script from its helpers and body, in order.
fn lua(parts: &[&str]) -> Script {
    Script::new(&parts.concat())
}

pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| lua(&[LUA_TOO_OLD, LUA_CREATE]));
pub(crate) static SAVE: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_LT, LUA_READ, LUA_OWNED, LUA_SAVE]));
pub(crate) static TOUCH: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_LT, LUA_READ, LUA_EXPIRE_AT, LUA_TOUCH]));
pub(crate) static ROTATE: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_LT, LUA_READ, LUA_TOO_OLD, LUA_ROTATE]));
pub(crate) static DELETE_OWNED: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_LT, LUA_READ, LUA_OWNED, LUA_DELETE_OWNED]));
pub(crate) static INDEX_ADD: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_EXPIRE_AT, LUA_INDEX_ADD]));
pub(crate) static INDEX_MEMBERS: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_SERVER_MS, LUA_INDEX_MEMBERS]));
pub(crate) static INDEX_PRUNE: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_SERVER_MS, LUA_INDEX_PRUNE]));
