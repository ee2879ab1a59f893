//! The encrypted frame and the associated data that binds it to its row.
//!
//! Frame (version 3): `0x03 ‖ key id (u32, big-endian) ‖ salt (16) ‖ nonce
//! (12) ‖ ciphertext ‖ tag (16)`.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Nonce, Tag};
use rand::RngCore as _;

use super::keyring::{Keyring, SALT_LEN};
use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::token::StorageKey;

/// Version byte of the frame layout and first byte of the associated data.
pub(super) const FRAME_VERSION: u8 = 3;
pub(super) const NONCE_LEN: usize = 12;
pub(super) const SALT_AT: usize = 1 + 4;
pub(super) const NONCE_AT: usize = SALT_AT + SALT_LEN;
pub(super) const HEADER_LEN: usize = NONCE_AT + NONCE_LEN;
pub(super) const TAG_LEN: usize = 16;
/// Bytes an encrypted field adds to its plaintext.
pub const ENCRYPTION_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Which field a blob belongs to (part of the associated data).
#[derive(Clone, Copy)]
pub(crate) enum Field {
    /// Session data; `meta_empty` says whether the row's metadata is empty
    /// (and so stored without a frame), which binds that fact to the data.
    Data { meta_empty: bool },
    /// Client metadata (only sealed when not empty).
    Meta,
}

/// The fixed part of the associated data: frame version, field, flags,
/// absolute deadline, storage key.
const AD_FIXED: usize = 1 + 1 + 1 + 8 + 32;
/// User ids up to this length are bound from a stack buffer.
const AD_INLINE_USER: usize = 256;

/// Runs `f` with the associated data of a field of a row:
/// `version ‖ field ‖ flags ‖ absolute deadline (i64 ms, big-endian) ‖
/// storage key (32) ‖ user id`, where `flags` bit 0 says whether there is a
/// user id and bit 1 (data only) whether the metadata is empty. Everything but the user id has a fixed width and GCM
/// authenticates the length of the associated data, so the encoding is
/// unambiguous without a length prefix. Built on the stack.
pub(super) fn with_ad<R>(
    field: Field,
    key: &StorageKey,
    user_id: Option<&str>,
    absolute_deadline: Timestamp,
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    let user = user_id.unwrap_or("").as_bytes();
    let (tag, meta_empty) = match field {
        Field::Data { meta_empty } => (b'd', meta_empty),
        Field::Meta => (b'm', false),
    };
    let mut fixed = [0u8; AD_FIXED];
    fixed[0] = FRAME_VERSION;
    fixed[1] = tag;
    fixed[2] = u8::from(user_id.is_some()) | (u8::from(meta_empty) << 1);
    fixed[3..11].copy_from_slice(&absolute_deadline.as_millis().to_be_bytes());
    fixed[11..].copy_from_slice(key.as_bytes());
    if user.len() <= AD_INLINE_USER {
        let mut buf = [0u8; AD_FIXED + AD_INLINE_USER];
        buf[..AD_FIXED].copy_from_slice(&fixed);
        buf[AD_FIXED..AD_FIXED + user.len()].copy_from_slice(user);
        f(&buf[..AD_FIXED + user.len()])
    } else {
        let mut ad = Vec::with_capacity(AD_FIXED + user.len());
        ad.extend_from_slice(&fixed);
        ad.extend_from_slice(user);
        f(&ad)
    }
}

/// One frame: `plain` sealed under the current subkey, in place.
pub(crate) fn seal(
    keyring: &Keyring,
    field: Field,
    key: &StorageKey,
    user_id: Option<&str>,
    absolute_deadline: Timestamp,
    plain: &[u8],
) -> Result<Vec<u8>> {
    let key_id = keyring.primary;
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(ENCRYPTION_OVERHEAD + plain.len());
    out.push(FRAME_VERSION);
    out.extend_from_slice(&key_id.to_be_bytes());
    out.extend_from_slice(&[0; SALT_LEN]);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = with_ad(field, key, user_id, absolute_deadline, |ad| {
        keyring.with_writer(|salt, cipher| {
            let (header, body) = out.split_at_mut(HEADER_LEN);
            header[SALT_AT..NONCE_AT].copy_from_slice(salt);
            cipher.encrypt_inout_detached(&Nonce::from(nonce), ad, body.into())
        })
    })?
    .map_err(|_| Error::Decrypt {
        key_id: Some(key_id),
    })?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// The key id a frame names, without opening it; `None` for bytes that are
/// not a frame of this version.
pub(super) fn key_id(blob: &[u8]) -> Option<u32> {
    if blob.len() < ENCRYPTION_OVERHEAD || blob[0] != FRAME_VERSION {
        return None;
    }
    Some(u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]))
}

/// Opens a frame in place: on success `blob` holds the plaintext; on
/// failure it is left as it was.
pub(crate) fn open_in_place(
    keyring: &Keyring,
    field: Field,
    key: &StorageKey,
    user_id: Option<&str>,
    absolute_deadline: Timestamp,
    blob: &mut Vec<u8>,
) -> Result<()> {
    let len = blob.len();
    if len < ENCRYPTION_OVERHEAD || blob[0] != FRAME_VERSION {
        return Err(Error::Decrypt { key_id: None });
    }
    let (header, rest) = blob.split_at_mut(HEADER_LEN);
    let (body, tag) = rest.split_at_mut(len - ENCRYPTION_OVERHEAD);
    let key_id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let salt: [u8; SALT_LEN] = header[SALT_AT..NONCE_AT].try_into().expect("salt");
    let nonce: [u8; NONCE_LEN] = header[NONCE_AT..].try_into().expect("nonce");
    let tag: [u8; TAG_LEN] = (&*tag).try_into().expect("tag");
    with_ad(field, key, user_id, absolute_deadline, |ad| {
        keyring.with_reader(key_id, &salt, |cipher| {
            cipher.decrypt_inout_detached(&Nonce::from(nonce), ad, body.into(), &Tag::from(tag))
        })
    })?
    .map_err(|_| Error::Decrypt {
        key_id: Some(key_id),
    })?;
    blob.copy_within(HEADER_LEN..len - TAG_LEN, 0);
    blob.truncate(len - ENCRYPTION_OVERHEAD);
    Ok(())
}
