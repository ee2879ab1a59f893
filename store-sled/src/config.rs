//! Configuration: a validating builder and `from_env()`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use session_store_core::{Error, Result};

use crate::schema::validate_prefix;
use crate::store::{SledDb, SledStore};

/// The tree-name prefix used when none is configured.
pub const DEFAULT_TREE_PREFIX: &str = "session_store";

/// The default page cache size: 64 MiB (sled's own default is 1 GiB, far more
/// than session records need).
pub const DEFAULT_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;

/// When writes reach the disk.
///
/// # What sled 0.34.7 really does (read in its source)
/// - `Tree::flush`, `Db::flush` and `flush_async` all end in the same
///   `pagecache::iobuf::flush`: they write the pending log buffers with
///   `pwrite` and then, on Linux, call `sync_file_range(WAIT_BEFORE | WRITE |
///   WAIT_AFTER)` on the written range. `flush_async` only runs that same
///   function on sled's thread pool. `sync_file_range` pushes the pages to the
///   device but neither commits file metadata nor flushes the device's
///   volatile write cache, so **no user-facing sled flush is an fsync**.
/// - Only sled's background flusher (`flush_every_ms`) calls
///   `File::sync_all` (a real `fsync`) on the log file after each round, and
///   blob files (values over a quarter of a segment, 128 KiB by default) are
///   written without any sync.
///
/// So [`Durability::EveryWrite`] does what sled does not: after each write's
/// transaction it calls `Db::flush` and then `fdatasync`s the log file (`db`)
/// itself, plus any blob files, before the operation returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every write is on stable storage before it is acknowledged: `Db::flush`
    /// followed by `fdatasync` of sled's log file (and of blob files), run on
    /// the blocking thread pool, never on a runtime worker. Costs one device
    /// cache flush per write (milliseconds on most disks). The default, since a
    /// revoked session must not come back after a power cut.
    #[default]
    EveryWrite,
    /// Writes are acknowledged once in sled's memory; sled's background
    /// flusher (`flush_every_ms`) writes and `fsync`s them at this interval. A
    /// crash loses at most about one interval of writes, including
    /// deletions (a revoked session could reappear until it expires).
    ///
    /// # Back-pressure (a sled 0.34.7 deadlock avoided)
    /// sled itself has none: writes that outpace the disk queue I/O-buffer
    /// writes (`IoBufs::write_to_log`) on sled's global thread pool. When
    /// rewrites or deletions then free the segments at the end of the log,
    /// sled queues a file truncation on the same pool, and the next writer
    /// that needs a segment waits for it in `SegmentAccountant::bump_tip`
    /// while holding the segment-accountant lock, which every queued log
    /// write needs: with the pool's threads all blocked on that lock, the
    /// truncation never runs and every writer hangs (found by the benchmarks;
    /// reproduced by the test `periodic_mode_sustained_rewrites_and_clears_do_not_hang`
    /// in two runs of three without the back-pressure). So in this mode a
    /// writer runs `Db::flush` (no `fdatasync`), waiting for sled's queued
    /// log writes, once about 256 KiB were written since the last flush, and
    /// `delete_all` and cleanup do the same between their batches: at most
    /// one or two log writes are ever queued.
    Periodic(Duration),
}

/// Configuration of a [`SledStore`] (and of the [`SledDb`] it opens).
///
/// ```no_run
/// # async fn demo() -> session_store_core::Result<()> {
/// use std::time::Duration;
/// use session_store_sled::{Durability, SledConfig};
///
/// let store = SledConfig::new("/var/lib/myapp/sessions")
///     .durability(Durability::Periodic(Duration::from_millis(200)))
///     .cache_capacity(32 * 1024 * 1024)
///     .tree_prefix("myapp")
///     .open()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledConfig {
    pub(crate) path: Option<PathBuf>,
    pub(crate) durability: Durability,
    pub(crate) cache_capacity: u64,
    pub(crate) temporary: bool,
    pub(crate) tree_prefix: String,
}

impl SledConfig {
    /// A configuration for the database directory `path` (created if missing),
    /// with [`Durability::EveryWrite`], a 64 MiB cache and the tree prefix
    /// [`DEFAULT_TREE_PREFIX`].
    pub fn new(path: impl AsRef<Path>) -> Self {
        SledConfig {
            path: Some(path.as_ref().to_path_buf()),
            temporary: false,
            ..Self::temporary_db()
        }
    }

    /// A temporary database: in a fresh directory chosen by sled (shared
    /// memory on Linux) unless [`SledConfig::path`] is set, and deleted when
    /// the last handle is dropped. Nothing is synced to disk whatever the
    /// [`Durability`]. For tests.
    pub fn temporary_db() -> Self {
        SledConfig {
            path: None,
            durability: Durability::EveryWrite,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            temporary: true,
            tree_prefix: DEFAULT_TREE_PREFIX.to_owned(),
        }
    }

    /// Sets the database directory.
    pub fn path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Sets the flush policy (default [`Durability::EveryWrite`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets sled's page cache size in bytes (default [`DEFAULT_CACHE_CAPACITY`]).
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// Whether the database is deleted when the last handle drops (default
    /// false for [`SledConfig::new`]). A temporary database at a path that is
    /// not new or empty is refused on open, so an existing database is never
    /// deleted by mistake.
    pub fn temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// Sets the tree-name prefix, so that several stores can share one sled
    /// database: 1 to 48 characters of `[A-Za-z0-9_-]`, starting with a letter
    /// or digit. Checked by [`SledConfig::validate`].
    pub fn tree_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.tree_prefix = prefix.into();
        self
    }

    /// The configured flush policy.
    pub fn get_durability(&self) -> Durability {
        self.durability
    }

    /// The configured tree prefix.
    pub fn get_tree_prefix(&self) -> &str {
        &self.tree_prefix
    }

    /// Checks the configuration without touching the disk.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing path on a non-temporary database, an
    /// invalid tree prefix, a zero cache, or a periodic interval of zero or
    /// over one hour.
    pub fn validate(&self) -> Result<()> {
        validate_prefix(&self.tree_prefix)?;
        if self.path.is_none() && !self.temporary {
            return Err(Error::Config(
                "sled store: a path is required unless the database is temporary".into(),
            ));
        }
        if self.cache_capacity == 0 {
            return Err(Error::Config(
                "sled store: cache capacity must be positive".into(),
            ));
        }
        if let Durability::Periodic(every) = self.durability {
            if every.is_zero() || every > Duration::from_secs(3600) {
                return Err(Error::Config(format!(
                    "sled store: periodic flush interval {every:?} must be between 1 ms and 1 hour"
                )));
            }
        }
        Ok(())
    }

    /// Opens (or creates) the database and the store in it. Shorthand for
    /// [`SledConfig::open_db`] then [`SledDb::store`] with the configured prefix.
    ///
    /// # Errors
    /// See [`SledConfig::open_db`] and [`SledDb::store`].
    pub fn open(&self) -> Result<SledStore> {
        self.open_db()?.store(&self.tree_prefix)
    }

    /// Opens (or creates) the sled database, to share it between several
    /// stores with different prefixes ([`SledDb::store`]). Blocking: call it at
    /// start-up or on a blocking thread.
    ///
    /// # Errors
    /// - [`Error::Config`] for an invalid configuration, a path that exists
    ///   but is not a directory, or a non-empty directory that is not a sled
    ///   database. Nothing on disk is modified in these cases.
    /// - [`Error::Backend`] when sled fails to open (I/O error, the database
    ///   is locked by another process, corrupt files).
    pub fn open_db(&self) -> Result<SledDb> {
        self.validate()?;
        SledDb::open(self)
    }

    /// Reads a configuration from the process environment.
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `SESSION_STORE_SLED_PATH` | database directory | required unless temporary |
    /// | `SESSION_STORE_SLED_DURABILITY` | `every-write`, `periodic` (500 ms) or `periodic:<ms>` | `every-write` |
    /// | `SESSION_STORE_SLED_CACHE_CAPACITY` | page cache size in bytes | 67108864 (64 MiB) |
    /// | `SESSION_STORE_SLED_TEMPORARY` | `true`/`false` (`1`/`0`): delete the database on drop | `false` |
    /// | `SESSION_STORE_SLED_TREE_PREFIX` | tree-name prefix (see [`SledConfig::tree_prefix`]) | `session_store` |
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is malformed, or when the
    /// result fails [`SledConfig::validate`].
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`SledConfig::from_env`] with another source of variables (a map in
    /// tests, a secrets manager).
    ///
    /// # Errors
    /// As [`SledConfig::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let temporary = match get("SESSION_STORE_SLED_TEMPORARY") {
            None => false,
            Some(v) => parse_bool(&v).ok_or_else(|| {
                Error::Config(format!(
                    "SESSION_STORE_SLED_TEMPORARY: expected true or false, got {v:?}"
                ))
            })?,
        };
        let mut config =
            match get("SESSION_STORE_SLED_PATH") {
                Some(path) => SledConfig::new(path).temporary(temporary),
                None if temporary => SledConfig::temporary_db(),
                None => return Err(Error::Config(
                    "SESSION_STORE_SLED_PATH is not set (or set SESSION_STORE_SLED_TEMPORARY=true)"
                        .into(),
                )),
            };
        if let Some(v) = get("SESSION_STORE_SLED_DURABILITY") {
            config.durability = parse_durability(&v)?;
        }
        if let Some(v) = get("SESSION_STORE_SLED_CACHE_CAPACITY") {
            config.cache_capacity = v.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "SESSION_STORE_SLED_CACHE_CAPACITY: expected a number of bytes, got {v:?}"
                ))
            })?;
        }
        if let Some(v) = get("SESSION_STORE_SLED_TREE_PREFIX") {
            config.tree_prefix = v.trim().to_owned();
        }
        config.validate()?;
        Ok(config)
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn parse_durability(v: &str) -> Result<Durability> {
    let v = v.trim().to_ascii_lowercase();
    let bad = || {
        Error::Config(format!(
            "SESSION_STORE_SLED_DURABILITY: expected every-write, periodic or periodic:<ms>, got {v:?}"
        ))
    };
    match v.as_str() {
        "every-write" | "every_write" => Ok(Durability::EveryWrite),
        "periodic" => Ok(Durability::Periodic(Duration::from_millis(500))),
        _ => {
            let ms = v.strip_prefix("periodic:").ok_or_else(bad)?;
            let ms: u64 = ms.trim().parse().map_err(|_| bad())?;
            Ok(Durability::Periodic(Duration::from_millis(ms)))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn from_env_reads_every_variable() {
        let c = SledConfig::from_lookup(env(&[
            ("SESSION_STORE_SLED_PATH", "/tmp/x"),
            ("SESSION_STORE_SLED_DURABILITY", "periodic:250"),
            ("SESSION_STORE_SLED_CACHE_CAPACITY", "1048576"),
            ("SESSION_STORE_SLED_TEMPORARY", "true"),
            ("SESSION_STORE_SLED_TREE_PREFIX", "tenant-a"),
        ]))
        .unwrap();
        assert_eq!(c.path.as_deref(), Some(Path::new("/tmp/x")));
        assert_eq!(
            c.durability,
            Durability::Periodic(Duration::from_millis(250))
        );
        assert_eq!(c.cache_capacity, 1 << 20);
        assert!(c.temporary);
        assert_eq!(c.tree_prefix, "tenant-a");

        let d = SledConfig::from_lookup(env(&[("SESSION_STORE_SLED_PATH", "/tmp/y")])).unwrap();
        assert_eq!(d, SledConfig::new("/tmp/y"));
        assert_eq!(d.durability, Durability::EveryWrite);
        assert!(!d.temporary);

        let t = SledConfig::from_lookup(env(&[
            ("SESSION_STORE_SLED_TEMPORARY", "1"),
            ("SESSION_STORE_SLED_DURABILITY", "periodic"),
        ]))
        .unwrap();
        assert!(t.temporary && t.path.is_none());
        assert_eq!(
            t.durability,
            Durability::Periodic(Duration::from_millis(500))
        );
    }

    #[test]
    fn from_env_rejects_bad_values() {
        for pairs in [
            &[][..],
            &[
                ("SESSION_STORE_SLED_PATH", "/x"),
                ("SESSION_STORE_SLED_DURABILITY", "sometimes"),
            ],
            &[
                ("SESSION_STORE_SLED_PATH", "/x"),
                ("SESSION_STORE_SLED_DURABILITY", "periodic:0"),
            ],
            &[
                ("SESSION_STORE_SLED_PATH", "/x"),
                ("SESSION_STORE_SLED_DURABILITY", "periodic:abc"),
            ],
            &[
                ("SESSION_STORE_SLED_PATH", "/x"),
                ("SESSION_STORE_SLED_CACHE_CAPACITY", "-1"),
            ],
            &[
                ("SESSION_STORE_SLED_PATH", "/x"),
                ("SESSION_STORE_SLED_CACHE_CAPACITY", "0"),
            ],
            &[
                ("SESSION_STORE_SLED_PATH", "/x"),
                ("SESSION_STORE_SLED_TEMPORARY", "maybe"),
            ],
            &[
                ("SESSION_STORE_SLED_PATH", "/x"),
                ("SESSION_STORE_SLED_TREE_PREFIX", "a.b"),
            ],
        ] {
            assert!(
                matches!(SledConfig::from_lookup(env(pairs)), Err(Error::Config(_))),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn builder_validates() {
        assert!(SledConfig::temporary_db().validate().is_ok());
        assert!(SledConfig::temporary_db()
            .temporary(false)
            .validate()
            .is_err());
        assert!(SledConfig::new("/x").tree_prefix("").validate().is_err());
        assert!(SledConfig::new("/x").cache_capacity(0).validate().is_err());
        assert!(SledConfig::new("/x")
            .durability(Durability::Periodic(Duration::ZERO))
            .validate()
            .is_err());
    }
}
