//! The adapter's `SessionStore` methods directly: keys are tokens hashed at
//! rest, no resurrection, read-time expiry, fail-closed decoding, cleanup.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_session::storage::{LoadError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration as Ttl;
use session_store_actix::{storage_key_for, ActixSessionStore, LOADED_FIELD};
use session_store_core::{
    AdapterConfig, Clock as _, Encrypted, EncryptionKey, Keyring, ManualClock, MemoryStore,
    SessionBackend, SessionToken,
};
use session_store_test_support::{per_backend, TestBackend};

fn state(v: &str) -> HashMap<String, String> {
    HashMap::from([("v".to_owned(), format!("{v:?}"))])
}

/// What the application sees of a loaded state: without the version the
/// adapter carries for `update`.
fn app(loaded: Option<HashMap<String, String>>) -> Option<HashMap<String, String>> {
    loaded.map(|mut s| {
        assert!(
            s.remove(LOADED_FIELD).is_some(),
            "a loaded state carries its version"
        );
        s
    })
}

fn key(text: &str) -> SessionKey {
    SessionKey::try_from(text.to_owned()).unwrap()
}

fn store(b: &TestBackend) -> (ActixSessionStore, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    let store = ActixSessionStore::new(b.backend.clone()).with_clock(clock.clone());
    (store, clock)
}

async fn keys_are_tokens_hashed_at_rest(b: TestBackend) {
    let (store, clock) = store(&b);
    let k = store.save(state("x"), &Ttl::minutes(10)).await.unwrap();
    let token = SessionToken::parse(k.as_ref()).expect("the key is a 256-bit token");
    let hashed = storage_key_for(&k).unwrap();
    assert_eq!(hashed, token.storage_key());
    assert!(b
        .backend
        .load(&hashed, clock.now())
        .await
        .unwrap()
        .is_some());
    assert_eq!(app(store.load(&k).await.unwrap()), Some(state("x")));
    for bad in ["", "short", &"A".repeat(4000), &hashed.to_hex()] {
        assert_eq!(store.load(&key(bad)).await.unwrap(), None, "{bad:.10}");
    }
    b.finish().await;
}

async fn no_resurrection_after_delete(b: TestBackend) {
    let (store, _) = store(&b);
    let k = store.save(state("x"), &Ttl::minutes(10)).await.unwrap();
    let text = k.as_ref().to_owned();
    store.delete(&k).await.unwrap();
    store.delete(&k).await.unwrap(); // idempotent
    let r = store
        .update(key(&text), state("again"), &Ttl::minutes(10))
        .await;
    assert!(matches!(r, Err(UpdateError::Other(_))), "not re-created");
    assert_eq!(store.load(&key(&text)).await.unwrap(), None);
    b.finish().await;
}

async fn expiry_on_read_and_ttl_extension(b: TestBackend) {
    let (store, clock) = store(&b);
    let k = store.save(state("x"), &Ttl::minutes(10)).await.unwrap();
    let text = k.as_ref().to_owned();
    clock.advance(Duration::from_secs(8 * 60));
    store
        .update_ttl(&key(&text), &Ttl::minutes(10))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(8 * 60));
    assert_eq!(
        app(store.load(&key(&text)).await.unwrap()),
        Some(state("x"))
    );
    let k = store
        .update(key(&text), state("y"), &Ttl::minutes(10))
        .await
        .unwrap();
    assert_eq!(k.as_ref(), text, "update keeps the key");
    clock.advance(Duration::from_secs(11 * 60));
    assert_eq!(store.load(&key(&text)).await.unwrap(), None, "idle expiry");
    assert!(store
        .update(key(&text), state("z"), &Ttl::minutes(10))
        .await
        .is_err());
    b.finish().await;
}

async fn oversized_state_is_refused(b: TestBackend) {
    let store = ActixSessionStore::new(b.backend.clone())
        .with_config(AdapterConfig::new().with_max_data_bytes(64))
        .unwrap();
    assert!(store
        .save(state(&"x".repeat(100)), &Ttl::minutes(10))
        .await
        .is_err());
    b.finish().await;
}

/// Two requests load one session; the first update wins, the second is a
/// conflict (not a silent overwrite) and writes nothing.
async fn a_stale_update_is_a_conflict(b: TestBackend) {
    let (store, _) = store(&b);
    let k = store.save(state("0"), &Ttl::minutes(10)).await.unwrap();
    let text = k.as_ref().to_owned();
    let mut first = store.load(&key(&text)).await.unwrap().unwrap();
    let mut second = store.load(&key(&text)).await.unwrap().unwrap();
    first.insert("v".into(), "\"first\"".into());
    second.insert("v".into(), "\"second\"".into());
    store
        .update(key(&text), first, &Ttl::minutes(10))
        .await
        .unwrap();
    match store.update(key(&text), second, &Ttl::minutes(10)).await {
        Err(UpdateError::Other(e)) => assert!(
            matches!(
                e.downcast_ref::<session_store_core::Error>(),
                Some(session_store_core::Error::Conflict)
            ),
            "{e:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        app(store.load(&key(&text)).await.unwrap()),
        Some(state("first"))
    );
    b.finish().await;
}

per_backend!(
    "adapter";
    a_stale_update_is_a_conflict,
    keys_are_tokens_hashed_at_rest,
    no_resurrection_after_delete,
    expiry_on_read_and_ttl_extension,
    oversized_state_is_refused,
);

#[test]
fn an_invalid_config_is_refused() {
    let memory: Arc<dyn SessionBackend> = Arc::new(MemoryStore::new());
    for config in [
        AdapterConfig::new().with_absolute_timeout(Duration::ZERO),
        AdapterConfig::new().with_max_data_bytes(0),
        AdapterConfig::new().with_user_id_key(""),
    ] {
        let r = ActixSessionStore::new(memory.clone()).with_config(config.clone());
        assert!(
            matches!(r, Err(session_store_core::Error::Config(_))),
            "{config:?}"
        );
    }
    let config = AdapterConfig::new().with_user_id_key("user");
    let store = ActixSessionStore::new(memory)
        .with_config(config.clone())
        .unwrap();
    assert_eq!(store.config(), &config);
}

#[tokio::test]
async fn undecryptable_state_fails_closed() {
    let memory = Arc::new(MemoryStore::new());
    let writer = ActixSessionStore::new(Arc::new(Encrypted::new(
        memory.clone(),
        Keyring::new(1, EncryptionKey::generate()),
    )));
    let reader = ActixSessionStore::new(Arc::new(Encrypted::new(
        memory.clone(),
        Keyring::new(1, EncryptionKey::generate()),
    )));
    let k = writer.save(state("x"), &Ttl::minutes(10)).await.unwrap();
    assert!(matches!(reader.load(&k).await, Err(LoadError::Other(_))));
}

#[tokio::test]
async fn cleanup_removes_only_expired_sessions() {
    let memory = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let store =
        ActixSessionStore::new(memory.clone() as Arc<dyn SessionBackend>).with_clock(clock.clone());
    store.save(state("short"), &Ttl::minutes(1)).await.unwrap();
    let long = store.save(state("long"), &Ttl::minutes(60)).await.unwrap();
    clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(store.cleanup_expired().await.unwrap(), 1);
    assert_eq!(memory.len(), 1);
    assert_eq!(app(store.load(&long).await.unwrap()), Some(state("long")));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// At rest: only SHA-256 of the key (a 256-bit token); the key never
/// appears anywhere; under encryption, neither does the state.
#[tokio::test]
async fn only_the_hash_of_the_key_is_stored() {
    let memory = Arc::new(MemoryStore::new());
    let store = ActixSessionStore::new(Arc::new(Encrypted::new(
        memory.clone(),
        Keyring::new(1, EncryptionKey::generate()),
    )));
    let k = store
        .save(state("secret-value"), &Ttl::minutes(10))
        .await
        .unwrap();
    let hashed = SessionToken::parse(k.as_ref()).unwrap().storage_key();
    let dump = memory.dump_raw();
    assert!(dump.iter().any(|b| b.as_slice() == hashed.as_bytes()));
    for stored in &dump {
        assert!(!contains(stored, k.as_ref().as_bytes()));
        assert!(!contains(stored, b"secret-value"));
    }
}
