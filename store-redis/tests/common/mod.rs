//! Shared test setup: servers, random prefixes, the conformance factory.
//!
//! Where the servers are comes from the environment through
//! [`RedisConfig::from_env`] (the workspace's `.cargo/config.toml` sets
//! `SESSION_STORE_REDIS_URL`); the cluster tests read their seed nodes from
//! `SESSION_STORE_TEST_REDIS_CLUSTER_NODES` as `SESSION_STORE_REDIS_CLUSTER_NODES`.
#![allow(dead_code)]

use std::time::Duration;

use session_store_conformance::{Setup, TestStore};
use session_store_core::config::Vars;
use session_store_redis::{RedisConfig, RedisStore};

/// The variable that names the cluster seed nodes for the tests.
pub const TEST_CLUSTER_NODES: &str = "SESSION_STORE_TEST_REDIS_CLUSTER_NODES";

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

/// The environment's configuration for the standalone server or the cluster,
/// with the default prefix.
pub fn env_config(cluster: bool) -> RedisConfig {
    let config = if cluster {
        RedisConfig::from_vars(&Vars::from_fn(|name| match name {
            "SESSION_STORE_REDIS_CLUSTER_NODES" => std::env::var(TEST_CLUSTER_NODES).ok(),
            other => std::env::var(other).ok(),
        }))
    } else {
        RedisConfig::from_env()
    }
    .unwrap_or_else(|e| panic!("Redis test configuration: {e}"));
    assert_eq!(
        config.is_cluster(),
        cluster,
        "{TEST_CLUSTER_NODES} must name the cluster seed nodes for the cluster tests, \
         and SESSION_STORE_REDIS_CLUSTER_NODES must be unset for the standalone tests"
    );
    config
}

/// The config for a fresh namespace on the standalone server or the cluster.
pub fn config(cluster: bool) -> RedisConfig {
    env_config(cluster).with_prefix(random_prefix())
}

/// Builds the store or panics with what to start.
pub async fn connect(config: RedisConfig) -> RedisStore {
    let cluster = config.is_cluster();
    match config.build().await {
        Ok(store) => store,
        Err(e) => panic!(
            "cannot reach the Redis {} for the tests ({e}); start it with \
             `store-redis/scripts/redis-services.sh start`, or set {}=1 to skip",
            if cluster { "Cluster" } else { "server" },
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
    let damager = store.clone();
    Setup::Run(
        TestStore::new(store)
            .with_dump(move || {
                let s = dumper.clone();
                async move { s.dump_raw().await }
            })
            .with_raw_damage({
                let s = damager.clone();
                move |key, how| {
                    let s = s.clone();
                    async move {
                        s.damage_raw(&key, how == session_store_conformance::RawDamage::Foreign)
                            .await
                    }
                }
            }),
    )
}

/// A raw connection to the standalone server, for inspecting keys.
pub async fn raw_standalone() -> redis::aio::MultiplexedConnection {
    let config = env_config(false);
    redis::Client::open(config.url().expect("a single server"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection to the standalone server")
}

/// A raw connection to the cluster.
pub async fn raw_cluster() -> redis::cluster_async::ClusterConnection {
    let config = env_config(true);
    redis::cluster::ClusterClient::new(config.cluster_nodes().expect("cluster nodes").to_vec())
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
