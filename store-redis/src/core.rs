//! The connection: one server or a cluster behind one type, and the running
//! of commands and scripts under the operation timeout.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, Script, ServerErrorKind, Value,
};

use session_store_core::Result;

use crate::config::{RedisConfig, Target};
use crate::error::{bad_client_config, map_err, timed_out};

/// A connection to one server or a cluster. Cheap to clone: clones share
/// one multiplexed connection.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server, through an auto-reconnecting `ConnectionManager`.
    Single(ConnectionManager),
    /// A cluster, through the async cluster client.
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

/// The connection and the operation timeout that caps every store operation.
#[derive(Clone)]
pub(crate) struct Core {
    conn: Conn,
    operation_timeout: Duration,
}

impl Core {
    /// Connects as `config` says (already validated) and checks that the
    /// server answers `PING`.
    ///
    /// # Errors
    /// [`Error::Config`](session_store_core::Error::Config) for a URL or
    /// client setting the client refuses (including `rediss://` without the
    /// `tls` feature); a retryable backend error when Redis cannot be reached
    /// within the operation timeout.
    pub(crate) async fn connect(config: &RedisConfig) -> Result<Core> {
        #[cfg(feature = "tls")]
        {
            // rustls needs a process-wide crypto provider; keep one the
            // application installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let limit = config.operation_timeout();
        let ca = tls_ca(config)?;
        let conn = match &config.target {
            Target::Single(url) => {
                #[cfg(feature = "tls")]
                let client = match ca {
                    Some(root) => redis::Client::build_with_tls(
                        url.as_str(),
                        redis::TlsCertificates {
                            client_tls: None,
                            root_cert: Some(root),
                        },
                    ),
                    None => redis::Client::open(url.as_str()),
                };
                #[cfg(not(feature = "tls"))]
                let client = {
                    // Validation refused a CA file without TLS support.
                    drop(ca);
                    redis::Client::open(url.as_str())
                };
                let client = client.map_err(|e| bad_client_config(&e))?;
                let mgr_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connection_timeout()))
                    .set_response_timeout(Some(config.response_timeout()))
                    .set_number_of_retries(config.reconnect_retries())
                    .set_max_delay(config.connection_timeout());
                let mgr = bounded(limit, async {
                    ConnectionManager::new_with_config(client, mgr_config)
                        .await
                        .map_err(map_err)
                })
                .await?;
                Conn::Single(mgr)
            }
            Target::Cluster(nodes) => {
                let builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str));
                #[cfg(feature = "tls")]
                let builder = match ca {
                    Some(root) => builder.certs(redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root),
                    }),
                    None => builder,
                };
                let client = builder
                    .connection_timeout(config.connection_timeout())
                    .response_timeout(config.response_timeout())
                    .retries(u32::try_from(config.reconnect_retries()).unwrap_or(u32::MAX))
                    .max_retry_wait(
                        u64::try_from(config.connection_timeout().as_millis()).unwrap_or(u64::MAX),
                    )
                    .build()
                    .map_err(|e| bad_client_config(&e))?;
                let conn = bounded(limit, async {
                    client.get_async_connection().await.map_err(map_err)
                })
                .await?;
                Conn::Cluster(conn)
            }
        };
        let core = Core {
            conn,
            operation_timeout: limit,
        };
        core.ping().await?;
        Ok(core)
    }

    /// A handle on the shared connection, for commands run concurrently.
    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// The cluster connection, in cluster mode.
    pub(crate) fn cluster(&self) -> Option<ClusterConnection> {
        match &self.conn {
            Conn::Single(_) => None,
            Conn::Cluster(c) => Some(c.clone()),
        }
    }

    /// Runs `fut`, failing with a retryable error once the operation timeout
    /// passes (a command already sent may still run on the server).
    pub(crate) async fn bounded<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        bounded(self.operation_timeout, fut).await
    }

    /// Runs one command (not bounded by itself: callers bound the operation).
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        cmd.query_async(&mut self.conn.clone())
            .await
            .map_err(map_err)
    }

    /// Runs a script call built by [`evalsha`] (see [`eval`]).
    pub(crate) async fn eval(&self, script: &Script, cmd: &Cmd) -> Result<Value> {
        eval(&mut self.conn.clone(), script, cmd).await
    }

    /// Runs `cmd` on the cluster node at `host:port`.
    pub(crate) async fn query_node(
        cluster: &mut ClusterConnection,
        cmd: Cmd,
        host: &str,
        port: u16,
    ) -> Result<Value> {
        cluster
            .route_command(
                cmd,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.to_owned(),
                    port,
                }),
            )
            .await
            .map_err(map_err)
    }

    /// Runs `cmd` on any one cluster node.
    pub(crate) async fn query_any_node(cluster: &mut ClusterConnection, cmd: Cmd) -> Result<Value> {
        cluster
            .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
            .await
            .map_err(map_err)
    }

    /// Sends `PING`, bounded by the operation timeout.
    pub(crate) async fn ping(&self) -> Result<()> {
        self.bounded(self.query::<Value>(&redis::cmd("PING")))
            .await
            .map(drop)
    }
}

/// The PEM bytes of the configured CA file, if any (validation already
/// refused one without TLS support or without `rediss://`).
///
/// # Errors
/// [`Error::Config`](session_store_core::Error::Config) naming the file when
/// it cannot be read.
fn tls_ca(config: &RedisConfig) -> Result<Option<Vec<u8>>> {
    config
        .tls_ca_file()
        .map(|path| {
            std::fs::read(path).map_err(|e| {
                session_store_core::Error::Config(format!(
                    "the Redis TLS CA file {} cannot be read: {e}",
                    path.display()
                ))
            })
        })
        .transpose()
}

/// `EVALSHA <sha> <n> <keys>`; the caller appends the arguments. Built
/// directly into one command buffer (a `ScriptInvocation` copies every key
/// and argument into its own vector first, then into the command).
pub(crate) fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

/// Runs `cmd` (from [`evalsha`]); on `NOSCRIPT` (a restarted or failed-over
/// server) loads `script` (on every master in cluster mode) and runs it again.
pub(crate) async fn eval(conn: &mut Conn, script: &Script, cmd: &Cmd) -> Result<Value> {
    match cmd.query_async::<Value>(conn).await {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load_async(conn).await.map_err(map_err)?;
            cmd.query_async::<Value>(conn).await.map_err(map_err)
        }
        r => r.map_err(map_err),
    }
}

/// A duration as whole milliseconds, the form the scripts take.
pub(crate) fn duration_ms(d: Duration) -> String {
    d.as_millis().to_string()
}

async fn bounded<T>(limit: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(limit)),
    }
}
