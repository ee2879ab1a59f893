//! Encryption-at-rest integrity: tampered or moved ciphertext fails closed.
//! These run only when the backend encrypts at rest ([`Ctx::encrypts`]: our
//! wrapper in [`Mode::Encrypted`](crate::Mode::Encrypted), or a store declared
//! with [`TestStore::encrypting_over`](crate::TestStore::encrypting_over)),
//! where the check can write raw records underneath through `ctx.inner`.

use session_store_core::{Error, Lookup, SessionRecord, StorageKey, Timestamp};

use super::Ctx;
use crate::fixtures::{fresh_key, load_session, now, user_record};

/// Skips (visibly) unless the backend encrypts on top of `ctx.inner`.
pub(crate) fn skip_unless_encrypted(ctx: &Ctx) -> bool {
    if !ctx.encrypts {
        ctx.skip(
            "applies only to a backend that encrypts at rest (Mode::Encrypted, \
             or TestStore::encrypting_over)",
        );
        return true;
    }
    false
}

/// Replaces the raw stored record under `key` (through the unwrapped backend).
pub(crate) async fn overwrite_raw(
    ctx: &Ctx,
    key: &StorageKey,
    t: Timestamp,
    edit: impl FnOnce(&mut SessionRecord),
) {
    let mut raw = load_session(&*ctx.inner, key, t).await;
    edit(&mut raw);
    ctx.inner
        .save(key, &raw, t)
        .await
        .expect("raw save underneath the wrapper");
}

/// A listing reports the row under `key` as undecryptable, without metadata,
/// instead of failing (see `SessionSummary::damage`).
fn expect_damaged(
    what: &str,
    key: &StorageKey,
    res: session_store_core::Result<Vec<session_store_core::SessionSummary>>,
) {
    let list = res.unwrap_or_else(|e| panic!("{what}: the listing must not fail, got {e:?}"));
    let Some(row) = list.iter().find(|s| s.key == *key) else {
        panic!("{what}: the damaged row is missing from the listing: {list:?}");
    };
    assert_eq!(
        row.damage,
        Some(session_store_core::Damage::Undecryptable),
        "{what}"
    );
    assert!(
        row.meta.is_empty(),
        "{what}: no metadata from a damaged row"
    );
}

fn expect_decrypt<T: std::fmt::Debug>(what: &str, res: session_store_core::Result<T>) {
    match res {
        Err(Error::Decrypt { .. }) => {}
        other => panic!("{what}: expected Error::Decrypt, got {other:?}"),
    }
}

/// A flipped bit anywhere in the stored data or metadata ciphertext is
/// `Error::Decrypt` on load (and a row marked `Damage::Undecryptable` on
/// listing, for metadata): never partial data, never a panic. The plaintext is stored nowhere in clear.
pub async fn tampered_ciphertext_fails_closed(ctx: Ctx) {
    if skip_unless_encrypted(&ctx) {
        return;
    }
    let t = now();
    let mut r = user_record(t, "alice", b"plaintext session data");
    r.meta = b"{\"ip\":\"192.0.2.55\"}".to_vec();
    let raw_len = {
        let key = fresh_key();
        ctx.backend.create(&key, &r).await.expect("create");
        let raw = load_session(&*ctx.inner, &key, t).await;
        assert_ne!(raw.data, r.data, "data is stored encrypted");
        assert_ne!(raw.meta, r.meta, "metadata is stored encrypted");
        (raw.data.len(), raw.meta.len())
    };
    // Flip one bit at several positions (header, nonce, ciphertext, tag), in
    // data and in metadata, each on a fresh row.
    for field in ["data", "meta"] {
        let len = if field == "data" {
            raw_len.0
        } else {
            raw_len.1
        };
        for pos in [0, 1, 5, 17, len / 2, len - 1] {
            let key = fresh_key();
            ctx.backend.create(&key, &r).await.expect("create");
            overwrite_raw(&ctx, &key, t, |raw| {
                let bytes = if field == "data" {
                    &mut raw.data
                } else {
                    &mut raw.meta
                };
                bytes[pos] ^= 0x01;
            })
            .await;
            expect_decrypt(
                &format!("{field} bit flipped at {pos}"),
                ctx.backend.load(&key, t).await,
            );
            if field == "meta" {
                expect_damaged(
                    "listing a tampered row",
                    &key,
                    ctx.backend.list_user("alice", t).await,
                );
            }
            ctx.backend.delete(&key).await.expect("delete");
        }
    }
    // Truncated, empty and extended blobs.
    for (what, edit) in [
        (
            "truncated",
            (|b: &mut Vec<u8>| b.truncate(b.len() - 1)) as fn(&mut Vec<u8>),
        ),
        ("emptied", |b: &mut Vec<u8>| b.clear()),
        ("extended", |b: &mut Vec<u8>| b.push(0)),
    ] {
        let key = fresh_key();
        ctx.backend.create(&key, &r).await.expect("create");
        overwrite_raw(&ctx, &key, t, |raw| edit(&mut raw.data)).await;
        expect_decrypt(what, ctx.backend.load(&key, t).await);
        ctx.backend.delete(&key).await.expect("delete");
    }
}

/// Ciphertext is bound to its row: a blob copied to another session, or a
/// row whose user id or absolute deadline was edited underneath, fails with
/// `Error::Decrypt` (listed as `Damage::Undecryptable`).
pub async fn ciphertext_bound_to_row(ctx: Ctx) {
    if skip_unless_encrypted(&ctx) {
        return;
    }
    let t = now();
    let victim = fresh_key();
    let attacker = fresh_key();
    let mut vr = user_record(t, "alice", b"alice's secrets");
    vr.meta = b"{\"label\":\"alice laptop\"}".to_vec();
    ctx.backend.create(&victim, &vr).await.expect("create");
    ctx.backend
        .create(&attacker, &user_record(t, "alice", b"mallory"))
        .await
        .expect("create");
    let stolen = load_session(&*ctx.inner, &victim, t).await;

    // Copy the victim's data and metadata ciphertexts into another row.
    overwrite_raw(&ctx, &attacker, t, |raw| {
        raw.data = stolen.data.clone();
    })
    .await;
    expect_decrypt(
        "data copied to another row",
        ctx.backend.load(&attacker, t).await,
    );
    overwrite_raw(&ctx, &attacker, t, |raw| {
        raw.meta = stolen.meta.clone();
    })
    .await;
    expect_damaged(
        "metadata copied to another row",
        &attacker,
        ctx.backend.list_user("alice", t).await,
    );

    // Swapping data and metadata within the victim's own row.
    let swap = fresh_key();
    ctx.backend.create(&swap, &vr).await.expect("create");
    overwrite_raw(&ctx, &swap, t, |raw| {
        std::mem::swap(&mut raw.data, &mut raw.meta)
    })
    .await;
    expect_decrypt(
        "data and metadata swapped",
        ctx.backend.load(&swap, t).await,
    );

    // Editing the bound columns underneath.
    let moved_user = fresh_key();
    ctx.backend.create(&moved_user, &vr).await.expect("create");
    overwrite_raw(&ctx, &moved_user, t, |raw| {
        raw.user_id = Some("mallory".into())
    })
    .await;
    expect_decrypt("user id edited", ctx.backend.load(&moved_user, t).await);
    expect_damaged(
        "user id edited (listing)",
        &moved_user,
        ctx.backend.list_user("mallory", t).await,
    );

    let extended = fresh_key();
    ctx.backend.create(&extended, &vr).await.expect("create");
    overwrite_raw(&ctx, &extended, t, |raw| {
        raw.absolute_deadline = raw
            .absolute_deadline
            .saturating_add(std::time::Duration::from_secs(3600));
    })
    .await;
    expect_decrypt(
        "absolute deadline edited",
        ctx.backend.load(&extended, t).await,
    );

    // The untouched victim still decrypts.
    match ctx.backend.load(&victim, t).await.expect("load") {
        Some(Lookup::Session(r)) => assert_eq!(r.data, vr.data),
        other => panic!("victim must still load, found {other:?}"),
    }
}

/// Through a manager configured with `OnCorrupt::Fail`, a tampered session is
/// an error (`Error::Decrypt`), never "no session" and never partial data,
/// and the entry stays; the device listing leaves a row with damaged
/// metadata out instead of failing.
pub async fn manager_tampered_session_is_an_error(ctx: Ctx) {
    if skip_unless_encrypted(&ctx) {
        return;
    }
    let (m, _clock) = super::manager::manager(
        &ctx,
        session_store_core::Policy {
            on_corrupt: session_store_core::OnCorrupt::Fail,
            ..session_store_core::Policy::default()
        },
    );
    let mut s = m
        .create(
            b"secret".to_vec(),
            session_store_core::ClientMeta {
                label: Some("laptop".into()),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    m.rotate(
        &mut s,
        session_store_core::RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("login");
    let key = s.storage_key();
    let t = m.now();
    overwrite_raw(&ctx, &key, t, |raw| {
        let last = raw.data.len() - 1;
        raw.data[last] ^= 0x80;
    })
    .await;
    expect_decrypt("manager load", m.load(s.token().expose_secret()).await);
    overwrite_raw(&ctx, &key, t, |raw| raw.meta[20] ^= 0x01).await;
    let devices = m
        .list_devices("alice", None)
        .await
        .expect("the device listing skips a damaged row");
    assert!(
        devices.iter().all(|d| d.handle != s.handle()),
        "a damaged row is not listed"
    );
}

/// 64 random bytes.
fn random_bytes() -> Vec<u8> {
    let mut out = session_store_core::SessionToken::generate()
        .secret_bytes()
        .to_vec();
    out.extend_from_slice(&session_store_core::SessionToken::generate().secret_bytes());
    out
}

/// Bytes a window of this length must not share by chance (2^-128).
const KEYSTREAM_WINDOW: usize = 16;

/// Fails when `a` and `b` (seals of two plaintexts that are each other's
/// complement) XOR to all-ones over a window: the mark of one keystream
/// (one key and nonce) encrypting both, wherever the ciphertext sits in the
/// blob.
fn assert_distinct_keystreams(what: &str, a: &[u8], b: &[u8]) {
    if a.len() != b.len() || a.len() < KEYSTREAM_WINDOW {
        return;
    }
    let xor: Vec<u8> = a.iter().zip(b).map(|(x, y)| x ^ y).collect();
    let reused = xor
        .windows(KEYSTREAM_WINDOW)
        .any(|w| w.iter().all(|&x| x == 0xff));
    assert!(
        !reused,
        "{what}: the two ciphertexts XOR to the XOR of their plaintexts: one nonce \
         (keystream) encrypted both"
    );
}

/// Encryption is randomised and never reuses a nonce: the same record sealed
/// under two keys, or sealed again in the same row, gives different stored
/// bytes (data and metadata), and two complementary plaintexts sealed in two
/// rows or one after the other in one row do not share a keystream (their
/// ciphertexts do not XOR to all-ones over 16 bytes, as they would for a
/// stream cipher or GCM/ChaCha20 under a repeated nonce).
pub async fn encryption_never_reuses_a_nonce(ctx: Ctx) {
    if skip_unless_encrypted(&ctx) {
        return;
    }
    let t = now();
    let plain = random_bytes();
    let complement: Vec<u8> = plain.iter().map(|b| !b).collect();
    let mut r = user_record(t, "alice", &plain);
    r.meta = plain.clone();
    let mut c = user_record(t, "alice", &complement);
    c.meta = complement.clone();

    // The same record in two rows.
    let (a, b) = (fresh_key(), fresh_key());
    ctx.backend.create(&a, &r).await.expect("create");
    ctx.backend.create(&b, &r).await.expect("create");
    let raw_a = load_session(&*ctx.inner, &a, t).await;
    let raw_b = load_session(&*ctx.inner, &b, t).await;
    assert_ne!(
        raw_a.data, raw_b.data,
        "the same data sealed in two rows is stored identically: encryption is not randomised"
    );
    assert_ne!(
        raw_a.meta, raw_b.meta,
        "the same metadata sealed in two rows is stored identically"
    );

    // The same record sealed again in the same row.
    ctx.backend.save(&a, &r, t).await.expect("save");
    let resealed = load_session(&*ctx.inner, &a, t).await;
    assert_ne!(
        resealed.data, raw_a.data,
        "the same data sealed twice in one row is stored identically"
    );
    assert_ne!(
        resealed.meta, raw_a.meta,
        "the same metadata sealed twice in one row is stored identically"
    );

    // Complementary plaintexts: in another row, and over the same row.
    let other = fresh_key();
    ctx.backend.create(&other, &c).await.expect("create");
    let raw_other = load_session(&*ctx.inner, &other, t).await;
    assert_distinct_keystreams("data in two rows", &raw_a.data, &raw_other.data);
    assert_distinct_keystreams("metadata in two rows", &raw_a.meta, &raw_other.meta);
    let mut over = c.clone();
    over.version = 1;
    ctx.backend.save(&a, &over, t).await.expect("save");
    let raw_over = load_session(&*ctx.inner, &a, t).await;
    assert_distinct_keystreams("data resealed in one row", &resealed.data, &raw_over.data);
    assert_distinct_keystreams(
        "metadata resealed in one row",
        &resealed.meta,
        &raw_over.meta,
    );
    // Everything still opens.
    assert_eq!(load_session(&*ctx.backend, &a, t).await.data, complement);
    assert_eq!(load_session(&*ctx.backend, &b, t).await.data, plain);
}
