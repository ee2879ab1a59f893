//! The adapter's `SessionStore` methods directly: create never overwrites,
//! no resurrection, read-time expiry, size limit, cleanup.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use session_store_core::{AdapterConfig, ManualClock, MemoryStore, SessionBackend};
use session_store_test_support::{per_backend, TestBackend};
use session_store_tower_sessions::{is_conflict, storage_key_for, TowerSessionStore, LOADED_FIELD};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::Error as StoreError;
use tower_sessions::{ExpiredDeletion, SessionStore};

fn record(value: &str, minutes: i64) -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([("v".to_owned(), json!(value))]),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::minutes(minutes),
    }
}

fn store(b: &TestBackend) -> (TowerSessionStore, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    let store = TowerSessionStore::new(b.backend.clone()).with_clock(clock.clone());
    (store, clock)
}

async fn create_never_overwrites(b: TestBackend) {
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

async fn no_resurrection_after_delete(b: TestBackend) {
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
    assert!(b
        .backend
        .load(
            &storage_key_for(&r.id),
            session_store_core::Timestamp::now_utc()
        )
        .await
        .unwrap()
        .is_none());
    b.finish().await;
}

async fn save_updates_live_sessions_only(b: TestBackend) {
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

async fn oversized_data_is_refused(b: TestBackend) {
    let clock = Arc::new(ManualClock::starting_now());
    let store = TowerSessionStore::new(b.backend.clone())
        .with_config(AdapterConfig::new().with_max_data_bytes(64))
        .unwrap()
        .with_clock(clock);
    let mut r = record(&"x".repeat(100), 10);
    assert!(matches!(
        store.create(&mut r).await,
        Err(StoreError::Encode(_))
    ));
    assert!(store.load(&r.id).await.unwrap().is_none());
    b.finish().await;
}

/// Two requests load one session; the first save wins, the second is a
/// conflict (not a silent overwrite) and writes nothing; a reload saves.
async fn a_stale_save_is_a_conflict(b: TestBackend) {
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
async fn one_load_saves_twice(b: TestBackend) {
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
async fn the_carried_version_stays_in_memory(b: TestBackend) {
    let (store, _) = store(&b);
    let mut r = record("x", 10);
    store.create(&mut r).await.unwrap();
    assert!(r.data.contains_key(LOADED_FIELD));
    let mut loaded = store.load(&r.id).await.unwrap().unwrap();
    assert!(loaded.data.contains_key(LOADED_FIELD));
    let stored = b
        .backend
        .load(
            &storage_key_for(&r.id),
            session_store_core::Timestamp::now_utc(),
        )
        .await
        .unwrap();
    match stored {
        Some(session_store_core::Lookup::Session(s)) => {
            let data: HashMap<String, serde_json::Value> = serde_json::from_slice(&s.data).unwrap();
            assert_eq!(data, HashMap::from([("v".to_owned(), json!("x"))]));
        }
        other => panic!("{other:?}"),
    }
    loaded.data.clear();
    store.save(&loaded).await.unwrap();
    let cleared = store.load(&r.id).await.unwrap().unwrap();
    assert_eq!(cleared.data.len(), 1, "only the carried version");
    b.finish().await;
}

/// Data in every JSON form: escapes, control characters, non-ASCII,
/// nesting, numbers at their limits, and 1 KiB of text.
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
            json!([0, -1, u64::MAX, i64::MIN, 0.1, 1e300, -0.5]),
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
async fn load_after_save_returns_the_saved_map_on(backend: Arc<dyn SessionBackend>) {
    let store = TowerSessionStore::new(backend);
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

async fn load_after_save_returns_the_saved_map(b: TestBackend) {
    load_after_save_returns_the_saved_map_on(b.backend.clone()).await;
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
    load_after_save_returns_the_saved_map_on(Arc::new(MemoryStore::new())).await;
    load_after_save_returns_the_saved_map_on(encrypted_memory().1).await;
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

per_backend!(
    "adapter";
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
