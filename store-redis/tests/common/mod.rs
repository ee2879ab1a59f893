//! Shared test setup: servers, random prefixes, the conformance factory.
#![allow(dead_code)]

use std::time::Duration;

use session_store_conformance::{Setup, TestStore};
use session_store_redis::{RedisConfig, RedisStore};

/// The standalone server the tests use (`SESSION_STORE_REDIS_URL` overrides).
pub fn standalone_url() -> String {
    std::env::var("SESSION_STORE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The cluster seed nodes (`SESSION_STORE_REDIS_CLUSTER_NODES` overrides).
pub fn cluster_nodes() -> Vec<String> {
    std::env::var("SESSION_STORE_REDIS_CLUSTER_NODES")
        .unwrap_or_else(|_| {
            "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into()
        })
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A prefix no other test run uses.
pub fn random_prefix() -> String {
    format!("sstest:{:016x}", rand::random::<u64>())
}

/// Whether the user opted out of the standalone / cluster tests.
pub fn skip(cluster: bool) -> Option<String> {
    let var = if cluster {
        "SESSION_STORE_SKIP_REDIS_CLUSTER"
    } else {
        "SESSION_STORE_SKIP_REDIS"
    };
    (std::env::var(var).as_deref() == Ok("1")).then(|| format!("{var}=1 is set"))
}

/// The config for a fresh namespace on the standalone server or the cluster.
pub fn config(cluster: bool) -> RedisConfig {
    let base = if cluster {
        RedisConfig::cluster(cluster_nodes())
    } else {
        RedisConfig::new(standalone_url())
    };
    base.with_prefix(random_prefix())
}

/// Connects or panics with what to start.
pub async fn connect(config: RedisConfig) -> RedisStore {
    let cluster = config.is_cluster();
    match config.connect().await {
        Ok(store) => store,
        Err(e) => panic!(
            "cannot reach the Redis {} for the tests ({e}); start it with \
             `store-redis/scripts/redis-services.sh start`, or set {}=1 to skip",
            if cluster {
                "Cluster on 127.0.0.1:7001-7003"
            } else {
                "server on 127.0.0.1:6379"
            },
            if cluster {
                "SESSION_STORE_SKIP_REDIS_CLUSTER"
            } else {
                "SESSION_STORE_SKIP_REDIS"
            },
        ),
    }
}

/// A fresh store for one conformance check, or a visible skip.
pub async fn factory(cluster: bool) -> Setup {
    if let Some(reason) = skip(cluster) {
        println!(
            "SKIP: Redis{} tests: {reason}",
            if cluster { " Cluster" } else { "" }
        );
        return Setup::Skip(reason);
    }
    let store = connect(config(cluster)).await;
    let dumper = store.clone();
    Setup::Run(
        TestStore::new(store)
            .with_capabilities(RedisStore::capabilities())
            .with_dump(move || {
                let s = dumper.clone();
                async move { s.dump_raw().await }
            }),
    )
}

/// A raw connection to the standalone server, for inspecting keys.
pub async fn raw_standalone() -> redis::aio::MultiplexedConnection {
    redis::Client::open(standalone_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection to the standalone server")
}

/// A raw connection to the cluster.
pub async fn raw_cluster() -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(cluster_nodes())
        .unwrap()
        .get_async_connection()
        .await
        .expect("raw connection to the cluster")
}

/// Polls `f` every 50 ms until it returns true, at most `limit` (a wait on a
/// real server's own clock, used only where the server's TTL is under test).
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if f().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
