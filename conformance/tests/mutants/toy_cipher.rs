//! A toy encrypting wrapper, standing in for a third party's: a keyed
//! SipHash keystream and tag (not cryptography, only the shape of an AEAD),
//! with flaws that can be switched on. The suite must test it through
//! `TestStore::encrypting_over` and catch each flaw.

use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;

use session_store_core::{
    async_trait, Damage, Error, Lookup, Result, Rotation, SessionBackend, SessionRecord,
    SessionSummary, SessionToken, StorageKey, Timestamp,
};

const NONCE: usize = 12;
const TAG: usize = 16;

/// A deliberate flaw of the toy wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// None: a correct (toy) wrapper.
    None,
    /// The tag covers only the ciphertext: a blob opens in any row.
    NoAssociatedData,
    /// One nonce for every seal.
    ConstantNonce,
}

/// Encrypts data and metadata of every record on top of `inner`.
#[derive(Debug)]
pub struct ToyCipher {
    inner: Arc<dyn SessionBackend>,
    key: u64,
    flaw: Flaw,
}

impl ToyCipher {
    pub fn new(inner: Arc<dyn SessionBackend>, flaw: Flaw) -> Self {
        let k = SessionToken::generate().secret_bytes();
        ToyCipher {
            inner,
            key: u64::from_le_bytes(k[..8].try_into().unwrap()),
            flaw,
        }
    }

    fn hash(&self, domain: u8, parts: &[&[u8]]) -> u64 {
        let mut h = DefaultHasher::new();
        h.write_u64(self.key);
        h.write_u8(domain);
        for p in parts {
            h.write_usize(p.len());
            h.write(p);
        }
        h.finish()
    }

    fn keystream(&self, nonce: &[u8], len: usize) -> Vec<u8> {
        (0..len.div_ceil(8) as u64)
            .flat_map(|i| self.hash(0, &[nonce, &i.to_le_bytes()]).to_le_bytes())
            .take(len)
            .collect()
    }

    fn tag(&self, nonce: &[u8], ad: &[u8], ct: &[u8]) -> [u8; TAG] {
        let mut t = [0u8; TAG];
        t[..8].copy_from_slice(&self.hash(1, &[nonce, ad, ct]).to_le_bytes());
        t[8..].copy_from_slice(&self.hash(2, &[nonce, ad, ct]).to_le_bytes());
        t
    }

    /// What a blob is bound to: the row's key, the field, the user id and
    /// the absolute deadline (nothing under `NoAssociatedData`).
    fn ad(&self, key: &StorageKey, field: &str, user: Option<&str>, abs: Timestamp) -> Vec<u8> {
        if self.flaw == Flaw::NoAssociatedData {
            return Vec::new();
        }
        let mut ad = key.as_bytes().to_vec();
        ad.extend_from_slice(field.as_bytes());
        ad.push(0);
        ad.extend_from_slice(user.unwrap_or("").as_bytes());
        ad.push(u8::from(user.is_some()));
        ad.extend_from_slice(&abs.as_millis().to_le_bytes());
        ad
    }

    fn seal(&self, ad: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce: Vec<u8> = if self.flaw == Flaw::ConstantNonce {
            vec![7; NONCE]
        } else {
            SessionToken::generate().secret_bytes()[..NONCE].to_vec()
        };
        let ct: Vec<u8> = plain
            .iter()
            .zip(self.keystream(&nonce, plain.len()))
            .map(|(p, k)| p ^ k)
            .collect();
        let tag = self.tag(&nonce, ad, &ct);
        [nonce, ct, tag.to_vec()].concat()
    }

    fn open(&self, ad: &[u8], blob: &[u8]) -> Result<Vec<u8>> {
        if blob.len() < NONCE + TAG {
            return Err(Error::Decrypt { key_id: None });
        }
        let (nonce, rest) = blob.split_at(NONCE);
        let (ct, tag) = rest.split_at(rest.len() - TAG);
        if self.tag(nonce, ad, ct) != tag {
            return Err(Error::Decrypt { key_id: None });
        }
        Ok(ct
            .iter()
            .zip(self.keystream(nonce, ct.len()))
            .map(|(c, k)| c ^ k)
            .collect())
    }

    fn encrypt(&self, key: &StorageKey, r: &SessionRecord) -> SessionRecord {
        let user = r.user_id.as_deref();
        let mut sealed = r.clone();
        sealed.data = self.seal(&self.ad(key, "data", user, r.absolute_deadline), &r.data);
        sealed.meta = self.seal(&self.ad(key, "meta", user, r.absolute_deadline), &r.meta);
        sealed
    }

    fn decrypt(&self, key: &StorageKey, mut r: SessionRecord) -> Result<SessionRecord> {
        let user = r.user_id.as_deref();
        let data = self.open(&self.ad(key, "data", user, r.absolute_deadline), &r.data)?;
        let meta = self.open(&self.ad(key, "meta", user, r.absolute_deadline), &r.meta)?;
        r.data = data;
        r.meta = meta;
        Ok(r)
    }
}

#[async_trait]
impl SessionBackend for ToyCipher {
    fn rotation_affinity_bits(&self) -> u8 {
        self.inner.rotation_affinity_bits()
    }
    async fn create(&self, key: &StorageKey, r: &SessionRecord) -> Result<()> {
        self.inner.create(key, &self.encrypt(key, r)).await
    }
    async fn load(&self, key: &StorageKey, now: Timestamp) -> Result<Option<Lookup>> {
        match self.inner.load(key, now).await? {
            Some(Lookup::Session(r)) => Ok(Some(Lookup::Session(self.decrypt(key, r)?))),
            other => Ok(other),
        }
    }
    async fn save(&self, key: &StorageKey, r: &SessionRecord, now: Timestamp) -> Result<u64> {
        self.inner.save(key, &self.encrypt(key, r), now).await
    }
    async fn touch(
        &self,
        key: &StorageKey,
        idle: Timestamp,
        seen: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.inner.touch(key, idle, seen, now).await
    }
    async fn rotate(&self, rotation: &Rotation, now: Timestamp) -> Result<u64> {
        let mut sealed = rotation.clone();
        sealed.record = self.encrypt(&rotation.to, &rotation.record);
        self.inner.rotate(&sealed, now).await
    }
    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        self.inner.delete(key).await
    }
    async fn delete_user(
        &self,
        user: &str,
        except: Option<&StorageKey>,
        now: Timestamp,
    ) -> Result<u64> {
        self.inner.delete_user(user, except, now).await
    }
    async fn list_user(&self, user: &str, now: Timestamp) -> Result<Vec<SessionSummary>> {
        let listed = self.inner.list_user(user, now).await?;
        Ok(listed
            .into_iter()
            .map(|mut s| {
                let ad = self.ad(&s.key, "meta", Some(&s.user_id), s.absolute_deadline);
                match self.open(&ad, &s.meta) {
                    Ok(meta) => {
                        s.meta = meta;
                        s
                    }
                    Err(_) => SessionSummary::damaged(s.key, s.user_id, Damage::Undecryptable),
                }
            })
            .collect())
    }
    async fn delete_all(&self) -> Result<()> {
        self.inner.delete_all().await
    }
    async fn cleanup_expired(&self, now: Timestamp, limit: usize) -> Result<u64> {
        self.inner.cleanup_expired(now, limit).await
    }
}
