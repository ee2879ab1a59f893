//! The adapter's `SessionStore` methods directly: create never overwrites,
//! no resurrection, read-time expiry, size limit, cleanup. The scenarios run
//! over every backend and over the typed in-memory path
//! (`TowerSessionStore::in_memory`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use session_store_core::{AdapterConfig, ManualClock, MemoryStore, SessionBackend};
use session_store_tower_sessions::{is_conflict, storage_key_for, TowerSessionStore, LOADED_FIELD};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::Error as StoreError;
use tower_sessions::{ExpiredDeletion, SessionStore};

mod support;
use support::{on_both_paths, Target};

fn record(value: &str, minutes: i64) -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([("v".to_owned(), json!(value))]),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::minutes(minutes),
    }
}

fn store(b: &Target) -> (TowerSessionStore, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    let store = b.adapter().with_clock(clock.clone());
    (store, clock)
}

async fn create_never_overwrites(b: Target) {
    let (store, _) = store(&b);
    let mut first = record("first", 10);
    store.create(&mut first).await.unwrap();
    let taken = first.id;
    let mut second = record("second", 10);
    second.id = taken;
    store.create(&mut second).await.unwrap();
    assert_ne!(second.id, taken, "a colliding id is replaced");
    assert_eq!(
        store.load(&taken).await.unwrap().unwrap().data["v"],
        json!("first"),
        "the existing session is untouched"
    );
    assert_eq!(
        store.load(&second.id).await.unwrap().unwrap().data["v"],
        json!("second")
    );
    b.finish().await;
}

async fn no_resurrection_after_delete(b: Target) {
    let (store, _) = store(&b);
    let mut r = record("x", 10);
    store.create(&mut r).await.unwrap();
    let mut stale = store.load(&r.id).await.unwrap().unwrap();
    store.delete(&r.id).await.unwrap();
    store.delete(&r.id).await.unwrap(); // idempotent
    stale.data.insert("v".into(), json!("resurrected"));
    assert!(matches!(
        store.save(&stale).await,
        Err(StoreError::Backend(_))
    ));
    assert!(store.load(&r.id).await.unwrap().is_none());
    if let Some(backend) = b.backend() {
        assert!(backend
            .load(
                &storage_key_for(&r.id),
                session_store_core::Timestamp::now_utc()
            )
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(store.in_memory_len().unwrap_or(0), 0);
    b.finish().await;
}

async fn save_updates_live_sessions_only(b: Target) {
    let (store, clock) = store(&b);
    let mut r = record("one", 10);
    store.create(&mut r).await.unwrap();
    r.data.insert("v".into(), json!("two"));
    r.expiry_date = OffsetDateTime::now_utc() + time::Duration::minutes(10);
    store.save(&r).await.unwrap();
    assert_eq!(
        store.load(&r.id).await.unwrap().unwrap().data["v"],
        json!("two")
    );
    clock.advance(Duration::from_secs(11 * 60));
    assert!(
        store.load(&r.id).await.unwrap().is_none(),
        "expired on read"
    );
    assert!(
        store.save(&r).await.is_err(),
        "an expired session is not revived"
    );
    b.finish().await;
}

async fn oversized_data_is_refused(b: Target) {
    let clock = Arc::new(ManualClock::starting_now());
    let store = b
        .adapter()
        .with_config(AdapterConfig::new().with_max_data_bytes(64))
        .unwrap()
        .with_clock(clock);
    let mut r = record(&"x".repeat(100), 10);
    assert!(matches!(
        store.create(&mut r).await,
        Err(StoreError::Encode(_))
    ));
    assert!(store.load(&r.id).await.unwrap().is_none());
    // The limit is on the JSON encoding: {"v":"<56 bytes>"} is 64 bytes,
    // and one escaped quote instead of an x is 65.
    let mut fits = record(&"x".repeat(56), 10);
    store.create(&mut fits).await.unwrap();
    fits.data
        .insert("v".into(), json!(format!("\"{}", "x".repeat(55))));
    assert!(matches!(
        store.save(&fits).await,
        Err(StoreError::Encode(_))
    ));
    assert_eq!(
        store.load(&fits.id).await.unwrap().unwrap().data["v"],
        json!("x".repeat(56))
    );
    b.finish().await;
}

/// Two requests load one session; the first save wins, the second is a
/// conflict (not a silent overwrite) and writes nothing; a reload saves.
async fn a_stale_save_is_a_conflict(b: Target) {
    let (store, _) = store(&b);
    let mut r = record("0", 10);
    store.create(&mut r).await.unwrap();
    let mut first = store.load(&r.id).await.unwrap().unwrap();
    let mut second = store.load(&r.id).await.unwrap().unwrap();
    first.data.insert("v".into(), json!("first"));
    second.data.insert("v".into(), json!("second"));
    store.save(&first).await.unwrap();
    let lost = store.save(&second).await.unwrap_err();
    assert!(is_conflict(&lost), "{lost:?}");
    let mut reloaded = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!(reloaded.data["v"], json!("first"));
    reloaded.data.insert("v".into(), json!("second"));
    store.save(&reloaded).await.unwrap();
    assert_eq!(
        store.load(&r.id).await.unwrap().unwrap().data["v"],
        json!("second")
    );
    b.finish().await;
}

/// One loaded record saved several times (a handler's `Session::save`,
/// then the middleware's): each save continues from the previous one.
async fn one_load_saves_twice(b: Target) {
    let (store, _) = store(&b);
    let mut r = record("0", 10);
    store.create(&mut r).await.unwrap();
    // The record create filled in saves as well (no load in between).
    r.data.insert("v".into(), json!("1"));
    store.save(&r).await.unwrap();
    store.save(&r).await.unwrap();
    r.data.insert("v".into(), json!("2"));
    store.save(&r).await.unwrap();
    let mut loaded = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!(loaded.data["v"], json!("2"));
    loaded.data.insert("v".into(), json!("3"));
    store.save(&loaded).await.unwrap();
    store.save(&loaded).await.unwrap();
    assert_eq!(
        store.load(&r.id).await.unwrap().unwrap().data["v"],
        json!("3")
    );
    b.finish().await;
}

/// The carried version is never stored; a record without it (after
/// `Session::clear`, or built by hand) still saves, reading the version.
async fn the_carried_version_stays_in_memory(b: Target) {
    let (store, _) = store(&b);
    let mut r = record("x", 10);
    store.create(&mut r).await.unwrap();
    assert!(r.data.contains_key(LOADED_FIELD));
    let mut loaded = store.load(&r.id).await.unwrap().unwrap();
    assert!(loaded.data.contains_key(LOADED_FIELD));
    if let Some(backend) = b.backend() {
        let stored = backend
            .load(
                &storage_key_for(&r.id),
                session_store_core::Timestamp::now_utc(),
            )
            .await
            .unwrap();
        match stored {
            Some(session_store_core::Lookup::Session(s)) => {
                let data: HashMap<String, serde_json::Value> =
                    serde_json::from_slice(&s.data).unwrap();
                assert_eq!(data, HashMap::from([("v".to_owned(), json!("x"))]));
            }
            other => panic!("{other:?}"),
        }
    }
    loaded.data.clear();
    store.save(&loaded).await.unwrap();
    let cleared = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!(cleared.data.len(), 1, "only the carried version");
    b.finish().await;
}

/// Data in every JSON form: escapes, control characters, non-ASCII,
/// nesting, numbers at their limits, and 1 KiB of text. The last two
/// floats are ones serde_json's default (best-effort) float parsing reads
/// back one bit off from what it wrote (found by the tower_json fuzz
/// target).
fn varied() -> HashMap<String, serde_json::Value> {
    HashMap::from([
        ("blob".to_owned(), json!("x".repeat(1024))),
        (
            "quote\"key".to_owned(),
            json!("a \"quoted\" \\ value\n\t\u{1}"),
        ),
        ("unicode".to_owned(), json!("é 日本語 😀 \u{7f}")),
        (
            "numbers".to_owned(),
            json!([
                0,
                -1,
                u64::MAX,
                i64::MIN,
                0.1,
                1e300,
                -0.5,
                9.223372036549999e19,
                -9.223372036855e21
            ]),
        ),
        (
            "flags".to_owned(),
            json!({"t": true, "f": false, "none": null}),
        ),
        (
            "nested".to_owned(),
            json!({"a": {"b": [[], {}, [{"c": "</script>"}]]}}),
        ),
    ])
}

fn without_carried(
    mut data: HashMap<String, serde_json::Value>,
) -> HashMap<String, serde_json::Value> {
    data.remove(LOADED_FIELD);
    data
}

/// What a load returns is exactly the map that was created or saved (the
/// carried version aside), whatever the values hold.
async fn load_after_save_returns_the_saved_map_on(store: TowerSessionStore) {
    let mut r = Record {
        id: Id::default(),
        data: varied(),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::minutes(10),
    };
    store.create(&mut r).await.unwrap();
    let mut loaded = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!(without_carried(loaded.data.clone()), varied());
    loaded.data.remove("blob");
    loaded
        .data
        .insert("added".into(), json!({"k\\": ["\u{0}", 2.5, i64::MAX]}));
    loaded.data.insert("unicode".into(), json!(""));
    store.save(&loaded).await.unwrap();
    let again = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!(without_carried(again.data), without_carried(loaded.data));
}

async fn load_after_save_returns_the_saved_map(b: Target) {
    load_after_save_returns_the_saved_map_on(b.adapter()).await;
    b.finish().await;
}

fn encrypted_memory() -> (Arc<MemoryStore>, Arc<dyn SessionBackend>) {
    let memory = Arc::new(MemoryStore::new());
    let encrypted = Arc::new(session_store_core::Encrypted::new(
        memory.clone(),
        session_store_core::Keyring::new(1, session_store_core::EncryptionKey::generate()),
    ));
    (memory, encrypted)
}

#[tokio::test]
async fn load_after_save_returns_the_saved_map_in_memory() {
    load_after_save_returns_the_saved_map_on(TowerSessionStore::new(Arc::new(MemoryStore::new())))
        .await;
    load_after_save_returns_the_saved_map_on(TowerSessionStore::new(encrypted_memory().1)).await;
}

/// A stale save is a conflict on the in-memory store too, plain and
/// encrypted, and writes nothing.
#[tokio::test]
async fn a_stale_save_is_a_conflict_in_memory() {
    let (_, encrypted) = encrypted_memory();
    for backend in [
        Arc::new(MemoryStore::new()) as Arc<dyn SessionBackend>,
        encrypted,
    ] {
        let store = TowerSessionStore::new(backend);
        let mut r = record("0", 10);
        store.create(&mut r).await.unwrap();
        let mut first = store.load(&r.id).await.unwrap().unwrap();
        let mut second = store.load(&r.id).await.unwrap().unwrap();
        first.data.insert("v".into(), json!("first"));
        second.data.insert("v".into(), json!("second"));
        store.save(&first).await.unwrap();
        let lost = store.save(&second).await.unwrap_err();
        assert!(is_conflict(&lost), "{lost:?}");
        assert_eq!(
            store.load(&r.id).await.unwrap().unwrap().data["v"],
            json!("first")
        );
    }
}

/// Over the encrypted in-memory store, neither a created nor a saved
/// session's data (values or field names) is held in the clear.
#[tokio::test]
async fn the_encrypted_memory_store_never_holds_plaintext() {
    let (memory, encrypted) = encrypted_memory();
    let store = TowerSessionStore::new(encrypted);
    let created = "created-secret-".repeat(70);
    let saved = "saved-secret-".repeat(80);
    let mut r = record(&created, 10);
    r.data.insert("field-name-secret".into(), json!(1));
    store.create(&mut r).await.unwrap();
    let mut loaded = store.load(&r.id).await.unwrap().unwrap();
    loaded.data.insert("v".into(), json!(saved));
    store.save(&loaded).await.unwrap();
    assert_eq!(
        store.load(&r.id).await.unwrap().unwrap().data["v"],
        json!(saved)
    );
    let dump = memory.dump_raw();
    assert!(
        dump.iter().any(|b| b.len() > saved.len()),
        "the data is stored"
    );
    for stored in &dump {
        for needle in [
            &b"created-secret-"[..],
            b"saved-secret-",
            b"field-name-secret",
        ] {
            assert!(!contains(stored, needle));
        }
    }
}

on_both_paths!(
    load_after_save_returns_the_saved_map,
    a_stale_save_is_a_conflict,
    one_load_saves_twice,
    the_carried_version_stays_in_memory,
    create_never_overwrites,
    no_resurrection_after_delete,
    save_updates_live_sessions_only,
    oversized_data_is_refused,
);

#[test]
fn an_invalid_config_is_refused() {
    let memory: Arc<dyn SessionBackend> = Arc::new(MemoryStore::new());
    for config in [
        AdapterConfig::new().with_absolute_timeout(Duration::ZERO),
        AdapterConfig::new().with_max_data_bytes(0),
        AdapterConfig::new().with_user_id_key(""),
    ] {
        let r = TowerSessionStore::new(memory.clone()).with_config(config.clone());
        assert!(
            matches!(r, Err(session_store_core::Error::Config(_))),
            "{config:?}"
        );
    }
    let config = AdapterConfig::new().with_user_id_key("user");
    let store = TowerSessionStore::new(memory)
        .with_config(config.clone())
        .unwrap();
    assert_eq!(store.config(), &config);
}

#[tokio::test]
async fn delete_expired_removes_only_expired_sessions() {
    let memory = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let store =
        TowerSessionStore::new(memory.clone() as Arc<dyn SessionBackend>).with_clock(clock.clone());
    let mut short = record("short", 1);
    let mut long = record("long", 60);
    store.create(&mut short).await.unwrap();
    store.create(&mut long).await.unwrap();
    clock.advance(Duration::from_secs(5 * 60));
    store.delete_expired().await.unwrap();
    assert_eq!(memory.len(), 1);
    assert!(store.load(&long.id).await.unwrap().is_some());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// At rest: only SHA-256 of the id's text; neither the id's text nor its
/// bytes appear anywhere; under encryption, neither does the data.
#[tokio::test]
async fn only_the_hash_of_the_id_is_stored() {
    use sha2::{Digest as _, Sha256};
    let memory = Arc::new(MemoryStore::new());
    let encrypted = Arc::new(session_store_core::Encrypted::new(
        memory.clone(),
        session_store_core::Keyring::new(1, session_store_core::EncryptionKey::generate()),
    ));
    let store = TowerSessionStore::new(encrypted);
    let mut r = record("secret-value", 10);
    store.create(&mut r).await.unwrap();
    let text = r.id.to_string();
    let expected: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    assert_eq!(storage_key_for(&r.id).as_bytes(), &expected);
    let dump = memory.dump_raw();
    assert!(dump.iter().any(|b| b.as_slice() == expected));
    for stored in &dump {
        assert!(!contains(stored, text.as_bytes()));
        assert!(!contains(stored, &r.id.0.to_le_bytes()));
        assert!(!contains(stored, b"secret-value"));
    }
}

#[tokio::test]
async fn delete_expired_removes_only_expired_sessions_in_memory() {
    let clock = Arc::new(ManualClock::starting_now());
    let store = TowerSessionStore::in_memory().with_clock(clock.clone());
    let mut short = record("short", 1);
    let mut long = record("long", 60);
    store.create(&mut short).await.unwrap();
    store.create(&mut long).await.unwrap();
    clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(store.in_memory_len(), Some(2), "nothing removed yet");
    store.delete_expired().await.unwrap();
    assert_eq!(store.in_memory_len(), Some(1));
    assert!(store.load(&short.id).await.unwrap().is_none());
    assert!(store.load(&long.id).await.unwrap().is_some());
    // Past the long one's expiry a load finds nothing and removes it.
    clock.advance(Duration::from_secs(60 * 60));
    assert!(store.load(&long.id).await.unwrap().is_none());
    assert_eq!(store.in_memory_len(), Some(0));
}

/// On the typed path the carried field is a version, a random stamp and a
/// random load number: one written by the application (the next version
/// with a guessed stamp, a guessed load number, the backend path's format
/// with a far deadline) never wins a race it lost, and never moves the
/// absolute deadline.
#[tokio::test]
async fn a_forged_carried_field_does_not_defeat_the_typed_compare_and_swap() {
    let clock = Arc::new(ManualClock::starting_now());
    let store = TowerSessionStore::in_memory()
        .with_config(AdapterConfig::new().with_absolute_timeout(Duration::from_secs(3600)))
        .unwrap()
        .with_clock(clock.clone());
    let mut r = record("0", 120);
    store.create(&mut r).await.unwrap();
    let mut stale = store.load(&r.id).await.unwrap().unwrap();
    let mut winner = store.load(&r.id).await.unwrap().unwrap();
    winner.data.insert("v".into(), json!("winner"));
    store.save(&winner).await.unwrap();
    let text = stale.data[LOADED_FIELD].as_str().unwrap().to_owned();
    assert!(text.starts_with("t1:"), "{text}");
    let parts: Vec<&str> = text[3..].split(':').collect();
    let next_version = format!("{:016x}", u64::from_str_radix(parts[0], 16).unwrap() + 1);
    let stale_load = u64::from_str_radix(parts[2], 16).unwrap();
    for forged in [
        // The winner's version with the stale stamp, or a made-up stamp.
        format!("t1:{next_version}:{}:{}", parts[1], parts[2]),
        format!("t1:{next_version}:{:016x}:{}", 0, parts[2]),
        // Load numbers next to this one's (the winner's is random).
        format!(
            "t1:{}:{}:{:016x}",
            parts[0],
            parts[1],
            stale_load.wrapping_add(1)
        ),
        format!(
            "t1:{}:{}:{:016x}",
            parts[0],
            parts[1],
            stale_load.wrapping_sub(1)
        ),
    ] {
        stale.data.insert(LOADED_FIELD.into(), json!(forged));
        stale.data.insert("v".into(), json!("forged"));
        let lost = store.save(&stale).await.unwrap_err();
        assert!(is_conflict(&lost), "{forged}: {lost:?}");
    }
    assert_eq!(
        store.load(&r.id).await.unwrap().unwrap().data["v"],
        json!("winner")
    );
    // The backend path's format naming a far absolute deadline: not this
    // path's field, so the save is one without a carried version, and the
    // session still ends at its own absolute deadline.
    let mut fresh = store.load(&r.id).await.unwrap().unwrap();
    fresh.data.insert(
        LOADED_FIELD.into(),
        json!(format!("v1:1:1:0:0:{}:-", i64::MAX)),
    );
    fresh.expiry_date = OffsetDateTime::now_utc() + time::Duration::days(30);
    store.save(&fresh).await.unwrap();
    clock.advance(Duration::from_secs(3600));
    assert!(
        store.load(&r.id).await.unwrap().is_none(),
        "absolute deadline kept"
    );
}

/// A second save of one load after a concurrent request saved: with the
/// same data only the expiry moves; with changed data it is a conflict.
#[tokio::test]
async fn a_second_save_after_a_concurrent_one_in_memory() {
    let store = TowerSessionStore::in_memory();
    let mut r = record("0", 10);
    store.create(&mut r).await.unwrap();
    let mut mine = store.load(&r.id).await.unwrap().unwrap();
    mine.data.insert("v".into(), json!("mine"));
    store.save(&mine).await.unwrap();
    let mut other = store.load(&r.id).await.unwrap().unwrap();
    other.data.insert("v".into(), json!("other"));
    store.save(&other).await.unwrap();
    store.save(&mine).await.unwrap();
    assert_eq!(
        store.load(&r.id).await.unwrap().unwrap().data["v"],
        json!("other"),
        "the repeated save of unchanged data writes nothing"
    );
    mine.data.insert("v".into(), json!("mine again"));
    assert!(is_conflict(&store.save(&mine).await.unwrap_err()));
}

/// Backend path: another session's carried field, copied into a record
/// with the data that session saved, names that session's save in the
/// save log. The log entry belongs to the other session, so it is not this
/// save's earlier save: the save is a compare-and-swap on the copied
/// version (a conflict here), not a touch that reports success and stores
/// nothing.
#[tokio::test]
async fn another_sessions_carried_field_is_not_an_earlier_save() {
    let store = TowerSessionStore::new(Arc::new(MemoryStore::new()));
    let mut a = record("a", 120);
    let mut b = record("b", 120);
    store.create(&mut a).await.unwrap();
    store.create(&mut b).await.unwrap();
    // B moves on to a later version than A's carried one.
    let mut b_first = store.load(&b.id).await.unwrap().unwrap();
    b_first.data.insert("v".into(), json!("b saved"));
    store.save(&b_first).await.unwrap();

    let mut a_loaded = store.load(&a.id).await.unwrap().unwrap();
    a_loaded.data.insert("v".into(), json!("x"));
    store.save(&a_loaded).await.unwrap();

    let mut b_loaded = store.load(&b.id).await.unwrap().unwrap();
    b_loaded.data = a_loaded.data.clone();
    let err = store.save(&b_loaded).await.unwrap_err();
    assert!(is_conflict(&err), "{err:?}");
    assert_eq!(
        store.load(&b.id).await.unwrap().unwrap().data["v"],
        json!("b saved")
    );
}

/// A record of session B that carries the field a load of session A wrote,
/// where the two ids fall in the same slot of the adapter's table of recent
/// loads: the save never takes A's storage key (or A's carried record)
/// from that table, so A is not written; nor does a load of B.
async fn a_carried_field_never_lends_another_sessions_key_on(store: TowerSessionStore) {
    let (a_id, b_id) = (Id(5), Id(5 + (1 << 20)));
    let mut a = record("a", 10);
    a.id = a_id;
    let mut b = record("b", 10);
    b.id = b_id;
    store.create(&mut a).await.unwrap();
    store.create(&mut b).await.unwrap();
    assert_eq!((a.id, b.id), (a_id, b_id), "created under the chosen ids");
    let mut loaded = store.load(&a_id).await.unwrap().unwrap();
    loaded.id = b_id;
    loaded.data.insert("v".into(), json!("through b's record"));
    // What happens to B is the ordinary carried-field check; A must not move.
    let _ = store.save(&loaded).await;
    assert_eq!(
        store.load(&a_id).await.unwrap().unwrap().data["v"],
        json!("a")
    );
    // A load of B, with A's load in B's slot, reads B.
    let b_now = store.load(&b_id).await.unwrap().unwrap();
    assert_ne!(b_now.data["v"], json!("a"));
}

#[tokio::test]
async fn a_carried_field_never_lends_another_sessions_key() {
    a_carried_field_never_lends_another_sessions_key_on(TowerSessionStore::new(Arc::new(
        MemoryStore::new(),
    )))
    .await;
    a_carried_field_never_lends_another_sessions_key_on(TowerSessionStore::in_memory()).await;
}
