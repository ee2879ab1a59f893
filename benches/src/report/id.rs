//! Typed result ids: what the benchmarks write as strings (`redis+enc`,
//! `sqlite/backend`, `raw-pg-conn-SELECT`, operation `backend_load`), parsed
//! in one place.
//!
//! Id shapes in use:
//!
//! | shape | meaning |
//! | --- | --- |
//! | `<target>` | a store through the [`SessionManager`](session_store_core::SessionManager) (or, in an operation whose name starts with `backend_`, the backend itself) |
//! | `<target>+enc` | the same store under [`Encrypted`](session_store_core::Encrypted) |
//! | `<target>/backend` | concurrency runs only: the backend called directly, no manager |
//! | `raw-…` | a raw client baseline, one of [`Baseline::ALL`] |
//!
//! `<target>` is a [`Target::id`]. Anything else is an [`UnknownId`] error.

use std::cmp::Ordering;
use std::fmt;

use crate::{Shape, Target};

/// An id that is none of the shapes the report knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownId {
    /// What kind of id it was (`result id`, `operation`).
    pub kind: &'static str,
    /// The id as written in the results.
    pub id: String,
}

impl fmt::Display for UnknownId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            "operation" => write!(
                f,
                "unknown operation {:?}: expected one of {}",
                self.id,
                Op::ALL.map(Op::id).join(", ")
            ),
            "sequence" => write!(
                f,
                "unknown sequence {:?}: expected one of {}",
                self.id,
                Sequence::ALL.map(Sequence::id).join(", ")
            ),
            "request path" => write!(
                f,
                "unknown request path {:?}: expected `<target>`, `<target>/tower`, \
                 `<target>/actix` (target one of {}), `{}` or a peer ({})",
                self.id,
                Target::ALL.map(Target::id).join(", "),
                RequestPath::TOWER_TYPED,
                Peer::ALL.map(Peer::id).join(", ")
            ),
            "runtime shape" => write!(
                f,
                "unknown runtime shape {:?}: expected one of {}",
                self.id,
                Shape::ALL.map(Shape::id).join(", ")
            ),
            "http path" => write!(
                f,
                "unknown HTTP path {:?}: expected one of {}",
                self.id,
                super::http::HttpPath::ALL
                    .map(super::http::HttpPath::id)
                    .join(", ")
            ),
            "http handler" => write!(
                f,
                "unknown HTTP handler {:?}: expected one of {}",
                self.id,
                super::http::HttpHandler::ALL
                    .map(super::http::HttpHandler::id)
                    .join(", ")
            ),
            "http backend" => write!(
                f,
                "unknown HTTP backend {:?}: expected one of {}",
                self.id,
                Target::ALL.map(Target::id).join(", ")
            ),
            kind => write!(
                f,
                "unknown {kind} {:?}: expected `<target>`, `<target>+enc`, `<target>/backend` \
                 (target one of {}) or a raw baseline ({})",
                self.id,
                Target::ALL.map(Target::id).join(", "),
                Baseline::ALL.map(Baseline::id).join(", ")
            ),
        }
    }
}

impl std::error::Error for UnknownId {}

/// Whether an operation reads or writes (which raw baseline it is compared with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Compared with the raw primary-key read.
    Read,
    /// Compared with the raw write.
    Write,
}

/// How the baseline reaches PostgreSQL or MySQL (the other clients have one way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// One dedicated connection: the physical limit (single-task runs).
    Dedicated,
    /// A pool configured like the store's (concurrency runs).
    Pool,
}

/// A measured operation, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `SessionBackend::load`, no manager (`backend_load`; also the read baselines' group).
    BackendLoad,
    /// `SessionBackend::save`, no manager (`backend_save`; also the write baselines' group).
    BackendSave,
    /// `create`.
    Create,
    /// `load`, touch not due.
    Load,
    /// `load_touch`.
    LoadTouch,
    /// `save`.
    Save,
    /// `rotate` of a logged-in session.
    Rotate,
    /// `delete`.
    Delete,
    /// `list_user` (10 sessions).
    ListUser,
    /// `delete_user` (10 sessions).
    DeleteUser,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 10] = [
        Op::BackendLoad,
        Op::BackendSave,
        Op::Create,
        Op::Load,
        Op::LoadTouch,
        Op::Save,
        Op::Rotate,
        Op::Delete,
        Op::ListUser,
        Op::DeleteUser,
    ];

    /// The name the benchmarks write.
    pub fn id(self) -> &'static str {
        match self {
            Op::BackendLoad => "backend_load",
            Op::BackendSave => "backend_save",
            Op::Create => "create",
            Op::Load => "load",
            Op::LoadTouch => "load_touch",
            Op::Save => "save",
            Op::Rotate => "rotate",
            Op::Delete => "delete",
            Op::ListUser => "list_user",
            Op::DeleteUser => "delete_user",
        }
    }

    /// The section title in the report.
    pub fn title(self) -> &'static str {
        match self {
            Op::BackendLoad => "backend load (`SessionBackend::load`, no manager)",
            Op::BackendSave => "backend save (`SessionBackend::save`, no manager)",
            Op::Create => "create",
            Op::Load => "load (touch not due)",
            Op::LoadTouch => "load with touch",
            Op::Save => "save",
            Op::Rotate => "rotate (privilege change, logged-in session)",
            Op::Delete => "delete (logout)",
            Op::ListUser => "list a user's sessions (10)",
            Op::DeleteUser => "delete a user's sessions (10)",
        }
    }

    /// Parses an operation name.
    ///
    /// # Errors
    /// [`UnknownId`] for a name not in [`Op::ALL`].
    pub fn parse(s: &str) -> Result<Op, UnknownId> {
        Op::ALL
            .into_iter()
            .find(|op| op.id() == s)
            .ok_or_else(|| UnknownId {
                kind: "operation",
                id: s.to_owned(),
            })
    }

    /// Reads are compared with the raw read, everything else with the raw write.
    pub fn access(self) -> Access {
        match self {
            Op::BackendLoad | Op::Load | Op::LoadTouch | Op::ListUser => Access::Read,
            _ => Access::Write,
        }
    }

    /// The group the raw baselines of this operation's kind are measured in.
    pub fn baseline_group(self) -> Op {
        match self.access() {
            Access::Read => Op::BackendLoad,
            Access::Write => Op::BackendSave,
        }
    }

    /// The backend-level counterpart of a manager operation (`load` →
    /// `backend_load`, `save` → `backend_save`); others are unchanged.
    pub fn backend_level(self) -> Op {
        match self {
            Op::Load => Op::BackendLoad,
            Op::Save => Op::BackendSave,
            other => other,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A raw client baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Baseline {
    /// Redis `GET` on a `ConnectionManager`.
    RedisGet,
    /// Redis `SET PX`.
    RedisSetPx,
    /// Redis Cluster `GET`.
    RedisClusterGet,
    /// Redis Cluster `SET PX`.
    RedisClusterSetPx,
    /// PostgreSQL primary-key `SELECT` on a dedicated connection.
    PgConnSelect,
    /// PostgreSQL upsert on a dedicated connection.
    PgConnUpsert,
    /// PostgreSQL primary-key `SELECT` through a pool.
    PgPoolSelect,
    /// PostgreSQL upsert through a pool.
    PgPoolUpsert,
    /// MySQL primary-key `SELECT` on a dedicated connection.
    MySqlConnSelect,
    /// MySQL upsert (`ON DUPLICATE KEY UPDATE`) on a dedicated connection.
    MySqlConnUpsert,
    /// MySQL primary-key `SELECT` through a pool.
    MySqlPoolSelect,
    /// MySQL upsert through a pool.
    MySqlPoolUpsert,
    /// rusqlite primary-key `SELECT` on the calling thread.
    RusqliteSelect,
    /// rusqlite two-column upsert on the calling thread.
    RusqliteUpsert,
    /// The SQLite store's own compare-and-swap `UPDATE`, run by rusqlite.
    RusqliteStoreUpdate,
    /// sled tree `get`.
    SledGet,
    /// sled tree `insert` (no flush).
    SledInsert,
    /// One AES-256-GCM encryption and decryption of the payload.
    AesGcmEncDec,
}

impl Baseline {
    /// Every baseline.
    pub const ALL: [Baseline; 18] = [
        Baseline::RedisGet,
        Baseline::RedisSetPx,
        Baseline::RedisClusterGet,
        Baseline::RedisClusterSetPx,
        Baseline::PgConnSelect,
        Baseline::PgConnUpsert,
        Baseline::PgPoolSelect,
        Baseline::PgPoolUpsert,
        Baseline::MySqlConnSelect,
        Baseline::MySqlConnUpsert,
        Baseline::MySqlPoolSelect,
        Baseline::MySqlPoolUpsert,
        Baseline::RusqliteSelect,
        Baseline::RusqliteUpsert,
        Baseline::RusqliteStoreUpdate,
        Baseline::SledGet,
        Baseline::SledInsert,
        Baseline::AesGcmEncDec,
    ];

    /// The id the benchmarks write.
    pub fn id(self) -> &'static str {
        match self {
            Baseline::RedisGet => "raw-redis-GET",
            Baseline::RedisSetPx => "raw-redis-SET-PX",
            Baseline::RedisClusterGet => "raw-redis-cluster-GET",
            Baseline::RedisClusterSetPx => "raw-redis-cluster-SET-PX",
            Baseline::PgConnSelect => "raw-pg-conn-SELECT",
            Baseline::PgConnUpsert => "raw-pg-conn-upsert",
            Baseline::PgPoolSelect => "raw-pg-pool-SELECT",
            Baseline::PgPoolUpsert => "raw-pg-pool-upsert",
            Baseline::MySqlConnSelect => "raw-mysql-conn-SELECT",
            Baseline::MySqlConnUpsert => "raw-mysql-conn-upsert",
            Baseline::MySqlPoolSelect => "raw-mysql-pool-SELECT",
            Baseline::MySqlPoolUpsert => "raw-mysql-pool-upsert",
            Baseline::RusqliteSelect => "raw-rusqlite-SELECT",
            Baseline::RusqliteUpsert => "raw-rusqlite-upsert",
            Baseline::RusqliteStoreUpdate => "raw-rusqlite-store-UPDATE",
            Baseline::SledGet => "raw-sled-get",
            Baseline::SledInsert => "raw-sled-insert",
            Baseline::AesGcmEncDec => "raw-aes-gcm-enc+dec",
        }
    }

    /// The raw client doing what `target` does for an operation of kind
    /// `access`; `None` for the in-memory store, which has no client.
    pub fn of(target: Target, access: Access, connection: Connection) -> Option<Baseline> {
        use Access::{Read, Write};
        Some(match (target, access, connection) {
            (Target::Memory, ..) => return None,
            (Target::Sled | Target::SledPeriodic, Read, _) => Baseline::SledGet,
            (Target::Sled | Target::SledPeriodic, Write, _) => Baseline::SledInsert,
            (Target::Sqlite, Read, _) => Baseline::RusqliteSelect,
            (Target::Sqlite, Write, _) => Baseline::RusqliteUpsert,
            (Target::Postgres, Read, Connection::Dedicated) => Baseline::PgConnSelect,
            (Target::Postgres, Write, Connection::Dedicated) => Baseline::PgConnUpsert,
            (Target::Postgres, Read, Connection::Pool) => Baseline::PgPoolSelect,
            (Target::Postgres, Write, Connection::Pool) => Baseline::PgPoolUpsert,
            (Target::Mysql, Read, Connection::Dedicated) => Baseline::MySqlConnSelect,
            (Target::Mysql, Write, Connection::Dedicated) => Baseline::MySqlConnUpsert,
            (Target::Mysql, Read, Connection::Pool) => Baseline::MySqlPoolSelect,
            (Target::Mysql, Write, Connection::Pool) => Baseline::MySqlPoolUpsert,
            (Target::Redis, Read, _) => Baseline::RedisGet,
            (Target::Redis, Write, _) => Baseline::RedisSetPx,
            (Target::RedisCluster, Read, _) => Baseline::RedisClusterGet,
            (Target::RedisCluster, Write, _) => Baseline::RedisClusterSetPx,
        })
    }
}

// Baselines are listed alphabetically by id in the report.
impl Ord for Baseline {
    fn cmp(&self, other: &Self) -> Ordering {
        self.id().cmp(other.id())
    }
}

impl PartialOrd for Baseline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A request-shaped sequence (`benches/requests.rs`), in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sequence {
    /// A create alone (`create`; the tower-sessions paths and peers only).
    Create,
    /// A load alone (`load`; the tower-sessions paths and peers only).
    Load,
    /// A load, then a save of changed data (`load_save`).
    LoadSave,
    /// A load, then a rotation (`load_rotate`; through the adapters, the
    /// framework's delete and create).
    LoadRotate,
    /// A load, then an activity touch (`load_touch`).
    LoadTouch,
}

impl Sequence {
    /// Every sequence, in report order.
    pub const ALL: [Sequence; 5] = [
        Sequence::Create,
        Sequence::Load,
        Sequence::LoadSave,
        Sequence::LoadRotate,
        Sequence::LoadTouch,
    ];

    /// The sequences run through the tower-sessions trait (our adapter and
    /// the peers), in report order.
    pub const TOWER: [Sequence; 4] = [
        Sequence::Create,
        Sequence::Load,
        Sequence::LoadSave,
        Sequence::LoadRotate,
    ];

    /// The name the benchmark writes.
    pub fn id(self) -> &'static str {
        match self {
            Sequence::Create => "create",
            Sequence::Load => "load",
            Sequence::LoadSave => "load_save",
            Sequence::LoadRotate => "load_rotate",
            Sequence::LoadTouch => "load_touch",
        }
    }

    /// The section title in the report.
    pub fn title(self) -> &'static str {
        match self {
            Sequence::Create => "create",
            Sequence::Load => "load",
            Sequence::LoadSave => "load → save",
            Sequence::LoadRotate => "load → rotate (adapters: delete + create)",
            Sequence::LoadTouch => "load → touch",
        }
    }

    /// Parses a sequence name.
    ///
    /// # Errors
    /// [`UnknownId`] for a name not in [`Sequence::ALL`].
    pub fn parse(s: &str) -> Result<Sequence, UnknownId> {
        Sequence::ALL
            .into_iter()
            .find(|q| q.id() == s)
            .ok_or_else(|| UnknownId {
                kind: "sequence",
                id: s.to_owned(),
            })
    }
}

/// Parses a runtime shape name.
///
/// # Errors
/// [`UnknownId`] for a name not in [`Shape::ALL`].
pub fn parse_shape(s: &str) -> Result<Shape, UnknownId> {
    Shape::parse(s).ok_or_else(|| UnknownId {
        kind: "runtime shape",
        id: s.to_owned(),
    })
}

/// A peer store measured through the same framework trait as our adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// tower-sessions' `MemoryStore` (`peer-tower-memory`).
    TowerMemory,
    /// tower-sessions-moka-store's `MokaStore` (`peer-tower-moka`).
    TowerMoka,
    /// tower-sessions-redis-store's `RedisStore` on one fred client
    /// (`peer-tower-redis`), same server as ours.
    TowerRedis,
}

impl Peer {
    /// Every peer.
    pub const ALL: [Peer; 3] = [Peer::TowerMemory, Peer::TowerMoka, Peer::TowerRedis];

    /// The id the benchmark writes.
    pub fn id(self) -> &'static str {
        match self {
            Peer::TowerMemory => "peer-tower-memory",
            Peer::TowerMoka => "peer-tower-moka",
            Peer::TowerRedis => "peer-tower-redis",
        }
    }

    /// Our path it is compared with: the tower-sessions adapter over the
    /// same kind of store (in-memory, or the same Redis server).
    pub fn ours(self) -> RequestPath {
        match self {
            Peer::TowerMemory | Peer::TowerMoka => RequestPath::Tower(Target::Memory),
            Peer::TowerRedis => RequestPath::Tower(Target::Redis),
        }
    }
}

/// A request sequence done without any store, as the baseline of a target's
/// manager path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RawPath {
    /// The SQLite store's own `load` SELECT and common `save` UPDATE, run by
    /// rusqlite on the calling thread (one connection) on the SQLite
    /// fixture's database and table (`raw-rusqlite`).
    Rusqlite,
}

impl RawPath {
    /// Every raw path.
    pub const ALL: [RawPath; 1] = [RawPath::Rusqlite];

    /// The id the benchmark writes.
    pub fn id(self) -> &'static str {
        match self {
            RawPath::Rusqlite => "raw-rusqlite",
        }
    }

    /// The target whose manager path it is the baseline of.
    pub fn target(self) -> Target {
        match self {
            RawPath::Rusqlite => Target::Sqlite,
        }
    }
}

/// How a request sequence reached the store. Ordered as the report lists
/// them: per target the manager, then the adapters; peers, then raw
/// baselines last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestPath {
    /// Through `SessionManager` (`<target>`).
    Manager(Target),
    /// Through the tower-sessions adapter (`<target>/tower`).
    Tower(Target),
    /// Through the tower-sessions adapter's typed in-memory path,
    /// `TowerSessionStore::in_memory` (`memory-typed/tower`).
    TowerTyped,
    /// Through the actix-session adapter (`<target>/actix`).
    Actix(Target),
    /// A peer store.
    Peer(Peer),
    /// A raw baseline (no store).
    Raw(RawPath),
}

impl RequestPath {
    /// The id of [`RequestPath::TowerTyped`].
    pub const TOWER_TYPED: &'static str = "memory-typed/tower";

    /// Parses a path id as the benchmark writes it.
    ///
    /// # Errors
    /// [`UnknownId`] for any other shape.
    pub fn parse(s: &str) -> Result<RequestPath, UnknownId> {
        let unknown = || UnknownId {
            kind: "request path",
            id: s.to_owned(),
        };
        if let Some(peer) = Peer::ALL.into_iter().find(|p| p.id() == s) {
            return Ok(RequestPath::Peer(peer));
        }
        if let Some(raw) = RawPath::ALL.into_iter().find(|p| p.id() == s) {
            return Ok(RequestPath::Raw(raw));
        }
        if s == Self::TOWER_TYPED {
            return Ok(RequestPath::TowerTyped);
        }
        let (name, make): (&str, fn(Target) -> RequestPath) =
            if let Some(name) = s.strip_suffix("/tower") {
                (name, RequestPath::Tower)
            } else if let Some(name) = s.strip_suffix("/actix") {
                (name, RequestPath::Actix)
            } else {
                (s, RequestPath::Manager)
            };
        Target::ALL
            .into_iter()
            .find(|t| t.id() == name)
            .map(make)
            .ok_or_else(unknown)
    }
}

impl fmt::Display for RequestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestPath::Manager(t) => write!(f, "{} (manager)", t.id()),
            RequestPath::Tower(t) => write!(f, "{} (tower-sessions adapter)", t.id()),
            RequestPath::TowerTyped => f.write_str("memory-typed (tower-sessions adapter)"),
            RequestPath::Actix(t) => write!(f, "{} (actix-session adapter)", t.id()),
            RequestPath::Peer(p) => f.write_str(p.id()),
            RequestPath::Raw(p) => f.write_str(p.id()),
        }
    }
}

/// Whether a store result went through the manager or called the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Through the `SessionManager`, or named by the operation (`backend_load`).
    Manager,
    /// The backend called directly (id suffix `/backend`).
    Backend,
}

/// One measured store: a target, plain or encrypted, at a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Store {
    /// The backend.
    pub target: Target,
    /// Under the encryption wrapper (`+enc`).
    pub encrypted: bool,
    /// `/backend`: called without the manager.
    pub level: Level,
}

impl Store {
    /// The plain store of `target`, through the manager.
    pub fn plain(target: Target) -> Self {
        Store {
            target,
            encrypted: false,
            level: Level::Manager,
        }
    }

    /// The same store called directly (`/backend`).
    pub fn direct(self) -> Self {
        Store {
            level: Level::Backend,
            ..self
        }
    }

    /// The same store under the encryption wrapper (`+enc`).
    pub fn encrypted(self) -> Self {
        Store {
            encrypted: true,
            ..self
        }
    }
}

/// What one result measured: one of the stores or a raw baseline. Ordered
/// as the report lists them: stores in [`Target::ALL`] order (plain before
/// `+enc`, manager before `/backend`), then baselines by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResultId {
    /// A session store.
    Store(Store),
    /// A raw client baseline.
    Raw(Baseline),
}

impl ResultId {
    /// Parses an id as the benchmarks write it.
    ///
    /// # Errors
    /// [`UnknownId`] for any other shape (see the module docs).
    pub fn parse(s: &str) -> Result<ResultId, UnknownId> {
        let unknown = || UnknownId {
            kind: "result id",
            id: s.to_owned(),
        };
        if s.starts_with("raw-") {
            return Baseline::ALL
                .into_iter()
                .find(|b| b.id() == s)
                .map(ResultId::Raw)
                .ok_or_else(unknown);
        }
        let (rest, level) = match s.strip_suffix("/backend") {
            Some(rest) => (rest, Level::Backend),
            None => (s, Level::Manager),
        };
        let (name, encrypted) = match rest.strip_suffix("+enc") {
            Some(name) => (name, true),
            None => (rest, false),
        };
        let target = Target::ALL
            .into_iter()
            .find(|t| t.id() == name)
            .ok_or_else(unknown)?;
        Ok(ResultId::Store(Store {
            target,
            encrypted,
            level,
        }))
    }

    /// The store, if this is one.
    pub fn store(self) -> Option<Store> {
        match self {
            ResultId::Store(s) => Some(s),
            ResultId::Raw(_) => None,
        }
    }

    /// Whether this is a raw baseline.
    pub fn is_raw(self) -> bool {
        matches!(self, ResultId::Raw(_))
    }
}

impl From<Store> for ResultId {
    fn from(s: Store) -> Self {
        ResultId::Store(s)
    }
}

impl From<Baseline> for ResultId {
    fn from(b: Baseline) -> Self {
        ResultId::Raw(b)
    }
}

impl From<Target> for ResultId {
    fn from(t: Target) -> Self {
        ResultId::Store(Store::plain(t))
    }
}

impl fmt::Display for ResultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResultId::Raw(b) => f.write_str(b.id()),
            ResultId::Store(s) => {
                f.write_str(s.target.id())?;
                if s.encrypted {
                    f.write_str("+enc")?;
                }
                if s.level == Level::Backend {
                    f.write_str("/backend")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(s: &str) -> Store {
        ResultId::parse(s).unwrap().store().unwrap()
    }

    #[test]
    fn the_typed_tower_path_parses_and_sorts_after_the_adapter_paths() {
        assert_eq!(
            RequestPath::parse("memory-typed/tower"),
            Ok(RequestPath::TowerTyped)
        );
        assert_eq!(
            RequestPath::TowerTyped.to_string(),
            "memory-typed (tower-sessions adapter)"
        );
        // Not a target: no manager or actix path of that name.
        assert!(RequestPath::parse("memory-typed").is_err());
        assert!(RequestPath::parse("memory-typed/actix").is_err());
        assert!(RequestPath::Tower(Target::Memory) < RequestPath::TowerTyped);
        assert!(RequestPath::TowerTyped < RequestPath::Actix(Target::Memory));
        let err = RequestPath::parse("nope").unwrap_err().to_string();
        assert!(err.contains("memory-typed/tower"), "{err}");
    }

    #[test]
    fn every_target_parses_plain_encrypted_and_direct() {
        for t in Target::ALL {
            let plain = t.id().to_owned();
            assert_eq!(store(&plain), Store::plain(t));
            assert_eq!(store(&format!("{plain}+enc")), Store::plain(t).encrypted());
            assert_eq!(store(&format!("{plain}/backend")), Store::plain(t).direct());
        }
    }

    #[test]
    fn suffixes_are_not_part_of_the_target_name() {
        // `sled-periodic` and `redis-cluster` contain other targets' names.
        assert_eq!(store("sled-periodic").target, Target::SledPeriodic);
        assert_eq!(store("redis-cluster+enc").target, Target::RedisCluster);
        assert_eq!(
            store("redis-cluster/backend"),
            Store::plain(Target::RedisCluster).direct()
        );
    }

    #[test]
    fn every_baseline_parses_including_the_one_with_a_plus() {
        for b in Baseline::ALL {
            assert_eq!(ResultId::parse(b.id()), Ok(ResultId::Raw(b)));
        }
        // Not the `+enc` suffix: a baseline whose id ends in `+dec`.
        assert_eq!(
            ResultId::parse("raw-aes-gcm-enc+dec"),
            Ok(ResultId::Raw(Baseline::AesGcmEncDec))
        );
    }

    #[test]
    fn display_writes_what_parse_reads() {
        let mut ids: Vec<ResultId> = Baseline::ALL.map(ResultId::Raw).to_vec();
        for t in Target::ALL {
            let s = Store::plain(t);
            ids.extend([s, s.encrypted(), s.direct(), s.encrypted().direct()].map(ResultId::from));
        }
        for id in ids {
            assert_eq!(ResultId::parse(&id.to_string()), Ok(id), "{id}");
        }
    }

    #[test]
    fn unknown_shapes_are_errors_that_list_the_known_ones() {
        for bad in [
            "",
            "mongodb",
            "redis+gzip",
            "redis/manager",
            "raw-redis-INCR",
            "raw-redis",
            "raw-mysql-SELECT",
            "/backend",
            "redis/backend+enc",
        ] {
            let e = ResultId::parse(bad).unwrap_err();
            assert_eq!(e.id, bad);
            let msg = e.to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert!(msg.contains("`<target>+enc`"), "{msg}");
            assert!(
                msg.contains("redis-cluster") && msg.contains("raw-sled-get"),
                "{msg}"
            );
        }
        let e = Op::parse("backend_touch").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown operation \"backend_touch\": expected one of backend_load, backend_save, \
             create, load, load_touch, save, rotate, delete, list_user, delete_user"
        );
    }

    #[test]
    fn every_raw_id_the_benchmarks_write_parses() {
        // Literal ids in the bench sources; `raw-redis` and `raw-redis-cluster`
        // there are prefixes completed with `-GET` / `-SET-PX`.
        for src in [
            include_str!("../../benches/ops.rs"),
            include_str!("../../benches/load.rs"),
        ] {
            for lit in src.split('"').skip(1).step_by(2) {
                if !lit.starts_with("raw-") {
                    continue;
                }
                let ok = ResultId::parse(lit).is_ok()
                    || ["-GET", "-SET-PX"]
                        .iter()
                        .all(|s| ResultId::parse(&format!("{lit}{s}")).is_ok());
                assert!(ok, "benchmark id {lit:?} does not parse");
            }
        }
    }

    #[test]
    fn every_operation_parses_and_knows_its_baseline_group() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.id()), Ok(op));
        }
        assert_eq!(Op::ListUser.baseline_group(), Op::BackendLoad);
        assert_eq!(Op::Rotate.baseline_group(), Op::BackendSave);
        assert_eq!(Op::Load.backend_level(), Op::BackendLoad);
        assert_eq!(Op::Create.backend_level(), Op::Create);
    }

    #[test]
    fn ids_sort_in_report_order() {
        let mut ids: Vec<ResultId> = [
            "raw-sled-get",
            "redis/backend",
            "raw-aes-gcm-enc+dec",
            "sled+enc",
            "redis",
            "memory",
            "sled",
            "raw-pg-conn-SELECT",
            "mysql+enc",
            "postgres",
            "raw-mysql-pool-upsert",
        ]
        .iter()
        .map(|s| ResultId::parse(s).unwrap())
        .collect();
        ids.sort();
        let names: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "memory",
                "sled",
                "sled+enc",
                "postgres",
                "mysql+enc",
                "redis",
                "redis/backend",
                "raw-aes-gcm-enc+dec",
                "raw-mysql-pool-upsert",
                "raw-pg-conn-SELECT",
                "raw-sled-get",
            ]
        );
    }

    #[test]
    fn baselines_follow_the_target_and_the_connection() {
        use Access::{Read, Write};
        use Connection::{Dedicated, Pool};
        assert_eq!(Baseline::of(Target::Memory, Read, Dedicated), None);
        assert_eq!(
            Baseline::of(Target::SledPeriodic, Write, Dedicated),
            Some(Baseline::SledInsert)
        );
        assert_eq!(
            Baseline::of(Target::Postgres, Read, Dedicated),
            Some(Baseline::PgConnSelect)
        );
        assert_eq!(
            Baseline::of(Target::Postgres, Write, Pool),
            Some(Baseline::PgPoolUpsert)
        );
        assert_eq!(
            Baseline::of(Target::Redis, Write, Pool),
            Some(Baseline::RedisSetPx)
        );
        assert_eq!(
            Baseline::of(Target::Mysql, Read, Dedicated),
            Some(Baseline::MySqlConnSelect)
        );
        assert_eq!(
            Baseline::of(Target::Mysql, Write, Dedicated),
            Some(Baseline::MySqlConnUpsert)
        );
        assert_eq!(
            Baseline::of(Target::Mysql, Read, Pool),
            Some(Baseline::MySqlPoolSelect)
        );
        assert_eq!(
            Baseline::of(Target::Mysql, Write, Pool),
            Some(Baseline::MySqlPoolUpsert)
        );
    }
}
