//! Model-based conformance: random sequences of operations run against the
//! store and against an independent reference model, comparing every answer.
//!
//! Layout after firezone's tunnel tests: [`reference`] (the model),
//! [`transition`] (the steps), [`strategies`] (how steps are generated) and
//! [`sut`] (running steps against the real store). Sequences are generated
//! and shrunk by `proptest-state-machine`.

use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::ReferenceStateMachine;

use super::Ctx;

pub mod reference;
pub mod strategies;
mod sut;
pub mod transition;

/// Environment variable: number of generated sequences (default 256).
pub const CASES_VAR: &str = "SESSION_STORE_CONFORMANCE_CASES";
/// Environment variable: maximum steps per sequence (default 40).
pub const STEPS_VAR: &str = "SESSION_STORE_CONFORMANCE_STEPS";
const DEFAULT_CASES: u32 = 256;
const DEFAULT_STEPS: usize = 40;
/// Shrinking reruns whole sequences against the store; keep it bounded on
/// real servers.
const MAX_SHRINK_ITERS: u32 = 300;
const MAX_SHRINK_MILLIS: u32 = 120_000;

/// Runs `cases` generated sequences of `strategy` on a blocking thread
/// (proptest's runner is synchronous), each through `case` on the calling
/// runtime, with bounded shrinking and no failure files; panics naming
/// `what`, the budget and the minimal failing sequence on a failure.
pub(crate) async fn run_cases<S, F>(
    what: &'static str,
    cases: u32,
    steps: usize,
    strategy: S,
    case: F,
) where
    S: proptest::strategy::Strategy + Send + 'static,
    S::Value: std::fmt::Debug,
    F: Fn(&tokio::runtime::Handle, S::Value) -> Result<(), proptest::test_runner::TestCaseError>
        + Send
        + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let config = Config {
            cases,
            max_shrink_iters: MAX_SHRINK_ITERS,
            max_shrink_time: MAX_SHRINK_MILLIS,
            failure_persistence: None,
            ..Config::default()
        };
        TestRunner::new(config)
            .run(&strategy, |value| case(&handle, value))
            .map_err(|e| e.to_string())
    })
    .await
    .expect("the model runner thread");
    if let Err(e) = outcome {
        panic!("{what} failed ({cases} cases of up to {steps} steps): {e}");
    }
}

pub(crate) fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a valid number")),
        Err(_) => default,
    }
}

/// Every operation of the contract in random sequences (creates, loads,
/// saves with current and stale versions, touches, rotations with and
/// without grace, deletes, user deletes and listings, cleanup, and clock
/// jumps past deadlines) over a small pool of keys and users, each answer
/// compared with the reference model. Every sequence starts from an empty
/// namespace and a fresh base time.
pub async fn model_based_sequences(ctx: Ctx) {
    let cases: u32 = env_or(CASES_VAR, DEFAULT_CASES);
    let steps: usize = env_or(STEPS_VAR, DEFAULT_STEPS).max(1);
    run_cases(
        "model-based conformance",
        cases,
        steps,
        reference::Reference::sequential_strategy(1..=steps),
        move |handle, (initial, transitions, seen)| {
            handle.block_on(sut::run_case(&ctx, initial, &transitions, seen.as_ref()))
        },
    )
    .await;
}
