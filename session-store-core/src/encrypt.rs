//! AES-256-GCM encryption at rest, as a wrapper over any backend.
//!
//! See [`Encrypted`] for the design.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

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

const FRAME_VERSION: u8 = 2;
const SALT_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 4 + SALT_LEN + 12;
const TAG_LEN: usize = 16;
/// Bytes an encrypted field adds to its plaintext.
pub const ENCRYPTION_OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The most encryptions one subkey performs before a fresh one is drawn:
/// 2^31, half of the 2^32 random-nonce bound of NIST SP 800-38D §8.3.
pub const MAX_ENCRYPTIONS_PER_SUBKEY: u64 = 1 << 31;
/// Derived decryption subkeys kept in memory (a handful per writer process).
const READ_CACHE_CAP: usize = 1024;

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
///
/// Encryption uses a subkey derived from the primary key and a random 128-bit
/// salt, `HKDF-SHA256(master, info = "session-store/v2/subkey" ‖ salt)`; the
/// salt travels in each blob. A subkey encrypts at most
/// [`MAX_ENCRYPTIONS_PER_SUBKEY`] times (counted in this process), then a
/// fresh salt is drawn. Derived subkeys are cached, so the steady state costs
/// no key derivation at all. Clones share the cache.
#[derive(Clone)]
pub struct Keyring {
    primary: u32,
    /// HKDF pseudo-random keys, one per master key (extract done once).
    prks: HashMap<u32, Arc<Zeroizing<[u8; 32]>>>,
    rotate_after: u64,
    cache: Arc<SubkeyCache>,
}

/// A derived subkey is named by its master key id and its salt.
type SubkeyId = (u32, [u8; SALT_LEN]);

#[derive(Default)]
struct SubkeyCache {
    writer: Mutex<Option<WriterSubkey>>,
    readers: RwLock<HashMap<SubkeyId, Arc<Aes256Gcm>>>,
}

struct WriterSubkey {
    salt: [u8; SALT_LEN],
    cipher: Arc<Aes256Gcm>,
    remaining: u64,
}

impl Keyring {
    /// A keyring whose primary (encrypting) key is `key` with id `id`.
    pub fn new(id: u32, key: EncryptionKey) -> Self {
        let mut ring = Keyring {
            primary: id,
            prks: HashMap::new(),
            rotate_after: MAX_ENCRYPTIONS_PER_SUBKEY,
            cache: Arc::default(),
        };
        ring.insert(id, &key);
        ring
    }

    /// Adds a decrypt-only key (an older primary being retired).
    pub fn with_decrypt_key(mut self, id: u32, key: EncryptionKey) -> Self {
        self.insert(id, &key);
        self
    }

    /// Draws a fresh encryption subkey after `n` encryptions (clamped to
    /// `1..=`[`MAX_ENCRYPTIONS_PER_SUBKEY`], the default). Lower it to bound
    /// what one derived key ever protects.
    pub fn with_subkey_rotation_after(mut self, n: u64) -> Self {
        self.rotate_after = n.clamp(1, MAX_ENCRYPTIONS_PER_SUBKEY);
        self.cache = Arc::default();
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
        let (prk, _) = Hkdf::<Sha256>::extract(Some(b"session-store/v2/salt"), &key.0);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&prk);
        self.prks.insert(id, Arc::new(bytes));
        // An id may now name another key: never serve subkeys derived before.
        self.cache = Arc::default();
    }

    fn derive(&self, id: u32, salt: &[u8; SALT_LEN]) -> Option<Aes256Gcm> {
        let prk = self.prks.get(&id)?;
        let hk = Hkdf::<Sha256>::from_prk(&prk[..]).ok()?;
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand_multi_info(&[b"session-store/v2/subkey", salt], &mut okm[..])
            .ok()?;
        Aes256Gcm::new_from_slice(&okm[..]).ok()
    }

    /// The current encryption subkey, counting one use; draws a fresh one when
    /// the current one is used up.
    fn writer(&self) -> Result<([u8; SALT_LEN], Arc<Aes256Gcm>)> {
        let mut guard = self.cache.writer.lock().unwrap_or_else(|e| e.into_inner());
        if guard.as_ref().is_none_or(|w| w.remaining == 0) {
            let mut salt = [0u8; SALT_LEN];
            rand::rng().fill_bytes(&mut salt);
            let cipher = Arc::new(self.derive(self.primary, &salt).ok_or(Error::Decrypt {
                key_id: Some(self.primary),
            })?);
            *guard = Some(WriterSubkey {
                salt,
                cipher,
                remaining: self.rotate_after,
            });
        }
        let w = guard.as_mut().expect("set above");
        w.remaining -= 1;
        Ok((w.salt, w.cipher.clone()))
    }

    /// The subkey a blob names, from the cache or derived.
    fn reader(&self, id: u32, salt: &[u8; SALT_LEN]) -> Result<Arc<Aes256Gcm>> {
        let readers = &self.cache.readers;
        if let Some(c) = readers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(id, *salt))
        {
            return Ok(c.clone());
        }
        let cipher = Arc::new(
            self.derive(id, salt)
                .ok_or(Error::Decrypt { key_id: Some(id) })?,
        );
        let mut map = readers.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= READ_CACHE_CAP {
            map.clear();
        }
        map.insert((id, *salt), cipher.clone());
        Ok(cipher)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary)
            .field("key_ids", &self.key_ids())
            .field("rotate_after", &self.rotate_after)
            .finish()
    }
}

fn nonce_of(blob: &[u8]) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n.copy_from_slice(&blob[5 + SALT_LEN..HEADER_LEN]);
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
/// - **Counted subkeys.** AES-GCM with random 96-bit nonces allows at most
///   2^32 encryptions per key (NIST SP 800-38D §8.3), and a store that
///   re-encrypts on every write could reach that under one master key. So
///   nothing is encrypted under the master key itself: each process encrypts
///   under a subkey `HKDF-SHA256(master, "session-store/v2/subkey" ‖ salt)`
///   for a random 128-bit salt stored in the blob, counts its encryptions and
///   draws a new salt after [`MAX_ENCRYPTIONS_PER_SUBKEY`] (2^31). Random
///   salts from many processes collide with probability about n²/2^129.
///   Subkeys are cached, so the steady state derives nothing per operation.
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
/// Frame: `0x02 ‖ key id (u32, big-endian) ‖ salt (16) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
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
        subkey: &([u8; SALT_LEN], Arc<Aes256Gcm>),
        field: Field,
        key: &StorageKey,
        r: &SessionRecord,
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        let id = self.keyring.primary;
        let (salt, cipher) = subkey;
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
        out.extend_from_slice(salt);
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
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&blob[5..5 + SALT_LEN]);
        let cipher = self.keyring.reader(id, &salt)?;
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
        let subkey = self.keyring.writer()?;
        let mut out = r.clone();
        out.data = self.seal(&subkey, Field::Data, key, r, &r.data)?;
        out.meta = self.seal(&subkey, Field::Meta, key, r, &r.meta)?;
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

    fn seal_one(
        enc: &Encrypted<MemoryStore>,
        k: &StorageKey,
        r: &SessionRecord,
        plain: &[u8],
    ) -> Vec<u8> {
        let subkey = enc.keyring.writer().unwrap();
        enc.seal(&subkey, Field::Data, k, r, plain).unwrap()
    }

    fn salt_of(blob: &[u8]) -> [u8; SALT_LEN] {
        blob[5..5 + SALT_LEN].try_into().unwrap()
    }

    #[test]
    fn subkeys_rotate_after_their_count() {
        // The nonce-limit answer: a subkey encrypts at most `n` times, then a
        // fresh salt (and so a fresh subkey) is drawn; every blob still opens.
        let ring = Keyring::new(1, EncryptionKey::generate()).with_subkey_rotation_after(3);
        let enc = Encrypted::new(MemoryStore::new(), ring);
        let k = SessionToken::generate().storage_key();
        let r = record(None);
        let blobs: Vec<Vec<u8>> = (0..7).map(|i| seal_one(&enc, &k, &r, &[i])).collect();
        let salts: Vec<[u8; SALT_LEN]> = blobs.iter().map(|b| salt_of(b)).collect();
        assert_eq!(salts[0], salts[1]);
        assert_eq!(salts[1], salts[2]);
        assert_ne!(salts[2], salts[3]);
        assert_eq!(salts[3], salts[5]);
        assert_ne!(salts[5], salts[6]);
        let distinct: std::collections::HashSet<_> = salts.iter().collect();
        assert_eq!(distinct.len(), 3);
        for (i, blob) in blobs.iter().enumerate() {
            let plain = enc
                .open(Field::Data, &k, None, r.absolute_deadline, blob)
                .unwrap();
            assert_eq!(plain, [i as u8]);
        }
        // The default and the ceiling are 2^31.
        let default = Keyring::new(1, EncryptionKey::generate());
        assert_eq!(default.rotate_after, MAX_ENCRYPTIONS_PER_SUBKEY);
        let clamped = default.with_subkey_rotation_after(u64::MAX);
        assert_eq!(clamped.rotate_after, MAX_ENCRYPTIONS_PER_SUBKEY);
    }

    #[test]
    fn nothing_is_encrypted_under_the_master_key_itself() {
        let master = EncryptionKey::from_bytes([7; 32]);
        let enc = Encrypted::new(MemoryStore::new(), Keyring::new(1, master.clone()));
        let k = SessionToken::generate().storage_key();
        let r = record(None);
        let blob = seal_one(&enc, &k, &r, b"x");
        let raw = Aes256Gcm::new_from_slice(&master.0).unwrap();
        let ad = associated_data(Field::Data, &k, None, r.absolute_deadline);
        assert!(raw
            .decrypt(
                &nonce_of(&blob),
                Payload {
                    msg: &blob[HEADER_LEN..],
                    aad: &ad
                }
            )
            .is_err());
        // A different salt names a different subkey: the blob with its salt
        // replaced does not open.
        let mut resalted = blob.clone();
        resalted[5] ^= 0xff;
        assert!(matches!(
            enc.open(Field::Data, &k, None, r.absolute_deadline, &resalted),
            Err(Error::Decrypt { key_id: Some(1) })
        ));
    }

    #[test]
    fn nonces_are_fresh() {
        let ring = Keyring::new(1, EncryptionKey::generate());
        let enc = Encrypted::new(MemoryStore::new(), ring);
        let k = SessionToken::generate().storage_key();
        let r = record(None);
        let x = seal_one(&enc, &k, &r, b"same");
        let y = seal_one(&enc, &k, &r, b"same");
        assert_eq!(
            salt_of(&x),
            salt_of(&y),
            "same subkey until its count is used"
        );
        assert_ne!(x[5 + SALT_LEN..HEADER_LEN], y[5 + SALT_LEN..HEADER_LEN]);
        assert_ne!(x, y);
    }

    #[test]
    fn bound_to_row_and_fields() {
        let ring = Keyring::new(1, EncryptionKey::generate());
        let enc = Encrypted::new(MemoryStore::new(), ring);
        let k = SessionToken::generate().storage_key();
        let other = SessionToken::generate().storage_key();
        let r = record(Some("alice"));
        let blob = seal_one(&enc, &k, &r, b"payload");
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
