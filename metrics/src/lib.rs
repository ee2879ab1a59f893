//! # session-store-metrics
//!
//! Metrics for any session store through the [`metrics`] facade (install
//! any recorder: Prometheus, StatsD, a test recorder):
//!
//! - [`Metered`], a wrapper over any [`SessionBackend`](session_store_core::SessionBackend) (like
//!   [`Encrypted`](session_store_core::Encrypted)), records each operation's
//!   latency, its errors by kind and retryability, and the lifecycle counts
//!   a store can see (lookup misses, conflicts, decryption failures,
//!   entries removed by cleanup);
//! - [`MetricsEvents`], an [`EventSink`](session_store_core::EventSink) for the
//!   [`SessionManager`](session_store_core::SessionManager), counts its
//!   lifecycle events (created, rotated by reason, revoked, evicted, lookup
//!   misses, corrupted entries, invalid tokens).
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `session_store_operation_seconds` | histogram | `store`, `operation` |
//! | `session_store_operation_errors_total` | counter | `store`, `operation`, `kind`, `retryable` |
//! | `session_store_lookups_total` | counter | `store`, `result` (`session`, `forwarded`, `miss`) |
//! | `session_store_conflicts_total` | counter | `store`, `operation` |
//! | `session_store_decrypt_failures_total` | counter | `store`, `operation` |
//! | `session_store_cleaned_up_total` | counter | `store` |
//! | `session_store_events_total` | counter | `event` (and `reason`, `damage` where they apply) |
//!
//! A load of an expired session is a `miss` (the backend contract folds
//! "expired" into "absent"). No label ever carries a key, a token or a user id.
//!
//! ```
//! use std::sync::Arc;
//! use session_store_core::{MemoryStore, SessionManager};
//! use session_store_metrics::{Metered, MetricsEvents};
//!
//! let store = Metered::new(MemoryStore::new()).with_store_label("memory");
//! let manager = SessionManager::builder(Arc::new(store))
//!     .events(Arc::new(MetricsEvents))
//!     .build()
//!     .unwrap();
//! # let _ = manager;
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod events;
mod metered;

pub use events::MetricsEvents;
pub use metered::{error_kind, Metered};
