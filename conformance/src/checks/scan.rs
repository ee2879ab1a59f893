//! Checks for `scan`: pages cover the namespace, respect the limit, resume
//! from their cursor, and keep every stable entry under concurrent writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use session_store_core::{
    Error, Grace, Lookup, Rotation, ScanCursor, ScanPage, SessionBackend, StorageKey,
};

use super::Ctx;
use crate::fixtures::{at, fresh_key, mins, now, record, successor_key, user_record};

/// Skips (and says so) when the store reports no scan.
fn unsupported(ctx: &Ctx) -> bool {
    if !ctx.capabilities.scan {
        ctx.skip("the store reports Capabilities::scan = false");
        return true;
    }
    false
}

/// One page, checked against the parts of the contract every page obeys:
/// at most `limit` entries, each key at most once.
async fn page(backend: &dyn SessionBackend, cursor: Option<&ScanCursor>, limit: usize) -> ScanPage {
    let page = backend.scan(cursor, limit).await.unwrap_or_else(|e| {
        panic!("scan failed (a store without scan must report Capabilities::scan = false): {e}")
    });
    assert!(
        page.entries.len() <= limit,
        "a page of {} entries for limit {limit}",
        page.entries.len()
    );
    let keys: BTreeSet<StorageKey> = page.entries.iter().map(|e| e.key).collect();
    assert_eq!(keys.len(), page.entries.len(), "a key twice on one page");
    page
}

/// Walks the whole namespace with `limit`; every entry found (the last
/// state seen per key) and the number of pages.
async fn walk(backend: &dyn SessionBackend, limit: usize) -> (BTreeMap<StorageKey, Lookup>, usize) {
    let mut found = BTreeMap::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let p = page(backend, cursor.as_ref(), limit).await;
        pages += 1;
        assert!(pages < 100_000, "the scan never ends");
        for e in p.entries {
            found.insert(e.key, e.entry);
        }
        match p.next {
            Some(next) => cursor = Some(next),
            None => return (found, pages),
        }
    }
}

/// scan: walking page by page returns every entry of the namespace
/// (sessions with and without a user, one past its deadline, a renewal
/// forwarder), each exactly as `load` returns it, version included.
pub async fn scan_pages_cover_every_entry(ctx: Ctx) {
    if unsupported(&ctx) {
        return;
    }
    let t = now();
    let mut expected = BTreeMap::new();
    for i in 0..23u32 {
        let key = fresh_key();
        let mut r = if i.is_multiple_of(3) {
            user_record(
                t,
                &format!("user-{}", i % 2),
                format!("data-{i}").as_bytes(),
            )
        } else {
            record(t, format!("data-{i}").as_bytes())
        };
        r.version = u64::from(i);
        ctx.backend.create(&key, &r).await.expect("create");
        expected.insert(key, r);
    }
    // Expired by the check's clock but still stored (no cleanup ran).
    let stale = fresh_key();
    let mut r = record(t, b"stale");
    r.idle_deadline = at(t, mins(1));
    ctx.backend.create(&stale, &r).await.expect("create");
    // A rotation with grace: a session under `to`, a forwarder under `from`.
    let from = fresh_key();
    ctx.backend
        .create(&from, &record(t, b"before"))
        .await
        .expect("create");
    let to = successor_key(&*ctx.backend, &from);
    let rot = Rotation {
        from,
        to,
        record: record(t, b"after"),
        grace: Some(Grace {
            sealed_token: b"sealed".to_vec(),
            until: at(t, mins(2)),
        }),
    };
    ctx.backend.rotate(&rot, t).await.expect("rotate");

    let (found, pages) = walk(&*ctx.backend, 5).await;
    assert!(pages >= 6, "27 entries in pages of 5 took {pages} pages");
    for (key, r) in &expected {
        match found.get(key) {
            Some(Lookup::Session(s)) => assert_eq!(s, r, "scanned record differs from stored"),
            other => panic!("stored session missing from the scan: {other:?}"),
        }
    }
    assert!(
        matches!(found.get(&stale), Some(Lookup::Session(s)) if s.data == b"stale"),
        "an entry past its deadline is returned until cleanup removes it"
    );
    assert!(
        matches!(found.get(&to), Some(Lookup::Session(s)) if s.data == b"after" && s.version == 1)
    );
    assert!(
        matches!(found.get(&from), Some(Lookup::Forwarded(f)) if f.successor == to),
        "the forwarder is an entry too"
    );
    assert_eq!(
        found.len(),
        expected.len() + 3,
        "entries outside the namespace"
    );
}

/// scan: `limit` bounds every page (down to 1), a cursor carried through
/// text resumes the walk where it stopped, `limit == 0` and a cursor the
/// store did not issue are [`Error::InvalidInput`], an empty namespace is one
/// empty last page.
pub async fn scan_limit_and_cursor_resume(ctx: Ctx) {
    if unsupported(&ctx) {
        return;
    }
    let (found, _) = walk(&*ctx.backend, 3).await;
    assert!(found.is_empty(), "an empty namespace scans empty");
    assert!(matches!(
        ctx.backend.scan(None, 0).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        ctx.backend
            .scan(Some(&ScanCursor::from_bytes(vec![0xff, 0, 7])), 3)
            .await,
        Err(Error::InvalidInput(_))
    ));

    let t = now();
    let mut keys = BTreeSet::new();
    for i in 0..9u32 {
        let key = fresh_key();
        ctx.backend
            .create(&key, &record(t, format!("{i}").as_bytes()))
            .await
            .expect("create");
        keys.insert(key);
    }
    // Limit 1, the cursor through its text form between pages (as a
    // resumable tool would keep it).
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let c = cursor
            .as_deref()
            .map(|s| ScanCursor::parse(s).expect("cursor text"));
        let p = page(&*ctx.backend, c.as_ref(), 1).await;
        seen.extend(p.entries.iter().map(|e| e.key));
        match p.next {
            Some(n) => cursor = Some(n.to_text()),
            None => {
                cursor = None;
                break;
            }
        }
    }
    assert!(cursor.is_none(), "the scan never ends");
    assert_eq!(
        seen, keys,
        "limit-1 pages with resumed cursors cover everything"
    );

    // A large limit: everything, maybe over several pages on Redis.
    let (found, _) = walk(&*ctx.backend, 1000).await;
    assert_eq!(found.keys().copied().collect::<BTreeSet<_>>(), keys);
}

/// scan: while other tasks create, save, touch and delete entries, every
/// entry that exists under its key for the whole scan is returned at least
/// once (in some state it held during the scan), and pages keep the limit.
pub async fn scan_during_concurrent_writes_keeps_stable_entries(ctx: Ctx) {
    if unsupported(&ctx) {
        return;
    }
    let t = now();
    let mut stable = Vec::new();
    for i in 0..60u32 {
        let key = fresh_key();
        let r = if i.is_multiple_of(4) {
            user_record(t, "stable-user", b"stable")
        } else {
            record(t, b"stable")
        };
        ctx.backend.create(&key, &r).await.expect("create");
        stable.push(key);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3u32 {
        let backend = ctx.backend.clone();
        let stop = stop.clone();
        let stable = stable.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                // Churn: an entry created and deleted again.
                let key = fresh_key();
                backend
                    .create(&key, &record(t, b"churn"))
                    .await
                    .expect("create");
                // A stable entry rewritten in place (same key, new version).
                let target = &stable[((n * 7 + w) as usize) % stable.len()];
                if let Some(Lookup::Session(r)) = backend.load(target, t).await.expect("load") {
                    match backend.save(target, &r, t).await {
                        Ok(_) | Err(Error::Conflict) => {}
                        Err(e) => panic!("save: {e}"),
                    }
                }
                backend
                    .touch(target, at(t, mins(40)), t, t)
                    .await
                    .expect("touch");
                if n.is_multiple_of(2) {
                    backend.delete(&key).await.expect("delete");
                }
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        }));
    }
    let (found, _) = walk(&*ctx.backend, 7).await;
    stop.store(true, Ordering::SeqCst);
    let mut writes = 0;
    for w in writers {
        writes += w.await.expect("writer task");
    }
    for key in &stable {
        assert!(
            matches!(found.get(key), Some(Lookup::Session(s)) if s.data == b"stable"),
            "a session that existed for the whole scan was not returned \
             ({writes} concurrent write rounds)"
        );
    }
}
