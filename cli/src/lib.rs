//! # session-store-cli
//!
//! The `session-store` command for operators, and the library behind it:
//! [`url`] turns one URL into any backend and [`keys`] reads encryption keys
//! from a file or a variable (both re-exported from `session-store-url`, the
//! one place that does so, shared with the reference application and the
//! tests), [`ops`] holds the namespace walks (statistics, copy, verify,
//! re-encryption) built on
//! [`SessionBackend::scan`](session_store_core::SessionBackend::scan).
//!
//! ## Commands
//!
//! ```text
//! session-store --url URL migrate
//! session-store --url URL ready
//! session-store --url URL stats
//! session-store --url URL list --user U
//! session-store --url URL revoke --user U [--except HANDLE | --handle HANDLE]
//! session-store --url URL cleanup [--batch N] [--every 30s]
//! session-store --url URL purge --all [--yes]
//! session-store --url URL [--keys-file F] rekey [--cursor C]
//! session-store copy --from URL --to URL [--verify]
//! ```
//!
//! Every command takes `--json` (one JSON object on stdout). Progress goes
//! to stderr: a progress bar on a terminal, plain lines otherwise. Sessions
//! are named by handles (64 hex characters, a hash of a hash: never usable
//! as a token); no token is ever printed.
//!
//! ## Exit codes
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | the store failed (unreachable, an error from the server or disk) |
//! | 2 | usage or configuration: bad arguments, a bad URL, bad keys |
//! | 3 | done, with findings: a schema that is missing or of another version (`ready`), sessions that do not decrypt (`rekey`), differences (`copy --verify`), sessions that kept changing (`rekey`) |
//! | 4 | not confirmed (`purge` without `--yes` and without a "yes" on stdin) |
//!
//! ## TLS (`rediss://`)
//!
//! Redis over TLS needs the `tls` feature (`cargo install --path cli
//! --features tls`); without it a `rediss://` URL fails with exit code 2 and
//! a message naming the feature. The server's certificate is checked against
//! the platform's roots, or against a private CA: `?tls_ca_file=PATH` in the
//! URL or `SESSION_STORE_REDIS_TLS_CA_FILE`.
//!
//! The feature is off by default because of what it adds to a cold build
//! (measured on the 2-core development machine, dev profile, with other
//! builds running: `cargo build -p session-store-cli --features tls
//! --timings` after a build without it): ring, rustls, rustls-webpki,
//! rustls-native-certs, tokio-rustls and their small dependencies take
//! about 36 s of compile time (rustls alone 20 s, ring 9 s with its C
//! part), and the `redis` crate (33 s), the Redis store, `session-store-url`
//! and this crate are compiled again with TLS: 49 s of wall time in all.
//! Every build profile CI makes (tests, clippy, release benchmarks) would pay
//! the first part if the feature were on by default, for every
//! workspace member, since `redis` is shared. `scripts/test.sh` instead
//! runs the one TLS test with the feature (`cargo test -p session-store-cli
//! --features tls --test tls`), which costs the 49 s once.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod ops;
pub use session_store_url::{keys, url};

pub use session_store_url::{BackendUrl, Readiness, Store};
