//! The check registry and runner.

use std::future::Future;
use std::sync::Arc;

use session_store_core::{Capabilities, SessionBackend};

use crate::{BoxFuture, DumpFn, Mode, Setup};

mod scenarios;

/// What every check receives.
#[derive(Clone)]
pub struct Ctx {
    /// The backend under test (wrapped when `mode` is `Encrypted`).
    pub backend: Arc<dyn SessionBackend>,
    /// Declared capabilities.
    pub capabilities: Capabilities,
    /// Plain or encrypted.
    pub mode: Mode,
    /// At-rest hook.
    pub dump: Option<DumpFn>,
}

/// A check: takes the context, panics on failure.
pub type CheckFn = fn(Ctx) -> BoxFuture<'static, ()>;

macro_rules! registry {
    ($($module:ident :: $name:ident),* $(,)?) => {
        /// Every check, by name.
        pub static CHECKS: &[(&str, CheckFn)] = &[
            $((stringify!($name), |ctx| Box::pin($module::$name(ctx)))),*
        ];

        /// Calls `$callback!($factory, $mode; every, check, name)`.
        #[doc(hidden)]
        #[macro_export]
        macro_rules! __for_each_check {
            ($callback:path, $factory:path, $mode:expr) => {
                $callback!($factory, $mode; $($name),*);
            };
        }
    };
}

registry! {
    scenarios::create_collision,
}

pub(crate) fn run<F, Fut>(name: &str, mode: Mode, factory: F)
where
    F: FnOnce() -> Fut,
    Fut: Future,
    Fut::Output: Into<Setup>,
{
    let check = CHECKS
        .iter()
        .find(|c| c.0 == name)
        .unwrap_or_else(|| panic!("unknown conformance check {name}"))
        .1;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let store = match factory().await.into() {
            Setup::Run(store) => store,
            Setup::Skip(reason) => {
                println!("SKIP: conformance check {name}: {reason}");
                return;
            }
        };
        let backend: Arc<dyn SessionBackend> = match mode {
            Mode::Plain => store.backend.clone(),
            Mode::Encrypted => Arc::new(session_store_core::Encrypted::new(
                store.backend.clone(),
                crate::test_keyring(),
            )),
        };
        let ctx = Ctx {
            backend: backend.clone(),
            capabilities: store.capabilities,
            mode,
            dump: store.dump.clone(),
        };
        let outcome = tokio::spawn(check(ctx)).await;
        // Clean up the namespace whatever happened, then report.
        let cleanup = store.backend.delete_all().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic.into_panic());
        }
        cleanup.expect("delete_all after the check");
    });
}
