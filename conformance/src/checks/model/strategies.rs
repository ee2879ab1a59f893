//! Strategies for generating steps: small pools and time steps that land on,
//! just before and past the deadlines the steps set.

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

use super::reference::Model;
use super::transition::{KeyIx, Transition, UserIx, VersionPick};

/// Size of the key pool (small, so that keys collide).
pub const KEYS: u8 = 4;
/// The user pool: ids that differ only in case, by a trailing space (a
/// prefix of each other), as a `LIKE` pattern (`u_` matches `u `) or by
/// Unicode normalisation, so that a store that does not compare user ids
/// byte for byte mixes their sessions up.
pub const LOOKALIKE_USERS: [&str; 6] = ["u", "U", "u ", "u_", "caf\u{e9}", "cafe\u{301}"];
/// Size of the user pool.
pub const USERS: u8 = LOOKALIKE_USERS.len() as u8;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn key() -> impl Strategy<Value = KeyIx> {
    0..KEYS
}

/// Mostly one of `preferred` (when there is any), sometimes any key: steers
/// steps towards the interesting case without excluding the others.
fn key_among(preferred: Vec<KeyIx>) -> BoxedStrategy<KeyIx> {
    if preferred.is_empty() {
        key().boxed()
    } else {
        prop_oneof![3 => proptest::sample::select(preferred), 1 => key()].boxed()
    }
}

fn user() -> impl Strategy<Value = UserIx> {
    0..USERS
}

/// Timeouts start at one minute, so that a store with server-side TTLs
/// (computed from the real clock, which the model's clock is never behind
/// by more than the run time of a case) never drops a live entry.
fn idle_ms() -> impl Strategy<Value = i64> {
    prop_oneof![1 => Just(MIN), 1 => Just(10 * MIN), 2 => Just(30 * MIN), 2 => Just(2 * HOUR)]
}

fn abs_ms() -> impl Strategy<Value = i64> {
    prop_oneof![Just(30 * MIN), Just(HOUR), Just(12 * HOUR)]
}

fn version_pick() -> impl Strategy<Value = VersionPick> {
    prop_oneof![
        6 => Just(VersionPick::Current),
        2 => (1u64..3).prop_map(VersionPick::Stale),
        1 => (1u64..3).prop_map(VersionPick::Ahead),
    ]
}

fn advance_ms() -> impl Strategy<Value = i64> {
    // Mostly small steps (sessions stay live and interact), sometimes a jump
    // onto or past a deadline.
    prop_oneof![
        3 => Just(1),
        3 => Just(1_000),
        3 => Just(MIN),
        2 => Just(5 * MIN),
        1 => Just(10 * MIN - 1),
        1 => Just(30 * MIN),
        1 => Just(31 * MIN),
        1 => Just(HOUR),
        1 => Just(2 * HOUR),
        1 => Just(12 * HOUR),
        1 => 1..(3 * HOUR),
    ]
}

/// The lookalikes of `users` in the pool that are not themselves in
/// `users` (the first four ids look alike, and so do the last two).
fn lookalikes(users: &[UserIx]) -> Vec<UserIx> {
    let group = |u: UserIx| u < 4;
    (0..USERS)
        .filter(|v| !users.contains(v) && users.iter().any(|u| group(*u) == group(*v)))
        .collect()
}

/// Mostly a user who has sessions, often a lookalike of one (who must see
/// none of them), sometimes any user.
fn user_among(preferred: Vec<UserIx>) -> BoxedStrategy<UserIx> {
    let similar = lookalikes(&preferred);
    match (preferred.is_empty(), similar.is_empty()) {
        (true, _) => user().boxed(),
        (false, true) => prop_oneof![3 => proptest::sample::select(preferred), 1 => user()].boxed(),
        (false, false) => prop_oneof![
            3 => proptest::sample::select(preferred),
            2 => proptest::sample::select(similar),
            1 => user()
        ]
        .boxed(),
    }
}

/// Mostly a user with sessions, keeping one of theirs; sometimes a lookalike
/// of one, sometimes anything.
fn delete_user(owned: Vec<(UserIx, KeyIx)>) -> BoxedStrategy<Transition> {
    let anything = (user(), proptest::option::of(key()))
        .prop_map(|(user, except)| Transition::DeleteUser { user, except })
        .boxed();
    if owned.is_empty() {
        return anything.boxed();
    }
    let owners: Vec<UserIx> = owned.iter().map(|(u, _)| *u).collect();
    let similar = lookalikes(&owners);
    let lookalike = if similar.is_empty() {
        anything.clone().boxed()
    } else {
        proptest::sample::select(similar)
            .prop_map(|user| Transition::DeleteUser { user, except: None })
            .boxed()
    };
    prop_oneof![
        2 => (proptest::sample::select(owned), any::<bool>()).prop_map(|((user, key), keep)| {
            Transition::DeleteUser {
                user,
                except: keep.then_some(key),
            }
        }),
        1 => lookalike,
        1 => anything,
    ]
    .boxed()
}

/// One step, any kind, weighted towards writes. The state only biases the
/// choice of keys (live sessions to write and rotate from, free keys to rotate into,
/// occupied keys to load); every step stays valid in every state.
pub fn transition(state: &Model) -> BoxedStrategy<Transition> {
    let occupied: Vec<KeyIx> = state.entries.keys().copied().collect();
    let sessions: Vec<KeyIx> = state
        .entries
        .iter()
        .filter(|(_, e)| matches!(e, super::reference::Entry::Session(r) if r.live(state.now)))
        .map(|(k, _)| *k)
        .collect();
    let free: Vec<KeyIx> = (0..KEYS).filter(|k| !occupied.contains(k)).collect();
    // (user, key) of every session bound to a user.
    let owned: Vec<(UserIx, KeyIx)> = state
        .entries
        .iter()
        .filter_map(|(k, e)| match e {
            super::reference::Entry::Session(r) => r.user.map(|u| (u, *k)),
            super::reference::Entry::Forward { .. } => None,
        })
        .collect();
    let owner = owned.iter().map(|(u, _)| *u).collect::<Vec<_>>();
    prop_oneof![
        4 => (key(), proptest::option::of(user_among(owner.clone())), 0u64..3, idle_ms(), abs_ms(), any::<u8>()).prop_map(
            |(key, user, version, idle_ms, abs_ms, tag)| Transition::Create {
                key,
                user,
                version,
                idle_ms,
                abs_ms,
                tag,
            }
        ),
        3 => key_among(occupied).prop_map(|key| Transition::Load { key }),
        4 => (key_among(sessions.clone()), version_pick(), proptest::option::of(user()), idle_ms(), any::<u8>()).prop_map(
            |(key, version, user, idle_ms, tag)| Transition::Save {
                key,
                version,
                user,
                idle_ms,
                tag,
            }
        ),
        2 => (key_among(sessions.clone()), prop_oneof![Just(0i64), idle_ms()], prop_oneof![Just(0i64), Just(1_000i64), Just(10 * MIN)]).prop_map(
            |(key, idle_ms, seen_back_ms)| Transition::Touch {
                key,
                idle_ms,
                seen_back_ms,
            }
        ),
        3 => (
            key_among(sessions),
            key_among(free),
            version_pick(),
            proptest::option::weighted(0.3, user()),
            proptest::option::of(prop_oneof![Just(MIN), Just(5 * MIN)]),
            any::<u8>(),
        )
            .prop_map(|(from, to, version, login, grace_ms, tag)| Transition::Rotate {
                from,
                to,
                version,
                login,
                grace_ms,
                tag,
            }),
        1 => key().prop_map(|key| Transition::Delete { key }),
        1 => delete_user(owned),
        3 => user_among(owner).prop_map(|user| Transition::ListUser { user }),
        1 => prop_oneof![Just(1usize), Just(2), Just(100)].prop_map(|limit| Transition::Cleanup { limit }),
        3 => advance_ms().prop_map(|ms| Transition::Advance { ms }),
    ]
    .boxed()
}
