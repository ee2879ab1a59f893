//! # session-store-url
//!
//! One URL names a backend and its namespace, and this crate is the one
//! place that turns it into an opened store: the `session-store` command,
//! the reference application and the tests all go through
//! [`BackendUrl::parse`] and [`BackendUrl::open`] (see [`url`] for every
//! form). Encryption keys never travel in the URL or on a command line:
//! [`keys`] reads them from a file or a variable.
//!
//! ```no_run
//! # async fn demo() -> session_store_core::Result<()> {
//! use session_store_url::BackendUrl;
//!
//! let store = BackendUrl::parse("postgres://app@db/app?table=sessions")?
//!     .open()
//!     .await?;
//! store.migrate().await?;
//! let backend = store.backend(); // Arc<dyn SessionBackend>
//! # let _ = backend; Ok(()) }
//! ```
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `SESSION_STORE_URL` | the store, read by [`BackendUrl::from_env`] | required there |
//! | `SESSION_STORE_<BACKEND>_*` | the backend's other settings (timeouts, pools, `SESSION_STORE_REDIS_TLS_CA_FILE`), read by [`BackendUrl::open`] as the backend's `from_env` reads them; the URL wins for the location and namespace | the backend's defaults |
//! | `SESSION_STORE_KEYS_FILE`, `SESSION_STORE_KEYS` | encryption keys, read by [`keys::keyring_from_vars`] | no encryption |
//!
//! ## Features
//! - `tls`: `rediss://` and `rediss+cluster://` through rustls (platform
//!   roots, or the CA file of `SESSION_STORE_REDIS_TLS_CA_FILE` or the
//!   URL's `tls_ca_file` parameter). Without it, such a URL is refused by
//!   [`BackendUrl::open`] with an [`Error::Config`](session_store_core::Error::Config)
//!   naming the feature.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod keys;
pub mod url;

pub use url::{BackendUrl, Readiness, Store, URL_VAR};
