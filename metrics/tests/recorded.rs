//! What an application exposes after a short load, read back through a
//! test recorder (`metrics-util`'s `DebuggingRecorder`).

use std::collections::HashMap;
use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};
use session_store_core::{
    ClientMeta, Encrypted, EncryptionKey, Keyring, MemoryStore, RotateReason, SessionBackend,
    SessionManager,
};
use session_store_metrics::{Metered, MetricsEvents};

/// `name{label=value,…}` → value (counters summed, histograms as sample counts).
fn snapshot(recorder: &DebuggingRecorder) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        let key: CompositeKey = key;
        let mut labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.key().name(), labels.join(","));
        let v = match (key.kind(), value) {
            (MetricKind::Counter, DebugValue::Counter(n)) => n as f64,
            (MetricKind::Histogram, DebugValue::Histogram(samples)) => samples.len() as f64,
            (_, DebugValue::Gauge(g)) => g.into_inner(),
            _ => continue,
        };
        out.insert(name, v);
    }
    out
}

#[test]
fn a_short_load_is_counted_by_operation_kind_and_event() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let raw = Arc::new(MemoryStore::new());
            let store = Arc::new(
                Metered::new(Encrypted::new(
                    raw.clone(),
                    Keyring::new(1, EncryptionKey::generate()),
                ))
                .with_store_label("app"),
            );
            let m = SessionManager::builder(store.clone())
                .events(Arc::new(MetricsEvents))
                .build()
                .unwrap();
            let mut tokens = Vec::new();
            for i in 0..5 {
                let mut s = m.create(vec![i], ClientMeta::default()).await.unwrap();
                m.rotate(
                    &mut s,
                    RotateReason::Login {
                        user_id: "u".into(),
                    },
                )
                .await
                .unwrap();
                tokens.push(s.token().expose_secret().to_owned());
            }
            for t in &tokens {
                assert!(m.load(t).await.unwrap().is_some());
            }
            // Misses: an unknown token, a malformed one.
            let unknown = session_store_core::SessionToken::generate();
            assert!(m.load(unknown.expose_secret()).await.unwrap().is_none());
            assert!(matches!(
                m.load("not a token").await,
                Err(session_store_core::Error::InvalidId)
            ));
            // A conflict: saving a stale copy.
            let mut a = m.load(&tokens[0]).await.unwrap().unwrap();
            let mut b = m.load(&tokens[0]).await.unwrap().unwrap();
            a.set_data(b"a".to_vec());
            m.save(&mut a).await.unwrap();
            b.set_data(b"b".to_vec());
            assert!(m.save(&mut b).await.is_err());
            // A session sealed under a key this store does not have.
            let stranger = Encrypted::new(raw.clone(), Keyring::new(9, EncryptionKey::generate()));
            let key = session_store_core::SessionToken::generate();
            let rec = {
                let Some(session_store_core::Lookup::Session(r)) = raw
                    .load(
                        &m.load(&tokens[1]).await.unwrap().unwrap().storage_key(),
                        m.now(),
                    )
                    .await
                    .unwrap()
                else {
                    panic!("stored")
                };
                session_store_core::SessionRecord { user_id: None, ..r }
            };
            stranger.create(&key.storage_key(), &rec).await.unwrap();
            assert!(store.load(&key.storage_key(), m.now()).await.is_err());
            assert_eq!(m.logout_everywhere("u").await.unwrap(), 5);
            // A persistent login, used once, then logged out.
            let mut p = m.create(Vec::new(), ClientMeta::default()).await.unwrap();
            m.rotate(
                &mut p,
                RotateReason::Login {
                    user_id: "p".into(),
                },
            )
            .await
            .unwrap();
            let issued = m.remember(&mut p).await.unwrap();
            let resumed = m
                .resume(issued.token.expose_secret(), ClientMeta::default())
                .await
                .unwrap()
                .expect("resumes");
            m.logout(&resumed.session).await.unwrap();
        });
    });
    let got = snapshot(&recorder);
    let mut names: Vec<_> = got.iter().map(|(k, v)| format!("{k} {v}")).collect();
    names.sort();
    println!("{}", names.join("\n"));

    let get = |k: &str| {
        got.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in\n{}", names.join("\n")))
    };
    assert_eq!(
        get("session_store_operation_seconds{operation=create,store=app}"),
        8.0, // 5 sessions, then a session, its persistent login and the one it started
    );
    assert!(get("session_store_operation_seconds{operation=load,store=app}") >= 9.0);
    // One miss through the manager is two backend lookups: the second
    // (only on misses) tells an expired session from an unknown token.
    assert_eq!(
        get("session_store_lookups_total{result=miss,store=app}"),
        2.0
    );
    assert_eq!(
        get("session_store_conflicts_total{operation=save,store=app}"),
        1.0
    );
    assert_eq!(
        get("session_store_operation_errors_total{kind=conflict,operation=save,retryable=true,store=app}"),
        1.0
    );
    assert_eq!(
        get("session_store_decrypt_failures_total{operation=load,store=app}"),
        1.0
    );
    assert_eq!(
        get("session_store_operation_errors_total{kind=decrypt,operation=load,retryable=false,store=app}"),
        1.0
    );
    assert_eq!(get("session_store_events_total{event=created}"), 7.0);
    assert_eq!(
        get("session_store_events_total{event=rotated,reason=login}"),
        6.0
    );
    assert_eq!(get("session_store_events_total{event=lookup_miss}"), 1.0);
    assert_eq!(
        get("session_store_events_total{event=user_sessions_revoked}"),
        5.0
    );
    assert_eq!(get("session_store_events_total{event=invalid_token}"), 1.0);
    assert_eq!(
        get("session_store_events_total{event=persistent_issued}"),
        1.0
    );
    assert_eq!(
        get("session_store_events_total{event=persistent_used}"),
        1.0
    );
    assert_eq!(
        get("session_store_events_total{event=persistent_revoked}"),
        1.0
    );
    for k in got.keys() {
        assert!(
            !k.contains("=u,") && !k.contains("=u}"),
            "a user id as a label: {k}"
        );
    }
}
