//! What the adapter's test files share: where a scenario runs, and the
//! macro that runs each scenario on every backend and on the typed path.

// Each test file uses part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use session_store_core::SessionBackend;
use session_store_test_support::TestBackend;
use session_store_tower_sessions::TowerSessionStore;

/// Where a scenario runs: over a backend, or on the typed in-memory path.
pub enum Target {
    Backend(TestBackend),
    Typed,
}

impl Target {
    /// A fresh adapter (each call on the typed path is a new, empty store).
    pub fn adapter(&self) -> TowerSessionStore {
        match self {
            Target::Backend(b) => TowerSessionStore::new(b.backend.clone()),
            Target::Typed => TowerSessionStore::in_memory(),
        }
    }

    pub fn backend(&self) -> Option<&Arc<dyn SessionBackend>> {
        match self {
            Target::Backend(b) => Some(&b.backend),
            Target::Typed => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Backend(b) => b.name,
            Target::Typed => "in_memory (typed)",
        }
    }

    pub async fn finish(self) {
        if let Target::Backend(b) = self {
            b.finish().await;
        }
    }
}

/// Each scenario over every backend (`backend_path::<backend>::<scenario>`)
/// and on the typed in-memory path (`typed_path::<scenario>`). The scenarios
/// are functions of the invoking file taking a [`Target`], which that file
/// imports.
macro_rules! on_both_paths {
    ($($scenario:ident),* $(,)?) => {
        mod backend_path {
            use session_store_test_support::{per_backend, TestBackend};
            $(
                async fn $scenario(b: TestBackend) {
                    super::$scenario(super::Target::Backend(b)).await
                }
            )*
            per_backend!("adapter"; $($scenario),*);
        }
        mod typed_path {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Target::Typed).await
                }
            )*
        }
    };
}

pub(crate) use on_both_paths;
