//! # session-store-conformance
//!
//! The public conformance suite for [`SessionBackend`] implementations. A
//! backend's test file writes one factory and one macro call, and gets every
//! check as its own named test, run plain and under the
//! [`Encrypted`](session_store_core::Encrypted) wrapper:
//!
//! ```ignore
//! use session_store_conformance::{conformance_tests, TestStore};
//!
//! /// A fresh, empty store in its own random namespace.
//! async fn store() -> TestStore {
//!     let store = MyStore::connect_in_random_namespace().await;
//!     TestStore::new(store)
//! }
//!
//! conformance_tests!(store);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use session_store_core::{Capabilities, SessionBackend};

mod checks;
pub mod fixtures;

pub use checks::{CheckFn, Ctx, CHECKS};

/// A boxed future, as stored in the suite's hooks.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Dumps every raw byte string a backend holds in the test namespace (keys,
/// values, columns), for the at-rest checks.
pub type DumpFn =
    Arc<dyn Fn() -> BoxFuture<'static, session_store_core::Result<Vec<Vec<u8>>>> + Send + Sync>;

/// A backend under test, as a factory returns it: a fresh, empty store in a
/// namespace (key prefix, table, temp dir) that no other test uses.
#[derive(Clone)]
pub struct TestStore {
    /// The backend, as frameworks hold it.
    pub backend: Arc<dyn SessionBackend>,
    /// What it can do.
    pub capabilities: Capabilities,
    /// Optional at-rest hook.
    pub dump: Option<DumpFn>,
}

impl TestStore {
    /// Wraps a backend with full capabilities and no dump hook.
    pub fn new(backend: impl SessionBackend + 'static) -> Self {
        TestStore {
            backend: Arc::new(backend),
            capabilities: Capabilities::full(),
            dump: None,
        }
    }

    /// Declares the backend's capabilities.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Adds the at-rest hook: `dump` returns every raw byte string stored in
    /// this test's namespace.
    pub fn with_dump<F, Fut>(mut self, dump: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = session_store_core::Result<Vec<Vec<u8>>>> + Send + 'static,
    {
        self.dump = Some(Arc::new(move || Box::pin(dump())));
        self
    }
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("backend", &self.backend)
            .field("capabilities", &self.capabilities)
            .field("dump", &self.dump.is_some())
            .finish()
    }
}

/// What a factory returns: a store to test, or a visible reason to skip
/// (for example a server the user explicitly opted out of).
#[derive(Debug)]
pub enum Setup {
    /// Run the check against this store.
    Run(TestStore),
    /// Skip the check; the reason is printed as a `SKIP:` line.
    Skip(String),
}

impl From<TestStore> for Setup {
    fn from(store: TestStore) -> Self {
        Setup::Run(store)
    }
}

/// Whether a check runs on the bare backend or through the encryption wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The backend as given.
    Plain,
    /// The backend wrapped in [`Encrypted`](session_store_core::Encrypted) with a test keyring.
    Encrypted,
}

/// Runs one named check against a fresh store from `factory`, in its own
/// multi-threaded tokio runtime. Used by [`conformance_tests!`]; call it
/// directly to run a single check.
///
/// # Panics
/// When the check fails (that is how a test fails) or `name` is unknown.
pub fn run_check<F, Fut>(name: &str, mode: Mode, factory: F)
where
    F: FnOnce() -> Fut,
    Fut: Future,
    Fut::Output: Into<Setup>,
{
    checks::run(name, mode, factory)
}

/// Generates one `#[test]` per conformance check, in two modules:
/// `conformance_plain` and `conformance_encrypted`. The argument is the path
/// of an `async fn()` that returns a fresh, empty store: a [`TestStore`] or a
/// [`Setup`] (which can also skip, visibly).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        mod conformance_plain {
            #[allow(unused_imports)]
            use super::*;
            $crate::__for_each_check!($crate::__emit_test, $factory, $crate::Mode::Plain);
        }
        mod conformance_encrypted {
            #[allow(unused_imports)]
            use super::*;
            $crate::__for_each_check!($crate::__emit_test, $factory, $crate::Mode::Encrypted);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __emit_test {
    ($factory:path, $mode:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::run_check(stringify!($name), $mode, $factory);
            }
        )*
        #[test]
        fn every_check_is_listed() {
            let listed: &[&str] = &[$(stringify!($name)),*];
            $crate::assert_all_listed(listed);
        }
    };
}

/// Asserts that the macro's list and the check registry agree (guards the suite itself).
#[doc(hidden)]
pub fn assert_all_listed(listed: &[&str]) {
    let mut a: Vec<&str> = listed.to_vec();
    let mut b: Vec<&str> = CHECKS.iter().map(|c| c.0).collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "conformance macro list and CHECKS registry differ");
}

/// The keyring the suite uses in [`Mode::Encrypted`]: a random primary key
/// (id 2) and a random decrypt-only key (id 1).
pub fn test_keyring() -> session_store_core::Keyring {
    use session_store_core::{EncryptionKey, Keyring};
    Keyring::new(2, EncryptionKey::generate()).with_decrypt_key(1, EncryptionKey::generate())
}
