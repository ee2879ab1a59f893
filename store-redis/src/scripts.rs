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
//! hot paths (`SAVE`, `TOUCH`) convert no number to text; they and `ROTATE`
//! first try a fast path for the usual case that makes as few Lua strings as it can and
//! falls back to the full check for anything else. Each script is
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

/// `classify(h)`: an entry from its bytes `0..=last` as `GETRANGE` returned
/// them through `redis.pcall` (`last` at least 92, so that the header and
/// possibly the user id come back). Returns `false` (none), `'F'` (a
/// forwarder), `-2` (corrupt: a key of another type, an unknown kind, or a
/// session header that is not 'S', 20 digits, 3 x (sign and 19 digits),
/// digits around one 'u'|'a', '\n' at byte 93: one anchored match, the field
/// positions from its position captures) or `'S'` and the bytes. Other
/// errors are raised.
const LUA_CLASSIFY: &str = r#"
local function classify(h)
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

/// KEYS: entry. ARGV: now (fixed width), `'S'` and the expected version (20
/// digits), last byte to read (`92` + user length), owner (`''` without
/// user, else the stored form `'u'`, length (10 digits), `'\n'`, user), new
/// absolute deadline (fixed width), mode, PXAT, value. Mode: `'1'` the
/// user-index entry is written; `'0'` it is not; `'F'` it is not, and `now`
/// is at or after 0 and before the new absolute deadline (the client
/// compares; only then may the fast path below run).
///
/// Fast path, the usual save: the stored header starts with ARGV[2], stores
/// ARGV[5] as its absolute deadline and ARGV[4] as its owner (the anonymous
/// form `'a0000000000\n'` for `''`), each compared in place (`string.find`
/// plain at the position: no substring is made; the Lua of Redis 7.0.15
/// hashes every byte of each string it makes, about 12 instructions a
/// byte); the idle deadline is `'+'` and 19 digits, the last-seen time a
/// sign and 19 digits. Such a header is one `classify` accepts (every byte
/// it checks is checked here or equals the client's well-formed argument),
/// the absolute deadline is live and unchanged and the owner is the same,
/// so the full check below would answer as this does: `0` unless `now` is
/// before the idle deadline, else write. Anything else (an error, another
/// kind or shape, version, owner, deadline or sign) takes the full check,
/// whose answer is the reference (`tests` below compares both with the
/// script before the fast path).
const LUA_SAVE_FAST: &str = r#"
local h = redis.pcall('GETRANGE', KEYS[1], '0', ARGV[3])
if ARGV[6] == 'F' and not h.err then
  local find, o = string.find, ARGV[4]
  if o == '' then o = 'a0000000000\n' end
  if find(h, ARGV[2], 1, true) == 1 and find(h, ARGV[5], 42, true) == 42
      and find(h, o, 82, true) == 82 then
    local match = string.match
    local i, p = match(h, '^(%+%d+)()', 22)
    if p == 42 and match(h, '^[+-]%d+()', 62) == 82 then
      if ARGV[1] < i then
        redis.call('SET', KEYS[1], ARGV[8], 'PXAT', ARGV[7])
        return 1
      end
      return 0
    end
  end
end
"#;

/// The full check of `SAVE` (after `LUA_SAVE_FAST`, which read `h`).
const LUA_SAVE: &str = r#"
local kind
kind, h = classify(h)
if kind == -2 then return -2 end
if kind ~= 'S' or string.sub(h, 1, 21) ~= ARGV[2] then return 0 end
local x = string.sub(h, 42, 61)
if not (lt(ARGV[1], string.sub(h, 22, 41)) and lt(ARGV[1], x)) then return 0 end
if ARGV[4] ~= '' and ARGV[6] ~= '1' and (lt(x, ARGV[5]) or not owned(KEYS[1], h, ARGV[4])) then
  return -4
end
redis.call('SET', KEYS[1], ARGV[8], 'PXAT', ARGV[7])
return 1
"#;

/// KEYS: entry. ARGV: now, idle deadline, last seen (fixed width), PXAT for
/// the idle deadline, TTL slack (ms), mode: `'F'` when the three instants
/// are at or after 0 (the fast path below may run), else `'0'`. Patches the
/// two header fields in place; the data is not rewritten. The idle deadline
/// becomes `max(stored, min(idle, absolute))`, last seen `max(stored, last
/// seen)`.
///
/// Fast path, the usual touch: a header whose three instants are `'+'` and
/// 19 digits (one anchored match with captures; what it accepts with those
/// lengths, `classify` accepts too), `now` before both deadlines and the
/// new idle deadline not past the absolute one. With every instant of one
/// sign, `lt` is plain text order, so the answer and the writes are the full
/// check's, in its order. (Not one `SETRANGE` for both fields: when the
/// `PEXPIREAT` lies in the server's past it deletes the key, and the full
/// check's second `SETRANGE` then creates one.) Anything else takes the
/// full check.
const LUA_TOUCH_FAST: &str = r#"
local h = redis.pcall('GETRANGE', KEYS[1], '0', '92')
if ARGV[6] == 'F' and not h.err then
  local a, i, x, l, e = string.match(h, '^S%d+()(%+%d+)(%+%d+)(%+%d+)[ua]%d+\n()')
  if a == 22 and e == 94 and #i == 20 and #x == 20 and #l == 20 then
    local now, n = ARGV[1], ARGV[2]
    if not (now < i and now < x) then return 0 end
    if not (x < n) then
      if i < n then
        redis.call('SETRANGE', KEYS[1], '21', n)
        redis.call('PEXPIREAT', KEYS[1], ARGV[4])
      end
      if l < ARGV[3] then
        redis.call('SETRANGE', KEYS[1], '61', ARGV[3])
      end
      return 1
    end
  end
end
"#;

/// The full check of `TOUCH` (after `LUA_TOUCH_FAST`, which read `h`).
const LUA_TOUCH: &str = r#"
local kind
kind, h = classify(h)
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

/// KEYS: from, to (one slot). ARGV: now (fixed width), `'S'` and the
/// expected version (20 digits), index time (`''` without user), max index
/// age (ms), PXAT of `to`, value of `to`, forwarder value (`''` without
/// grace), PXAT of the forwarder, mode: `'F'` when `now` is at or after 0
/// (the fast path below may run), else `'0'`.
///
/// Fast path: `'S'` and the version compared in place, and a header whose
/// two deadlines are `'+'` and 19 digits, taken with one anchored match
/// (what it accepts, `classify` accepts too); with `now` of the same sign
/// `lt` is plain text order, and from there on the steps are the full
/// check's. Anything else takes the full check.
const LUA_ROTATE_FAST: &str = r#"
local h = redis.pcall('GETRANGE', KEYS[1], '0', '92')
if ARGV[9] == 'F' and not h.err and string.find(h, ARGV[2], 1, true) == 1 then
  local i, x, c, e = string.match(h, '^(%+%d+)(%+%d+)[+-]%d+()[ua]%d+\n()', 22)
  if c == 82 and e == 94 and #i == 20 and #x == 20 then
    if not (ARGV[1] < i and ARGV[1] < x) then return 0 end
    if ARGV[3] ~= '' then
      local t = redis.call('TIME')
      if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
          > tonumber(ARGV[4]) then
        if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
        return -3
      end
    end
    if not redis.call('SET', KEYS[2], ARGV[6], 'NX', 'PXAT', ARGV[5]) then return -1 end
    if ARGV[7] ~= '' then
      redis.call('SET', KEYS[1], ARGV[7], 'PXAT', ARGV[8])
    else
      redis.call('DEL', KEYS[1])
    end
    return 1
  end
end
"#;

/// The full check of `ROTATE` (after `LUA_ROTATE_FAST`, which read `h`).
const LUA_ROTATE: &str = r#"
local kind
kind, h = classify(h)
if kind == -2 then return -2 end
if kind ~= 'S' or string.sub(h, 1, 21) ~= ARGV[2]
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
local kind, h = classify(redis.pcall('GETRANGE', KEYS[1], '0', ARGV[3]))
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
    LazyLock::new(|| lua(&[LUA_SAVE_FAST, LUA_LT, LUA_CLASSIFY, LUA_OWNED, LUA_SAVE]));
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    lua(&[
        LUA_TOUCH_FAST,
        LUA_LT,
        LUA_CLASSIFY,
        LUA_EXPIRE_AT,
        LUA_TOUCH,
    ])
});
pub(crate) static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    lua(&[
        LUA_ROTATE_FAST,
        LUA_LT,
        LUA_CLASSIFY,
        LUA_TOO_OLD,
        LUA_ROTATE,
    ])
});
pub(crate) static DELETE_OWNED: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_LT, LUA_CLASSIFY, LUA_OWNED, LUA_DELETE_OWNED]));
pub(crate) static INDEX_ADD: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_EXPIRE_AT, LUA_INDEX_ADD]));
pub(crate) static INDEX_MEMBERS: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_SERVER_MS, LUA_INDEX_MEMBERS]));
pub(crate) static INDEX_PRUNE: LazyLock<Script> =
    LazyLock::new(|| lua(&[LUA_SERVER_MS, LUA_INDEX_PRUNE]));

#[cfg(test)]
mod tests {
    //! `SAVE`, `TOUCH` and `ROTATE` against the scripts they replaced (frozen in
    //! `tests/data`), on the server of `SESSION_STORE_REDIS_URL`: for random
    //! stored entries (missing, forwarders, keys of another type, sessions of
    //! every sign, deadline, version and owner relation, and corrupt ones)
    //! and random arguments, the same reply, stored value and expiry time,
    //! with the mode the client sends and with mode `'0'` (full check only).

    use std::collections::BTreeMap;

    use super::*;
    use crate::schema;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use redis::aio::MultiplexedConnection;
    use session_store_core::Timestamp;

    /// `SAVE` before its fast path (its `lt`, `read`, `owned` and body, as
    /// they were), with its argument layout: the version without `'S'`,
    /// `'1'`/`'0'` for the index.
    const SAVE_BEFORE: &str = include_str!("../tests/data/save_before.lua");
    /// `TOUCH` before its fast path, without the mode argument.
    const TOUCH_BEFORE: &str = include_str!("../tests/data/touch_before.lua");
    /// `ROTATE` before its fast path: the version without `'S'`, no mode.
    const ROTATE_BEFORE: &str = include_str!("../tests/data/rotate_before.lua");

    const BASE: i64 = 1_800_000_000_000;

    fn random_instant(rng: &mut StdRng) -> i64 {
        match rng.random_range(0..12) {
            0 => 0,
            1 => -1,
            2 => 1,
            3 => i64::MIN,
            4 => i64::MAX,
            5 => -BASE,
            6 => BASE - 1,
            7 => BASE + 1,
            8 => BASE + 1000,
            _ => BASE,
        }
    }

    /// Instants next to `now` (60 %) or anywhere.
    fn instant_near(rng: &mut StdRng, now: i64) -> i64 {
        if rng.random_bool(0.6) {
            now.saturating_add(rng.random_range(-1..3) * 30_000 + rng.random_range(-1..2))
        } else {
            random_instant(rng)
        }
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    /// A stored instant; `0` sometimes as `-0000000000000000000`.
    fn stored_instant(rng: &mut StdRng, ms: i64) -> Vec<u8> {
        if ms == 0 && rng.random_bool(0.5) {
            return b"-0000000000000000000".to_vec();
        }
        schema::fixed_time(t(ms)).to_vec()
    }

    const USERS: [&str; 5] = ["alice", "bob", "", "alice2", "al{i}\n%d+"];

    fn random_user(rng: &mut StdRng) -> Option<&'static str> {
        rng.random_bool(0.7)
            .then(|| USERS[rng.random_range(0..USERS.len())])
    }

    /// What a case starts from.
    struct Stored {
        value: Option<Vec<u8>>,
        wrong_type: bool,
        version: u64,
        user: Option<&'static str>,
        idle: i64,
        absolute: i64,
        last: i64,
    }

    /// A stored entry: mostly a session (possibly damaged), sometimes
    /// missing, a forwarder or a key of another type.
    fn stored(rng: &mut StdRng, now: i64) -> Stored {
        let mut s = Stored {
            value: None,
            wrong_type: rng.random_range(0..30) == 0,
            version: rng.random_range(0..3),
            user: random_user(rng),
            idle: instant_near(rng, now),
            absolute: instant_near(rng, now),
            last: instant_near(rng, now),
        };
        match rng.random_range(0..20) {
            0 => return s,
            1 => {
                let mut f = b"F".to_vec();
                f.extend_from_slice(&schema::fixed_time(t(now.saturating_add(5))));
                f.push(b'\n');
                f.extend_from_slice(&[7; 40]);
                s.value = Some(f);
                return s;
            }
            _ => {}
        }
        let mut v = vec![b'S'];
        v.extend_from_slice(&schema::fixed_version(s.version));
        v.extend_from_slice(&stored_instant(rng, s.idle));
        v.extend_from_slice(&stored_instant(rng, s.absolute));
        v.extend_from_slice(&stored_instant(rng, s.last));
        let owner = schema::owner(s.user);
        if owner.is_empty() {
            v.extend_from_slice(b"a0000000000\n");
        } else {
            v.extend_from_slice(&owner);
        }
        let header = v.len();
        v.extend_from_slice(b"\0\0\0\0\0\0\0\x07\x01 body bytes");
        match rng.random_range(0..10) {
            // One byte of the header and user id replaced.
            0..=2 => {
                let at = rng.random_range(0..header);
                let set = b"0123456789+-uaSF\nx \0";
                v[at] = set[rng.random_range(0..set.len())];
            }
            // Cut anywhere.
            3 => v.truncate(rng.random_range(0..v.len())),
            // The user flag moved into last seen, a digit in its place:
            // still the shape `classify` accepts.
            5 => {
                let at = rng.random_range(63..81);
                v[81] = v[at];
                v[at] = if s.user.is_some() { b'u' } else { b'a' };
            }
            // A longer user id announced, the value cut after the user's
            // bytes (the case `owned` accepts).
            4 if s.user.is_some() => {
                let announced = format!("{:010}", header - 93 + rng.random_range(1..4));
                v[82..92].copy_from_slice(announced.as_bytes());
                v.truncate(header);
            }
            _ => {}
        }
        s.value = Some(v);
        s
    }

    /// Runs one case: `calls` (the script before on key 0, the new one with
    /// the client's mode on key 1, with mode `'0'` on key 2), each key
    /// holding `stored` with the same expiry first; asserts the same
    /// replies, values and expiry times and returns the reply.
    async fn compare(
        conn: &mut MultiplexedConnection,
        keys: &[String; 3],
        stored: &Stored,
        expire: i64,
        calls: [redis::Cmd; 3],
        what: &str,
    ) -> i64 {
        let mut pipe = redis::pipe();
        pipe.del(keys).ignore();
        for k in keys {
            match (&stored.value, stored.wrong_type) {
                (_, true) => pipe.rpush(k, "x").ignore(),
                (Some(v), false) => pipe.set(k, v).ignore(),
                (None, false) => &mut pipe,
            };
            pipe.cmd("PEXPIREAT").arg(k).arg(expire).ignore();
        }
        for call in calls {
            pipe.add_command(call);
        }
        for k in keys {
            pipe.cmd("DUMP").arg(k).cmd("PEXPIRETIME").arg(k);
        }
        #[allow(clippy::type_complexity)]
        let (r_old, r_new, r_full, a, ta, b, tb, c, tc): (
            i64,
            i64,
            i64,
            Option<Vec<u8>>,
            i64,
            Option<Vec<u8>>,
            i64,
            Option<Vec<u8>>,
            i64,
        ) = pipe.query_async(conn).await.expect("case pipeline");
        let what = format!(
            "{what}, stored {:?} (wrong type {})",
            stored.value.as_deref().map(String::from_utf8_lossy),
            stored.wrong_type
        );
        assert_eq!(r_new, r_old, "reply, {what}");
        assert_eq!(r_full, r_old, "reply of the full check, {what}");
        assert_eq!((&b, tb), (&a, ta), "stored value and expiry, {what}");
        assert_eq!((&c, tc), (&a, ta), "full check: value and expiry, {what}");
        r_old
    }

    /// A connection to the test server and its clock (ms), or `None` when
    /// the Redis tests are switched off.
    async fn connect() -> Option<(MultiplexedConnection, i64)> {
        if std::env::var("SESSION_STORE_SKIP_REDIS").as_deref() == Ok("1") {
            println!("SKIP: Redis script equivalence tests (SESSION_STORE_SKIP_REDIS=1)");
            return None;
        }
        let url = std::env::var("SESSION_STORE_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let client = redis::Client::open(url).expect("SESSION_STORE_REDIS_URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis for the script tests");
        let (s, us): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
        for script in [&*SAVE, &*TOUCH, &*ROTATE] {
            script
                .prepare_invoke()
                .load_async(&mut conn)
                .await
                .expect("SCRIPT LOAD");
        }
        Some((conn, s * 1000 + us / 1000))
    }

    fn test_keys(name: &str) -> [String; 3] {
        let tag = format!("{{sstest:{name}:{:016x}}}", rand::random::<u64>());
        [format!("{tag}:a"), format!("{tag}:b"), format!("{tag}:c")]
    }

    fn eval(src: &str, key: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(src).arg(1).arg(key);
        cmd
    }

    /// Asserts that each (reply, mode) came up at least 20 times.
    fn assert_covered(counts: &BTreeMap<(i64, &str), usize>, wanted: &[(i64, &str)]) {
        for want in wanted {
            assert!(
                counts.get(want).copied().unwrap_or(0) >= 20,
                "too few cases answered {want:?} (reply, mode): {counts:?}"
            );
        }
    }

    #[tokio::test]
    async fn save_answers_as_the_script_it_replaced() {
        let Some((mut conn, server_ms)) = connect().await else {
            return;
        };
        let keys = test_keys("save");
        let mut rng = StdRng::seed_from_u64(17);
        let mut counts = BTreeMap::new();
        for case in 0..20_000 {
            let now = if rng.random_bool(0.8) {
                BASE
            } else {
                random_instant(&mut rng)
            };
            let stored = stored(&mut rng, now);
            // Mostly the stored version, user and absolute deadline, as a
            // save sends them.
            let version = if rng.random_bool(0.7) {
                stored.version
            } else {
                rng.random_range(0..3)
            };
            let user = if rng.random_bool(0.7) {
                stored.user
            } else {
                random_user(&mut rng)
            };
            let absolute = if rng.random_bool(0.6) {
                stored.absolute
            } else {
                instant_near(&mut rng, now)
            };
            let index_written = rng.random_bool(0.2);
            let pxat = (server_ms + 600_000).to_string();
            let value = format!("new value {case}");
            let args = |head: &[u8], mode: &str, cmd: &mut redis::Cmd| {
                cmd.arg(&schema::fixed_time(t(now))[..])
                    .arg(head)
                    .arg(schema::header_end(user))
                    .arg(schema::owner(user))
                    .arg(&schema::fixed_time(t(absolute))[..])
                    .arg(mode)
                    .arg(&pxat)
                    .arg(&value);
            };
            let before_mode = if index_written { "1" } else { "0" };
            let mode = schema::save_mode(t(now), t(absolute), index_written);
            let mut old = eval(SAVE_BEFORE, &keys[0]);
            args(&schema::fixed_version(version), before_mode, &mut old);
            let mut new = evalsha(&keys[1]);
            args(&schema::expected_head(version), mode, &mut new);
            let mut full = evalsha(&keys[2]);
            args(&schema::expected_head(version), before_mode, &mut full);
            let what = format!(
                "case {case}: now {now}, version {version}, user {user:?}, \
                 absolute {absolute}, mode {mode}"
            );
            let reply = compare(
                &mut conn,
                &keys,
                &stored,
                server_ms + 300_000,
                [old, new, full],
                &what,
            )
            .await;
            *counts.entry((reply, mode)).or_default() += 1;
        }
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_covered(
            &counts,
            &[
                (1, "F"),
                (0, "F"),
                (-2, "F"),
                (-4, "F"),
                (1, "1"),
                (1, "0"),
                (-4, "0"),
            ],
        );

        fn evalsha(key: &str) -> redis::Cmd {
            crate::core::evalsha(&SAVE, &[key])
        }
    }

    #[tokio::test]
    async fn touch_answers_as_the_script_it_replaced() {
        let Some((mut conn, server_ms)) = connect().await else {
            return;
        };
        let keys = test_keys("touch");
        let mut rng = StdRng::seed_from_u64(18);
        let mut counts = BTreeMap::new();
        let slack = 60_000;
        for case in 0..20_000 {
            let now = if rng.random_bool(0.8) {
                BASE
            } else {
                random_instant(&mut rng)
            };
            let stored = stored(&mut rng, now);
            let idle = instant_near(&mut rng, now);
            let last = instant_near(&mut rng, now);
            let mode = schema::touch_mode(t(now), t(idle), t(last));
            // Times far off are clamped as the client does; the stored
            // expiry is the server's now plus 5 minutes, the new one later
            // (so that no key expires during the case).
            let pxat = schema::ttl_at(t(idle), std::time::Duration::from_millis(slack));
            let args = |mode: Option<&str>, cmd: &mut redis::Cmd| {
                cmd.arg(&schema::fixed_time(t(now))[..])
                    .arg(&schema::fixed_time(t(idle))[..])
                    .arg(&schema::fixed_time(t(last))[..])
                    .arg(&pxat)
                    .arg(slack);
                if let Some(mode) = mode {
                    cmd.arg(mode);
                }
            };
            let mut old = eval(TOUCH_BEFORE, &keys[0]);
            args(None, &mut old);
            let mut new = crate::core::evalsha(&TOUCH, &[&keys[1]]);
            args(Some(mode), &mut new);
            let mut full = crate::core::evalsha(&TOUCH, &[&keys[2]]);
            args(Some("0"), &mut full);
            let what = format!("case {case}: now {now}, idle {idle}, last {last}, mode {mode}");
            let reply = compare(
                &mut conn,
                &keys,
                &stored,
                server_ms + 300_000,
                [old, new, full],
                &what,
            )
            .await;
            *counts.entry((reply, mode)).or_default() += 1;
        }
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_covered(
            &counts,
            &[(1, "F"), (0, "F"), (-2, "F"), (1, "0"), (0, "0")],
        );
    }

    #[tokio::test]
    async fn rotate_answers_as_the_script_it_replaced() {
        let Some((mut conn, server_ms)) = connect().await else {
            return;
        };
        let tag = format!("{{sstest:rotate:{:016x}}}", rand::random::<u64>());
        // (from, to) for the script before, the new one with the client's
        // mode, the new one with mode '0'.
        let keys: Vec<(String, String)> = (0..3)
            .map(|v| (format!("{tag}:f{v}"), format!("{tag}:t{v}")))
            .collect();
        let mut rng = StdRng::seed_from_u64(19);
        let mut counts = BTreeMap::new();
        let max_age = 60_000;
        let expire = server_ms + 300_000;
        let later = (server_ms + 600_000).to_string();
        for case in 0..20_000 {
            let now = if rng.random_bool(0.8) {
                BASE
            } else {
                random_instant(&mut rng)
            };
            let from = stored(&mut rng, now);
            // The successor: mostly missing, else a string or a list.
            let to_state = rng.random_range(0..20);
            let version = if rng.random_bool(0.7) {
                from.version
            } else {
                rng.random_range(0..3)
            };
            // No index entry (anonymous), a fresh one, or one too old.
            let stamp = match rng.random_range(0..4) {
                0 | 1 => String::new(),
                2 => (server_ms - rng.random_range(0..10_000)).to_string(),
                _ => (server_ms - 200_000).to_string(),
            };
            let (forwarder, forwarder_at) = if rng.random_bool(0.5) {
                (format!("F forwarder {case}"), later.clone())
            } else {
                (String::new(), String::new())
            };
            let value = format!("rotated {case}");
            let mode = schema::rotate_mode(t(now));

            let mut pipe = redis::pipe();
            for (f, to) in &keys {
                pipe.del(f).ignore().del(to).ignore();
                match (&from.value, from.wrong_type) {
                    (_, true) => pipe.rpush(f, "x").ignore(),
                    (Some(v), false) => pipe.set(f, v).ignore(),
                    (None, false) => &mut pipe,
                };
                match to_state {
                    0 => pipe.set(to, "taken").ignore(),
                    1 => pipe.rpush(to, "x").ignore(),
                    _ => &mut pipe,
                };
                pipe.cmd("PEXPIREAT").arg(f).arg(expire).ignore();
                pipe.cmd("PEXPIREAT").arg(to).arg(expire).ignore();
            }
            for (v, (f, to)) in keys.iter().enumerate() {
                let mut cmd = if v == 0 {
                    let mut cmd = redis::cmd("EVAL");
                    cmd.arg(ROTATE_BEFORE).arg(2).arg(f).arg(to);
                    cmd
                } else {
                    crate::core::evalsha(&ROTATE, &[f, to])
                };
                cmd.arg(&schema::fixed_time(t(now))[..]);
                if v == 0 {
                    cmd.arg(&schema::fixed_version(version)[..]);
                } else {
                    cmd.arg(&schema::expected_head(version)[..]);
                }
                cmd.arg(&stamp)
                    .arg(max_age)
                    .arg(&later)
                    .arg(&value)
                    .arg(&forwarder)
                    .arg(&forwarder_at);
                match v {
                    1 => cmd.arg(mode),
                    2 => cmd.arg("0"),
                    _ => &mut cmd,
                };
                pipe.add_command(cmd);
            }
            for (f, to) in &keys {
                pipe.cmd("DUMP").arg(f).cmd("PEXPIRETIME").arg(f);
                pipe.cmd("DUMP").arg(to).cmd("PEXPIRETIME").arg(to);
            }
            let got: Vec<redis::Value> = pipe.query_async(&mut conn).await.expect("case pipeline");
            let what = format!(
                "case {case}: now {now}, version {version}, stamp {stamp:?}, \
                 forwarder {forwarder:?}, successor state {to_state}, mode {mode}, stored {:?} \
                 (wrong type {})",
                from.value.as_deref().map(String::from_utf8_lossy),
                from.wrong_type
            );
            assert_eq!(got[1], got[0], "reply, {what}");
            assert_eq!(got[2], got[0], "reply of the full check, {what}");
            assert_eq!(got[7..11], got[3..7], "keys after, {what}");
            assert_eq!(got[11..15], got[3..7], "full check: keys after, {what}");
            let reply = match got[0] {
                redis::Value::Int(n) => n,
                ref other => panic!("reply {other:?}, {what}"),
            };
            *counts.entry((reply, mode)).or_default() += 1;
        }
        let mut pipe = redis::pipe();
        for (f, to) in &keys {
            pipe.del(f).ignore().del(to).ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
        assert_covered(
            &counts,
            &[
                (1, "F"),
                (0, "F"),
                (-1, "F"),
                (-2, "F"),
                (-3, "F"),
                (1, "0"),
                (0, "0"),
            ],
        );
    }
}
