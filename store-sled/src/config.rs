//! Configuration: defaults, `from_env`/`from_vars`, `with_*` setters,
//! getters, `validate` and `build`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use session_store_core::config::Vars;
use session_store_core::{Error, Result};

use crate::db::{blocking, SledDb};
use crate::schema::validate_prefix;
use crate::store::{SledStore, BACKEND};

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
    ///
    /// In this mode the small writes run their (memory-only) transaction on
    /// the calling task, and the back-pressure flush on the blocking pool:
    /// only the writer that reaches the bound, and writers arriving during
    /// the flush, wait for it, asynchronously (see "Where the work runs" on
    /// [`SledStore`]).
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
///     .with_durability(Durability::Periodic(Duration::from_millis(200)))
///     .with_cache_capacity(32 * 1024 * 1024)
///     .with_tree_prefix("myapp")
///     .build()
///     .await?;
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
    /// with [`Durability::EveryWrite`], a 64 MiB cache
    /// ([`DEFAULT_CACHE_CAPACITY`]) and the tree prefix [`DEFAULT_TREE_PREFIX`].
    pub fn new(path: impl AsRef<Path>) -> Self {
        SledConfig {
            path: Some(path.as_ref().to_path_buf()),
            temporary: false,
            ..Self::temporary()
        }
    }

    /// A temporary database in a fresh directory chosen by sled (shared
    /// memory on Linux), deleted when the last handle is dropped; nothing is
    /// synced to disk whatever the [`Durability`]. For tests. Defaults as for
    /// [`SledConfig::new`]. A temporary database at a chosen directory is
    /// `SledConfig::new(path).with_temporary(true)`.
    pub fn temporary() -> Self {
        SledConfig {
            path: None,
            durability: Durability::EveryWrite,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            temporary: true,
            tree_prefix: DEFAULT_TREE_PREFIX.to_owned(),
        }
    }

    /// Reads a configuration from the process environment:
    /// [`SledConfig::from_vars`] over [`Vars::from_env`].
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `SESSION_STORE_SLED_PATH` | database directory | required unless `SESSION_STORE_SLED_TEMPORARY` is true |
    /// | `SESSION_STORE_SLED_DURABILITY` | `every-write`, `periodic` (500 ms) or `periodic:<ms>` | `every-write` |
    /// | `SESSION_STORE_SLED_CACHE_CAPACITY` | page cache size: bytes, or with `KiB`/`MiB`/`GiB` | `64MiB` |
    /// | `SESSION_STORE_SLED_TEMPORARY` | boolean (`true/false, 1/0, yes/no, on/off`): delete the database on drop; without a path, in a directory chosen by sled | `false` |
    /// | `SESSION_STORE_SLED_TREE_PREFIX` | tree-name prefix (see [`SledConfig::with_tree_prefix`]) | `session_store` |
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is missing or malformed, or
    /// when the result fails [`SledConfig::validate`].
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&Vars::from_env())
    }

    /// [`SledConfig::from_env`] with another source of variables (a map in
    /// tests, a secrets manager).
    ///
    /// ```
    /// use session_store_core::config::Vars;
    /// use session_store_sled::SledConfig;
    ///
    /// let vars = Vars::from_pairs([
    ///     ("SESSION_STORE_SLED_PATH", "/var/lib/myapp/sessions"),
    ///     ("SESSION_STORE_SLED_CACHE_CAPACITY", "16MiB"),
    /// ]);
    /// let config = SledConfig::from_vars(&vars)?;
    /// assert_eq!(config.cache_capacity(), 16 << 20);
    /// # Ok::<(), session_store_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`SledConfig::from_env`].
    pub fn from_vars(vars: &Vars) -> Result<Self> {
        let temporary = vars.bool("SESSION_STORE_SLED_TEMPORARY")?.unwrap_or(false);
        let mut config =
            match vars.string("SESSION_STORE_SLED_PATH") {
                Some(path) => SledConfig::new(path).with_temporary(temporary),
                None if temporary => SledConfig::temporary(),
                None => return Err(Error::Config(
                    "SESSION_STORE_SLED_PATH is not set (or set SESSION_STORE_SLED_TEMPORARY=true)"
                        .into(),
                )),
            };
        if let Some(durability) = vars.parse_with(
            "SESSION_STORE_SLED_DURABILITY",
            "every-write, periodic or periodic:<ms>",
            parse_durability,
        )? {
            config = config.with_durability(durability);
        }
        if let Some(bytes) = vars.size("SESSION_STORE_SLED_CACHE_CAPACITY")? {
            config = config.with_cache_capacity(bytes);
        }
        if let Some(prefix) = vars.string("SESSION_STORE_SLED_TREE_PREFIX") {
            config = config.with_tree_prefix(prefix);
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets the flush policy (default [`Durability::EveryWrite`]).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets sled's page cache size in bytes (default [`DEFAULT_CACHE_CAPACITY`]).
    pub fn with_cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }

    /// Whether the database is deleted when the last handle drops (false for
    /// [`SledConfig::new`], true for [`SledConfig::temporary`]). A temporary
    /// database at a path that is not new or empty is refused by
    /// [`SledConfig::build`], so an existing database is never deleted by
    /// mistake.
    pub fn with_temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// Sets the tree-name prefix, so that several stores can share one sled
    /// database: 1 to 48 characters of `[A-Za-z0-9_-]`, starting with a letter
    /// or digit (default [`DEFAULT_TREE_PREFIX`]). Checked by
    /// [`SledConfig::validate`].
    pub fn with_tree_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.tree_prefix = prefix.into();
        self
    }

    /// The database directory; `None` for [`SledConfig::temporary`].
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The flush policy.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// sled's page cache size in bytes.
    pub fn cache_capacity(&self) -> u64 {
        self.cache_capacity
    }

    /// Whether the database is deleted when the last handle drops.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// The tree-name prefix.
    pub fn tree_prefix(&self) -> &str {
        &self.tree_prefix
    }

    /// What errors name as the endpoint: the directory, or `temporary`.
    pub(crate) fn endpoint(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => "temporary".to_owned(),
        }
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

    /// Validates, then opens (or creates) the database and the store under
    /// the tree prefix in it, writing the schema version on first use. The
    /// opening is blocking sled work and runs on tokio's blocking pool (inline
    /// without a tokio runtime).
    ///
    /// More stores in the same database, under other prefixes:
    /// [`SledDb::store`] on [`SledStore::db`].
    ///
    /// # Errors
    /// - [`Error::Config`] for an invalid configuration, a path that exists
    ///   but is not a directory, a non-empty directory that is not a sled
    ///   database, or a temporary database at a non-empty directory. Nothing
    ///   on disk is modified in these cases.
    /// - [`Error::SchemaTooNew`] if the namespace was written by a newer
    ///   version of this crate (see [`SledDb::store`]).
    /// - [`Error::Backend`] (operation `open`, endpoint the directory) when
    ///   sled fails to open: I/O error, the database is locked by another
    ///   handle or process, corrupt files.
    pub async fn build(self) -> Result<SledStore> {
        self.validate()?;
        let endpoint = self.endpoint();
        blocking(move || SledDb::open(&self)?.store(&self.tree_prefix))
            .await
            .map_err(|e| e.context(BACKEND, "open", Some(&endpoint)))
    }
}

fn parse_durability(v: &str) -> Option<Durability> {
    match v.trim().to_ascii_lowercase().as_str() {
        "every-write" | "every_write" => Some(Durability::EveryWrite),
        "periodic" => Some(Durability::Periodic(Duration::from_millis(500))),
        v => {
            let ms: u64 = v.strip_prefix("periodic:")?.trim().parse().ok()?;
            Some(Durability::Periodic(Duration::from_millis(ms)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn from_vars_reads_every_variable() {
        let c = SledConfig::from_vars(&vars(&[
            ("SESSION_STORE_SLED_PATH", "/tmp/x"),
            ("SESSION_STORE_SLED_DURABILITY", "periodic:250"),
            ("SESSION_STORE_SLED_CACHE_CAPACITY", "1048576"),
            ("SESSION_STORE_SLED_TEMPORARY", "true"),
            ("SESSION_STORE_SLED_TREE_PREFIX", "tenant-a"),
        ]))
        .unwrap();
        assert_eq!(c.path(), Some(Path::new("/tmp/x")));
        assert_eq!(
            c.durability(),
            Durability::Periodic(Duration::from_millis(250))
        );
        assert_eq!(c.cache_capacity(), 1 << 20);
        assert!(c.is_temporary());
        assert_eq!(c.tree_prefix(), "tenant-a");

        let d = SledConfig::from_vars(&vars(&[("SESSION_STORE_SLED_PATH", "/tmp/y")])).unwrap();
        assert_eq!(d, SledConfig::new("/tmp/y"));
        assert_eq!(d.durability(), Durability::EveryWrite);
        assert_eq!(d.cache_capacity(), DEFAULT_CACHE_CAPACITY);
        assert!(!d.is_temporary());

        let t = SledConfig::from_vars(&vars(&[
            ("SESSION_STORE_SLED_TEMPORARY", "1"),
            ("SESSION_STORE_SLED_DURABILITY", "periodic"),
        ]))
        .unwrap();
        assert!(t.is_temporary() && t.path().is_none());
        assert_eq!(
            t.durability(),
            Durability::Periodic(Duration::from_millis(500))
        );
    }

    #[test]
    fn from_vars_uses_the_shared_size_and_boolean_grammars() {
        for (v, want) in [
            ("4096", 4096),
            ("64KiB", 64 << 10),
            ("32 MiB", 32 << 20),
            ("2gib", 2 << 30),
        ] {
            let c = SledConfig::from_vars(&vars(&[
                ("SESSION_STORE_SLED_PATH", "/x"),
                ("SESSION_STORE_SLED_CACHE_CAPACITY", v),
            ]))
            .unwrap();
            assert_eq!(c.cache_capacity(), want, "{v}");
        }
        for (v, want) in [("on", true), ("yes", true), ("off", false), ("No", false)] {
            let c = SledConfig::from_vars(&vars(&[
                ("SESSION_STORE_SLED_PATH", "/x"),
                ("SESSION_STORE_SLED_TEMPORARY", v),
            ]))
            .unwrap();
            assert_eq!(c.is_temporary(), want, "{v}");
        }
    }

    #[test]
    fn the_path_is_required_unless_temporary() {
        for pairs in [
            &[][..],
            &[("SESSION_STORE_SLED_PATH", "  ")],
            &[("SESSION_STORE_SLED_TEMPORARY", "false")],
        ] {
            let err = SledConfig::from_vars(&vars(pairs)).unwrap_err();
            assert!(
                matches!(&err, Error::Config(m) if m.contains("SESSION_STORE_SLED_PATH")),
                "{pairs:?}: {err}"
            );
        }
    }

    #[test]
    fn a_malformed_value_names_its_variable() {
        for (name, bad) in [
            ("SESSION_STORE_SLED_DURABILITY", "sometimes"),
            ("SESSION_STORE_SLED_DURABILITY", "periodic:abc"),
            ("SESSION_STORE_SLED_CACHE_CAPACITY", "-1"),
            ("SESSION_STORE_SLED_CACHE_CAPACITY", "3 kb"),
            ("SESSION_STORE_SLED_TEMPORARY", "maybe"),
        ] {
            let err =
                SledConfig::from_vars(&vars(&[("SESSION_STORE_SLED_PATH", "/x"), (name, bad)]))
                    .unwrap_err();
            assert!(
                matches!(&err, Error::Config(m) if m.starts_with(&format!("{name}: expected"))
                    && m.contains(&format!("{bad:?}"))),
                "{name}={bad}: {err}"
            );
        }
    }

    #[test]
    fn from_vars_rejects_bad_values() {
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
                matches!(SledConfig::from_vars(&vars(pairs)), Err(Error::Config(_))),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn builder_validates() {
        assert!(SledConfig::temporary().validate().is_ok());
        assert!(SledConfig::temporary()
            .with_temporary(false)
            .validate()
            .is_err());
        assert!(SledConfig::new("/x")
            .with_tree_prefix("")
            .validate()
            .is_err());
        assert!(SledConfig::new("/x")
            .with_cache_capacity(0)
            .validate()
            .is_err());
        assert!(SledConfig::new("/x")
            .with_durability(Durability::Periodic(Duration::ZERO))
            .validate()
            .is_err());
    }

    #[test]
    fn endpoint_is_the_directory_or_temporary() {
        assert_eq!(SledConfig::new("/var/x").endpoint(), "/var/x");
        assert_eq!(SledConfig::temporary().endpoint(), "temporary");
        assert_eq!(
            SledConfig::new("/var/y").with_temporary(true).endpoint(),
            "/var/y"
        );
    }
}
