//! Sealing of a renewal forwarder's successor token.
//!
//! A renewal in its grace window leaves a forwarder under the old key that
//! names the successor. The successor's *token* (needed to re-issue the
//! cookie) is sealed under a key derived from the old token, so the forwarder
//! at rest reveals nothing to anyone without the old token; the successor's
//! storage key is the associated data, so a sealed token cannot be moved to
//! another forwarder.
//!
//! Sealed form: `nonce (12) ‖ AES-256-GCM(ciphertext ‖ tag)`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::RngCore as _;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::token::{SessionToken, StorageKey};

/// What one kind of seal derives its key with, and the manager operation
/// its errors name.
struct Seal {
    salt: &'static [u8],
    info: &'static [u8],
    operation: &'static str,
}

/// HKDF labels of the forwarder key. `v1`: the forwarder's derivation has not
/// changed since it was introduced; it is versioned apart from the record
/// frame because it seals a different thing under a different key.
const FORWARD: Seal = Seal {
    salt: b"session-store/v1/forward-salt",
    info: b"session-store/v1/forward",
    operation: "rotate",
};

/// HKDF labels of the persistent-login grace seal (see `crate::persistent`).
const PERSISTENT: Seal = Seal {
    salt: b"session-store/v1/persistent-salt",
    info: b"session-store/v1/persistent-successor",
    operation: "resume",
};

impl Seal {
    /// The AES-256-GCM key derived from `secret` (the old token's bytes).
    fn cipher(&self, secret: &[u8]) -> Result<Aes256Gcm> {
        let failed = || {
            Error::backend_permanent("deriving the successor seal key failed").context(
                "manager",
                self.operation,
                None,
            )
        };
        let hk = Hkdf::<Sha256>::new(Some(self.salt), secret);
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(self.info, &mut okm[..]).map_err(|_| failed())?;
        Aes256Gcm::new_from_slice(&okm[..]).map_err(|_| failed())
    }

    /// `nonce ‖ AES-256-GCM(msg)` under the key derived from `secret`,
    /// bound to `ad`.
    fn seal(&self, secret: &[u8], ad: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
        let cipher = self.cipher(secret)?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg, aad: ad })
            .map_err(|_| {
                Error::backend_permanent("sealing the successor token failed").context(
                    "manager",
                    self.operation,
                    None,
                )
            })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`Seal::seal`] sealed: [`Error::Decrypt`] for a wrong
    /// secret, other associated data, or bytes that are too short or tampered.
    fn open(&self, secret: &[u8], ad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 12 + 16 {
            return Err(Error::Decrypt { key_id: None });
        }
        let cipher = self.cipher(secret)?;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&sealed[..12]);
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[12..],
                    aad: ad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::Decrypt { key_id: None })
    }
}

/// Seals the successor token under a key derived from the old token, so the
/// forwarder at rest reveals nothing to anyone without the old token.
pub(crate) fn seal_successor(
    old: &SessionToken,
    new_key: &StorageKey,
    new: &SessionToken,
) -> Result<Vec<u8>> {
    FORWARD.seal(
        &old.secret_bytes(),
        new_key.as_bytes(),
        new.expose_secret().as_bytes(),
    )
}

/// Opens a forwarder's sealed successor with the old token; the successor
/// must hash to `new_key`.
pub(crate) fn unseal_successor(
    old: &SessionToken,
    new_key: &StorageKey,
    sealed: &[u8],
) -> Result<SessionToken> {
    let plain = FORWARD.open(&old.secret_bytes(), new_key.as_bytes(), sealed)?;
    let text = std::str::from_utf8(&plain).map_err(|_| Error::Decrypt { key_id: None })?;
    let token = SessionToken::parse(text).map_err(|_| Error::Decrypt { key_id: None })?;
    if token.storage_key() != *new_key {
        return Err(Error::Decrypt { key_id: None });
    }
    Ok(token)
}

/// Seals `msg` (a successor persistent token) under a key derived from the
/// presented token's secret bytes `old_secret`, bound to `ad` (the family's
/// storage key): only a holder of the old token can open it.
pub(crate) fn seal_persistent(old_secret: &[u8], ad: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
    PERSISTENT.seal(old_secret, ad, msg)
}

/// Opens what [`seal_persistent`] sealed.
///
/// # Errors
/// [`Error::Decrypt`] for a wrong secret, other associated data, or bytes
/// that are too short or tampered.
pub(crate) fn open_persistent(
    old_secret: &[u8],
    ad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    PERSISTENT.open(old_secret, ad, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> (SessionToken, SessionToken, Vec<u8>) {
        let old = SessionToken::generate();
        let new = SessionToken::generate();
        let s = seal_successor(&old, &new.storage_key(), &new).unwrap();
        (old, new, s)
    }

    fn is_decrypt(r: Result<SessionToken>) -> bool {
        matches!(r, Err(Error::Decrypt { key_id: None }))
    }

    #[test]
    fn a_seal_unseals_under_the_old_token() {
        let (old, new, s) = sealed();
        let got = unseal_successor(&old, &new.storage_key(), &s).unwrap();
        assert_eq!(got.expose_secret(), new.expose_secret());
    }

    #[test]
    fn every_tampered_byte_fails_closed() {
        let (old, new, s) = sealed();
        for i in 0..s.len() {
            for bit in [0x01, 0x80] {
                let mut t = s.clone();
                t[i] ^= bit;
                assert!(
                    is_decrypt(unseal_successor(&old, &new.storage_key(), &t)),
                    "byte {i}"
                );
            }
        }
    }

    #[test]
    fn the_wrong_token_or_successor_fails_closed() {
        let (old, new, s) = sealed();
        let other = SessionToken::generate();
        assert!(is_decrypt(unseal_successor(&other, &new.storage_key(), &s)));
        // Moved to another forwarder (another successor key as associated data).
        assert!(is_decrypt(unseal_successor(&old, &other.storage_key(), &s)));
        // The new token cannot unseal its own seal.
        assert!(is_decrypt(unseal_successor(&new, &new.storage_key(), &s)));
    }

    #[test]
    fn truncated_extended_and_empty_seals_fail_closed() {
        let (old, new, s) = sealed();
        for len in [0, 1, 11, 12, 27, 28, s.len() - 1] {
            assert!(
                is_decrypt(unseal_successor(&old, &new.storage_key(), &s[..len])),
                "{len}"
            );
        }
        let mut longer = s.clone();
        longer.push(0);
        assert!(is_decrypt(unseal_successor(
            &old,
            &new.storage_key(),
            &longer
        )));
    }

    #[test]
    fn a_seal_of_a_token_for_another_key_fails_closed() {
        // A valid seal whose plaintext token does not hash to the successor key.
        let old = SessionToken::generate();
        let new = SessionToken::generate();
        let other_key = SessionToken::generate().storage_key();
        let s = seal_successor(&old, &other_key, &new).unwrap();
        assert!(is_decrypt(unseal_successor(&old, &other_key, &s)));
    }
}
