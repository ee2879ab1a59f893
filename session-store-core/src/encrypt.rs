//! AES-256-GCM encryption at rest, as a wrapper over any backend.
//!
//! See [`Encrypted`] for the design.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rand::{RngCore as _, TryRngCore as _};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::backend::SessionBackend;
use crate::error::{Error, Result};
use crate::record::{Lookup, Rotation, SessionRecord, SessionSummary};
use crate::time::Timestamp;
use crate::token::StorageKey;

const FRAME_VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + 12;
const TAG_LEN: usize = 16;
/// Bytes an encrypted field adds to its plaintext.
pub const ENCRYPTION_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// A 256-bit master key. Zeroized on drop; never shown by `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    /// Wraps 32 secret bytes (for example decoded from a secret manager).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        EncryptionKey(bytes)
    }

    /// A fresh random key from the OS CSPRNG.
    ///
    /// # Panics
    /// Only if the operating system's random source fails.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random number generator failed");
        EncryptionKey(bytes)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// Master keys by id: one primary that encrypts, all of them decrypt.
#[derive(Clone)]
pub struct Keyring {
    primary: u32,
    /// HKDF pseudo-random keys, one per master key (extract done once).
    prks: HashMap<u32, Arc<Zeroizing<[u8; 32]>>>,
}

impl Keyring {
    /// A keyring whose primary (encrypting) key is `key` with id `id`.
    pub fn new(id: u32, key: EncryptionKey) -> Self {
        let mut ring = Keyring {
            primary: id,
            prks: HashMap::new(),
        };
        ring.insert(id, &key);
        ring
    }

    /// Adds a decrypt-only key (an older primary being retired).
    pub fn with_decrypt_key(mut self, id: u32, key: EncryptionKey) -> Self {
        self.insert(id, &key);
        self
    }

    /// The id of the key that encrypts.
    pub fn primary_id(&self) -> u32 {
        self.primary
    }

    /// The ids of every key that can decrypt, sorted.
    pub fn key_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.prks.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn insert(&mut self, id: u32, key: &EncryptionKey) {
        let (prk, _) = Hkdf::<Sha256>::extract(Some(b"session-store/v1/salt"), &key.0);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&prk);
        self.prks.insert(id, Arc::new(bytes));
    }

    fn subkey(&self, id: u32, storage_key: &StorageKey) -> Option<Aes256Gcm> {
        let prk = self.prks.get(&id)?;
        let hk = Hkdf::<Sha256>::from_prk(&prk[..]).ok()?;
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand_multi_info(
            &[b"session-store/v1/subkey", storage_key.as_bytes()],
            &mut okm[..],
        )
        .ok()?;
        Aes256Gcm::new_from_slice(&okm[..]).ok()
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary)
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

fn nonce_of(blob: &[u8]) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n.copy_from_slice(&blob[5..HEADER_LEN]);
    Nonce::from(n)
}

/// Which field a blob belongs to (part of the associated data).
#[derive(Clone, Copy)]
enum Field {
    Data,
    Meta,
}

fn associated_data(
    field: Field,
    key: &StorageKey,
    user_id: Option<&str>,
    absolute_deadline: Timestamp,
) -> Vec<u8> {
    let user = user_id.unwrap_or("");
    let mut ad = Vec::with_capacity(64 + user.len());
    ad.extend_from_slice(b"session-store/v1");
    ad.push(match field {
        Field::Data => b'd',
        Field::Meta => b'm',
    });
    ad.extend_from_slice(key.as_bytes());
    ad.extend_from_slice(&absolute_deadline.as_millis().to_be_bytes());
    ad.push(u8::from(user_id.is_some()));
    ad.extend_from_slice(&(user.len() as u64).to_be_bytes());
    ad.extend_from_slice(user.as_bytes());
    ad
}

/// Wraps any backend and encrypts session data and client metadata at rest
/// with AES-256-GCM.
///
/// # Design
/// - **Keyring with key ids.** One primary key encrypts; every listed key
///   decrypts. Every write (create, save, rotate) encrypts under the primary,
///   so the next save of a session re-encrypts it after a key rotation; retire
///   an old key once no session encrypted under it can still be live (after
///   the absolute timeout).
/// - **Per-session subkeys.** A session's data is encrypted under
///   `HKDF-SHA256(master key, info = "session-store/v1/subkey" ‖ storage key)`.
///   This is the answer to AES-GCM's limit of 2^32 random 96-bit nonces per
///   key (NIST SP 800-38D §8.3): a store that re-encrypts on every write could
///   reach 2^32 encryptions under one master key, but each subkey only ever
///   encrypts the writes of one session, which lives at most its absolute
///   timeout (hours), far below 2^32 writes. Rotation moves a session to a new
///   storage key and so to a new subkey.
/// - **Fresh random 96-bit nonce** for every encryption.
/// - **Bound to its row.** The associated data is the storage key, the user
///   id, the absolute deadline and the field (data or metadata): a blob copied
///   to another row, or an edited user or expiry column, fails to decrypt.
///   The idle deadline is not bound, so `touch` never needs a re-encryption.
/// - **Metadata too.** Client metadata (IP, user agent, label) is personal
///   data and is encrypted the same way.
/// - **Fail closed.** Any framing, key id or tag failure is
///   [`Error::Decrypt`]: never partial data, never a panic.
///
/// Frame: `0x01 ‖ key id (u32, big-endian) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
///
/// Keys never reach the backend. `touch`, `delete` and the user operations
/// pass through unchanged.
pub struct Encrypted<B> {
    inner: B,
    keyring: Keyring,
}

impl<B> Encrypted<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, keyring: Keyring) -> Self {
        Encrypted { inner, keyring }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn seal(
        &self,
        field: Field,
        key: &StorageKey,
        r: &SessionRecord,
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        let id = self.keyring.primary;
        let cipher = self
            .keyring
            .subkey(id, key)
            .ok_or(Error::Decrypt { key_id: Some(id) })?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ad = associated_data(field, key, r.user_id.as_deref(), r.absolute_deadline);
        let ct = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &ad,
                },
            )
            .map_err(|_| Error::Decrypt { key_id: Some(id) })?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(FRAME_VERSION);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open(
        &self,
        field: Field,
        key: &StorageKey,
        user_id: Option<&str>,
        absolute_deadline: Timestamp,
        blob: &[u8],
    ) -> Result<Vec<u8>> {
        if blob.len() < ENCRYPTION_OVERHEAD || blob[0] != FRAME_VERSION {
            return Err(Error::Decrypt { key_id: None });
        }
        let id = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
        let cipher = self
            .keyring
            .subkey(id, key)
            .ok_or(Error::Decrypt { key_id: Some(id) })?;
        let ad = associated_data(field, key, user_id, absolute_deadline);
        cipher
            .decrypt(
                &nonce_of(blob),
                Payload {
                    msg: &blob[HEADER_LEN..],
                    aad: &ad,
                },
            )
            .map_err(|_| Error::Decrypt { key_id: Some(id) })
    }

    fn encrypt_record(&self, key: &StorageKey, r: &SessionRecord) -> Result<SessionRecord> {
        let mut out = r.clone();
        out.data = self.seal(Field::Data, key, r, &r.data)?;
        out.meta = self.seal(Field::Meta, key, r, &r.meta)?;
        Ok(out)
    }

    fn decrypt_record(&self, key: &StorageKey, mut r: SessionRecord) -> Result<SessionRecord> {
        let user = r.user_id.as_deref();
        r.data = self.open(Field::Data, key, user, r.absolute_deadline, &r.data)?;
        r.meta = self.open(Field::Meta, key, user, r.absolute_deadline, &r.meta)?;
        Ok(r)
    }
}

impl<B: fmt::Debug> fmt::Debug for Encrypted<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encrypted")
            .field("inner", &self.inner)
            .field("keyring", &self.keyring)
            .finish()
    }
}

#[async_trait]
impl<B: SessionBackend> SessionBackend for Encrypted<B> {
    fn rotation_affinity_bits(&self) -> u8 {
        self.inner.rotation_affinity_bits()
    }

    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        let sealed = self.encrypt_record(key, record)?;
        self.inner.create(key, &sealed).await
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        match self.inner.load(key, now).await? {
            Some(Lookup::Session(r)) => Ok(Some(Lookup::Session(self.decrypt_record(key, r)?))),
            other => Ok(other),
        }
    }

    async fn save(&self, key: &StorageKey, record: &SessionRecord, now: Timestamp) -> Result<u64> {
        let sealed = self.encrypt_record(key, record)?;
        self.inner.save(key, &sealed, now).await
    }

    async fn touch(
        &self,
        key: &StorageKey,
        idle_deadline: Timestamp,
        last_seen_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.inner
            .touch(key, idle_deadline, last_seen_at, now)
            .await
    }

    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        let mut sealed = rotation.clone();
        sealed.record = self.encrypt_record(&rotation.to, &rotation.record)?;
        self.inner.rotate(&sealed, now).await
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.inner.delete(key).await
    }

    async fn delete_user(
        &self,
        user_id: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        self.inner.delete_user(user_id, except, now).await
    }

    async fn list_user(&self, user_id: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        let mut list = self.inner.list_user(user_id, now).await?;
        for s in &mut list {
            s.meta = self.open(
                Field::Meta,
                &s.key,
                Some(&s.user_id),
                s.absolute_deadline,
                &s.meta,
            )?;
        }
        Ok(list)
    }

    async fn delete_all(&self) -> Result<()> {
        self.inner.delete_all().await
    }

    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        self.inner.cleanup_expired(now, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, SessionToken};

    fn record(user: Option<&str>) -> SessionRecord {
        SessionRecord {
            version: 0,
            user_id: user.map(str::to_owned),
            created_at: Timestamp::from_millis(1_000),
            last_seen_at: Timestamp::from_millis(1_000),
            auth_time: None,
            idle_deadline: Timestamp::from_millis(100_000),
            absolute_deadline: Timestamp::from_millis(200_000),
            meta: b"{\"ip\":\"192.0.2.1\"}".to_vec(),
            data: b"secret-marker".to_vec(),
        }
    }

    #[test]
    fn subkeys_differ_per_session() {
        let ring = Keyring::new(1, EncryptionKey::from_bytes([7; 32]));
        let enc = Encrypted::new(MemoryStore::new(), ring);
        let a = SessionToken::generate().storage_key();
        let b = SessionToken::generate().storage_key();
        let r = record(None);
        let blob = enc.seal(Field::Data, &a, &r, b"x").unwrap();
        // Same master key, different session: the subkey differs, so the
        // blob (even with matching associated data) does not open.
        assert!(enc
            .open(Field::Data, &a, None, r.absolute_deadline, &blob)
            .is_ok());
        let cipher_b = enc.keyring.subkey(1, &b).unwrap();
        let ad = associated_data(Field::Data, &a, None, r.absolute_deadline);
        assert!(cipher_b
            .decrypt(
                &nonce_of(&blob),
                Payload {
                    msg: &blob[HEADER_LEN..],
                    aad: &ad
                }
            )
            .is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let ring = Keyring::new(1, EncryptionKey::generate());
        let enc = Encrypted::new(MemoryStore::new(), ring);
        let k = SessionToken::generate().storage_key();
        let r = record(None);
        let x = enc.seal(Field::Data, &k, &r, b"same").unwrap();
        let y = enc.seal(Field::Data, &k, &r, b"same").unwrap();
        assert_ne!(x[5..HEADER_LEN], y[5..HEADER_LEN]);
        assert_ne!(x, y);
    }

    #[test]
    fn bound_to_row_and_fields() {
        let ring = Keyring::new(1, EncryptionKey::generate());
        let enc = Encrypted::new(MemoryStore::new(), ring);
        let k = SessionToken::generate().storage_key();
        let other = SessionToken::generate().storage_key();
        let r = record(Some("alice"));
        let blob = enc.seal(Field::Data, &k, &r, b"payload").unwrap();
        let abs = r.absolute_deadline;
        assert_eq!(
            enc.open(Field::Data, &k, Some("alice"), abs, &blob)
                .unwrap(),
            b"payload"
        );
        for res in [
            enc.open(Field::Data, &other, Some("alice"), abs, &blob),
            enc.open(Field::Data, &k, Some("mallory"), abs, &blob),
            enc.open(Field::Data, &k, None, abs, &blob),
            enc.open(
                Field::Data,
                &k,
                Some("alice"),
                Timestamp::from_millis(9),
                &blob,
            ),
            enc.open(Field::Meta, &k, Some("alice"), abs, &blob),
            enc.open(Field::Data, &k, Some("alice"), abs, &blob[..10]),
            enc.open(Field::Data, &k, Some("alice"), abs, &[]),
        ] {
            assert!(matches!(res, Err(Error::Decrypt { .. })), "{res:?}");
        }
        let mut flipped = blob.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            enc.open(Field::Data, &k, Some("alice"), abs, &flipped),
            Err(Error::Decrypt { key_id: Some(1) })
        ));
    }

    #[tokio::test]
    async fn key_rotation_reencrypts_on_save() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let old = EncryptionKey::from_bytes([1; 32]);
        let new = EncryptionKey::from_bytes([2; 32]);
        let k = SessionToken::generate().storage_key();
        let now = Timestamp::from_millis(2_000);

        let v1 = Encrypted::new(store.clone(), Keyring::new(1, old.clone()));
        v1.create(&k, &record(None)).await.unwrap();

        // Key 2 only: the old blob names key 1, which is unknown.
        let only_new = Encrypted::new(store.clone(), Keyring::new(2, new.clone()));
        assert!(matches!(
            only_new.load(&k, now).await,
            Err(Error::Decrypt { key_id: Some(1) })
        ));

        // Key 2 primary, key 1 decrypt-only: reads, and a save re-encrypts under 2.
        let v2 = Encrypted::new(store.clone(), Keyring::new(2, new).with_decrypt_key(1, old));
        let Some(Lookup::Session(r)) = v2.load(&k, now).await.unwrap() else {
            panic!("missing")
        };
        assert_eq!(r.data, b"secret-marker");
        v2.save(&k, &r, now).await.unwrap();
        let Some(Lookup::Session(raw)) = store.load(&k, now).await.unwrap() else {
            panic!("missing")
        };
        assert_eq!(u32::from_be_bytes(raw.data[1..5].try_into().unwrap()), 2);
        assert!(only_new.load(&k, now).await.is_ok());
    }

    #[test]
    fn debug_hides_keys() {
        let key = EncryptionKey::from_bytes([0xab; 32]);
        let ring = Keyring::new(3, key.clone());
        assert!(!format!("{key:?}{ring:?}").contains("ab"));
        assert!(!format!("{key:?}{ring:?}").contains("171"));
    }
}
