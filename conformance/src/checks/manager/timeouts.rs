//! Manager checks: idle and absolute timeouts, throttled touches, saves and cleanup.

use std::time::Duration;

use session_store_core::{ClientMeta, Error};

use super::{load, login, manager, policy, stored};
use crate::checks::Ctx;
use crate::fixtures::{at, mins};

/// Idle timeout: a session unused for `idle_timeout` is gone; each use (a
/// load past the touch interval) moves the deadline.
pub async fn manager_idle_timeout(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let s = m
        .create(b"x".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    let token = s.token().clone();
    assert_eq!(s.idle_deadline(), at(s.created_at(), mins(10)));
    // Used every 9 minutes: stays alive past the first idle deadline.
    for _ in 0..3 {
        clock.advance(mins(9));
        let loaded = load(&m, &token)
            .await
            .expect("used within the idle timeout");
        assert_eq!(loaded.idle_deadline(), at(m.now(), mins(10)));
        assert_eq!(loaded.version(), 0, "a touch is not a write of the data");
    }
    clock.advance(mins(10));
    assert!(
        load(&m, &token).await.is_none(),
        "idle for the whole timeout: gone"
    );
    // No resurrection by later activity.
    clock.advance(mins(1));
    assert!(load(&m, &token).await.is_none());
}

/// Absolute timeout: activity (loads and saves) never extends it.
pub async fn manager_absolute_timeout_not_extended_by_activity(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let mut s = m
        .create(b"0".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    let token = s.token().clone();
    let absolute = s.absolute_deadline();
    assert_eq!(absolute, at(s.created_at(), mins(60)));
    for i in 1..=11u64 {
        clock.advance(mins(5));
        s = load(&m, &token).await.expect("active session");
        assert_eq!(s.absolute_deadline(), absolute, "activity never moves it");
        assert!(s.idle_deadline() <= absolute, "idle capped at absolute");
        s.set_data(i.to_string().into_bytes());
        m.save(&mut s).await.expect("save");
        assert_eq!(s.absolute_deadline(), absolute);
        let raw = stored(&m, &s.storage_key()).await.expect("stored");
        assert_eq!(raw.absolute_deadline, absolute);
        assert!(raw.idle_deadline <= absolute);
    }
    // t+55min: still live; at t+60min it is gone although just used.
    clock.advance(mins(5));
    assert!(load(&m, &token).await.is_none(), "absolute timeout reached");
}

/// Touch throttling: a load within `touch_interval` of the last recorded
/// activity writes nothing; the first load after it writes a touch.
pub async fn manager_touch_throttled(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let s = m
        .create(b"x".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    let token = s.token().clone();
    let key = s.storage_key();
    let t0 = s.created_at();
    let before = stored(&m, &key).await.expect("stored");

    clock.advance(Duration::from_secs(30));
    let loaded = load(&m, &token).await.expect("load");
    assert_eq!(loaded.last_seen_at(), t0);
    clock.advance(Duration::from_millis(29_999));
    load(&m, &token).await.expect("load");
    let raw = stored(&m, &key).await.expect("stored");
    assert_eq!(raw, before, "loads within the touch interval write nothing");

    clock.advance(Duration::from_millis(1)); // exactly 60 s after t0
    let loaded = load(&m, &token).await.expect("load");
    let now = m.now();
    assert_eq!(loaded.last_seen_at(), now);
    let raw = stored(&m, &key).await.expect("stored");
    assert_eq!(raw.last_seen_at, now, "the touch was written");
    assert_eq!(raw.idle_deadline, at(now, mins(10)));
    assert_eq!(raw.version, before.version, "a touch keeps the version");
    assert_eq!(raw.data, before.data);
}

/// Cleanup through the manager: loops over batches until every expired
/// entry is gone (exact count for stores with counted cleanup); live
/// sessions survive.
pub async fn manager_cleanup_expired(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let mut old = Vec::new();
    for _ in 0..5 {
        old.push(
            m.create(Vec::new(), ClientMeta::default())
                .await
                .expect("create"),
        );
    }
    clock.advance(mins(5));
    let fresh = login(&m, "alice").await;
    clock.advance(mins(6)); // the first five are idle-expired, the login is not
    let removed = m.cleanup_expired(2).await.expect("cleanup");
    if ctx.capabilities.counted_cleanup {
        assert_eq!(removed, 5, "every expired session, over several batches");
        assert_eq!(m.cleanup_expired(2).await.expect("cleanup"), 0);
    }
    for s in &old {
        assert!(load(&m, s.token()).await.is_none());
    }
    load(&m, fresh.token())
        .await
        .expect("live session survives");
    assert_eq!(m.list_devices("alice", None).await.expect("list").len(), 1);
}

/// Manager saves are compare-and-swap: of two copies of one session, the
/// second save is `Conflict` and the first one's data stays.
pub async fn manager_save_is_compare_and_swap(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let s = m
        .create(b"v0".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    clock.advance(Duration::from_secs(1));
    let mut a = load(&m, s.token()).await.expect("load");
    let mut b = load(&m, s.token()).await.expect("load");
    a.set_data(b"from a".to_vec());
    m.save(&mut a).await.expect("first save");
    assert_eq!(a.version(), 1);
    b.set_data(b"from b".to_vec());
    assert!(matches!(m.save(&mut b).await, Err(Error::Conflict)));
    let now = load(&m, s.token()).await.expect("load");
    assert_eq!(now.data(), b"from a");
    assert_eq!(now.version(), 1);
    // A save is activity: the idle deadline moved with it.
    clock.advance(mins(9));
    let mut c = load(&m, s.token()).await.expect("load");
    c.set_data(b"c".to_vec());
    m.save(&mut c).await.expect("save");
    assert_eq!(c.idle_deadline(), at(m.now(), mins(10)));
}

/// Expiry on read is reported: a load of a session the store still holds
/// past its idle or absolute deadline raises `Event::Expired` (which
/// deadline, the client IP), an unknown token `Event::LookupMiss`; both
/// answer `None`.
pub async fn manager_expiry_on_read_event(ctx: Ctx) {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use session_store_core::{Event, ExpiredBy, ManualClock, SessionManager};

    use crate::checks::Recorder;

    let recorder = Arc::new(Recorder::default());
    let clock = Arc::new(ManualClock::starting_now());
    let m = SessionManager::builder(ctx.backend.clone())
        .clock(clock.clone())
        .policy(policy())
        .events(recorder.clone())
        .build()
        .expect("manager");
    let ip = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)));
    let last = |recorder: &Recorder| recorder.events().last().cloned();

    let idle = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    clock.advance(mins(10));
    assert!(m
        .load_from(idle.token().expose_secret(), ip)
        .await
        .expect("load")
        .is_none());
    assert_eq!(
        last(&recorder),
        Some(Event::Expired {
            key: idle.storage_key().short_hash(),
            deadline: ExpiredBy::Idle,
            ip
        })
    );

    // Kept alive by activity until the absolute deadline ends it.
    let s = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    for _ in 0..6 {
        clock.advance(mins(9));
        if load(&m, s.token()).await.is_none() {
            break;
        }
    }
    clock.advance(mins(9));
    assert!(load(&m, s.token()).await.is_none());
    assert_eq!(
        last(&recorder),
        Some(Event::Expired {
            key: s.storage_key().short_hash(),
            deadline: ExpiredBy::Absolute,
            ip: None
        })
    );

    let unknown = session_store_core::SessionToken::generate();
    assert!(m
        .load_from(unknown.expose_secret(), ip)
        .await
        .expect("load")
        .is_none());
    assert_eq!(
        last(&recorder),
        Some(Event::LookupMiss {
            key: unknown.storage_key().short_hash(),
            ip
        })
    );
}
