//! [`Encrypted`]: the wrapper that seals records on their way to any backend.

use std::fmt;

use async_trait::async_trait;

use super::frame::{self, Field};
use super::keyring::Keyring;
use crate::backend::{Capabilities, SessionBackend};
use crate::error::Result;
use crate::record::{Damage, Lookup, Rotation, SessionRecord, SessionSummary};
use crate::scan::{ScanCursor, ScanPage};
use crate::time::Timestamp;
use crate::token::StorageKey;

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
///   for a random 128-bit salt stored in the blob, counts its encryptions
///   (each sealed field is one) and draws a new salt after
///   [`MAX_ENCRYPTIONS_PER_SUBKEY`](crate::MAX_ENCRYPTIONS_PER_SUBKEY) (2^31). Random salts from many processes
///   collide with probability about n²/2^129. Subkeys are cached, so the
///   steady state derives nothing per operation: the current encryption
///   subkey sits in its own slot (a shared lock and an atomic counter, no map
///   lookup), decryption subkeys in a map under a cheap seeded hash of the
///   salt.
/// - **Fresh random 96-bit nonce** for every encryption.
/// - **Bound to its row.** The associated data is the frame version, the
///   field (data or metadata), the absolute deadline, the storage key and the
///   user id: a blob copied to another row or field, or an edited user or
///   expiry column, fails to decrypt. The idle deadline is not bound, so
///   `touch` never needs a re-encryption.
/// - **Metadata too.** Client metadata (IP, user agent, label) is personal
///   data and is encrypted the same way, in its own frame, so that
///   `list_user` opens it without the data.
/// - **Empty metadata has no frame.** When a record's metadata is empty it is
///   stored empty (no AEAD call, no 49 bytes), and the *data's* associated
///   data carries a "metadata empty" flag. So on `load` the pair stays
///   authenticated: metadata blanked underneath, or a metadata frame added to
///   a row sealed without one, changes the flag the data is opened with and
///   is [`Error::Decrypt`](crate::Error::Decrypt). `list_user`, which never sees the data, shows a
///   row whose metadata was blanked underneath as a row without metadata:
///   like the other unbound listing columns (last seen, idle deadline) an
///   attacker who can write the store can hide it, never forge or move it.
/// - **Fail closed.** Any framing, key id or tag failure is
///   [`Error::Decrypt`](crate::Error::Decrypt): never partial data, never a panic.
/// - **No copies.** Each field is sealed in place into one buffer sized for
///   its frame, and opened in place in the buffer the backend returned; the
///   associated data is built on the stack.
///
/// Frame (version 3): `0x03 ‖ key id (u32, big-endian) ‖ salt (16) ‖ nonce
/// (12) ‖ ciphertext ‖ tag (16)`. The associated data starts with the frame
/// version, so a frame of any other version is [`Error::Decrypt`](crate::Error::Decrypt).
///
/// Keys never reach the backend. `touch`, `delete` and the user operations
/// pass through unchanged. `scan` opens every session it returns, like
/// `load`: a page holding a session that does not open is
/// [`Error::Decrypt`](crate::Error::Decrypt); tools that must walk past such
/// rows (re-encryption) scan [`Encrypted::inner`] and call
/// [`Encrypted::reseal`] per key.
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

    /// Whether a stored (sealed) record has a frame under a key other than
    /// the keyring's primary, or a frame that does not parse: what
    /// [`Encrypted::reseal`] would rewrite.
    pub fn needs_reseal(&self, sealed: &SessionRecord) -> bool {
        let primary = Some(self.keyring.primary_id());
        frame::key_id(&sealed.data) != primary
            || (!sealed.meta.is_empty() && frame::key_id(&sealed.meta) != primary)
    }

    /// Opens a stored (sealed) record in place, as `load` does.
    ///
    /// # Errors
    /// [`Error::Decrypt`](crate::Error::Decrypt) when a frame does not open.
    pub fn open_record(&self, key: &StorageKey, sealed: &mut SessionRecord) -> Result<()> {
        self.decrypt_record(key, sealed)
    }
    /// One frame: `plain` sealed under the current subkey.
    fn seal(
        &self,
        field: Field,
        key: &StorageKey,
        user_id: Option<&str>,
        absolute_deadline: Timestamp,
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        frame::seal(&self.keyring, field, key, user_id, absolute_deadline, plain)
    }

    /// Opens a frame in place (see [`frame::open_in_place`]).
    fn open_in_place(
        &self,
        field: Field,
        key: &StorageKey,
        user_id: Option<&str>,
        absolute_deadline: Timestamp,
        blob: &mut Vec<u8>,
    ) -> Result<()> {
        frame::open_in_place(&self.keyring, field, key, user_id, absolute_deadline, blob)
    }

    fn encrypt_record(&self, key: &StorageKey, r: &SessionRecord) -> Result<SessionRecord> {
        let user = r.user_id.as_deref();
        let abs = r.absolute_deadline;
        let meta_empty = r.meta.is_empty();
        // Field by field rather than `r.clone()`: the plaintext is never copied.
        Ok(SessionRecord {
            version: r.version,
            user_id: r.user_id.clone(),
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            auth_time: r.auth_time,
            idle_deadline: r.idle_deadline,
            absolute_deadline: abs,
            meta: if meta_empty {
                Vec::new()
            } else {
                self.seal(Field::Meta, key, user, abs, &r.meta)?
            },
            data: self.seal(Field::Data { meta_empty }, key, user, abs, &r.data)?,
        })
    }

    /// Decrypts a stored record in place (no moves of the record).
    fn decrypt_record(&self, key: &StorageKey, r: &mut SessionRecord) -> Result<()> {
        let user = r.user_id.as_deref();
        let abs = r.absolute_deadline;
        // Empty stored metadata is accepted here only because the data's
        // associated data says the metadata was empty when sealed.
        let meta_empty = r.meta.is_empty();
        self.open_in_place(Field::Data { meta_empty }, key, user, abs, &mut r.data)?;
        if !meta_empty {
            self.open_in_place(Field::Meta, key, user, abs, &mut r.meta)?;
        }
        Ok(())
    }
}

/// What [`Encrypted::reseal`] did with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resealed {
    /// Every frame was already sealed under the primary key; nothing written.
    AlreadyPrimary,
    /// Re-encrypted under the primary key; the session now has this version.
    Resealed {
        /// The version stored by the rewrite (a compare-and-swap `save`).
        version: u64,
    },
    /// No live session under the key (gone, expired, or a forwarder, which
    /// holds nothing sealed under the keyring); nothing written.
    NoSession,
}

impl<B: SessionBackend> Encrypted<B> {
    /// Re-encrypts the session under `key` under the keyring's primary key
    /// if any of its frames is sealed under another key, so that an old key
    /// can be retired. Idempotent: a session already under the primary is
    /// not written again, so a walk that stopped half-way is simply re-run.
    ///
    /// The rewrite is a compare-and-swap [`save`](SessionBackend::save) of the
    /// decrypted record (version `+ 1`): a concurrent save makes it
    /// [`Error::Conflict`](crate::Error::Conflict) (run it again), and a concurrent `touch` landing
    /// between the read and the write can be lost (the idle deadline keeps
    /// the value read, at most one touch interval earlier).
    ///
    /// # Errors
    /// [`Error::Decrypt`](crate::Error::Decrypt) when the session does not
    /// open under any key of the keyring (nothing is written or deleted);
    /// [`Error::Conflict`](crate::Error::Conflict) as above;
    /// backend errors.
    pub async fn reseal(&self, key: &StorageKey, now: Timestamp) -> Result<Resealed> {
        let Some(Lookup::Session(mut record)) = self.inner.load(key, now).await? else {
            return Ok(Resealed::NoSession);
        };
        if !self.needs_reseal(&record) {
            return Ok(Resealed::AlreadyPrimary);
        }
        self.decrypt_record(key, &mut record)?;
        let sealed = self.encrypt_record(key, &record)?;
        let version = self.inner.save(key, &sealed, now).await?;
        Ok(Resealed::Resealed { version })
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
#[deny(clippy::missing_trait_methods)]
impl<B: SessionBackend> SessionBackend for Encrypted<B> {
    fn rotation_affinity_bits(&self) -> u8 {
        self.inner.rotation_affinity_bits()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn create(&self, key: &StorageKey, record: &SessionRecord) -> Result<()> {
        let sealed = self.encrypt_record(key, record)?;
        self.inner.create(key, &sealed).await
    }

    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        let mut found = self.inner.load(key, now).await?;
        if let Some(Lookup::Session(r)) = &mut found {
            self.decrypt_record(key, r)?;
        }
        Ok(found)
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
        let sealed = Rotation {
            from: rotation.from,
            to: rotation.to,
            record: self.encrypt_record(&rotation.to, &rotation.record)?,
            grace: rotation.grace.clone(),
        };
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
        // Empty metadata has no frame (see "Empty metadata" in the docs).
        // A row whose metadata does not open is reported, not fatal for the
        // listing: it comes back with `damage` set and no metadata.
        for s in list
            .iter_mut()
            .filter(|s| s.damage.is_none() && !s.meta.is_empty())
        {
            if let Err(e) = self.open_in_place(
                Field::Meta,
                &s.key,
                Some(&s.user_id),
                s.absolute_deadline,
                &mut s.meta,
            ) {
                s.damage = Some(Damage::of(&e).ok_or(e)?);
                s.meta.clear();
            }
        }
        Ok(list)
    }

    async fn delete_all(&self) -> Result<()> {
        self.inner.delete_all().await
    }

    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        self.inner.cleanup_expired(now, limit).await
    }

    async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
        let mut page = self.inner.scan(cursor, limit).await?;
        for e in &mut page.entries {
            if let Lookup::Session(r) = &mut e.entry {
                self.decrypt_record(&e.key, r)?;
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::frame::{with_ad, HEADER_LEN, NONCE_AT, NONCE_LEN, SALT_AT, TAG_LEN};
    use crate::crypto::keyring::SALT_LEN;
    use crate::{EncryptionKey, MAX_ENCRYPTIONS_PER_SUBKEY};
    use crate::{Error, ENCRYPTION_OVERHEAD};
    use crate::{MemoryStore, SessionToken};
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};

    /// The data field of a row with metadata.
    const DATA: Field = Field::Data { meta_empty: false };

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
        enc.seal(DATA, k, r.user_id.as_deref(), r.absolute_deadline, plain)
            .unwrap()
    }

    impl<B> Encrypted<B> {
        /// `open_in_place` on a copy.
        fn open(
            &self,
            field: Field,
            key: &StorageKey,
            user_id: Option<&str>,
            absolute_deadline: Timestamp,
            blob: &[u8],
        ) -> Result<Vec<u8>> {
            let mut buf = blob.to_vec();
            self.open_in_place(field, key, user_id, absolute_deadline, &mut buf)?;
            Ok(buf)
        }
    }

    fn salt_of(blob: &[u8]) -> [u8; SALT_LEN] {
        blob[SALT_AT..NONCE_AT].try_into().unwrap()
    }

    fn nonce_of(blob: &[u8]) -> &[u8] {
        &blob[NONCE_AT..HEADER_LEN]
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
            let plain = enc.open(DATA, &k, None, r.absolute_deadline, blob).unwrap();
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
        let mut body = blob[HEADER_LEN..blob.len() - TAG_LEN].to_vec();
        let tag: [u8; TAG_LEN] = blob[blob.len() - TAG_LEN..].try_into().unwrap();
        let nonce: [u8; NONCE_LEN] = nonce_of(&blob).try_into().unwrap();
        let opened = with_ad(DATA, &k, None, r.absolute_deadline, |ad| {
            raw.decrypt_inout_detached(
                &Nonce::from(nonce),
                ad,
                body.as_mut_slice().into(),
                &Tag::from(tag),
            )
        });
        assert!(opened.is_err());
        // The subkey itself opens it (the test is not vacuous).
        assert_eq!(
            enc.open(DATA, &k, None, r.absolute_deadline, &blob)
                .unwrap(),
            b"x"
        );
        // A different salt names a different subkey: the blob with its salt
        // replaced does not open.
        let mut resalted = blob.clone();
        resalted[SALT_AT] ^= 0xff;
        assert!(matches!(
            enc.open(DATA, &k, None, r.absolute_deadline, &resalted),
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
        assert_ne!(nonce_of(&x), nonce_of(&y));
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
            enc.open(DATA, &k, Some("alice"), abs, &blob).unwrap(),
            b"payload"
        );
        for res in [
            enc.open(DATA, &other, Some("alice"), abs, &blob),
            enc.open(DATA, &k, Some("mallory"), abs, &blob),
            enc.open(DATA, &k, None, abs, &blob),
            enc.open(DATA, &k, Some("alice"), Timestamp::from_millis(9), &blob),
            enc.open(Field::Meta, &k, Some("alice"), abs, &blob),
            enc.open(DATA, &k, Some("alice"), abs, &blob[..10]),
            enc.open(DATA, &k, Some("alice"), abs, &[]),
        ] {
            assert!(matches!(res, Err(Error::Decrypt { .. })), "{res:?}");
        }
        let mut flipped = blob.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            enc.open(DATA, &k, Some("alice"), abs, &flipped),
            Err(Error::Decrypt { key_id: Some(1) })
        ));
    }

    /// A store that reports non-default capabilities and affinity.
    #[derive(Debug, Default)]
    struct Reporting(MemoryStore);

    #[async_trait]
    impl SessionBackend for Reporting {
        fn rotation_affinity_bits(&self) -> u8 {
            7
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::full().with_counted_cleanup(false)
        }
        async fn create(&self, key: &StorageKey, r: &SessionRecord) -> Result<()> {
            self.0.create(key, r).await
        }
        async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
            self.0.load(key, now).await
        }
        async fn save(&self, key: &StorageKey, r: &SessionRecord, now: Timestamp) -> Result<u64> {
            self.0.save(key, r, now).await
        }
        async fn touch(
            &self,
            key: &StorageKey,
            idle: Timestamp,
            seen: Timestamp,
            now: Timestamp,
        ) -> Result<bool> {
            self.0.touch(key, idle, seen, now).await
        }
        async fn rotate(&self, rot: &Rotation, now: Timestamp) -> Result<u64> {
            self.0.rotate(rot, now).await
        }
        async fn delete(&self, key: &StorageKey) -> Result<bool> {
            self.0.delete(key).await
        }
        async fn delete_user(
            &self,
            user: &str,
            except: Option<&StorageKey>,
            now: Timestamp,
        ) -> Result<u64> {
            self.0.delete_user(user, except, now).await
        }
        async fn list_user(&self, user: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
            self.0.list_user(user, now).await
        }
        async fn delete_all(&self) -> Result<()> {
            self.0.delete_all().await
        }
        async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
            self.0.cleanup_expired(now, limit).await
        }
        async fn scan(&self, cursor: Option<&ScanCursor>, limit: usize) -> Result<ScanPage> {
            self.0.scan(cursor, limit).await
        }
    }

    #[test]
    fn wrappers_forward_capabilities_and_affinity() {
        let ring = || Keyring::new(1, EncryptionKey::generate());
        let want = Capabilities::full().with_counted_cleanup(false);
        let enc = Encrypted::new(Reporting::default(), ring());
        assert_eq!(enc.capabilities(), want);
        assert_eq!(enc.rotation_affinity_bits(), 7);
        let arc: std::sync::Arc<dyn SessionBackend> =
            std::sync::Arc::new(Encrypted::new(Reporting::default(), ring()));
        assert_eq!(arc.capabilities(), want);
        assert_eq!(arc.rotation_affinity_bits(), 7);
        let boxed: Box<dyn SessionBackend> = Box::new(Reporting::default());
        assert_eq!(boxed.capabilities(), want);
        assert_eq!(MemoryStore::new().capabilities(), Capabilities::full());
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

    #[tokio::test]
    async fn reseal_moves_old_frames_to_the_primary_and_reports_strangers() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let old = EncryptionKey::from_bytes([1; 32]);
        let new = EncryptionKey::from_bytes([2; 32]);
        let now = Timestamp::from_millis(2_000);
        let v1 = Encrypted::new(store.clone(), Keyring::new(1, old.clone()));
        let k = SessionToken::generate().storage_key();
        let mut with_meta = record(Some("alice"));
        with_meta.meta = b"{\"label\":\"x\"}".to_vec();
        v1.create(&k, &with_meta).await.unwrap();
        let stranger = SessionToken::generate().storage_key();
        Encrypted::new(store.clone(), Keyring::new(9, EncryptionKey::generate()))
            .create(&stranger, &record(None))
            .await
            .unwrap();

        let v2 = Encrypted::new(
            store.clone(),
            Keyring::new(2, new.clone()).with_decrypt_key(1, old),
        );
        let Some(Lookup::Session(raw)) = store.load(&k, now).await.unwrap() else {
            panic!("missing")
        };
        assert!(v2.needs_reseal(&raw));
        assert_eq!(
            v2.reseal(&k, now).await.unwrap(),
            Resealed::Resealed { version: 1 }
        );
        assert_eq!(v2.reseal(&k, now).await.unwrap(), Resealed::AlreadyPrimary);
        assert!(matches!(
            v2.reseal(&stranger, now).await,
            Err(Error::Decrypt { key_id: Some(9) })
        ));
        assert!(
            store.load(&stranger, now).await.unwrap().is_some(),
            "never deleted"
        );
        let gone = SessionToken::generate().storage_key();
        assert_eq!(v2.reseal(&gone, now).await.unwrap(), Resealed::NoSession);

        // The old key retired: everything resealed still opens, metadata too.
        let only_new = Encrypted::new(store.clone(), Keyring::new(2, new));
        let Some(Lookup::Session(r)) = only_new.load(&k, now).await.unwrap() else {
            panic!("missing")
        };
        assert_eq!(r.meta, with_meta.meta);
        assert_eq!(r.data, b"secret-marker");

        // Scanning through the wrapper opens what it returns; a stranger fails the page.
        let mut page = v2.scan(None, 10).await;
        assert!(matches!(page, Err(Error::Decrypt { .. })));
        store.delete(&stranger).await.unwrap();
        page = v2.scan(None, 10).await;
        let page = page.unwrap();
        assert_eq!(page.entries.len(), 1);
        assert!(matches!(&page.entries[0].entry, Lookup::Session(r) if r.data == b"secret-marker"));
    }

    #[tokio::test]
    async fn empty_metadata_is_bound_to_the_data() {
        // Empty metadata is stored without a frame; the data's associated
        // data says so. Blanking a row's metadata, or giving an empty-metadata
        // row a (genuine) metadata frame, is `Error::Decrypt` on load.
        let store = std::sync::Arc::new(MemoryStore::new());
        let enc = Encrypted::new(store.clone(), Keyring::new(1, EncryptionKey::generate()));
        let now = Timestamp::from_millis(2_000);
        let raw_of = |k: StorageKey| {
            let store = store.clone();
            async move {
                match store.load(&k, now).await.unwrap() {
                    Some(Lookup::Session(r)) => r,
                    other => panic!("missing: {other:?}"),
                }
            }
        };

        let mut bare = record(Some("alice"));
        bare.meta.clear();
        let with_meta = record(Some("alice"));
        let (a, b) = (
            SessionToken::generate().storage_key(),
            SessionToken::generate().storage_key(),
        );
        enc.create(&a, &bare).await.unwrap();
        enc.create(&b, &with_meta).await.unwrap();
        let (raw_a, raw_b) = (raw_of(a).await, raw_of(b).await);
        assert!(raw_a.meta.is_empty(), "no frame for empty metadata");
        assert_eq!(raw_b.meta.len(), with_meta.meta.len() + ENCRYPTION_OVERHEAD);
        let Some(Lookup::Session(r)) = enc.load(&a, now).await.unwrap() else {
            panic!("missing")
        };
        assert_eq!((r.data, r.meta), (bare.data.clone(), Vec::new()));

        // The metadata of `b` blanked: load fails closed.
        let mut blanked = raw_b.clone();
        blanked.meta.clear();
        store.save(&b, &blanked, now).await.unwrap();
        assert!(matches!(
            enc.load(&b, now).await,
            Err(Error::Decrypt { key_id: Some(1) })
        ));

        // A metadata frame of the same row (user, deadline, key) added to
        // `a`, sealed while `a` had metadata: load fails closed too.
        let mut sealed_meta = with_meta.clone();
        sealed_meta.version = raw_a.version;
        let resealed = enc.encrypt_record(&a, &sealed_meta).unwrap();
        let mut grafted = raw_a.clone();
        grafted.meta = resealed.meta;
        store.save(&a, &grafted, now).await.unwrap();
        assert!(matches!(
            enc.load(&a, now).await,
            Err(Error::Decrypt { key_id: Some(1) })
        ));
        // The genuine pair opens.
        grafted.data = resealed.data;
        grafted.version += 1;
        store.save(&a, &grafted, now).await.unwrap();
        assert!(enc.load(&a, now).await.unwrap().is_some());
    }

    #[test]
    fn debug_hides_keys() {
        let key = EncryptionKey::from_bytes([0xab; 32]);
        let ring = Keyring::new(3, key.clone());
        assert!(!format!("{key:?}{ring:?}").contains("ab"));
        assert!(!format!("{key:?}{ring:?}").contains("171"));
    }
}
