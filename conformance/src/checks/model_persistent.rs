//! Model-based conformance for persistent logins ("remember me", refresh
//! tokens): random sequences of manager operations over a few users, run
//! through a [`SessionManager`] with a [`ManualClock`] over the store under
//! test and against an independent reference model of token families,
//! comparing every answer.
//!
//! The reference model knows, per family: its user, the original login time,
//! its current token, the token rotated last and the end of its grace, its
//! idle and absolute deadlines, and whether it was revoked; per session: its
//! user, deadlines, last activity, version, whether it came from a remember
//! token and which family it is linked to. It shares no code with the
//! manager or any store.
//!
//! After every step every session and family that was live before or after
//! the step is loaded raw from the store at the model's instant: it must be
//! there exactly when the model says so, with the model's deadlines.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use proptest::test_runner::TestCaseError;
use proptest_state_machine::ReferenceStateMachine;
use session_store_core::{
    ClientMeta, DeviceKind, Error, Event, EventSink, Lookup, ManualClock, PersistentPolicy,
    PersistentToken, Policy, RotateReason, Session, SessionManager, StorageKey, Timestamp,
};

use super::model::{env_or, run_cases, CASES_VAR, STEPS_VAR};
use super::Ctx;

/// Default number of sequences: a quarter of the backend model's 256 (each
/// step here is several manager operations plus a sweep of raw loads).
const DEFAULT_CASES: u32 = 64;
const DEFAULT_STEPS: usize = 40;

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Session policy of the case: 1 h idle, 1 day absolute, touches after 60 s.
const SESSION_IDLE: i64 = HOUR;
const SESSION_ABS: i64 = DAY;
const TOUCH_INTERVAL: i64 = MIN;
/// Persistent-login policy: 30 days absolute, 14 days idle.
const FAMILY_LIFETIME: i64 = 30 * DAY;
const FAMILY_IDLE: i64 = 14 * DAY;
const GRACE: i64 = 5 * SEC;

/// The users: two distinct ones and a case lookalike of the first.
pub const USERS: [&str; 3] = ["alice", "bob", "Alice"];

/// Index of a user in [`USERS`].
pub type UserIx = u8;
/// Index of a session, in creation order within the case.
pub type SessIx = usize;
/// Index of a family, in issue order within the case.
pub type FamIx = usize;
/// Index of a persistent token, in issue order within the case.
pub type TokIx = usize;

/// Which token a resume presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// A token issued earlier in the case (current, just rotated or old).
    Known(TokIx),
    /// A well-formed token with a known family id and a made-up secret.
    Forged(FamIx),
    /// A well-formed token of a family that does not exist.
    Unknown,
}

/// What a revoke names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A session's handle.
    Session(SessIx),
    /// A family's handle.
    Family(FamIx),
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new session logged in as `user` (create, then a login rotation),
    /// then `remember` if asked.
    Login {
        /// The user.
        user: UserIx,
        /// Issue a family for the new session.
        remember: bool,
    },
    /// `remember` on a session: its latest copy, or (`stale`) the copy
    /// handed out when it was logged in or resumed.
    Remember {
        /// The session.
        session: SessIx,
        /// Use the first copy (stale once the session was saved since).
        stale: bool,
    },
    /// `resume` with a token.
    Resume {
        /// The token.
        pick: Pick,
    },
    /// `n` concurrent resumes of one token.
    Race {
        /// The token.
        token: TokIx,
        /// How many.
        n: usize,
    },
    /// `load` of a session's latest token through the manager.
    Load {
        /// The session.
        session: SessIx,
    },
    /// A password login on a session (login rotation, same user).
    Relogin {
        /// The session.
        session: SessIx,
    },
    /// `logout` of a session's latest copy.
    Logout {
        /// The session.
        session: SessIx,
    },
    /// `logout_everywhere`.
    LogoutEverywhere {
        /// The user.
        user: UserIx,
    },
    /// `revoke` by handle.
    Revoke {
        /// Who asks.
        by: UserIx,
        /// What.
        target: Target,
    },
    /// `list_devices`, marking the devices of a session.
    ListDevices {
        /// The user.
        user: UserIx,
        /// The current session, if any.
        current: Option<SessIx>,
    },
    /// Moves the clock forward.
    Advance {
        /// Milliseconds.
        ms: i64,
    },
}

/// A session as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sess {
    user: UserIx,
    version: u64,
    /// Version of the copy handed out first (for stale remembers).
    first_version: u64,
    /// The activity time that copy holds (a save decides from its copy
    /// whether a touch interval has passed).
    first_seen: i64,
    idle: i64,
    abs: i64,
    seen: i64,
    auth: i64,
    family: Option<FamIx>,
    remembered: bool,
    deleted: bool,
}

impl Sess {
    fn live(&self, now: i64) -> bool {
        !self.deleted && now < self.idle.min(self.abs)
    }
}

/// A family as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fam {
    user: UserIx,
    auth: i64,
    current: TokIx,
    prev: Option<TokIx>,
    prev_until: i64,
    idle: i64,
    abs: i64,
    deleted: bool,
}

impl Fam {
    fn live(&self, now: i64) -> bool {
        !self.deleted && now < self.idle.min(self.abs)
    }
}

/// The reference model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// Model time: milliseconds from the case's base instant.
    pub now: i64,
    /// Grace of the case (0 or 5 s).
    pub grace: i64,
    /// Whether reuse revokes the sessions the family minted.
    pub revoke_sessions: bool,
    sessions: Vec<Sess>,
    families: Vec<Fam>,
    /// Token → family.
    tokens: Vec<FamIx>,
}

/// What a session looks like through the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    user: UserIx,
    auth: i64,
    remembered: bool,
    family: Option<FamIx>,
}

/// A resume's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// `None` without reuse (unknown, expired or revoked family).
    Nothing,
    /// `None` after detected reuse, with the event's revoked-session count.
    Reuse(u64),
    /// A new session and the family's next token.
    Resumed {
        /// Joined a rotation inside the grace.
        joined: bool,
        /// The token handed out (a new index when it is a fresh one).
        token: TokIx,
        /// The new session (index `session`).
        session: SessIx,
        /// How it looks.
        view: View,
        /// The family's absolute deadline.
        expires: i64,
    },
}

/// A listed device: kind (true for a persistent login), index, current flag,
/// idle and absolute deadlines.
pub type Listed = (bool, usize, bool, i64, i64);

/// A step's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A login: the new session, and the family with its deadline.
    LoggedIn(SessIx, Option<(FamIx, i64)>),
    /// `remember`: the new family and its deadline, or `Conflict`.
    Remembered(Option<(FamIx, i64)>),
    /// `resume`.
    Resume(Resume),
    /// A race: how many rotated, joined, got nothing; whether every served
    /// racer got the same token.
    Raced {
        /// Fresh rotations.
        rotated: usize,
        /// Joined the rotation.
        joined: usize,
        /// Answered `None`.
        none: usize,
        /// Every successor handed out is the same token.
        same: bool,
    },
    /// `load`.
    Loaded(Option<View>),
    /// A login rotation: true if it happened (false: `Conflict`).
    Rotated(bool),
    /// `logout`.
    LoggedOut,
    /// `logout_everywhere`: live records removed.
    Count(u64),
    /// `revoke`.
    Revoked(bool),
    /// `list_devices`, sorted by kind and index.
    Listed(Vec<Listed>),
    /// The clock moved.
    Advanced,
}

impl Model {
    fn new(grace: i64, revoke_sessions: bool) -> Self {
        Model {
            now: 0,
            grace,
            revoke_sessions,
            sessions: Vec::new(),
            families: Vec::new(),
            tokens: Vec::new(),
        }
    }

    fn view(&self, s: SessIx) -> View {
        let r = &self.sessions[s];
        View {
            user: r.user,
            auth: r.auth,
            remembered: r.remembered,
            family: r.family,
        }
    }

    fn session_live(&self, s: SessIx) -> bool {
        self.sessions[s].live(self.now)
    }

    fn family_live(&self, f: FamIx) -> bool {
        self.families[f].live(self.now)
    }

    fn new_session(&mut self, user: UserIx, auth: i64, family: Option<FamIx>) -> SessIx {
        let now = self.now;
        self.sessions.push(Sess {
            user,
            version: 0,
            first_version: 0,
            first_seen: now,
            idle: now + SESSION_IDLE,
            abs: now + SESSION_ABS,
            seen: now,
            auth,
            family,
            remembered: family.is_some(),
            deleted: false,
        });
        self.sessions.len() - 1
    }

    /// `remember` on a copy of session `s` holding version `version` and
    /// activity time `seen`.
    fn remember(&mut self, s: SessIx, version: u64, seen: i64) -> Option<(FamIx, i64)> {
        let now = self.now;
        if !self.session_live(s) || self.sessions[s].version != version {
            return None;
        }
        let f = self.families.len();
        let t = self.tokens.len();
        self.tokens.push(f);
        let abs = now + FAMILY_LIFETIME;
        let r = &mut self.sessions[s];
        self.families.push(Fam {
            user: r.user,
            auth: r.auth,
            current: t,
            prev: None,
            prev_until: 0,
            idle: (now + FAMILY_IDLE).min(abs),
            abs,
            deleted: false,
        });
        let previous = r.family.replace(f);
        r.version += 1;
        // The session is saved: activity, recorded once per touch interval
        // as a load records it, judged from the copy being saved. (A copy
        // with this version and an older activity time than the stored one
        // can only have missed a touch, which came a touch interval after
        // it, so the save moves the deadline then too.)
        if now - seen >= TOUCH_INTERVAL {
            r.idle = r.idle.max((now + SESSION_IDLE).min(r.abs));
            r.seen = now;
        }
        if let Some(old) = previous {
            self.families[old].deleted = true;
        }
        Some((f, abs))
    }

    /// Revokes family `f` after reuse; returns how many sessions went with it.
    fn reuse(&mut self, f: FamIx) -> u64 {
        let now = self.now;
        self.families[f].deleted = true;
        if !self.revoke_sessions {
            return 0;
        }
        let mut n = 0;
        for s in &mut self.sessions {
            if s.live(now) && s.remembered && s.family == Some(f) {
                s.deleted = true;
                n += 1;
            }
        }
        n
    }

    fn resume(&mut self, pick: Pick) -> Resume {
        let now = self.now;
        let (f, t) = match pick {
            Pick::Unknown => return Resume::Nothing,
            Pick::Forged(f) => (f, None),
            Pick::Known(t) => (self.tokens[t], Some(t)),
        };
        if !self.family_live(f) {
            return Resume::Nothing;
        }
        let fam = self.families[f].clone();
        let (joined, token) = if t == Some(fam.current) {
            let next = self.tokens.len();
            self.tokens.push(f);
            let fam = &mut self.families[f];
            fam.prev = t;
            fam.prev_until = (now + self.grace).min(fam.idle.min(fam.abs));
            fam.current = next;
            fam.idle = fam.idle.max((now + FAMILY_IDLE).min(fam.abs));
            (false, next)
        } else if t.is_some() && t == fam.prev && now < fam.prev_until {
            (true, fam.current)
        } else {
            return Resume::Reuse(self.reuse(f));
        };
        let session = self.new_session(fam.user, fam.auth, Some(f));
        Resume::Resumed {
            joined,
            token,
            session,
            view: self.view(session),
            expires: fam.abs,
        }
    }

    /// Applies `step`; returns the answer the store must give.
    pub fn apply(&mut self, step: &Step) -> Answer {
        let now = self.now;
        match *step {
            Step::Login { user, remember } => {
                let s = self.new_session(user, now, None);
                let r = &mut self.sessions[s];
                r.remembered = false;
                r.version = 1;
                r.first_version = 1;
                let family = if remember {
                    self.remember(s, 1, now)
                } else {
                    None
                };
                Answer::LoggedIn(s, family)
            }
            Step::Remember { session, stale } => {
                let r = &self.sessions[session];
                let (version, seen) = if stale {
                    (r.first_version, r.first_seen)
                } else {
                    (r.version, r.seen)
                };
                Answer::Remembered(self.remember(session, version, seen))
            }
            Step::Resume { pick } => Answer::Resume(self.resume(pick)),
            Step::Race { token, n } => {
                let (mut rotated, mut joined, mut none) = (0, 0, 0);
                let mut tokens = Vec::new();
                for _ in 0..n {
                    match self.resume(Pick::Known(token)) {
                        Resume::Resumed {
                            joined: j, token, ..
                        } => {
                            if j {
                                joined += 1;
                            } else {
                                rotated += 1;
                            }
                            tokens.push(token);
                        }
                        _ => none += 1,
                    }
                }
                Answer::Raced {
                    rotated,
                    joined,
                    none,
                    same: tokens.windows(2).all(|w| w[0] == w[1]),
                }
            }
            Step::Load { session } => {
                if !self.session_live(session) {
                    return Answer::Loaded(None);
                }
                let r = &mut self.sessions[session];
                if now - r.seen >= TOUCH_INTERVAL {
                    r.idle = r.idle.max((now + SESSION_IDLE).min(r.abs));
                    r.seen = now;
                }
                Answer::Loaded(Some(self.view(session)))
            }
            Step::Relogin { session } => {
                if !self.session_live(session) {
                    return Answer::Rotated(false);
                }
                let r = &mut self.sessions[session];
                r.version += 1;
                r.auth = now;
                r.idle = now + SESSION_IDLE;
                r.abs = now + SESSION_ABS;
                r.seen = now;
                r.remembered = false;
                Answer::Rotated(true)
            }
            Step::Logout { session } => {
                let r = &mut self.sessions[session];
                r.deleted = true;
                if let Some(f) = r.family {
                    self.families[f].deleted = true;
                }
                Answer::LoggedOut
            }
            Step::LogoutEverywhere { user } => {
                let mut n = 0;
                for s in &mut self.sessions {
                    if s.user == user {
                        n += u64::from(s.live(now));
                        s.deleted = true;
                    }
                }
                for f in &mut self.families {
                    if f.user == user {
                        n += u64::from(f.live(now));
                        f.deleted = true;
                    }
                }
                Answer::Count(n)
            }
            Step::Revoke { by, target } => {
                let (live, owner) = match target {
                    Target::Session(s) => (self.session_live(s), self.sessions[s].user),
                    Target::Family(f) => (self.family_live(f), self.families[f].user),
                };
                let hit = live && owner == by;
                if hit {
                    match target {
                        Target::Session(s) => self.sessions[s].deleted = true,
                        Target::Family(f) => self.families[f].deleted = true,
                    }
                }
                Answer::Revoked(hit)
            }
            Step::ListDevices { user, current } => {
                let link = current.and_then(|c| self.sessions[c].family);
                let mut out = Vec::new();
                for (i, s) in self.sessions.iter().enumerate() {
                    if s.user == user && s.live(now) {
                        out.push((false, i, current == Some(i), s.idle, s.abs));
                    }
                }
                for (i, f) in self.families.iter().enumerate() {
                    if f.user == user && f.live(now) {
                        out.push((true, i, link == Some(i), f.idle, f.abs));
                    }
                }
                out.sort();
                Answer::Listed(out)
            }
            Step::Advance { ms } => {
                self.now += ms;
                Answer::Advanced
            }
        }
    }

    fn valid(&self, step: &Step) -> bool {
        let s = |i: SessIx| i < self.sessions.len();
        let f = |i: FamIx| i < self.families.len();
        match *step {
            Step::Remember { session, .. }
            | Step::Load { session }
            | Step::Relogin { session }
            | Step::Logout { session } => s(session),
            Step::Resume {
                pick: Pick::Known(t),
            }
            | Step::Race { token: t, .. } => t < self.tokens.len(),
            Step::Resume {
                pick: Pick::Forged(i),
            } => f(i),
            Step::Revoke {
                target: Target::Session(i),
                ..
            } => s(i),
            Step::Revoke {
                target: Target::Family(i),
                ..
            } => f(i),
            Step::ListDevices {
                current: Some(i), ..
            } => s(i),
            _ => true,
        }
    }
}

/// The state machine of the persistent-login model.
pub struct Reference;

fn among<T: Clone + std::fmt::Debug + 'static>(
    preferred: Vec<T>,
    any: BoxedStrategy<T>,
) -> BoxedStrategy<T> {
    if preferred.is_empty() {
        any
    } else {
        prop_oneof![3 => proptest::sample::select(preferred), 1 => any].boxed()
    }
}

fn advance() -> BoxedStrategy<i64> {
    // Mostly steps inside and around the grace, sometimes across the
    // session timeouts, the 14-day idle and the 30-day absolute deadline.
    prop_oneof![
        4 => Just(SEC),
        2 => Just(GRACE - 1),
        2 => Just(GRACE),
        2 => Just(GRACE + SEC),
        2 => Just(MIN),
        1 => Just(HOUR),
        1 => Just(DAY),
        1 => Just(7 * DAY),
        1 => Just(FAMILY_IDLE - 1),
        1 => Just(FAMILY_IDLE),
        1 => Just(16 * DAY),
        1 => Just(FAMILY_LIFETIME),
    ]
    .boxed()
}

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        (
            prop_oneof![3 => Just(GRACE), 1 => Just(0)],
            prop_oneof![3 => Just(true), 1 => Just(false)],
        )
            .prop_map(|(grace, revoke)| Model::new(grace, revoke))
            .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        let user = || (0..USERS.len() as u8).boxed();
        let n_sess = state.sessions.len();
        let n_fam = state.families.len();
        let live_sessions: Vec<SessIx> = (0..n_sess).filter(|s| state.session_live(*s)).collect();
        let live_families: Vec<FamIx> = (0..n_fam).filter(|f| state.family_live(*f)).collect();
        let current: Vec<TokIx> = live_families
            .iter()
            .map(|f| state.families[*f].current)
            .collect();
        let prev: Vec<TokIx> = state.families.iter().filter_map(|f| f.prev).collect();
        let owners: Vec<UserIx> = live_sessions
            .iter()
            .map(|s| state.sessions[*s].user)
            .collect();
        let login = (user(), prop_oneof![3 => Just(true), 1 => Just(false)])
            .prop_map(|(user, remember)| Step::Login { user, remember })
            .boxed();
        let mut options: Vec<(u32, BoxedStrategy<Step>)> = vec![
            (4, login),
            (4, advance().prop_map(|ms| Step::Advance { ms }).boxed()),
            (
                1,
                Just(Step::Resume {
                    pick: Pick::Unknown,
                })
                .boxed(),
            ),
            (
                2,
                (
                    among(owners.clone(), user()),
                    proptest::option::of(0..n_sess.max(1)),
                )
                    .prop_map(move |(user, current)| Step::ListDevices {
                        user,
                        current: current.filter(|c| *c < n_sess),
                    })
                    .boxed(),
            ),
            (
                1,
                among(owners.clone(), user())
                    .prop_map(|user| Step::LogoutEverywhere { user })
                    .boxed(),
            ),
        ];
        if n_sess > 0 {
            let sess = among(live_sessions.clone(), (0..n_sess).boxed());
            options.push((
                2,
                (sess.clone(), prop_oneof![2 => Just(false), 1 => Just(true)])
                    .prop_map(|(session, stale)| Step::Remember { session, stale })
                    .boxed(),
            ));
            options.push((
                2,
                sess.clone()
                    .prop_map(|session| Step::Load { session })
                    .boxed(),
            ));
            options.push((
                1,
                sess.clone()
                    .prop_map(|session| Step::Relogin { session })
                    .boxed(),
            ));
            options.push((
                1,
                sess.clone()
                    .prop_map(|session| Step::Logout { session })
                    .boxed(),
            ));
            let sessions = state.sessions.clone();
            options.push((
                1,
                (sess, user(), any::<bool>())
                    .prop_map(move |(s, other, own)| Step::Revoke {
                        by: if own { sessions[s].user } else { other },
                        target: Target::Session(s),
                    })
                    .boxed(),
            ));
        }
        if !state.tokens.is_empty() {
            let n_tok = state.tokens.len();
            let known = prop_oneof![
                4 => among(current.clone(), (0..n_tok).boxed()),
                2 => among(prev, (0..n_tok).boxed()),
                1 => (0..n_tok).boxed(),
            ];
            options.push((
                8,
                known
                    .prop_map(|t| Step::Resume {
                        pick: Pick::Known(t),
                    })
                    .boxed(),
            ));
            options.push((
                1,
                (among(current, (0..n_tok).boxed()), 2usize..=4)
                    .prop_map(|(token, n)| Step::Race { token, n })
                    .boxed(),
            ));
        }
        if n_fam > 0 {
            let fam = among(live_families, (0..n_fam).boxed());
            options.push((
                1,
                fam.clone()
                    .prop_map(|f| Step::Resume {
                        pick: Pick::Forged(f),
                    })
                    .boxed(),
            ));
            let families = state.families.clone();
            options.push((
                2,
                (fam, user(), prop_oneof![2 => Just(true), 1 => Just(false)])
                    .prop_map(move |(f, other, own)| Step::Revoke {
                        by: if own { families[f].user } else { other },
                        target: Target::Family(f),
                    })
                    .boxed(),
            ));
        }
        proptest::strategy::Union::new_weighted(options).boxed()
    }

    fn preconditions(state: &Model, step: &Step) -> bool {
        state.valid(step)
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        state.apply(step);
        state
    }
}

/// Records the reuse events of the manager.
#[derive(Debug, Default)]
struct Reuses(Mutex<Vec<u64>>);

impl EventSink for Reuses {
    fn event(&self, event: &Event) {
        if let Event::PersistentReuse {
            sessions_revoked, ..
        } = event
        {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(*sessions_revoked);
        }
    }
}

impl Reuses {
    fn take(&self) -> Vec<u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A session as the system under test holds it.
struct Held {
    latest: Session,
    first: Session,
    /// Keys the session had before a login rotation: they must stay dead.
    old_keys: Vec<StorageKey>,
}

/// The system under test: the manager, its clock and what it handed out,
/// indexed as the model indexes them.
struct Sut {
    m: SessionManager,
    clock: Arc<ManualClock>,
    base: i64,
    reuses: Arc<Reuses>,
    sessions: Vec<Held>,
    families: Vec<StorageKey>,
    tokens: Vec<PersistentToken>,
    index: BTreeMap<StorageKey, (bool, usize)>,
}

fn unexpected(what: &str, e: Error) -> String {
    format!("{what}: unexpected error {e:?}")
}

fn b64_char(v: u8) -> char {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char::from(ALPHABET[usize::from(v & 63)])
}

fn random_chars(n: usize) -> String {
    use rand::RngCore as _;
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.into_iter().map(b64_char).collect()
}

impl Sut {
    fn new(ctx: &Ctx, model: &Model) -> Self {
        let clock = Arc::new(ManualClock::starting_now());
        let reuses = Arc::new(Reuses::default());
        let ms = |v: i64| Duration::from_millis(v as u64);
        let policy = Policy {
            idle_timeout: ms(SESSION_IDLE),
            absolute_timeout: ms(SESSION_ABS),
            touch_interval: ms(TOUCH_INTERVAL),
            persistent: PersistentPolicy {
                lifetime: ms(FAMILY_LIFETIME),
                idle_timeout: ms(FAMILY_IDLE),
                grace: ms(model.grace),
                revoke_sessions_on_reuse: model.revoke_sessions,
            },
            ..Policy::default()
        };
        let m = SessionManager::builder(ctx.backend.clone())
            .clock(clock.clone())
            .policy(policy)
            .events(reuses.clone())
            .build()
            .expect("a valid policy");
        Sut {
            base: m.now().as_millis(),
            m,
            clock,
            reuses,
            sessions: Vec::new(),
            families: Vec::new(),
            tokens: Vec::new(),
            index: BTreeMap::new(),
        }
    }

    fn rel(&self, t: Timestamp) -> i64 {
        t.as_millis() - self.base
    }

    fn user_ix(&self, user: Option<&str>) -> Result<UserIx, String> {
        user.and_then(|u| USERS.iter().position(|x| *x == u))
            .map(|i| i as UserIx)
            .ok_or_else(|| format!("a session with an unexpected user {user:?}"))
    }

    fn family_ix(&self, key: &StorageKey) -> Result<FamIx, String> {
        match self.index.get(key) {
            Some((true, f)) => Ok(*f),
            _ => Err("a family key the case never issued".into()),
        }
    }

    fn view(&self, s: &Session) -> Result<View, String> {
        Ok(View {
            user: self.user_ix(s.user_id())?,
            auth: s
                .auth_time()
                .map(|t| self.rel(t))
                .ok_or("a logged-in session without auth_time")?,
            remembered: s.remembered(),
            family: s
                .persistent_handle()
                .map(|h| self.family_ix(h.storage_key()))
                .transpose()?,
        })
    }

    fn add_session(&mut self, s: Session) -> SessIx {
        let i = self.sessions.len();
        self.index.insert(s.storage_key(), (false, i));
        self.sessions.push(Held {
            latest: s.clone(),
            first: s,
            old_keys: Vec::new(),
        });
        i
    }

    fn add_family(&mut self, token: PersistentToken) -> FamIx {
        let f = self.families.len();
        self.index.insert(token.family_key(), (true, f));
        self.families.push(token.family_key());
        self.tokens.push(token);
        f
    }

    /// Registers a successor handed out by a resume of `presented`.
    fn successor(
        &mut self,
        presented: &PersistentToken,
        got: PersistentToken,
    ) -> Result<TokIx, String> {
        if got.family_key() != presented.family_key() {
            return Err("the successor is in another family".into());
        }
        if let Some(t) = self.tokens.iter().position(|k| *k == got) {
            return Ok(t);
        }
        self.tokens.push(got);
        Ok(self.tokens.len() - 1)
    }

    fn token_text(&self, pick: Pick) -> String {
        match pick {
            Pick::Known(t) => self.tokens[t].expose_secret().to_owned(),
            Pick::Forged(f) => {
                // The first 22 characters after `p.` carry the 16-byte family
                // id (and 4 bits of the secret); the rest is secret only.
                let text = self
                    .tokens
                    .iter()
                    .find(|t| t.family_key() == self.families[f])
                    .expect("a family has a token")
                    .expose_secret()
                    .to_owned();
                format!("{}{}", &text[..24], random_chars(42))
            }
            Pick::Unknown => format!("p.{}", random_chars(64)),
        }
    }

    async fn resume(&mut self, text: &str) -> Result<Resume, String> {
        let presented = PersistentToken::parse(text).map_err(|e| unexpected("parse", e))?;
        let meta = ClientMeta {
            user_agent: Some("model".into()),
            ..ClientMeta::default()
        };
        let got = self
            .m
            .resume(text, meta)
            .await
            .map_err(|e| unexpected("resume", e))?;
        let reuses = self.reuses.take();
        Ok(match got {
            None => match reuses[..] {
                [] => Resume::Nothing,
                [n] => Resume::Reuse(n),
                _ => return Err(format!("several reuse events for one resume: {reuses:?}")),
            },
            Some(r) => {
                if !reuses.is_empty() {
                    return Err("a reuse event for a successful resume".into());
                }
                let token = self.successor(&presented, r.token)?;
                let view = self.view(&r.session)?;
                let session = self.add_session(r.session);
                Resume::Resumed {
                    joined: r.joined,
                    token,
                    session,
                    view,
                    expires: self.rel(r.expires_at),
                }
            }
        })
    }

    async fn remember(&mut self, s: SessIx, stale: bool) -> Result<Option<(FamIx, i64)>, String> {
        let mut copy = if stale {
            self.sessions[s].first.clone()
        } else {
            self.sessions[s].latest.clone()
        };
        match self.m.remember(&mut copy).await {
            Ok(issued) => {
                if copy.persistent_handle() != Some(issued.handle) {
                    return Err("remember did not link the session to its family".into());
                }
                let expires = self.rel(issued.expires_at);
                let f = self.add_family(issued.token);
                self.sessions[s].latest = copy;
                Ok(Some((f, expires)))
            }
            Err(Error::Conflict) => Ok(None),
            Err(e) => Err(unexpected("remember", e)),
        }
    }

    async fn step(&mut self, step: &Step) -> Result<Answer, String> {
        Ok(match *step {
            Step::Login { user, remember } => {
                let mut s = self
                    .m
                    .create(b"pre-login".to_vec(), ClientMeta::default())
                    .await
                    .map_err(|e| unexpected("create", e))?;
                self.m
                    .rotate(
                        &mut s,
                        RotateReason::Login {
                            user_id: USERS[usize::from(user)].to_owned(),
                        },
                    )
                    .await
                    .map_err(|e| unexpected("login", e))?;
                let i = self.add_session(s);
                let family = if remember {
                    self.remember(i, false).await?
                } else {
                    None
                };
                Answer::LoggedIn(i, family)
            }
            Step::Remember { session, stale } => {
                Answer::Remembered(self.remember(session, stale).await?)
            }
            Step::Resume { pick } => {
                let text = self.token_text(pick);
                Answer::Resume(self.resume(&text).await?)
            }
            Step::Race { token, n } => {
                let presented = self.tokens[token].clone();
                let barrier = Arc::new(tokio::sync::Barrier::new(n));
                let tasks: Vec<_> = (0..n)
                    .map(|_| {
                        let (m, t, barrier) = (self.m.clone(), presented.clone(), barrier.clone());
                        tokio::spawn(async move {
                            barrier.wait().await;
                            m.resume(t.expose_secret(), ClientMeta::default()).await
                        })
                    })
                    .collect();
                let mut served = Vec::new();
                let mut none = 0;
                for task in tasks {
                    match task.await.map_err(|e| format!("racer: {e}"))? {
                        Ok(Some(r)) => served.push(r),
                        Ok(None) => none += 1,
                        Err(e) => return Err(unexpected("racing resume", e)),
                    }
                }
                self.reuses.take();
                // The rotating racer's session first, as the model mints them.
                served.sort_by_key(|r| r.joined);
                let same = served.windows(2).all(|w| w[0].token == w[1].token);
                let rotated = served.iter().filter(|r| !r.joined).count();
                let joined = served.len() - rotated;
                for r in served {
                    self.successor(&presented, r.token)?;
                    self.add_session(r.session);
                }
                Answer::Raced {
                    rotated,
                    joined,
                    none,
                    same,
                }
            }
            Step::Load { session } => {
                let token = self.sessions[session].latest.token().clone();
                match self
                    .m
                    .load(token.expose_secret())
                    .await
                    .map_err(|e| unexpected("load", e))?
                {
                    None => Answer::Loaded(None),
                    Some(s) => {
                        let view = self.view(&s)?;
                        if s.storage_key() != self.sessions[session].latest.storage_key() {
                            return Err("the load answered another session".into());
                        }
                        self.sessions[session].latest = s;
                        Answer::Loaded(Some(view))
                    }
                }
            }
            Step::Relogin { session } => {
                let held = &mut self.sessions[session];
                let mut copy = held.latest.clone();
                let user = copy.user_id().expect("logged in").to_owned();
                match self
                    .m
                    .rotate(&mut copy, RotateReason::Login { user_id: user })
                    .await
                {
                    Ok(()) => {
                        held.old_keys.push(held.latest.storage_key());
                        self.index.insert(copy.storage_key(), (false, session));
                        held.latest = copy;
                        Answer::Rotated(true)
                    }
                    Err(Error::Conflict) => Answer::Rotated(false),
                    Err(e) => return Err(unexpected("login rotation", e)),
                }
            }
            Step::Logout { session } => {
                self.m
                    .logout(&self.sessions[session].latest)
                    .await
                    .map_err(|e| unexpected("logout", e))?;
                Answer::LoggedOut
            }
            Step::LogoutEverywhere { user } => Answer::Count(
                self.m
                    .logout_everywhere(USERS[usize::from(user)])
                    .await
                    .map_err(|e| unexpected("logout_everywhere", e))?,
            ),
            Step::Revoke { by, target } => {
                let key = match target {
                    Target::Session(s) => self.sessions[s].latest.storage_key(),
                    Target::Family(f) => self.families[f],
                };
                let handle = session_store_core::SessionHandle::new(key);
                Answer::Revoked(
                    self.m
                        .revoke(USERS[usize::from(by)], &handle)
                        .await
                        .map_err(|e| unexpected("revoke", e))?,
                )
            }
            Step::ListDevices { user, current } => {
                let current = current.map(|c| self.sessions[c].latest.clone());
                let devices = self
                    .m
                    .list_devices(USERS[usize::from(user)], current.as_ref())
                    .await
                    .map_err(|e| unexpected("list_devices", e))?;
                if devices
                    .windows(2)
                    .any(|w| w[0].created_at > w[1].created_at)
                {
                    return Err(format!("devices not oldest first: {devices:?}"));
                }
                let mut out = Vec::new();
                for d in devices {
                    let (family, i) = *self
                        .index
                        .get(d.handle.storage_key())
                        .ok_or("a device the case never created")?;
                    if family != (d.kind == DeviceKind::PersistentLogin) {
                        return Err(format!("device {i} listed as {:?}", d.kind));
                    }
                    out.push((
                        family,
                        i,
                        d.current,
                        self.rel(d.idle_deadline),
                        self.rel(d.absolute_deadline),
                    ));
                }
                out.sort();
                Answer::Listed(out)
            }
            Step::Advance { ms } => {
                self.clock.advance(Duration::from_millis(ms as u64));
                Answer::Advanced
            }
        })
    }

    /// Loads raw, at the model's instant, every session and family live
    /// before or after the step, and every key a login rotation retired.
    async fn sweep(&self, before: &Model, after: &Model) -> Result<(), String> {
        let now = Timestamp::from_millis(self.base + after.now);
        let load = |key: StorageKey| async move {
            match self.m.backend().load(&key, now).await {
                Ok(Some(Lookup::Session(r))) => Ok(Some((
                    self.rel(r.idle_deadline),
                    self.rel(r.absolute_deadline),
                ))),
                Ok(Some(Lookup::Forwarded(_))) => Err("a forwarder under a session key".to_owned()),
                Ok(None) => Ok(None),
                Err(e) => Err(unexpected("raw load", e)),
            }
        };
        for (i, s) in after.sessions.iter().enumerate() {
            let was = before.sessions.get(i).is_some_and(|b| b.live(before.now));
            let live = s.live(after.now);
            let held = &self.sessions[i];
            if was || live {
                let got = load(held.latest.storage_key()).await?;
                let want = live.then_some((s.idle, s.abs));
                if got != want {
                    return Err(format!(
                        "session {i} (idle, absolute deadline) at rest: {got:?}, the model expected {want:?}"
                    ));
                }
            }
            if was {
                for k in &held.old_keys {
                    if load(*k).await?.is_some() {
                        return Err(format!(
                            "session {i}: a token retired by a login still loads"
                        ));
                    }
                }
            }
        }
        for (i, f) in after.families.iter().enumerate() {
            let was = before.families.get(i).is_some_and(|b| b.live(before.now));
            let live = f.live(after.now);
            if was || live {
                let got = load(self.families[i]).await?;
                let want = live.then_some((f.idle, f.abs));
                if got != want {
                    return Err(format!(
                        "family {i} (idle, absolute deadline) at rest: {got:?}, the model expected {want:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

async fn run_case(ctx: &Ctx, initial: Model, steps: &[Step]) -> Result<(), TestCaseError> {
    ctx.backend
        .delete_all()
        .await
        .map_err(|e| TestCaseError::fail(format!("delete_all before the case: {e:?}")))?;
    let mut sut = Sut::new(ctx, &initial);
    let mut model = initial;
    for (i, step) in steps.iter().enumerate() {
        let fail = |msg: String| {
            TestCaseError::fail(format!(
                "step {i} ({step:?}) at model time {}ms (grace {}ms, reuse revokes sessions: {}): {msg}",
                model.now, model.grace, model.revoke_sessions
            ))
        };
        let observed = sut.step(step).await.map_err(fail)?;
        let mut next = model.clone();
        let expected = next.apply(step);
        if observed != expected {
            return Err(fail(format!(
                "the manager answered {observed:?}, the model expected {expected:?}"
            )));
        }
        sut.sweep(&model, &next).await.map_err(fail)?;
        model = next;
    }
    Ok(())
}

/// Random sequences of persistent-login operations over three users (two
/// of them lookalikes): logins with and without "remember me", remember on
/// current and stale copies, resumes with the current, just-rotated, old,
/// forged and unknown tokens, concurrent resumes, loads, password logins,
/// logout, logout everywhere, revocation by handle (by the owner and by
/// others), device listings and clock steps inside the grace and across the
/// session, 14-day and 30-day deadlines; each answer compared with the
/// reference model, and every family and session loaded raw after each step.
pub async fn model_persistent_sequences(ctx: Ctx) {
    let cases: u32 = match std::env::var(CASES_VAR) {
        Ok(_) => (env_or::<u32>(CASES_VAR, 256) / 4).max(1),
        Err(_) => DEFAULT_CASES,
    };
    let steps: usize = env_or(STEPS_VAR, DEFAULT_STEPS).max(1);
    run_cases(
        "persistent-login model",
        cases,
        steps,
        Reference::sequential_strategy(1..=steps),
        move |handle, (initial, transitions, _)| {
            handle.block_on(run_case(&ctx, initial, &transitions))
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;

    /// The model is a pure function of its steps.
    #[test]
    fn model_is_deterministic() {
        let mut runner = TestRunner::deterministic();
        let strategy = Reference::sequential_strategy(1..=60);
        for _ in 0..200 {
            let (initial, steps, _) = strategy.new_tree(&mut runner).unwrap().current();
            let run = |mut m: Model| {
                let answers: Vec<Answer> = steps.iter().map(|s| m.apply(s)).collect();
                (answers, m)
            };
            assert_eq!(run(initial.clone()), run(initial.clone()));
        }
    }
}
