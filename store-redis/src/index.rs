//! The per-user index of sessions (a superset hint verified against the
//! records, see the crate docs) and the `SCAN`-based helpers that walk every
//! key of a prefix.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use redis::Value;

use session_store_core::{Damage, Error, Lookup, Result, SessionSummary, StorageKey, Timestamp};

use crate::core::{duration_ms, eval, evalsha, Conn, Core};
use crate::reply::{self, Coded, Reply};
use crate::schema::{self, Keys};
use crate::scripts;

/// How many per-key commands run at once for one listing or bulk delete.
pub(crate) const FAN_OUT: usize = 64;

/// A user-index member and the storage key it names.
type Member = (Vec<u8>, StorageKey);

/// The user indexes of one prefix.
#[derive(Clone)]
pub(crate) struct UserIndex {
    core: Core,
    keys: Keys,
    ttl_slack: Duration,
    guard: Duration,
}

impl UserIndex {
    pub(crate) fn new(core: Core, keys: Keys, ttl_slack: Duration, guard: Duration) -> Self {
        UserIndex {
            core,
            keys,
            ttl_slack,
            guard,
        }
    }

    /// Adds `key` to `user_id`'s index with score `absolute`; returns the
    /// server time stamp of the entry.
    pub(crate) async fn add(
        &self,
        user_id: &str,
        key: &StorageKey,
        absolute: Timestamp,
    ) -> Result<String> {
        let (zset, times) = self.keys.user(user_id);
        let mut cmd = evalsha(&scripts::INDEX_ADD, &[&zset, &times]);
        cmd.arg(schema::member(key))
            .arg(schema::ts(absolute))
            .arg(duration_ms(self.ttl_slack))
            .arg(schema::ttl_at(absolute, self.ttl_slack));
        reply::stamp(self.core.eval(&scripts::INDEX_ADD, &cmd).await?)
    }

    /// The oldest an index entry may be when its record is written (half the
    /// guard), in ms: older, the write is refused and retried.
    pub(crate) fn max_age(&self) -> String {
        duration_ms(self.guard / 2)
    }

    /// The live sessions of `user_id` at `now`, oldest first. Prunes the
    /// entries found dead on the way.
    pub(crate) async fn list(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        let members = self.members(user_id).await?;
        let (valid, mut dead) = parse_members(members);
        let mut missing = Vec::new();
        let results = self
            .for_members(valid, |conn, entry| async move {
                let mut conn = conn;
                // A key of another type (`WRONGTYPE`, an `Error::Codec`) is
                // that entry's damage, not the listing's failure.
                match redis::cmd("GET")
                    .arg(&entry)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
                    .map_err(crate::error::map_err)
                {
                    Ok(bytes) => Ok(Ok(bytes)),
                    Err(e @ Error::Codec { .. }) => Ok(Err(e)),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let mut out = Vec::new();
        for (m, key, bytes) in results {
            match bytes.and_then(|b| b.map(|b| schema::decode(&b)).transpose()) {
                Ok(None) => missing.push(m),
                Ok(Some(Lookup::Forwarded(_))) => dead.push(m),
                Ok(Some(Lookup::Session(r))) => {
                    if let Some(s) = schema::live_summary(key, user_id, &r, now) {
                        out.push(s);
                    }
                }
                // Reported, not fatal: the manager skips the entry and
                // removes or quarantines it (one damaged key never blocks
                // the user's listings or logins).
                Err(_) => out.push(SessionSummary::damaged(
                    key,
                    user_id.to_owned(),
                    Damage::Undecodable,
                )),
            }
        }
        self.prune(user_id, &dead, &missing).await?;
        out.sort_by_key(|s| (s.created_at, s.key));
        Ok(out)
    }

    /// Deletes every stored session of `user_id` but `except`; returns how
    /// many were live at `now`. Prunes the entries found dead on the way.
    pub(crate) async fn delete_sessions(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        let except = except.map(schema::member);
        let owner = schema::owner(Some(user_id));
        let header_end = schema::header_end(Some(user_id));
        let members: Vec<Vec<u8>> = self
            .members(user_id)
            .await?
            .into_iter()
            .filter(|m| except.as_deref().map(str::as_bytes) != Some(m.as_slice()))
            .collect();
        let (valid, mut dead) = parse_members(members);
        let mut missing = Vec::new();
        let results = self
            .for_members(valid, |mut conn, entry| {
                let (owner, header_end) = (&owner, &header_end);
                async move {
                    let mut cmd = evalsha(&scripts::DELETE_OWNED, &[&entry]);
                    cmd.arg(owner.as_slice())
                        .arg(&schema::fixed_time(now)[..])
                        .arg(header_end);
                    let v = eval(&mut conn, &scripts::DELETE_OWNED, &cmd).await?;
                    reply::decode(Coded::DeleteOwned, v)
                }
            })
            .await?;
        let mut live = 0u64;
        let mut corrupt = Vec::new();
        for (m, key, reply) in results {
            match reply {
                Reply::DeletedLive => {
                    live += 1;
                    dead.push(m);
                }
                Reply::DeletedExpired | Reply::Forwarder => dead.push(m),
                Reply::Missing => missing.push(m),
                Reply::OtherOwner => {}
                Reply::Corrupt => corrupt.push((m, key)),
                other => return Err(reply::out_of_place(Coded::DeleteOwned, other)),
            }
        }
        // Revocation errs on the side of removal: a damaged entry indexed
        // under this user (undecodable, or a key of another type) can never
        // load, so it goes, and the revocation of the others succeeds.
        for (m, key) in corrupt {
            let mut conn = self.core.conn();
            redis::cmd("DEL")
                .arg(self.keys.entry(&key))
                .query_async::<i64>(&mut conn)
                .await
                .map_err(crate::error::map_err)?;
            dead.push(m);
        }
        self.prune(user_id, &dead, &missing).await?;
        Ok(live)
    }

    /// The index entries of `user_id` (those whose records Redis has
    /// certainly expired are dropped on the way).
    async fn members(&self, user_id: &str) -> Result<Vec<Vec<u8>>> {
        let (zset, times) = self.keys.user(user_id);
        let mut cmd = evalsha(&scripts::INDEX_MEMBERS, &[&zset, &times]);
        cmd.arg(duration_ms(self.ttl_slack))
            .arg(duration_ms(self.guard));
        reply::bulk_list(self.core.eval(&scripts::INDEX_MEMBERS, &cmd).await?)
    }

    /// Removes `dead` (verified gone for good) and `missing` (no record;
    /// removed only past the index guard) from `user_id`'s index.
    async fn prune(&self, user_id: &str, dead: &[Vec<u8>], missing: &[Vec<u8>]) -> Result<()> {
        if dead.is_empty() && missing.is_empty() {
            return Ok(());
        }
        let (zset, times) = self.keys.user(user_id);
        let mut cmd = evalsha(&scripts::INDEX_PRUNE, &[&zset, &times]);
        cmd.arg(duration_ms(self.guard)).arg(dead.len());
        for m in dead.iter().chain(missing) {
            cmd.arg(m.as_slice());
        }
        self.core.eval(&scripts::INDEX_PRUNE, &cmd).await.map(drop)
    }

    /// Runs `f(connection, entry key name)` for every member concurrently (at
    /// most [`FAN_OUT`] at once).
    async fn for_members<T, F, Fut>(
        &self,
        members: Vec<Member>,
        f: F,
    ) -> Result<Vec<(Vec<u8>, StorageKey, T)>>
    where
        F: Fn(Conn, String) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        stream::iter(members)
            .map(|(m, k)| {
                let fut = f(self.core.conn(), self.keys.entry(&k));
                async move { fut.await.map(|t| (m, k, t)) }
            })
            .buffer_unordered(FAN_OUT)
            .try_collect()
            .await
    }
}

/// Splits index members into parseable ones and garbage.
fn parse_members(members: Vec<Vec<u8>>) -> (Vec<Member>, Vec<Vec<u8>>) {
    let mut valid = Vec::with_capacity(members.len());
    let mut garbage = Vec::new();
    for m in members {
        match schema::parse_member(&m) {
            Ok(k) => valid.push((m, k)),
            Err(_) => garbage.push(m),
        }
    }
    (valid, garbage)
}

/// Every key of `keys`' prefix (`SCAN` on each master in cluster mode), each
/// operation step bounded by the operation timeout.
pub(crate) async fn scan_keys(core: &Core, keys: &Keys) -> Result<Vec<Vec<u8>>> {
    let pattern = keys.scan_pattern();
    let mut found = BTreeSet::new();
    match core.cluster() {
        None => scan_node(core, None, &pattern, &mut found).await?,
        Some(cluster) => {
            for node in masters(core, cluster).await? {
                scan_node(core, Some(node), &pattern, &mut found).await?;
            }
        }
    }
    Ok(found.into_iter().filter(|k| keys.owns(k)).collect())
}

/// SCANs one server (`node` in cluster mode) for `pattern` into `found`.
async fn scan_node(
    core: &Core,
    node: Option<(String, u16)>,
    pattern: &str,
    found: &mut BTreeSet<Vec<u8>>,
) -> Result<()> {
    let mut cursor: u64 = 0;
    loop {
        let cmd = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .clone();
        let reply = core
            .bounded(async {
                match (core.cluster(), &node) {
                    (Some(mut c), Some((host, port))) => {
                        Core::query_node(&mut c, cmd, host, *port).await
                    }
                    _ => core.query::<Value>(&cmd).await,
                }
            })
            .await?;
        let (next, names) = reply::scan(reply)?;
        found.extend(names);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The master nodes of the cluster, from `CLUSTER SLOTS`, sorted.
pub(crate) async fn masters(
    core: &Core,
    mut cluster: redis::cluster_async::ClusterConnection,
) -> Result<Vec<(String, u16)>> {
    let cmd = redis::cmd("CLUSTER").arg("SLOTS").clone();
    let reply = core
        .bounded(Core::query_any_node(&mut cluster, cmd))
        .await?;
    reply::cluster_masters(reply)
}

/// Every raw byte string stored under `keys`' prefix: each key name, then
/// its contents (see [`RedisStore::dump_raw`](crate::RedisStore::dump_raw)).
pub(crate) async fn dump_raw(core: &Core, keys: &Keys) -> Result<Vec<Vec<u8>>> {
    let names = scan_keys(core, keys).await?;
    let mut out = Vec::new();
    for name in names {
        let value = core
            .bounded(async {
                let ty: String = core.query(redis::cmd("TYPE").arg(&name)).await?;
                let cmd = match ty.as_str() {
                    "hash" => redis::cmd("HGETALL").arg(&name).clone(),
                    "zset" => redis::cmd("ZRANGE")
                        .arg(&name)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .clone(),
                    "string" => redis::cmd("GET").arg(&name).clone(),
                    "none" => return Ok(Value::Nil),
                    other => {
                        return Err(Error::codec(format!(
                            "unexpected Redis type {other} under the prefix"
                        )))
                    }
                };
                core.query::<Value>(&cmd).await
            })
            .await?;
        out.push(name);
        reply::flatten(value, &mut out);
    }
    Ok(out)
}
