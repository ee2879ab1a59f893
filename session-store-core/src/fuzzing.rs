//! Entry points for the fuzz targets (`fuzz/` at the workspace root) and
//! for the tests that replay their corpus on stable Rust: one function per
//! decoder of untrusted bytes. Each takes arbitrary bytes, must never panic,
//! and asserts the properties that hold for any input (a value that parses
//! re-encodes to itself; nothing forged opens). Not an API for
//! applications.

use crate::crypto::forward::{seal_successor, unseal_successor};
use crate::crypto::frame::{self, Field};
use crate::crypto::{EncryptionKey, Keyring};
use crate::record::ClientMeta;
use crate::time::Timestamp;
use crate::token::{SessionHandle, SessionToken, StorageKey};

/// Token and handle parsing (cookie values, "your devices" handles): a
/// value that parses prints back to the same text, and no text parses as
/// both.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let token = SessionToken::parse(text);
    if let Ok(t) = &token {
        assert_eq!(t.expose_secret(), text, "a token prints as parsed");
        assert_eq!(
            SessionToken::parse(t.expose_secret())
                .map(|t| t.storage_key())
                .ok(),
            Some(t.storage_key())
        );
    }
    let handle = SessionHandle::parse(text);
    if let Ok(h) = &handle {
        assert_eq!(
            SessionHandle::parse(&h.to_string()).ok(),
            Some(*h),
            "a handle prints as parsed"
        );
    }
    assert!(
        token.is_err() || handle.is_err(),
        "no text is both a token and a handle"
    );
}

/// Client metadata as stored (JSON): whatever decodes re-encodes to bytes
/// that decode to the same value.
pub fn client_meta(data: &[u8]) {
    if let Ok(meta) = ClientMeta::decode(data) {
        let again = ClientMeta::decode(&meta.encode()).expect("re-encoded metadata decodes");
        assert_eq!(again, meta);
    }
}

/// The fixed keyring the frame target opens with.
fn keyring() -> Keyring {
    Keyring::new(1, EncryptionKey::from_bytes([7; 32]))
        .with_decrypt_key(2, EncryptionKey::from_bytes([9; 32]))
}

/// The encrypted frame: arbitrary bytes never open (no forgery without the
/// key), in any field, and a failed open leaves the blob as it was; a
/// sealed copy of the same bytes opens to them.
pub fn frame(data: &[u8]) {
    let keyring = keyring();
    let key = StorageKey::try_from_slice(&[3; 32]).expect("32 bytes");
    let abs = Timestamp::from_millis(1_000_000);
    for field in [
        Field::Data { meta_empty: false },
        Field::Data { meta_empty: true },
        Field::Meta,
    ] {
        for user in [None, Some("alice")] {
            let mut blob = data.to_vec();
            let opened = frame::open_in_place(&keyring, field, &key, user, abs, &mut blob);
            assert!(opened.is_err(), "arbitrary bytes opened as a frame");
            assert_eq!(blob, data, "a failed open leaves the blob unchanged");
        }
    }
    let field = Field::Data { meta_empty: false };
    let mut sealed =
        frame::seal(&keyring, field, &key, Some("alice"), abs, data).expect("sealing never fails");
    frame::open_in_place(&keyring, field, &key, Some("alice"), abs, &mut sealed)
        .expect("a sealed frame opens");
    assert_eq!(sealed, data);
}

/// The renewal forwarder's sealed successor token: arbitrary bytes never
/// unseal; a real seal unseals only under the old token it was sealed with.
pub fn forward(data: &[u8]) {
    let old = SessionToken::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .unwrap_or_else(|_| SessionToken::generate());
    let next = SessionToken::generate();
    let next_key = next.storage_key();
    assert!(
        unseal_successor(&old, &next_key, data).is_err(),
        "arbitrary bytes unsealed"
    );
    let mut sealed = seal_successor(&old, &next_key, &next).expect("sealing never fails");
    let unsealed = unseal_successor(&old, &next_key, &sealed).expect("a seal unseals");
    assert_eq!(unsealed.storage_key(), next_key);
    // The fuzz bytes pick a position to damage: any change is detected.
    if let Some(&b) = data.first() {
        let at = usize::from(b) % sealed.len();
        sealed[at] ^= data.get(1).copied().unwrap_or(1).max(1);
        assert!(unseal_successor(&old, &next_key, &sealed).is_err());
    }
}

/// Persistent logins: the family state and stored metadata codecs (what
/// decodes re-encodes to itself), persistent-token parsing, and the grace
/// seal (arbitrary bytes never open).
pub fn persistent(data: &[u8]) {
    crate::persistent::fuzz_decode(data);
}

/// Runs `f` on every seed of the committed corpus `fuzz/corpus/<target>`
/// (in this workspace), each under `catch_unwind`: the replay that every
/// crate's `fuzz_corpus` test runs on stable Rust.
///
/// # Panics
/// When a seed panics, when the corpus cannot be read, or when it is empty.
pub fn replay_corpus(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let bytes = std::fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| f(&bytes));
        assert!(outcome.is_ok(), "{target}: seed {} panics", path.display());
        n += 1;
    }
    assert!(n > 0, "{target}: empty corpus");
}
