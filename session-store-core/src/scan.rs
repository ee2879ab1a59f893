//! Walking a namespace page by page: [`SessionBackend::scan`](crate::SessionBackend::scan).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::{Error, Result};
use crate::record::Lookup;
use crate::token::StorageKey;

/// An opaque position in a [`scan`](crate::SessionBackend::scan), returned by
/// one page and passed to the next call to continue after it.
///
/// Its bytes are the backend's own (the last key returned, a server cursor);
/// only the backend that issued it can read them. [`ScanCursor::to_text`] and
/// [`ScanCursor::parse`] carry it through text (a resumable command line, a
/// log), URL-safe base64. It holds storage keys (hashes of tokens), never a
/// token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ScanCursor(Vec<u8>);

impl ScanCursor {
    /// A cursor from a backend's own bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        ScanCursor(bytes)
    }

    /// The backend's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The cursor as URL-safe base64 text.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    /// Reads [`ScanCursor::to_text`] back.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for text that is not URL-safe base64.
    pub fn parse(text: &str) -> Result<Self> {
        URL_SAFE_NO_PAD
            .decode(text.trim())
            .map(ScanCursor)
            .map_err(|_| Error::InvalidInput("scan cursor is not URL-safe base64"))
    }
}

impl fmt::Debug for ScanCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScanCursor({} bytes)", self.0.len())
    }
}

/// One entry found by a scan: the storage key and what is stored under it,
/// live or not (judge with [`ScanEntry::is_live`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEntry {
    /// The storage key.
    pub key: StorageKey,
    /// The session or forwarder stored under it, exactly as `load` would
    /// return it (version included), whether or not it is still live.
    pub entry: Lookup,
}

impl ScanEntry {
    /// Whether the entry is live at `now` (see [`SessionBackend`](crate::SessionBackend)).
    pub fn is_live(&self, now: crate::Timestamp) -> bool {
        match &self.entry {
            Lookup::Session(r) => r.is_live(now),
            Lookup::Forwarded(f) => now < f.until,
        }
    }
}

/// One page of a [`scan`](crate::SessionBackend::scan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    /// At most `limit` entries, each key at most once within the page.
    pub entries: Vec<ScanEntry>,
    /// Where the next page starts; `None` when the scan is complete.
    pub next: Option<ScanCursor>,
}

impl ScanPage {
    /// The last page: `entries` and no next cursor.
    pub fn last(entries: Vec<ScanEntry>) -> Self {
        ScanPage {
            entries,
            next: None,
        }
    }
}

/// For backends: the [`StorageKey`] held by a cursor that is simply the last
/// key returned (ordered stores: SQL, sled, the in-memory store).
///
/// # Errors
/// [`Error::InvalidInput`] for a cursor that is not 32 bytes (not one this
/// kind of store issued).
pub fn key_cursor(cursor: Option<&ScanCursor>) -> Result<Option<StorageKey>> {
    cursor
        .map(|c| {
            <[u8; 32]>::try_from(c.as_bytes())
                .map(StorageKey::from_bytes)
                .map_err(|_| Error::InvalidInput("scan cursor was not issued by this store"))
        })
        .transpose()
}

/// For ordered backends: the page for `entries` (the first `limit` after the
/// cursor, fetched as `limit` rows): the next cursor is the last key when the
/// page is full.
pub fn key_page(entries: Vec<ScanEntry>, limit: usize) -> ScanPage {
    let next = if entries.len() >= limit {
        entries
            .last()
            .map(|e| ScanCursor::from_bytes(e.key.as_bytes().to_vec()))
    } else {
        None
    };
    ScanPage { entries, next }
}

/// Checks a scan's `limit` argument.
///
/// # Errors
/// [`Error::InvalidInput`] for 0.
pub fn check_limit(limit: usize) -> Result<()> {
    if limit == 0 {
        Err(Error::InvalidInput("scan limit must be at least 1"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_text_round_trips_and_debug_hides_bytes() {
        let c = ScanCursor::from_bytes(vec![1, 2, 255]);
        assert_eq!(ScanCursor::parse(&c.to_text()).unwrap(), c);
        assert_eq!(format!("{c:?}"), "ScanCursor(3 bytes)");
        assert!(matches!(
            ScanCursor::parse("not base64!"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(key_cursor(Some(&c)), Err(Error::InvalidInput(_))));
    }
}
