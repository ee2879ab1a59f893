//! The walks behind the commands: statistics, copying, verifying and
//! re-encrypting, each one [`scan`](SessionBackend::scan) of the namespace
//! in pages, so memory stays bounded by a page (statistics also keep one
//! counter per user, and on Redis the keys seen, to remove `SCAN`'s
//! duplicates).

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};
use session_store_core::{
    Encrypted, Error, Lookup, Resealed, Result, ScanCursor, SessionBackend, SessionHandle,
    StorageKey, Timestamp,
};

/// Entries fetched per page.
pub const PAGE: usize = 500;

/// Reports progress: called with the number of entries walked so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// A walk over every entry of a backend, page by page; keys already seen
/// are skipped when `dedupe` (Redis `SCAN` may repeat a key).
struct Walk<'a> {
    backend: &'a dyn SessionBackend,
    cursor: Option<ScanCursor>,
    done: bool,
    dedupe: bool,
    seen: HashSet<StorageKey>,
    walked: u64,
    progress: Progress<'a>,
    /// The cursor the current page was fetched with: resuming from it
    /// re-reads that page (harmless for idempotent walks).
    page_start: Option<ScanCursor>,
}

impl<'a> Walk<'a> {
    fn new(
        backend: &'a dyn SessionBackend,
        start: Option<ScanCursor>,
        dedupe: bool,
        progress: Progress<'a>,
    ) -> Self {
        Walk {
            backend,
            cursor: start,
            done: false,
            dedupe,
            seen: HashSet::new(),
            walked: 0,
            progress,
            page_start: None,
        }
    }

    /// The next page's entries; `None` at the end.
    async fn next(&mut self) -> Result<Option<Vec<(StorageKey, Lookup)>>> {
        if self.done {
            return Ok(None);
        }
        self.page_start = self.cursor.clone();
        let page = self.backend.scan(self.cursor.as_ref(), PAGE).await?;
        let mut out = Vec::with_capacity(page.entries.len());
        for e in page.entries {
            if self.dedupe && !self.seen.insert(e.key) {
                continue;
            }
            out.push((e.key, e.entry));
        }
        if !out.is_empty() {
            self.walked += out.len() as u64;
            (self.progress)(self.walked);
        }
        match page.next {
            Some(c) => self.cursor = Some(c),
            None => self.done = true,
        }
        Ok(Some(out))
    }
}

/// What `stats` reports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Sessions live now (persistent logins not included).
    pub live: u64,
    /// Live persistent logins ("remember me" families). Under encryption
    /// the store cannot tell them apart and they count as sessions.
    pub persistent_logins: u64,
    /// Sessions past their deadline, still stored (awaiting cleanup).
    pub expired: u64,
    /// Renewal forwarders (live or not).
    pub forwarders: u64,
    /// Distinct users with a live session.
    pub users: u64,
    /// Live sessions per user: median, 99th percentile, maximum.
    pub per_user: (u64, u64, u64),
    /// Bytes of session data and metadata in live sessions (as stored:
    /// ciphertext under encryption).
    pub bytes: u64,
    /// Creation time of the oldest live session.
    pub oldest: Option<Timestamp>,
}

impl Stats {
    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "live_sessions": self.live,
            "persistent_logins": self.persistent_logins,
            "expired_awaiting_cleanup": self.expired,
            "forwarders": self.forwarders,
            "users": self.users,
            "sessions_per_user": {"p50": self.per_user.0, "p99": self.per_user.1, "max": self.per_user.2},
            "bytes": self.bytes,
            "oldest_session_created_ms": self.oldest.map(|t| t.as_millis()),
        })
    }
}

/// Percentile `p` (0 to 100) of sorted `v` (nearest rank).
fn percentile(v: &[u64], p: u64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = (p as usize * v.len()).div_ceil(100).max(1);
    v[rank - 1]
}

/// Counts the namespace (see [`Stats`]).
///
/// # Errors
/// Backend errors.
pub async fn stats(
    backend: &dyn SessionBackend,
    dedupe: bool,
    now: Timestamp,
    progress: Progress<'_>,
) -> Result<Stats> {
    let mut s = Stats::default();
    let mut per_user: HashMap<String, u64> = HashMap::new();
    let mut walk = Walk::new(backend, None, dedupe, progress);
    while let Some(page) = walk.next().await? {
        for (_, entry) in page {
            match entry {
                Lookup::Forwarded(_) => s.forwarders += 1,
                Lookup::Session(r)
                    if r.is_live(now)
                        && session_store_core::persistent::is_family_metadata(&r.meta) =>
                {
                    s.persistent_logins += 1;
                }
                Lookup::Session(r) if r.is_live(now) => {
                    s.live += 1;
                    s.bytes += (r.data.len() + r.meta.len()) as u64;
                    s.oldest = Some(s.oldest.map_or(r.created_at, |o| o.min(r.created_at)));
                    if let Some(u) = r.user_id {
                        *per_user.entry(u).or_default() += 1;
                    }
                }
                Lookup::Session(_) => s.expired += 1,
            }
        }
    }
    let mut counts: Vec<u64> = per_user.into_values().collect();
    counts.sort_unstable();
    s.users = counts.len() as u64;
    s.per_user = (
        percentile(&counts, 50),
        percentile(&counts, 99),
        counts.last().copied().unwrap_or(0),
    );
    Ok(s)
}

/// What `copy` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Entries walked in the source.
    pub scanned: u64,
    /// Live sessions created in the destination.
    pub copied: u64,
    /// Already in the destination, identical.
    pub unchanged: u64,
    /// In the destination at an older version: replaced by the source's.
    pub replaced: u64,
    /// In the destination at the same or a newer version with other
    /// contents: kept (the destination has moved on).
    pub kept_newer: u64,
    /// Expired sessions and forwarders, not copied.
    pub skipped: u64,
}

impl CopyReport {
    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "scanned": self.scanned, "copied": self.copied, "unchanged": self.unchanged,
            "replaced": self.replaced, "kept_newer": self.kept_newer, "skipped": self.skipped,
        })
    }
}

/// Copies every live session of `from` into `to`, byte for byte (deadlines,
/// user, metadata, data and version as stored, so sealed records stay valid
/// and users stay logged in); the destination's user index follows from
/// `create`. Renewal forwarders (seconds long) and expired sessions are not
/// copied. Idempotent: a re-run creates what is missing, leaves identical
/// sessions alone, and replaces only copies at an older version.
///
/// # Errors
/// Backend errors of either side.
pub async fn copy(
    from: &dyn SessionBackend,
    to: &dyn SessionBackend,
    dedupe: bool,
    now: Timestamp,
    progress: Progress<'_>,
) -> Result<CopyReport> {
    let mut rep = CopyReport::default();
    let mut walk = Walk::new(from, None, dedupe, progress);
    while let Some(page) = walk.next().await? {
        for (key, entry) in page {
            let r = match entry {
                Lookup::Session(r) if r.is_live(now) => r,
                _ => {
                    rep.skipped += 1;
                    continue;
                }
            };
            match to.create(&key, &r).await {
                Ok(()) => rep.copied += 1,
                Err(Error::AlreadyExists) => match to.load(&key, now).await? {
                    Some(Lookup::Session(there)) if there == r => rep.unchanged += 1,
                    Some(Lookup::Session(there)) if there.version >= r.version => {
                        rep.kept_newer += 1
                    }
                    _ => {
                        to.delete(&key).await?;
                        to.create(&key, &r).await?;
                        rep.replaced += 1;
                    }
                },
                Err(e) => return Err(e),
            }
        }
    }
    rep.scanned = walk.walked;
    Ok(rep)
}

/// What `copy --verify` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Live sessions of the source compared.
    pub compared: u64,
    /// Missing from the destination (handles).
    pub missing: Vec<String>,
    /// Present with other contents or another version (handles).
    pub different: Vec<String>,
}

impl VerifyReport {
    /// Whether both sides agree.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.different.is_empty()
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({"compared": self.compared, "missing": self.missing, "different": self.different})
    }
}

/// Compares every live session of `from` with the destination's.
///
/// # Errors
/// Backend errors of either side.
pub async fn verify(
    from: &dyn SessionBackend,
    to: &dyn SessionBackend,
    dedupe: bool,
    now: Timestamp,
    progress: Progress<'_>,
) -> Result<VerifyReport> {
    let mut rep = VerifyReport::default();
    let mut walk = Walk::new(from, None, dedupe, progress);
    while let Some(page) = walk.next().await? {
        for (key, entry) in page {
            let Lookup::Session(r) = entry else {
                continue;
            };
            if !r.is_live(now) {
                continue;
            }
            rep.compared += 1;
            let handle = SessionHandle::new(key).to_string();
            match to.load(&key, now).await? {
                Some(Lookup::Session(there)) if there == r => {}
                // Touched meanwhile on either side: same version, later deadline.
                Some(Lookup::Session(there))
                    if there.version == r.version && there.data == r.data => {}
                Some(_) => rep.different.push(handle),
                None => rep.missing.push(handle),
            }
        }
    }
    Ok(rep)
}

/// What `rekey` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    /// Entries walked.
    pub scanned: u64,
    /// Sessions re-encrypted under the primary key.
    pub resealed: u64,
    /// Sessions already under the primary key.
    pub already_primary: u64,
    /// Sessions that do not open under any key of the keyring: handles,
    /// left in place.
    pub undecryptable: Vec<String>,
    /// Sessions changed by the application between the read and the write
    /// three times in a row: handles, to re-run.
    pub conflicts: Vec<String>,
    /// Forwarders, expired sessions, sessions gone meanwhile.
    pub skipped: u64,
}

impl RekeyReport {
    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "scanned": self.scanned, "resealed": self.resealed,
            "already_primary": self.already_primary, "undecryptable": self.undecryptable,
            "conflicts": self.conflicts, "skipped": self.skipped,
        })
    }
}

/// A rekey stopped by a store failure: what was done, and where to resume.
#[derive(Debug)]
pub struct Interrupted {
    /// The failure.
    pub error: Error,
    /// Pass to [`rekey`] (`--cursor`) to continue with the page that failed;
    /// `None` to start over (the first page failed).
    pub resume: Option<ScanCursor>,
    /// What was done before.
    pub done: RekeyReport,
}

/// Re-encrypts every live session sealed under a key other than the
/// keyring's primary ([`Encrypted::reseal`]). Resumable: from the cursor of
/// an [`Interrupted`] run, or by simply running it again (sessions already
/// under the primary are not rewritten). Sessions that do not decrypt are
/// reported, never deleted.
///
/// # Errors
/// [`Interrupted`] on a backend error.
pub async fn rekey<B: SessionBackend>(
    store: &Encrypted<B>,
    start: Option<ScanCursor>,
    dedupe: bool,
    now: Timestamp,
    progress: Progress<'_>,
) -> std::result::Result<RekeyReport, Box<Interrupted>> {
    let mut rep = RekeyReport::default();
    let mut walk = Walk::new(store.inner(), start, dedupe, progress);
    match rekey_walk(store, &mut walk, &mut rep, now).await {
        Ok(()) => Ok(rep),
        Err(error) => Err(Box::new(Interrupted {
            error,
            resume: walk.page_start.clone(),
            done: rep,
        })),
    }
}

async fn rekey_walk<B: SessionBackend>(
    store: &Encrypted<B>,
    walk: &mut Walk<'_>,
    rep: &mut RekeyReport,
    now: Timestamp,
) -> Result<()> {
    while let Some(page) = walk.next().await? {
        for (key, entry) in page {
            match entry {
                Lookup::Session(r) if r.is_live(now) => {
                    if !store.needs_reseal(&r) {
                        rep.already_primary += 1;
                        continue;
                    }
                }
                _ => {
                    rep.skipped += 1;
                    continue;
                }
            }
            for attempt in 0..3 {
                match store.reseal(&key, now).await {
                    Ok(Resealed::Resealed { .. }) => rep.resealed += 1,
                    Ok(Resealed::AlreadyPrimary) => rep.already_primary += 1,
                    Ok(_) => rep.skipped += 1,
                    Err(Error::Decrypt { .. }) => {
                        rep.undecryptable.push(SessionHandle::new(key).to_string())
                    }
                    Err(Error::Conflict) if attempt < 2 => continue,
                    Err(Error::Conflict) => rep.conflicts.push(SessionHandle::new(key).to_string()),
                    Err(e) => return Err(e),
                }
                break;
            }
        }
        rep.scanned = walk.walked;
    }
    Ok(())
}
