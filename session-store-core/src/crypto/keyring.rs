//! Master keys, the keyring and the cache of derived subkeys.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rand::{RngCore as _, TryRngCore as _};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// Length of the random salt that names a subkey.
pub(super) const SALT_LEN: usize = 16;
/// The most encryptions one subkey performs before a fresh one is drawn:
/// 2^31, half of the 2^32 random-nonce bound of NIST SP 800-38D §8.3.
pub const MAX_ENCRYPTIONS_PER_SUBKEY: u64 = 1 << 31;
/// Derived decryption subkeys kept in memory (a handful per writer process).
const READ_CACHE_CAP: usize = 1024;

/// HKDF labels of the key schedule. They version the *derivation* (salt label
/// and subkey info), which is independent of the byte layout of a frame
/// ([`FRAME_VERSION`](super::frame::FRAME_VERSION)): frame version 3 changed
/// only the associated data and the handling of empty metadata, so the
/// derivation, and with it these labels, stayed at `v2`. Changing a label
/// makes every stored blob undecryptable; it changes only with the derivation.
const PRK_SALT_LABEL: &[u8] = b"session-store/v2/salt";
const SUBKEY_INFO_LABEL: &[u8] = b"session-store/v2/subkey";

/// A 256-bit master key. Zeroized on drop; never shown by `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EncryptionKey(pub(super) [u8; 32]);

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
/// [`MAX_ENCRYPTIONS_PER_SUBKEY`] times (counted in this process, one per
/// sealed field), then a fresh salt is drawn. Derived subkeys are cached, so
/// the steady state costs no key derivation at all. Clones share the cache.
#[derive(Clone)]
pub struct Keyring {
    pub(super) primary: u32,
    /// HKDF pseudo-random keys, one per master key (extract done once).
    prks: HashMap<u32, Arc<Zeroizing<[u8; 32]>>>,
    pub(super) rotate_after: u64,
    cache: Arc<SubkeyCache>,
}

/// A derived subkey is named by its master key id and its salt.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SubkeyId {
    key_id: u32,
    salt: [u8; SALT_LEN],
}

impl Hash for SubkeyId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_le_bytes(self.salt) ^ u128::from(self.key_id));
    }
}

/// The read cache's hash: a multiply-fold of the (uniformly random) salt
/// under a per-cache random seed, a few instructions instead of SipHash over
/// 20 bytes. Salts are chosen by whoever can write the store, so the seed is
/// secret and the cache is capped at `READ_CACHE_CAP` entries anyway.
#[derive(Clone)]
struct SaltHashState([u64; 2]);

impl SaltHashState {
    fn random() -> Self {
        let mut r = rand::rng();
        SaltHashState([r.next_u64(), r.next_u64()])
    }
}

impl BuildHasher for SaltHashState {
    type Hasher = SaltHasher;

    fn build_hasher(&self) -> SaltHasher {
        SaltHasher {
            seed: self.0,
            hash: 0,
        }
    }
}

struct SaltHasher {
    seed: [u64; 2],
    hash: u64,
}

fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for SaltHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write_u128(&mut self, x: u128) {
        self.hash = fold_mul(
            self.hash ^ (x as u64) ^ self.seed[0],
            ((x >> 64) as u64) ^ self.seed[1],
        );
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            let mut block = [0u8; 16];
            block[..chunk.len()].copy_from_slice(chunk);
            self.write_u128(u128::from_le_bytes(block));
        }
    }
}

struct SubkeyCache {
    /// The current encryption subkey. Encryptions hold the read lock (shared)
    /// and count themselves atomically; only drawing a fresh subkey writes.
    writer: RwLock<Option<Box<WriterSubkey>>>,
    /// Decryption subkeys; a lookup holds the read lock while it decrypts.
    readers: RwLock<HashMap<SubkeyId, Box<Aes256Gcm>, SaltHashState>>,
}

impl Default for SubkeyCache {
    fn default() -> Self {
        SubkeyCache {
            writer: RwLock::new(None),
            readers: RwLock::new(HashMap::with_hasher(SaltHashState::random())),
        }
    }
}

struct WriterSubkey {
    salt: [u8; SALT_LEN],
    cipher: Aes256Gcm,
    /// Encryptions claimed so far; only claims below the limit encrypt.
    used: AtomicU64,
}

impl WriterSubkey {
    /// Claims one encryption; false once the subkey is used up.
    fn claim(&self, limit: u64) -> bool {
        self.used.fetch_add(1, Ordering::Relaxed) < limit
    }
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
        let (prk, _) = Hkdf::<Sha256>::extract(Some(PRK_SALT_LABEL), &key.0);
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
        hk.expand_multi_info(&[SUBKEY_INFO_LABEL, salt], &mut okm[..])
            .ok()?;
        Aes256Gcm::new_from_slice(&okm[..]).ok()
    }

    /// Runs `f` with the current encryption subkey (its salt and cipher),
    /// counting one encryption; draws a fresh subkey when the current one is
    /// used up.
    pub(super) fn with_writer<R>(
        &self,
        f: impl FnOnce(&[u8; SALT_LEN], &Aes256Gcm) -> R,
    ) -> Result<R> {
        let limit = self.rotate_after;
        {
            let guard = self.cache.writer.read().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = guard.as_deref().filter(|w| w.claim(limit)) {
                return Ok(f(&w.salt, &w.cipher));
            }
        }
        let mut guard = self.cache.writer.write().unwrap_or_else(|e| e.into_inner());
        // Another caller may have drawn a fresh subkey meanwhile.
        if let Some(w) = guard.as_deref().filter(|w| w.claim(limit)) {
            return Ok(f(&w.salt, &w.cipher));
        }
        let mut salt = [0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        // Deriving from a key of the ring cannot fail (32-byte output);
        // should it, this is an encryption failure, not a decryption one.
        let cipher = self.derive(self.primary, &salt).ok_or_else(|| {
            Error::backend_permanent("deriving the encryption subkey failed").context(
                "encrypted",
                "encrypt",
                None,
            )
        })?;
        let w = guard.insert(Box::new(WriterSubkey {
            salt,
            cipher,
            used: AtomicU64::new(1),
        }));
        Ok(f(&w.salt, &w.cipher))
    }

    /// Runs `f` with the subkey a blob names, from the cache or derived.
    pub(super) fn with_reader<R>(
        &self,
        key_id: u32,
        salt: &[u8; SALT_LEN],
        f: impl FnOnce(&Aes256Gcm) -> R,
    ) -> Result<R> {
        let id = SubkeyId {
            key_id,
            salt: *salt,
        };
        let readers = &self.cache.readers;
        {
            let map = readers.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = map.get(&id) {
                return Ok(f(c));
            }
        }
        let cipher = self.derive(key_id, salt).ok_or(Error::Decrypt {
            key_id: Some(key_id),
        })?;
        let mut map = readers.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= READ_CACHE_CAP {
            map.clear();
        }
        Ok(f(map.entry(id).or_insert_with(|| Box::new(cipher))))
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
