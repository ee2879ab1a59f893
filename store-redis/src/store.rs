//! [`RedisStore`]: the [`SessionBackend`] implementation. Each method builds
//! its keys and arguments, runs one command or script (see [`crate::core`]),
//! decodes the reply (see [`crate::reply`]) and names itself in any error.

use futures::stream::{self, StreamExt, TryStreamExt};

use session_store_core::{
    async_trait, Capabilities, Error, Lookup, Result, Rotation, ScanCursor, ScanPage,
    SessionBackend, SessionRecord, SessionSummary, StorageKey, Timestamp,
};

use crate::core::{duration_ms, evalsha, Core};
use crate::error::BACKEND;
use crate::index::{self, UserIndex, FAN_OUT};
use crate::reply::{self, Coded, Reply};
use crate::schema::{self, Keys, AFFINITY_BITS};
use crate::scripts;

/// Attempts when an index entry went stale between writing it and the record.
const INDEX_ATTEMPTS: usize = 3;

/// A session store on Redis or Redis Cluster, built by
/// [`RedisConfig::build`](crate::RedisConfig::build).
///
/// Cheap to clone (the connection is shared and multiplexed). See the crate
/// docs for the data layout, the guarantees and the trade-offs.
#[derive(Clone)]
pub struct RedisStore {
    core: Core,
    keys: Keys,
    index: UserIndex,
    prefix: String,
    cluster: bool,
    endpoint: String,
    ttl_slack: std::time::Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on an established connection (see [`RedisConfig::build`](crate::RedisConfig::build)).
    pub(crate) fn new(core: Core, config: &crate::RedisConfig) -> Self {
        let keys = Keys::new(config.prefix());
        RedisStore {
            index: UserIndex::new(
                core.clone(),
                keys.clone(),
                config.ttl_slack(),
                config.index_guard(),
            ),
            core,
            keys,
            prefix: config.prefix().to_owned(),
            cluster: config.is_cluster(),
            endpoint: config.endpoint(),
            ttl_slack: config.ttl_slack(),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Where this store connects, with any password redacted: the server URL,
    /// or the cluster seed nodes joined by commas. Every
    /// [`Error::Backend`] of the store names it.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The Redis key under which the entry for `key` is stored
    /// (`{<prefix>:<first byte hex>}:s:<key hex>`), for operations and tests.
    pub fn entry_key_name(&self, key: &StorageKey) -> String {
        self.keys.entry(key)
    }

    /// The Redis keys of `user_id`'s index: the sorted set and the hash of
    /// insertion times.
    pub fn user_index_key_names(&self, user_id: &str) -> (String, String) {
        self.keys.user(user_id)
    }

    /// Sends `PING`.
    ///
    /// # Errors
    /// A retryable [`Error::Backend`] (operation `"ping"`) if Redis does not
    /// answer in time.
    pub async fn ping(&self) -> Result<()> {
        self.core.ping().await.map_err(|e| self.context(e, "ping"))
    }

    /// Every raw byte string stored under this prefix: each key name, then
    /// every field and value (hashes), member and score (sorted sets) or
    /// value (strings). For at-rest checks and debugging; it SCANs, so keep
    /// it off request paths.
    ///
    /// # Errors
    /// [`Error::Backend`] (operation `"dump_raw"`) on a Redis failure.
    pub async fn dump_raw(&self) -> Result<Vec<Vec<u8>>> {
        index::dump_raw(&self.core, &self.keys)
            .await
            .map_err(|e| self.context(e, "dump_raw"))
    }

    /// Test support for the conformance suite's corruption checks: writes
    /// under `key` a value this store never writes, keeping the key's TTL: a
    /// string that is not an entry, or with `foreign` a hash (a key of
    /// another Redis type). Returns whether an entry changed.
    ///
    /// # Errors
    /// [`Error::Backend`] on a Redis failure.
    #[doc(hidden)]
    pub async fn damage_raw(&self, key: &StorageKey, foreign: bool) -> Result<bool> {
        const DAMAGE: &str = r#"
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'foreign', 'bytes')
else
  redis.call('SET', KEYS[1], 'Snot an entry')
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"#;
        let mut conn = self.core.conn();
        let changed: i64 = redis::cmd("EVAL")
            .arg(DAMAGE)
            .arg(1)
            .arg(self.keys.entry(key))
            .arg(if foreign { "1" } else { "0" })
            .query_async(&mut conn)
            .await
            .map_err(crate::error::map_err)
            .map_err(|e| self.context(e, "damage_raw"))?;
        Ok(changed == 1)
    }

    /// Names this backend, `operation` and the endpoint in a backend error.
    fn context(&self, e: Error, operation: &'static str) -> Error {
        e.context(BACKEND, operation, Some(&self.endpoint))
    }

    /// The entry under `key`, as stored (expiry not judged).
    async fn read(&self, key: &StorageKey) -> Result<Option<Lookup>> {
        let entry = self.keys.entry(key);
        let bytes = self
            .core
            .bounded(
                self.core
                    .query::<Option<Vec<u8>>>(redis::cmd("GET").arg(&entry)),
            )
            .await?;
        bytes.map(|b| schema::decode(&b)).transpose()
    }

    async fn create_entry(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        let entry = self.keys.entry(key);
        let value = schema::encode_session(record, record.version);
        let ttl = schema::ttl_at(record.expires_at(), self.ttl_slack);
        self.core
            .bounded(async {
                let Some(user) = &record.user_id else {
                    // Anonymous: no index, one plain command.
                    let reply = self
                        .core
                        .query::<redis::Value>(
                            redis::cmd("SET")
                                .arg(&entry)
                                .arg(&value)
                                .arg("NX")
                                .arg("PXAT")
                                .arg(&ttl),
                        )
                        .await?;
                    return match reply {
                        redis::Value::Nil => Err(Error::AlreadyExists),
                        _ => Ok(()),
                    };
                };
                for _ in 0..INDEX_ATTEMPTS {
                    // The index entry first: whoever lists the user sees at
                    // least every session that exists.
                    let stamp = self.index.add(user, key, record.absolute_deadline).await?;
                    let mut cmd = evalsha(&scripts::CREATE, &[&entry]);
                    cmd.arg(&stamp)
                        .arg(self.index.max_age())
                        .arg(&ttl)
                        .arg(value.as_slice());
                    match reply::decode(
                        Coded::Create,
                        self.core.eval(&scripts::CREATE, &cmd).await?,
                    )? {
                        Reply::Done => return Ok(()),
                        Reply::Exists => return Err(Error::AlreadyExists),
                        Reply::IndexStale => continue,
                        other => return Err(reply::out_of_place(Coded::Create, other)),
                    }
                }
                Err(Error::backend_retryable(
                    "user index entry went stale before the session was written",
                ))
            })
            .await
    }

    async fn save_entry(
        &self,
        key: &StorageKey,
        record: &SessionRecord,
        now: Timestamp,
    ) -> Result<u64> {
        let next = next_version(record)?;
        let entry = self.keys.entry(key);
        let value = schema::encode_session(record, next);
        let ttl = schema::ttl_at(record.expires_at(), self.ttl_slack);
        let user = record.user_id.as_deref();
        let owner = schema::owner(user);
        self.core
            .bounded(async {
                let mut index_written = false;
                loop {
                    let mut cmd = evalsha(&scripts::SAVE, &[&entry]);
                    cmd.arg(&schema::fixed_time(now)[..])
                        .arg(&schema::expected_head(record.version)[..])
                        .arg(schema::header_end(user))
                        .arg(owner.as_slice())
                        .arg(&schema::fixed_time(record.absolute_deadline)[..])
                        .arg(schema::save_mode(
                            now,
                            record.absolute_deadline,
                            index_written,
                        ))
                        .arg(&ttl)
                        .arg(value.as_slice());
                    let answer =
                        reply::decode(Coded::Save, self.core.eval(&scripts::SAVE, &cmd).await?)?;
                    match (answer, user) {
                        (Reply::Done, _) => return Ok(next),
                        (Reply::NotLive, _) => return Err(Error::Conflict),
                        (Reply::Corrupt, _) => {
                            return Err(Error::codec("stored session is corrupt"))
                        }
                        (Reply::IndexFirst, Some(user)) if !index_written => {
                            // New owner or later absolute deadline: index first.
                            self.index.add(user, key, record.absolute_deadline).await?;
                            index_written = true;
                        }
                        (other, _) => return Err(reply::out_of_place(Coded::Save, other)),
                    }
                }
            })
            .await
    }

    async fn touch_entry(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let entry = self.keys.entry(key);
        let mut cmd = evalsha(&scripts::TOUCH, &[&entry]);
        cmd.arg(&schema::fixed_time(now)[..])
            .arg(&schema::fixed_time(idle_deadline)[..])
            .arg(&schema::fixed_time(last_seen_at)[..])
            .arg(schema::ttl_at(idle_deadline, self.ttl_slack))
            .arg(duration_ms(self.ttl_slack))
            .arg(schema::touch_mode(now, idle_deadline, last_seen_at));
        let value = self
            .core
            .bounded(self.core.eval(&scripts::TOUCH, &cmd))
            .await?;
        match reply::decode(Coded::Touch, value)? {
            Reply::Done => Ok(true),
            Reply::NotLive => Ok(false),
            Reply::Corrupt => Err(Error::codec("stored session is corrupt")),
            other => Err(reply::out_of_place(Coded::Touch, other)),
        }
    }

    async fn rotate_entry(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        if !rotation
            .to
            .shares_prefix_bits(&rotation.from, AFFINITY_BITS)
        {
            // Keep the contract's order: a rotation that would conflict
            // anyway reports Conflict (a read; nothing is written either way).
            let live = matches!(
                self.read(&rotation.from).await?,
                Some(Lookup::Session(r)) if r.is_live(now) && r.version == rotation.record.version
            );
            if !live {
                return Err(Error::Conflict);
            }
            return Err(Error::InvalidInput(
                "a rotation successor must share the store's rotation_affinity_bits with its \
                 predecessor (generate it with SessionToken::generate_with_affinity)",
            ));
        }
        let record = &rotation.record;
        let next = next_version(record)?;
        let from = self.keys.entry(&rotation.from);
        let to = self.keys.entry(&rotation.to);
        let value = schema::encode_session(record, next);
        let ttl = schema::ttl_at(record.expires_at(), self.ttl_slack);
        let (forwarder, forwarder_ttl) = match &rotation.grace {
            Some(g) => (
                schema::encode_forwarder(&rotation.to, &g.sealed_token, g.until),
                schema::ttl_at(g.until, self.ttl_slack),
            ),
            None => (Vec::new(), String::new()),
        };
        self.core
            .bounded(async {
                for _ in 0..INDEX_ATTEMPTS {
                    let stamp = match &record.user_id {
                        Some(user) => {
                            self.index
                                .add(user, &rotation.to, record.absolute_deadline)
                                .await?
                        }
                        None => String::new(),
                    };
                    let mut cmd = evalsha(&scripts::ROTATE, &[&from, &to]);
                    cmd.arg(&schema::fixed_time(now)[..])
                        .arg(&schema::expected_head(record.version)[..])
                        .arg(&stamp)
                        .arg(self.index.max_age())
                        .arg(&ttl)
                        .arg(value.as_slice())
                        .arg(forwarder.as_slice())
                        .arg(&forwarder_ttl)
                        .arg(schema::rotate_mode(now));
                    match reply::decode(
                        Coded::Rotate,
                        self.core.eval(&scripts::ROTATE, &cmd).await?,
                    )? {
                        Reply::Done => return Ok(next),
                        Reply::NotLive => return Err(Error::Conflict),
                        Reply::Exists => return Err(Error::AlreadyExists),
                        Reply::Corrupt => return Err(Error::codec("stored session is corrupt")),
                        Reply::IndexStale => continue,
                        other => return Err(reply::out_of_place(Coded::Rotate, other)),
                    }
                }
                Err(Error::backend_retryable(
                    "user index entry went stale before the rotation was written",
                ))
            })
            .await
    }

    async fn delete_keys(&self, names: Vec<Vec<u8>>) -> Result<()> {
        stream::iter(names)
            .map(|name| async move {
                self.core
                    .bounded(self.core.query::<i64>(redis::cmd("UNLINK").arg(name)))
                    .await
            })
            .buffer_unordered(FAN_OUT)
            .try_collect::<Vec<_>>()
            .await
            .map(drop)
    }
}

/// The version a successful write stores: one more than `record`'s.
fn next_version(record: &SessionRecord) -> Result<u64> {
    record
        .version
        .checked_add(1)
        .ok_or(Error::InvalidInput("session version overflow"))
}

#[async_trait]
impl SessionBackend for RedisStore {
    /// Everything, except that
    /// [`cleanup_expired`](SessionBackend::cleanup_expired) reports 0 (Redis
    /// expires keys by itself).
    fn capabilities(&self) -> Capabilities {
        Capabilities::full().with_counted_cleanup(false)
    }

    fn rotation_affinity_bits(&self) -> u8 {
        AFFINITY_BITS
    }

    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        self.create_entry(key, record)
            .await
            .map_err(|e| self.context(e, "create"))
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let found = self.read(key).await.map_err(|e| self.context(e, "load"))?;
        Ok(match found {
            Some(Lookup::Session(r)) if r.is_live(now) => Some(Lookup::Session(r)),
            Some(Lookup::Forwarded(f)) if now < f.until => Some(Lookup::Forwarded(f)),
            _ => None,
        })
    }

    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        self.save_entry(key, record, now)
            .await
            .map_err(|e| self.context(e, "save"))
    }

    async fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.touch_entry(key, idle_deadline, last_seen_at, now)
            .await
            .map_err(|e| self.context(e, "touch"))
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        self.rotate_entry(rotation, now)
            .await
            .map_err(|e| self.context(e, "rotate"))
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        // The user index keeps a hint that list/delete_user prune.
        let entry = self.keys.entry(key);
        self.core
            .bounded(self.core.query::<i64>(redis::cmd("DEL").arg(&entry)))
            .await
            .map(|n| n > 0)
            .map_err(|e| self.context(e, "delete"))
    }

    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        self.core
            .bounded(self.index.delete_sessions(user_id, except, now))
            .await
            .map_err(|e| self.context(e, "delete_user"))
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        self.core
            .bounded(self.index.list(user_id, now))
            .await
            .map_err(|e| self.context(e, "list_user"))
    }

    async fn delete_all(&self) -> Result<()> {
        async {
            let names = index::scan_keys(&self.core, &self.keys).await?;
            self.delete_keys(names).await
        }
        .await
        .map_err(|e| self.context(e, "delete_all"))
    }

    /// Returns 0: every key carries a native TTL derived from its own
    /// deadlines, so Redis removes expired entries by itself, and user
    /// indexes are pruned when they are read. Nothing is scanned.
    async fn cleanup_expired(&self, _now: Timestamp, _limit: usize) -> Result<u64> {
        Ok(0)
    }

    /// `SCAN` on the server, or on each cluster master in turn (see the
    /// `scan` module): a key can appear on more than one page (the backend
    /// does not remove such duplicates across pages), never twice on one.
    async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
        session_store_core::scan::check_limit(limit)?;
        // One deadline for the whole page (its SCAN and its reads).
        self.core
            .bounded(crate::scan::page(&self.core, &self.keys, cursor, limit))
            .await
            .map_err(|e| self.context(e, "scan"))
    }
}
