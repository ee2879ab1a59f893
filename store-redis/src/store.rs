//! [`RedisStore`]: the [`SessionBackend`] implementation.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RetryMethod, Script, ServerErrorKind, Value,
};

use session_store_core::{
    async_trait, Capabilities, Error, Lookup, Result, Rotation, SessionBackend, SessionRecord,
    SessionSummary, StorageKey, Timestamp,
};

use crate::config::{RedisConfig, Target};
use crate::schema::{self, Keys, AFFINITY_BITS};
use crate::scripts;

/// How many per-key commands run at once for one listing or bulk delete.
const FAN_OUT: usize = 64;
/// Attempts when an index entry went stale between writing it and the record.
const INDEX_ATTEMPTS: usize = 3;

/// A user-index member and the storage key it names.
type Member = (Vec<u8>, StorageKey);

/// The connection: one server or a cluster, behind one type.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A session store on Redis or Redis Cluster.
///
/// Cheap to clone (the connection is shared and multiplexed). See the crate
/// docs for the data layout, the guarantees and the trade-offs.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    keys: Keys,
    prefix: String,
    cluster: bool,
    operation_timeout: Duration,
    ttl_slack: Duration,
    index_guard: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("cluster", &self.cluster)
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

/// Maps a client error: I/O, timeouts, failover and loading states are
/// retryable; a value of the wrong type is corrupt storage.
pub(crate) fn map_err(e: RedisError) -> Error {
    if e.code() == Some("WRONGTYPE") {
        return Error::codec(e);
    }
    let permanent = matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed
            | ErrorKind::InvalidClientConfig
            | ErrorKind::Server(ServerErrorKind::NoPerm)
    );
    let retryable = !permanent
        && (e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_cluster_error()
            || !matches!(e.retry_method(), RetryMethod::NoRetry));
    if retryable {
        Error::backend_retryable(e)
    } else {
        Error::backend_permanent(e)
    }
}

fn unexpected(what: &str, code: i64) -> Error {
    Error::backend_permanent(format!("unexpected reply {code} from the {what} script"))
}

fn to_int(v: Value, what: &str) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(i),
        _ => Err(Error::backend_permanent(format!(
            "the {what} script returned a non-integer"
        ))),
    }
}

fn bulk_list(v: Value) -> Result<Vec<Vec<u8>>> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) | Value::Set(items) => items
            .into_iter()
            .map(|i| match i {
                Value::BulkString(b) => Ok(b),
                Value::SimpleString(s) => Ok(s.into_bytes()),
                _ => Err(Error::backend_permanent(
                    "unexpected element in a list reply",
                )),
            })
            .collect(),
        _ => Err(Error::backend_permanent("unexpected list reply")),
    }
}

impl RedisStore {
    /// Validates `config`, connects (single server: an auto-reconnecting
    /// `ConnectionManager`; cluster: the async cluster client) and checks
    /// that the server answers.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration or URL (including
    /// `rediss://` without the `tls` feature); a retryable [`Error::Backend`]
    /// if Redis cannot be reached within the operation timeout.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        config.validate()?;
        #[cfg(feature = "tls")]
        {
            // rustls needs a process-wide crypto provider; keep one the
            // application installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let bad_url = |e: RedisError| {
            Error::Config(format!(
                "invalid Redis URL or client configuration ({}{})",
                e.category(),
                if cfg!(feature = "tls") {
                    ""
                } else {
                    "; rediss:// needs the `tls` feature"
                }
            ))
        };
        let op = config.operation_timeout;
        let conn = match &config.target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str()).map_err(bad_url)?;
                let mgr_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connection_timeout))
                    .set_response_timeout(Some(config.response_timeout))
                    .set_number_of_retries(config.reconnect_retries)
                    .set_max_delay(config.connection_timeout);
                let mgr = bounded(op, async {
                    ConnectionManager::new_with_config(client, mgr_config)
                        .await
                        .map_err(map_err)
                })
                .await?;
                Conn::Single(mgr)
            }
            Target::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(config.connection_timeout)
                    .response_timeout(config.response_timeout)
                    .retries(u32::try_from(config.reconnect_retries).unwrap_or(u32::MAX))
                    .max_retry_wait(
                        u64::try_from(config.connection_timeout.as_millis()).unwrap_or(u64::MAX),
                    )
                    .build()
                    .map_err(bad_url)?;
                let conn = bounded(op, async {
                    client.get_async_connection().await.map_err(map_err)
                })
                .await?;
                Conn::Cluster(conn)
            }
        };
        let store = RedisStore {
            conn,
            keys: Keys::new(&config.prefix),
            prefix: config.prefix.clone(),
            cluster: config.is_cluster(),
            operation_timeout: op,
            ttl_slack: config.ttl_slack,
            index_guard: config.index_guard,
        };
        store.ping().await?;
        Ok(store)
    }

    /// What this backend supports, for the conformance suite: everything,
    /// except that [`cleanup_expired`](SessionBackend::cleanup_expired)
    /// reports 0 (Redis expires keys by itself).
    pub fn capabilities() -> Capabilities {
        Capabilities::full().with_counted_cleanup(false)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
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
    /// A retryable [`Error::Backend`] if Redis does not answer in time.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        self.bounded(async move {
            redis::cmd("PING")
                .query_async::<Value>(&mut conn)
                .await
                .map_err(map_err)
                .map(drop)
        })
        .await
    }

    /// Every raw byte string stored under this prefix: each key name, then
    /// every field and value (hashes), member and score (sorted sets) or
    /// value (strings). For at-rest checks and debugging; it SCANs, so keep
    /// it off request paths.
    ///
    /// # Errors
    /// [`Error::Backend`] on a Redis failure.
    pub async fn dump_raw(&self) -> Result<Vec<Vec<u8>>> {
        let names = self.scan_keys().await?;
        let mut out = Vec::new();
        for name in names {
            let mut conn = self.conn.clone();
            let name2 = name.clone();
            let value = self
                .bounded(async move {
                    let ty: String = redis::cmd("TYPE")
                        .arg(&name2)
                        .query_async(&mut conn)
                        .await
                        .map_err(map_err)?;
                    let cmd = match ty.as_str() {
                        "hash" => redis::cmd("HGETALL").arg(&name2).clone(),
                        "zset" => redis::cmd("ZRANGE")
                            .arg(&name2)
                            .arg(0)
                            .arg(-1)
                            .arg("WITHSCORES")
                            .clone(),
                        "string" => redis::cmd("GET").arg(&name2).clone(),
                        "none" => return Ok(Value::Nil),
                        other => {
                            return Err(Error::codec(format!(
                                "unexpected Redis type {other} under the prefix"
                            )))
                        }
                    };
                    cmd.query_async::<Value>(&mut conn).await.map_err(map_err)
                })
                .await?;
            out.push(name);
            flatten(value, &mut out);
        }
        Ok(out)
    }

    async fn bounded<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        bounded(self.operation_timeout, fut).await
    }

    async fn eval(&self, script: &Script, cmd: &Cmd) -> Result<Value> {
        eval(&mut self.conn.clone(), script, cmd).await
    }

    /// Adds `key` to `user_id`'s index with score `absolute`; returns the
    /// server time stamp of the entry.
    async fn index_add(
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
        match self.eval(&scripts::INDEX_ADD, &cmd).await? {
            Value::BulkString(b) => String::from_utf8(b).map_err(|_| {
                Error::backend_permanent("the index script returned a non-UTF-8 stamp")
            }),
            Value::SimpleString(s) => Ok(s),
            Value::Int(i) => Ok(i.to_string()),
            _ => Err(Error::backend_permanent(
                "unexpected reply from the index script",
            )),
        }
    }

    /// The index entries of `user_id` (those whose records Redis has
    /// certainly expired are dropped on the way).
    async fn index_members(&self, user_id: &str) -> Result<Vec<Vec<u8>>> {
        let (zset, times) = self.keys.user(user_id);
        let mut cmd = evalsha(&scripts::INDEX_MEMBERS, &[&zset, &times]);
        cmd.arg(duration_ms(self.ttl_slack))
            .arg(duration_ms(self.index_guard));
        bulk_list(self.eval(&scripts::INDEX_MEMBERS, &cmd).await?)
    }

    /// Removes `dead` (verified gone for good) and `missing` (no record;
    /// removed only past the index guard) from `user_id`'s index.
    async fn index_prune(
        &self,
        user_id: &str,
        dead: &[Vec<u8>],
        missing: &[Vec<u8>],
    ) -> Result<()> {
        if dead.is_empty() && missing.is_empty() {
            return Ok(());
        }
        let (zset, times) = self.keys.user(user_id);
        let mut cmd = evalsha(&scripts::INDEX_PRUNE, &[&zset, &times]);
        cmd.arg(duration_ms(self.index_guard)).arg(dead.len());
        for m in dead.iter().chain(missing) {
            cmd.arg(m.as_slice());
        }
        self.eval(&scripts::INDEX_PRUNE, &cmd).await.map(drop)
    }

    fn max_index_age(&self) -> String {
        duration_ms(self.index_guard / 2)
    }

    /// Every key of this prefix (SCAN on each master in cluster mode).
    async fn scan_keys(&self) -> Result<Vec<Vec<u8>>> {
        let pattern = self.keys.scan_pattern();
        let mut found = BTreeSet::new();
        match &self.conn {
            Conn::Single(_) => {
                let mut conn = self.conn.clone();
                self.scan_node(&mut conn, None, &pattern, &mut found)
                    .await?;
            }
            Conn::Cluster(c) => {
                for (host, port) in self.masters(c.clone()).await? {
                    let mut conn = self.conn.clone();
                    self.scan_node(&mut conn, Some((host, port)), &pattern, &mut found)
                        .await?;
                }
            }
        }
        Ok(found.into_iter().filter(|k| self.keys.owns(k)).collect())
    }

    async fn scan_node(
        &self,
        conn: &mut Conn,
        node: Option<(String, u16)>,
        pattern: &str,
        found: &mut BTreeSet<Vec<u8>>,
    ) -> Result<()> {
        let mut cursor: u64 = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let reply = self
                .bounded(async {
                    match (&mut *conn, &node) {
                        (Conn::Cluster(c), Some((host, port))) => c
                            .route_command(
                                cmd,
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                    host: host.clone(),
                                    port: *port,
                                }),
                            )
                            .await
                            .map_err(map_err),
                        (c, _) => cmd.query_async::<Value>(c).await.map_err(map_err),
                    }
                })
                .await?;
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::from_redis_value(reply)
                .map_err(|e| Error::backend_permanent(e.to_string()))?;
            found.extend(keys);
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The master nodes of the cluster, from `CLUSTER SLOTS`.
    async fn masters(&self, mut conn: ClusterConnection) -> Result<Vec<(String, u16)>> {
        let reply = self
            .bounded(async move {
                conn.route_command(
                    redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await
                .map_err(map_err)
            })
            .await?;
        let bad = || Error::backend_permanent("unexpected CLUSTER SLOTS reply");
        let Value::Array(ranges) = reply else {
            return Err(bad());
        };
        let mut masters = BTreeSet::new();
        for range in ranges {
            let Value::Array(parts) = range else {
                return Err(bad());
            };
            let Some(Value::Array(node)) = parts.get(2) else {
                return Err(bad());
            };
            let host = match node.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => return Err(bad()),
            };
            let port = match node.get(1) {
                Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| bad())?,
                _ => return Err(bad()),
            };
            masters.insert((host, port));
        }
        Ok(masters.into_iter().collect())
    }

    /// Whether a session live at `now` with `version` is stored under `key`.
    async fn is_live_version(
        &self,
        key: &StorageKey,
        version: u64,
        now: Timestamp,
    ) -> Result<bool> {
        Ok(match self.load(key, now).await? {
            Some(Lookup::Session(r)) => r.version == version,
            _ => false,
        })
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
                let fut = f(self.conn.clone(), self.keys.entry(&k));
                async move { fut.await.map(|t| (m, k, t)) }
            })
            .buffer_unordered(FAN_OUT)
            .try_collect()
            .await
    }
}

fn flatten(v: Value, out: &mut Vec<Vec<u8>>) {
    match v {
        Value::BulkString(b) => out.push(b),
        Value::SimpleString(s) => out.push(s.into_bytes()),
        Value::Int(i) => out.push(i.to_string().into_bytes()),
        Value::Double(d) => out.push(d.to_string().into_bytes()),
        Value::Array(items) | Value::Set(items) => items.into_iter().for_each(|i| flatten(i, out)),
        Value::Map(pairs) => pairs.into_iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        _ => {}
    }
}

/// `EVALSHA <sha> <n> <keys>`; the caller appends the arguments. Built
/// directly into one command buffer (a `ScriptInvocation` copies every key
/// and argument into its own vector first, then into the command).
fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

/// Runs `cmd` (from [`evalsha`]); on `NOSCRIPT` (a restarted or failed-over
/// server) loads `script` (on every master in cluster mode) and runs it again.
async fn eval(conn: &mut Conn, script: &Script, cmd: &Cmd) -> Result<Value> {
    match cmd.query_async::<Value>(conn).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(conn).await.map_err(map_err)?;
            cmd.query_async::<Value>(conn).await.map_err(map_err)
        }
        r => r.map_err(map_err),
    }
}

fn duration_ms(d: Duration) -> String {
    d.as_millis().to_string()
}

async fn bounded<T>(limit: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::backend_retryable(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("Redis operation timed out after {limit:?}"),
        ))),
    }
}

#[async_trait]
impl SessionBackend for RedisStore {
    fn rotation_affinity_bits(&self) -> u8 {
        AFFINITY_BITS
    }

    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        let entry = self.keys.entry(key);
        let value = schema::encode_session(record, record.version);
        let ttl = schema::ttl_at(record.expires_at(), self.ttl_slack);
        self.bounded(async {
            let Some(user) = &record.user_id else {
                // Anonymous: no index, one plain command.
                let mut conn = self.conn.clone();
                let reply = redis::cmd("SET")
                    .arg(&entry)
                    .arg(&value)
                    .arg("NX")
                    .arg("PXAT")
                    .arg(&ttl)
                    .query_async::<Value>(&mut conn)
                    .await
                    .map_err(map_err)?;
                return match reply {
                    Value::Nil => Err(Error::AlreadyExists),
                    _ => Ok(()),
                };
            };
            for _ in 0..INDEX_ATTEMPTS {
                // The index entry first: whoever lists the user sees at least
                // every session that exists.
                let stamp = self.index_add(user, key, record.absolute_deadline).await?;
                let mut cmd = evalsha(&scripts::CREATE, &[&entry]);
                cmd.arg(&stamp)
                    .arg(self.max_index_age())
                    .arg(&ttl)
                    .arg(value.as_slice());
                match to_int(self.eval(&scripts::CREATE, &cmd).await?, "create")? {
                    1 => return Ok(()),
                    -1 => return Err(Error::AlreadyExists),
                    -3 => continue,
                    other => return Err(unexpected("create", other)),
                }
            }
            Err(Error::backend_retryable(
                "user index entry went stale before the session was written",
            ))
        })
        .await
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let entry = self.keys.entry(key);
        let mut conn = self.conn.clone();
        let reply = self
            .bounded(async move {
                redis::cmd("GET")
                    .arg(&entry)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
                    .map_err(map_err)
            })
            .await?;
        let Some(bytes) = reply else {
            return Ok(None);
        };
        Ok(match schema::decode(&bytes)? {
            Lookup::Session(r) if r.is_live(now) => Some(Lookup::Session(r)),
            Lookup::Forwarded(f) if now < f.until => Some(Lookup::Forwarded(f)),
            _ => None,
        })
    }

    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        let next = record
            .version
            .checked_add(1)
            .ok_or_else(|| Error::Config("session version overflow".into()))?;
        let entry = self.keys.entry(key);
        let value = schema::encode_session(record, next);
        let ttl = schema::ttl_at(record.expires_at(), self.ttl_slack);
        let user = record.user_id.as_deref();
        let owner = schema::owner(user);
        self.bounded(async {
            let mut index_written = false;
            loop {
                let mut cmd = evalsha(&scripts::SAVE, &[&entry]);
                cmd.arg(&schema::fixed_time(now)[..])
                    .arg(&schema::fixed_version(record.version)[..])
                    .arg(schema::header_end(user))
                    .arg(owner.as_slice())
                    .arg(&schema::fixed_time(record.absolute_deadline)[..])
                    .arg(if index_written { "1" } else { "0" })
                    .arg(&ttl)
                    .arg(value.as_slice());
                match to_int(self.eval(&scripts::SAVE, &cmd).await?, "save")? {
                    1 => return Ok(next),
                    0 => return Err(Error::Conflict),
                    -2 => return Err(Error::codec("stored session is corrupt")),
                    -4 if !index_written => {
                        // New owner or later absolute deadline: index first.
                        let user = user.ok_or_else(|| unexpected("save", -4))?;
                        self.index_add(user, key, record.absolute_deadline).await?;
                        index_written = true;
                    }
                    other => return Err(unexpected("save", other)),
                }
            }
        })
        .await
    }

    async fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let entry = self.keys.entry(key);
        self.bounded(async {
            let mut cmd = evalsha(&scripts::TOUCH, &[&entry]);
            cmd.arg(&schema::fixed_time(now)[..])
                .arg(&schema::fixed_time(idle_deadline)[..])
                .arg(&schema::fixed_time(last_seen_at)[..])
                .arg(schema::ttl_at(idle_deadline, self.ttl_slack))
                .arg(duration_ms(self.ttl_slack));
            match to_int(self.eval(&scripts::TOUCH, &cmd).await?, "touch")? {
                1 => Ok(true),
                0 => Ok(false),
                -2 => Err(Error::codec("stored session is corrupt")),
                other => Err(unexpected("touch", other)),
            }
        })
        .await
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        if !rotation
            .to
            .shares_prefix_bits(&rotation.from, AFFINITY_BITS)
        {
            // Keep the contract's order: a rotation that would conflict
            // anyway reports Conflict (a read; nothing is written either way).
            if !self
                .is_live_version(&rotation.from, rotation.record.version, now)
                .await?
            {
                return Err(Error::Conflict);
            }
            return Err(Error::Config(format!(
                "a rotation successor must share its first {AFFINITY_BITS} key bits with the \
                 predecessor (generate it with SessionToken::generate_with_affinity)"
            )));
        }
        let record = &rotation.record;
        let next = record
            .version
            .checked_add(1)
            .ok_or_else(|| Error::Config("session version overflow".into()))?;
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
        self.bounded(async {
            for _ in 0..INDEX_ATTEMPTS {
                let stamp = match &record.user_id {
                    Some(user) => {
                        self.index_add(user, &rotation.to, record.absolute_deadline)
                            .await?
                    }
                    None => String::new(),
                };
                let mut cmd = evalsha(&scripts::ROTATE, &[&from, &to]);
                cmd.arg(&schema::fixed_time(now)[..])
                    .arg(&schema::fixed_version(record.version)[..])
                    .arg(&stamp)
                    .arg(self.max_index_age())
                    .arg(&ttl)
                    .arg(value.as_slice())
                    .arg(forwarder.as_slice())
                    .arg(&forwarder_ttl);
                match to_int(self.eval(&scripts::ROTATE, &cmd).await?, "rotate")? {
                    1 => return Ok(next),
                    0 => return Err(Error::Conflict),
                    -1 => return Err(Error::AlreadyExists),
                    -2 => return Err(Error::codec("stored session is corrupt")),
                    -3 => continue,
                    other => return Err(unexpected("rotate", other)),
                }
            }
            Err(Error::backend_retryable(
                "user index entry went stale before the rotation was written",
            ))
        })
        .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        let entry = self.keys.entry(key);
        let mut conn = self.conn.clone();
        // The user index keeps a hint that list/delete_user prune.
        self.bounded(async move {
            redis::cmd("DEL")
                .arg(&entry)
                .query_async::<i64>(&mut conn)
                .await
                .map(|n| n > 0)
                .map_err(map_err)
        })
        .await
    }

    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        let except = except.map(schema::member);
        let owner = schema::owner(Some(user_id));
        let header_end = schema::header_end(Some(user_id));
        self.bounded(async {
            let members: Vec<Vec<u8>> = self
                .index_members(user_id)
                .await?
                .into_iter()
                .filter(|m| except.as_deref().map(str::as_bytes) != Some(m.as_slice()))
                .collect();
            let (valid, mut dead) = Self::parse_members(members);
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
                        to_int(v, "delete_user")
                    }
                })
                .await?;
            let mut live = 0u64;
            let mut corrupt = false;
            for (m, _, code) in results {
                match code {
                    2 => {
                        live += 1;
                        dead.push(m);
                    }
                    1 | 3 => dead.push(m),
                    0 => missing.push(m),
                    4 => {}
                    -2 => corrupt = true,
                    other => return Err(unexpected("delete_user", other)),
                }
            }
            self.index_prune(user_id, &dead, &missing).await?;
            if corrupt {
                return Err(Error::codec("a session of the user is stored corrupt"));
            }
            Ok(live)
        })
        .await
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        self.bounded(async {
            let members = self.index_members(user_id).await?;
            let (valid, mut dead) = Self::parse_members(members);
            let mut missing = Vec::new();
            let results = self
                .for_members(valid, |mut conn, entry| async move {
                    redis::cmd("GET")
                        .arg(&entry)
                        .query_async::<Option<Vec<u8>>>(&mut conn)
                        .await
                        .map_err(map_err)
                })
                .await?;
            let mut out = Vec::new();
            let mut corrupt = None;
            for (m, key, bytes) in results {
                match bytes.map(|b| schema::decode(&b)).transpose() {
                    Ok(None) => missing.push(m),
                    Ok(Some(Lookup::Forwarded(_))) => dead.push(m),
                    Ok(Some(Lookup::Session(r))) => {
                        if let Some(s) = schema::live_summary(key, user_id, &r, now) {
                            out.push(s);
                        }
                    }
                    Err(e) => corrupt = Some(e),
                }
            }
            self.index_prune(user_id, &dead, &missing).await?;
            if let Some(e) = corrupt {
                return Err(e);
            }
            out.sort_by_key(|s| (s.created_at, s.key));
            Ok(out)
        })
        .await
    }

    async fn delete_all(&self) -> Result<()> {
        let keys = self.scan_keys().await?;
        stream::iter(keys)
            .map(|k| {
                let mut conn = self.conn.clone();
                async move {
                    self.bounded(async move {
                        redis::cmd("UNLINK")
                            .arg(k)
                            .query_async::<i64>(&mut conn)
                            .await
                            .map_err(map_err)
                    })
                    .await
                }
            })
            .buffer_unordered(FAN_OUT)
            .try_collect::<Vec<_>>()
            .await
            .map(drop)
    }

    /// Returns 0: every key carries a native TTL derived from its own
    /// deadlines, so Redis removes expired entries by itself, and user
    /// indexes are pruned when they are read. Nothing is scanned.
    async fn cleanup_expired(&self, _now: Timestamp, _limit: usize) -> Result<u64> {
        Ok(0)
    }
}
