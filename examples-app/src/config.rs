//! Choosing the store, the keys and the listen addresses from the
//! environment. The store is one URL parsed by `session-store-url`, the same
//! parser the `session-store` command and the tests use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use session_store_core::config::Vars;
use session_store_core::{Encrypted, Error, Result, SessionBackend};
use session_store_metrics::Metered;
use session_store_url::{keys, BackendUrl, Store};

/// The store when `SESSION_STORE_URL` is unset: a SQLite file in the
/// working directory.
pub const DEFAULT_STORE_URL: &str = "sqlite://example-app-sessions.db";
/// Listen address when `EXAMPLE_APP_BIND` is unset.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";
/// Admin listen address (`/metrics`, `/healthz`, `/readyz`) when
/// `EXAMPLE_APP_ADMIN_BIND` is unset.
pub const DEFAULT_ADMIN_BIND: &str = "127.0.0.1:3001";
/// Bound on the readiness probe's round trip when
/// `EXAMPLE_APP_READY_TIMEOUT_MS` is unset.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(1);

/// Variables of earlier versions, refused with a pointer to their
/// replacement rather than silently ignored.
const REPLACED: [(&str, &str); 2] = [
    (
        "EXAMPLE_APP_BACKEND",
        "name the store with SESSION_STORE_URL instead (sqlite://PATH, redis://…, \
         postgres://…, mysql://…, sled://PATH)",
    ),
    (
        "EXAMPLE_APP_ENCRYPTION_KEY",
        "put the key in SESSION_STORE_KEYS (or a file named by SESSION_STORE_KEYS_FILE) \
         as the line 1=<64 hex characters>: the same key id, so existing sessions stay readable",
    ),
];

/// The store the application runs on.
pub struct AppStore {
    /// Where it is (passwords redacted in `Debug` and [`BackendUrl::endpoint`]).
    pub url: BackendUrl,
    /// The opened store, for the readiness probe.
    pub store: Store,
    /// What the session manager uses: the store, encrypted when keys are
    /// configured, measured by [`Metered`] (label `store` = the backend's
    /// name) outermost, so decryption failures are counted too.
    pub backend: Arc<dyn SessionBackend>,
}

impl std::fmt::Debug for AppStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Opens the store the environment names, migrated and ready (see
/// [`store_from_vars`] for the variables).
///
/// # Errors
/// As [`store_from_vars`].
pub async fn store_from_env() -> Result<AppStore> {
    store_from_vars(Vars::from_env()).await
}

/// Opens the store `vars` names, migrated and ready.
///
/// | Variable | Meaning | Default |
/// |---|---|---|
/// | `SESSION_STORE_URL` | the store: `sqlite://PATH`, `sled://PATH`, `redis://…`, `rediss://…` (with the `tls` feature), `redis+cluster://h1:p1,h2:p2`, `postgres://…`, `mysql://…`; the namespace as `?table=` or `?prefix=` (see `session_store_url::url`) | [`DEFAULT_STORE_URL`] |
/// | `SESSION_STORE_<BACKEND>_*` | the backend's other settings (timeouts, pool sizes, `SESSION_STORE_REDIS_TLS_CA_FILE`), as its `from_env` reads them | the backend's defaults |
/// | `SESSION_STORE_KEYS_FILE` | a file of encryption keys, one `ID=HEX` line each, the primary first (the `session-store` command's format) | unset |
/// | `SESSION_STORE_KEYS` | the same list in a variable, when no file is named | unset (no encryption) |
///
/// With keys, session data and metadata are encrypted at rest (AES-256-GCM
/// under the primary key; the other keys only decrypt, until
/// `session-store rekey` has moved everything to the primary). Keys are
/// never read from the command line.
///
/// # Errors
/// [`Error::Config`] for an invalid URL, key list or backend setting, or a
/// variable of an earlier version (`EXAMPLE_APP_BACKEND`,
/// `EXAMPLE_APP_ENCRYPTION_KEY`, with what replaces it); backend errors when
/// the store cannot be opened or migrated.
pub async fn store_from_vars(vars: Vars) -> Result<AppStore> {
    for (old, instead) in REPLACED {
        if vars.string(old).is_some() {
            return Err(Error::Config(format!("{old} is no longer read: {instead}")));
        }
    }
    let url = match BackendUrl::from_vars(&vars)? {
        Some(url) => url,
        None => BackendUrl::parse(DEFAULT_STORE_URL)?,
    };
    let keyring = keys::keyring_from_vars(&vars)?;
    let store = url.open_with(vars).await?;
    store.migrate().await?;
    let raw = store.backend();
    let inner: Arc<dyn SessionBackend> = match keyring {
        Some(keyring) => Arc::new(Encrypted::new(raw, keyring)),
        None => raw,
    };
    let backend = Arc::new(Metered::new(inner).with_store_label(store.kind()));
    Ok(AppStore {
        url,
        store,
        backend,
    })
}

/// The listen address: `EXAMPLE_APP_BIND` (default `127.0.0.1:3000`).
/// Only loopback addresses are accepted: put a TLS-terminating reverse proxy
/// in front (the cookie is `Secure` and `__Host-`).
///
/// # Errors
/// [`Error::Config`] for an unparsable or non-loopback address.
pub fn bind_from_env() -> Result<SocketAddr> {
    loopback(&Vars::from_env(), "EXAMPLE_APP_BIND", DEFAULT_BIND)
}

/// The admin listen address, serving `/metrics`, `/healthz` and `/readyz`
/// (see [`admin_router`](crate::admin_router)): `EXAMPLE_APP_ADMIN_BIND`
/// (default `127.0.0.1:3001`), loopback only, apart from the application's
/// address so that a proxy exposing the application never exposes these.
///
/// # Errors
/// [`Error::Config`] for an unparsable or non-loopback address.
pub fn admin_bind_from_env() -> Result<SocketAddr> {
    loopback(
        &Vars::from_env(),
        "EXAMPLE_APP_ADMIN_BIND",
        DEFAULT_ADMIN_BIND,
    )
}

/// The readiness probe's bound: `EXAMPLE_APP_READY_TIMEOUT_MS` (whole
/// milliseconds above zero, default 1000).
///
/// # Errors
/// [`Error::Config`] naming the variable for anything else.
pub fn ready_timeout_from_env() -> Result<Duration> {
    Ok(Vars::from_env()
        .parse_with(
            "EXAMPLE_APP_READY_TIMEOUT_MS",
            "a whole number of milliseconds above zero",
            |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis)
            },
        )?
        .unwrap_or(DEFAULT_READY_TIMEOUT))
}

fn loopback(vars: &Vars, name: &str, default: &str) -> Result<SocketAddr> {
    let text = vars.string(name).unwrap_or_else(|| default.into());
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| Error::Config(format!("{name}: expected an address, got {text:?}")))?;
    if !addr.ip().is_loopback() {
        return Err(Error::Config(format!(
            "{name} must be a loopback address (127.0.0.1 or ::1)"
        )));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_store_url::URL_VAR;

    #[test]
    fn addresses_are_loopback_only() {
        let vars = Vars::from_pairs([("A", "127.0.0.1:8080"), ("B", "0.0.0.0:80"), ("C", "x")]);
        assert_eq!(
            loopback(&vars, "A", DEFAULT_BIND).unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            loopback(&vars, "UNSET", DEFAULT_ADMIN_BIND).unwrap(),
            DEFAULT_ADMIN_BIND.parse().unwrap()
        );
        assert!(
            matches!(loopback(&vars, "B", DEFAULT_BIND), Err(Error::Config(m)) if m.contains("loopback"))
        );
        assert!(
            matches!(loopback(&vars, "C", DEFAULT_BIND), Err(Error::Config(m)) if m.starts_with("C:"))
        );
    }

    #[tokio::test]
    async fn replaced_variables_and_bad_urls_are_named() {
        for (old, value) in [
            ("EXAMPLE_APP_BACKEND", "redis"),
            ("EXAMPLE_APP_ENCRYPTION_KEY", "ab"),
        ] {
            let err = store_from_vars(Vars::from_pairs([(old, value)]))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::Config(m) if m.starts_with(old) && m.contains("SESSION_STORE_")),
                "{err}"
            );
        }
        let err = store_from_vars(Vars::from_pairs([(URL_VAR, "oracle://db")]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.starts_with(URL_VAR)),
            "{err}"
        );
        let err = store_from_vars(Vars::from_pairs([
            (URL_VAR, "sqlite://:memory:"),
            ("SESSION_STORE_KEYS", "1=nothex"),
        ]))
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("SESSION_STORE_KEYS") && !m.contains("nothex")),
            "{err}"
        );
    }
}
