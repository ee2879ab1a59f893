//! Manager checks: limits, strict mode, stored hashes and events that never carry tokens.

use std::sync::Arc;
use std::time::Duration;

use session_store_core::{
    ClientMeta, Error, ManualClock, Policy, RotateReason, SessionManager, SessionToken, TOKEN_LEN,
};

use super::{load, login, manager, policy, stored};
use crate::checks::{Ctx, Recorder};

/// A stored hash is never accepted as a token: the storage key's bytes,
/// spelled as a well-formed token, look up the hash of the hash.
pub async fn manager_stored_hash_is_not_a_token(ctx: Ctx) {
    let (m, _clock) = manager(&ctx, policy());
    let s = login(&m, "alice").await;
    let key = s.storage_key();
    let as_token = base64url(key.as_bytes());
    assert_eq!(as_token.len(), TOKEN_LEN);
    assert!(
        m.load(&as_token).await.expect("well-formed").is_none(),
        "the storage key must not open the session"
    );
    load(&m, s.token()).await.expect("the real token works");
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Size limits: data, user id and metadata over the limit are `TooLarge`
/// and nothing is written; exactly at the limit is fine.
pub async fn manager_limits_too_large_writes_nothing(ctx: Ctx) {
    let policy = Policy {
        max_data_bytes: 1024,
        max_user_id_bytes: 16,
        max_meta_bytes: 100,
        ..policy()
    };
    let spy = crate::checks::spy::Spy::new(ctx.backend.clone());
    let m = SessionManager::builder(spy.clone())
        .clock(Arc::new(ManualClock::starting_now()))
        .policy(policy)
        .build()
        .expect("manager");
    let too_large = |res: session_store_core::Result<_>, what: &str| match res {
        Err(Error::TooLarge { what: w, .. }) => assert_eq!(w, what),
        Err(e) => panic!("{what}: expected TooLarge, got {e:?}"),
        Ok(_) => panic!("{what}: expected TooLarge, got Ok"),
    };
    too_large(
        m.create(vec![0; 1025], ClientMeta::default())
            .await
            .map(drop),
        "data",
    );
    let big_meta = ClientMeta {
        user_agent: Some("A".repeat(200)),
        ..ClientMeta::default()
    };
    too_large(
        m.create(Vec::new(), big_meta.clone()).await.map(drop),
        "metadata",
    );
    assert_eq!(spy.calls(), 0, "a refused create never reaches the backend");

    let mut s = m
        .create(vec![1; 1024], ClientMeta::default())
        .await
        .expect("at the limit");
    let before = stored(&m, &s.storage_key()).await.expect("stored");
    let writes = spy.writes();
    s.set_data(vec![2; 1025]);
    too_large(m.save(&mut s).await, "data");
    s.set_data(b"ok".to_vec());
    s.set_client_meta(big_meta);
    too_large(m.save(&mut s).await, "metadata");
    s.set_client_meta(ClientMeta::default());
    let long_user = "u".repeat(17);
    too_large(
        m.rotate(
            &mut s,
            RotateReason::Login {
                user_id: long_user.clone(),
            },
        )
        .await,
        "user id",
    );
    assert_eq!(
        spy.writes(),
        writes,
        "refused writes never reach the backend"
    );
    assert_eq!(
        stored(&m, &s.storage_key()).await.as_ref(),
        Some(&before),
        "refused writes leave the session as it was"
    );
    assert!(m
        .list_devices(&long_user, None)
        .await
        .expect("list")
        .is_empty());
    let reloaded = load(&m, s.token()).await.expect("old token still valid");
    assert_eq!(reloaded.data(), vec![1; 1024].as_slice());
    assert_eq!(reloaded.user_id(), None);
    // Exactly at the user id limit is fine.
    let mut s = reloaded;
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: "u".repeat(16),
        },
    )
    .await
    .expect("user id at the limit");
}

/// Strict mode: a well-formed but unknown token finds nothing and creates
/// nothing; a session is only ever created by the manager under a token it
/// generated.
pub async fn manager_unknown_token_never_creates(ctx: Ctx) {
    let spy = crate::checks::spy::Spy::new(ctx.backend.clone());
    let m = SessionManager::builder(spy.clone())
        .clock(Arc::new(ManualClock::starting_now()))
        .build()
        .expect("manager");
    let chosen = SessionToken::generate();
    assert!(m
        .load(chosen.expose_secret())
        .await
        .expect("load")
        .is_none());
    assert_eq!(spy.writes(), 0, "a miss writes nothing");
    assert!(ctx
        .backend
        .load(&chosen.storage_key(), m.now())
        .await
        .expect("load")
        .is_none());
    let s = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    assert_ne!(s.token(), &chosen, "the manager picks the token");
    assert_eq!(s.token().expose_secret().len(), TOKEN_LEN);
}

/// Lifecycle events carry short key hashes, never a token: every event of a
/// session's life is recorded, and none contains any token's text.
pub async fn manager_events_never_carry_tokens(ctx: Ctx) {
    let recorder = Arc::new(Recorder::default());
    let clock = Arc::new(ManualClock::starting_now());
    let m = SessionManager::builder(ctx.backend.clone())
        .clock(clock.clone())
        .policy(Policy {
            renewal_grace: Duration::from_secs(60),
            ..policy()
        })
        .events(recorder.clone())
        .build()
        .expect("manager");
    let mut tokens = Vec::new();
    let mut s = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    tokens.push(s.token().clone());
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("login");
    tokens.push(s.token().clone());
    m.rotate(&mut s, RotateReason::Renewal)
        .await
        .expect("renewal");
    tokens.push(s.token().clone());
    load(&m, &tokens[1]).await.expect("forwarded");
    let unknown = SessionToken::generate();
    assert!(load(&m, &unknown).await.is_none());
    tokens.push(unknown);
    let _ = m.load("not a token").await;
    let other = login(&m, "alice").await;
    tokens.push(other.token().clone());
    m.revoke("alice", &other.handle()).await.expect("revoke");
    m.logout(&s).await.expect("logout");
    m.logout_everywhere("alice")
        .await
        .expect("logout everywhere");

    let events: Vec<String> = recorder.events().iter().map(|e| format!("{e:?}")).collect();
    for kind in [
        "Created",
        "Rotated",
        "ForwardFollowed",
        "LookupMiss",
        "Revoked",
        "Deleted",
    ] {
        assert!(
            events.iter().any(|e| e.starts_with(kind)),
            "no {kind} event among {events:?}"
        );
    }
    for token in &tokens {
        let text = token.expose_secret();
        let key_hex = token.storage_key().to_hex();
        for e in &events {
            assert!(!e.contains(text), "an event carries a token: {e}");
            assert!(!e.contains(&key_hex), "an event carries a full storage key");
        }
    }
}
