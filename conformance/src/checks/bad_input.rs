//! Bad input: malformed tokens are rejected before any I/O and change
//! nothing; oversized values are refused before any write.

use std::sync::Arc;

use session_store_core::{
    ClientMeta, Error, ManualClock, Policy, RotateReason, SessionManager, SessionToken,
};

use super::spy::Spy;
use super::Ctx;

/// Malformed cookie values an attacker (or a broken client) may send.
fn malformed_tokens() -> Vec<(&'static str, String)> {
    let good = SessionToken::generate();
    let text = good.expose_secret().to_owned();
    let mut non_canonical = text[..42].to_owned();
    // The last character of 32 bytes in base64url carries 2 padding bits
    // that must be zero; 'B' sets one of them.
    non_canonical.push('B');
    let lossy = String::from_utf8_lossy(&[0xff, 0xfe, b'A', 0x80, 0xc3, 0x28]).into_owned();
    let mut lossy_token = text[..40].to_owned();
    lossy_token.push_str(&lossy);
    vec![
        ("empty", String::new()),
        ("one character", "A".into()),
        ("one short", text[..42].to_owned()),
        ("one long", format!("{text}A")),
        ("padded", format!("{text}=")),
        ("leading space", format!(" {text}")),
        ("trailing newline", format!("{text}\n")),
        ("standard base64 alphabet", format!("{}+/", &text[..41])),
        ("NUL inside", format!("{}\0{}", &text[..21], &text[22..])),
        ("NUL only", "\0".repeat(43)),
        ("non-UTF-8 bytes (lossy)", lossy_token),
        ("non-ASCII", format!("{}é", &text[..41])),
        ("glob", format!("{}*?[", &text[..40])),
        ("glob only", "*".repeat(43)),
        ("SQL", "' OR 1=1 --".into()),
        ("SQL in token shape", format!("{}' OR 1=1 --", &text[..32])),
        ("percent", format!("{}%", &text[..42])),
        ("percent-encoded", format!("{}%41", &text[..40])),
        ("Redis key pattern", "session:*".into()),
        (
            "handle text",
            SessionToken::generate().storage_key().to_hex(),
        ),
        ("non-canonical base64", non_canonical),
        ("1 MiB", "A".repeat(1 << 20)),
    ]
}

/// Malformed tokens are `InvalidId` through the manager, before any I/O,
/// and the store is unchanged: a live session still loads with the same
/// version and data, and the user's listing is the same.
pub async fn manager_malformed_tokens_invalid_id(ctx: Ctx) {
    let spy = Spy::new(ctx.backend.clone());
    let m = SessionManager::builder(spy.clone())
        .clock(Arc::new(ManualClock::starting_now()))
        .policy(Policy::default())
        .build()
        .expect("manager");
    let mut s = m
        .create(b"victim".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("login");
    let devices = m.list_devices("alice", None).await.expect("list");
    let calls = spy.calls();
    for (what, bad) in malformed_tokens() {
        match m.load(&bad).await {
            Err(Error::InvalidId) => {}
            other => panic!("{what}: expected InvalidId, got {other:?}"),
        }
        assert_eq!(spy.calls(), calls, "{what}: the backend was called");
    }
    let loaded = m
        .load(s.token().expose_secret())
        .await
        .expect("load")
        .expect("the live session still loads");
    assert_eq!(loaded.version(), s.version());
    assert_eq!(loaded.data(), b"victim");
    assert_eq!(m.list_devices("alice", None).await.expect("list"), devices);
    // A well-formed unknown token does reach the backend, and finds nothing.
    let before = spy.calls();
    let unknown = SessionToken::generate();
    assert!(m
        .load(unknown.expose_secret())
        .await
        .expect("load")
        .is_none());
    assert!(spy.calls() > before);
}

/// Validation happens before any I/O: a manager over a spying backend
/// rejects every malformed token, and an oversized create, without a single
/// backend call.
pub async fn manager_invalid_id_before_io(ctx: Ctx) {
    let spy = Spy::new(ctx.backend.clone());
    let m = SessionManager::builder(spy.clone())
        .clock(Arc::new(ManualClock::starting_now()))
        .build()
        .expect("manager");
    for (what, bad) in malformed_tokens() {
        assert!(
            matches!(m.load(&bad).await, Err(Error::InvalidId)),
            "{what}: expected InvalidId"
        );
        assert_eq!(spy.calls(), 0, "{what}: the backend was called");
    }
    let limit = m.policy().max_data_bytes;
    assert!(matches!(
        m.create(vec![0; limit + 1], ClientMeta::default()).await,
        Err(Error::TooLarge { what: "data", .. })
    ));
    assert_eq!(spy.calls(), 0, "an oversized create reached the backend");
}
