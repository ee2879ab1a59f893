//! # session-store-core
//!
//! The semantics of a server-side session store, written down and enforced.
//!
//! Two layers:
//! - [`SessionBackend`]: storage, implemented by every backend and wrapper. It
//!   sees only a [`StorageKey`] (a SHA-256 hash of the token) and opaque bytes. Each
//!   method documents its `# Contract`; the `session-store-conformance` crate
//!   checks every clause.
//! - [`SessionManager`]: what frameworks and applications use. It generates
//!   and parses tokens, applies the [`Policy`] (idle and absolute timeouts,
//!   touch throttling, renewal grace, size limits, per-user caps) and emits
//!   lifecycle [`Event`]s.
//!
//! Wrappers implement the same trait: [`Encrypted`] adds AES-256-GCM at rest
//! over any backend. [`MemoryStore`] is the reference implementation.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod adapter;
mod backend;
pub mod config;
mod crypto;
mod error;
mod events;
mod fault;
#[doc(hidden)]
pub mod fuzzing;
mod manager;
mod memory;
pub mod persistent;
mod record;
pub mod scan;
mod time;
mod token;

pub use adapter::{AdapterConfig, LoadedRecord, LOADED_FIELD};
pub use backend::{Capabilities, SessionBackend};
pub use crypto::{
    Encrypted, EncryptionKey, Keyring, Resealed, ENCRYPTION_OVERHEAD, MAX_ENCRYPTIONS_PER_SUBKEY,
};
pub use error::{BoxError, Error, Result};
pub use events::{Event, EventSink, ExpiredBy, NoEvents};
pub use fault::{Fault, Faulty, Op};
pub use manager::{
    CapPolicy, Device, DeviceKind, OnCorrupt, Policy, RotateReason, Session, SessionManager,
    SessionManagerBuilder,
};
pub use memory::MemoryStore;
pub use persistent::{
    PersistentLogin, PersistentPolicy, PersistentToken, Resumed, PERSISTENT_TOKEN_LEN,
};
pub use record::{
    ClientMeta, Damage, Forward, Grace, Lookup, Rotation, SessionRecord, SessionSummary,
};
pub use scan::{ScanCursor, ScanEntry, ScanPage};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use token::{SessionHandle, SessionToken, StorageKey, TOKEN_BYTES, TOKEN_LEN};

/// `async_trait` re-exported so backends use the same version.
pub use async_trait::async_trait;
