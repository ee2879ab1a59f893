//! Session tokens (the secret the client holds), storage keys (what a backend
//! sees) and session handles (what a "your devices" page shows).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::TryRngCore as _;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};

/// Bytes of entropy in a token.
pub const TOKEN_BYTES: usize = 32;
/// Length of a token's text form (unpadded base64url of 32 bytes).
pub const TOKEN_LEN: usize = 43;

/// The secret a client presents: 256 bits from the operating system's CSPRNG,
/// carried as 43 characters of unpadded base64url.
///
/// Opaque by construction (no user id, time, counter or prefix inside). The
/// `Debug` output is redacted and the bytes are zeroized on drop. A backend
/// never sees a token, only its [`StorageKey`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionToken {
    /// The text form, always `TOKEN_LEN` bytes of the base64url alphabet
    /// (ASCII), inline: parsing or cloning a token allocates nothing.
    text: [u8; TOKEN_LEN],
    /// The decoded bytes, kept so that [`SessionToken::storage_key`] and
    /// [`SessionToken::secret_bytes`] do not decode the text again.
    bytes: [u8; TOKEN_BYTES],
}

impl SessionToken {
    /// A fresh token from the OS CSPRNG.
    ///
    /// # Panics
    /// Only if the operating system's random source fails, which leaves no
    /// safe way to continue issuing sessions.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random number generator failed");
        let token = SessionToken::from_bytes(&bytes);
        bytes.zeroize();
        token
    }

    /// The token of 32 bytes (its text is their unpadded base64url).
    fn from_bytes(bytes: &[u8; TOKEN_BYTES]) -> Self {
        let mut text = [0u8; TOKEN_LEN];
        let n = URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut text)
            .expect("32 bytes are 43 characters of unpadded base64url");
        debug_assert_eq!(n, TOKEN_LEN);
        SessionToken {
            text,
            bytes: *bytes,
        }
    }

    /// A fresh token whose storage key shares its first `bits` bits (at most
    /// 16) with `predecessor`: what a clustered backend needs for a rotation
    /// successor (see
    /// [`SessionBackend::rotation_affinity_bits`](crate::SessionBackend::rotation_affinity_bits)).
    ///
    /// One draw from the OS CSPRNG and one hash, whatever `bits`: the token's
    /// last 30 bytes are fresh random bytes, its first two are fresh random
    /// bytes except for the `bits` leading bits, which are set so that the
    /// masked head of the storage key (see [`SessionToken::storage_key`])
    /// equals the predecessor's. The result is uniformly distributed over
    /// every token whose storage key shares those bits: `256 - bits` bits of
    /// entropy, the same as drawing tokens until one matches, which costs
    /// 2^bits draws and hashes.
    ///
    /// # Panics
    /// As [`SessionToken::generate`].
    pub fn generate_with_affinity(predecessor: &StorageKey, bits: u8) -> Self {
        let bits = u32::from(bits.min(16));
        let mut bytes = zeroize::Zeroizing::new([0u8; TOKEN_BYTES]);
        OsRng
            .try_fill_bytes(&mut bytes[..])
            .expect("the OS random number generator failed");
        let pad = head_pad(&bytes);
        let fixed: u16 = if bits == 0 {
            0
        } else {
            u16::MAX << (16 - bits)
        };
        let wanted = u16::from_be_bytes([predecessor.0[0], predecessor.0[1]]);
        let drawn = u16::from_be_bytes([bytes[0], bytes[1]]);
        let head = ((wanted ^ pad) & fixed) | (drawn & !fixed);
        bytes[..HEAD_BYTES].copy_from_slice(&head.to_be_bytes());
        SessionToken::from_bytes(&bytes)
    }

    /// Parses a token from untrusted input (a cookie value).
    ///
    /// # Errors
    /// [`Error::InvalidId`] unless the input is exactly 43 characters of the
    /// base64url alphabet encoding 32 bytes canonically. No I/O happens.
    pub fn parse(input: &str) -> Result<Self> {
        if input.len() != TOKEN_LEN {
            return Err(Error::InvalidId);
        }
        // Decoded once, into the token (no allocation per parsed cookie);
        // a rejected input's partial decode is zeroized with it. The
        // decoder is the alphabet check: it refuses any byte outside the
        // base64url alphabet (padding and non-ASCII included) and trailing
        // bits that are not zero (a non-canonical encoding).
        let mut token = SessionToken {
            text: [0u8; TOKEN_LEN],
            bytes: [0u8; TOKEN_BYTES],
        };
        match URL_SAFE_NO_PAD.decode_slice(input, &mut token.bytes[..]) {
            Ok(TOKEN_BYTES) => {}
            _ => return Err(Error::InvalidId),
        }
        token.text.copy_from_slice(input.as_bytes());
        Ok(token)
    }

    /// The text to send to the client (for example as a cookie value).
    /// Treat it as a secret: never log it.
    pub fn expose_secret(&self) -> &str {
        std::str::from_utf8(&self.text).expect("a SessionToken's text is base64url (ASCII)")
    }

    /// The raw 32 token bytes. Treat them as a secret.
    pub fn secret_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(self.bytes.to_vec())
    }

    /// The key under which a backend stores this session, a SHA-256 hash of
    /// the token: with `b` the 32 token bytes and
    /// `h = SHA-256("session-store key\0" ‖ b[2..32])`, the key is
    /// `h[0..2] XOR b[0..2]` followed by `h[2..32]`.
    ///
    /// Every byte of the key depends on a hash of 240 secret bits, and no
    /// token bit is stored: the first two token bytes are masked by the two
    /// hash bytes that are not stored. Inverting a key means finding 240
    /// bits that hash to its last 30 bytes. The masked head is what lets
    /// [`SessionToken::generate_with_affinity`] choose a successor whose key
    /// starts like its predecessor's (same Redis Cluster slot) with one draw
    /// and one hash.
    pub fn storage_key(&self) -> StorageKey {
        let mut key = tail_hash(&self.bytes);
        key[0] ^= self.bytes[0];
        key[1] ^= self.bytes[1];
        StorageKey(key)
    }
}

/// Token bytes masked (not hashed) into the head of the storage key.
const HEAD_BYTES: usize = 2;
/// Domain separation of the storage-key hash.
const KEY_DOMAIN: &[u8] = b"session-store key\0";

/// SHA-256 of the domain and the token bytes after the head.
fn tail_hash(bytes: &[u8; TOKEN_BYTES]) -> [u8; 32] {
    let mut input = zeroize::Zeroizing::new([0u8; KEY_DOMAIN.len() + TOKEN_BYTES - HEAD_BYTES]);
    input[..KEY_DOMAIN.len()].copy_from_slice(KEY_DOMAIN);
    input[KEY_DOMAIN.len()..].copy_from_slice(&bytes[HEAD_BYTES..]);
    Sha256::digest(&input[..]).into()
}

/// The two hash bytes that mask the token's head in its storage key.
fn head_pad(bytes: &[u8; TOKEN_BYTES]) -> u16 {
    let h = tail_hash(bytes);
    u16::from_be_bytes([h[0], h[1]])
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl PartialEq for SessionToken {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        self.text.ct_eq(&other.text).into()
    }
}
impl Eq for SessionToken {}

/// What a backend stores a session under: a SHA-256 hash of the token (see
/// [`SessionToken::storage_key`]).
///
/// A plain (unkeyed) hash is enough because the token is 256 uniformly random
/// bits: nothing can be guessed from the hash, and a leaked table gives no
/// token. A storage key is never accepted as a token: the manager always
/// hashes what the client sends, so presenting a stored hash looks up the hash
/// of the hash and finds nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey([u8; 32]);

impl StorageKey {
    /// Wraps 32 bytes read back from storage.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        StorageKey(bytes)
    }

    /// Reads a key from a byte slice of length 32.
    ///
    /// # Errors
    /// [`Error::Codec`] if the slice has another length (corrupt storage).
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self> {
        <[u8; 32]>::try_from(bytes)
            .map(StorageKey)
            .map_err(|_| Error::codec(format!("storage key of {} bytes", bytes.len())))
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether the first `bits` bits (at most 16) equal `other`'s.
    pub fn shares_prefix_bits(&self, other: &StorageKey, bits: u8) -> bool {
        let bits = u32::from(bits.min(16));
        if bits == 0 {
            return true;
        }
        let a = u16::from_be_bytes([self.0[0], self.0[1]]);
        let b = u16::from_be_bytes([other.0[0], other.0[1]]);
        (a ^ b) >> (16 - bits) == 0
    }

    /// Lowercase hex of the 32 bytes (64 characters), for text keys (Redis).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short, non-reversible tag for logs and events: the first 4 bytes in
    /// hex. Identifies a session in a log line without revealing anything usable.
    pub fn short_hash(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// [`StorageKey::short_hash`] as a `Display` value that formats only
    /// when written: for span fields, which are evaluated on every call
    /// (with `tracing`'s `log` feature even without a subscriber) and would
    /// otherwise allocate a `String` per operation.
    pub(crate) fn short(&self) -> ShortHash {
        ShortHash([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
}

/// The first 4 bytes of a storage key, written as 8 lowercase hex digits
/// (the same text as [`StorageKey::short_hash`]).
#[derive(Clone, Copy)]
pub(crate) struct ShortHash([u8; 4]);

impl fmt::Display for ShortHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 8];
        // Cannot fail: the buffer is twice the input's length.
        let _ = hex::encode_to_slice(self.0, &mut out);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageKey({}…)", self.short_hash())
    }
}

/// An opaque reference to one of a user's sessions, for listing and revoking
/// ("your devices"). It can revoke that session (for the same user) but can
/// never be used as a token: its text form is 64 hex characters, which
/// [`SessionToken::parse`] rejects, and it names a storage key, which the
/// manager never accepts in place of a token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHandle(StorageKey);

impl SessionHandle {
    /// The handle of a stored session.
    pub const fn new(key: StorageKey) -> Self {
        SessionHandle(key)
    }

    /// The storage key it names.
    pub const fn storage_key(&self) -> &StorageKey {
        &self.0
    }

    /// Parses the text form produced by `Display`.
    ///
    /// # Errors
    /// [`Error::InvalidId`] unless the input is 64 lowercase hex characters.
    pub fn parse(input: &str) -> Result<Self> {
        if input.len() != 64
            || !input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(Error::InvalidId);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(input, &mut out).map_err(|_| Error::InvalidId)?;
        Ok(SessionHandle(StorageKey(out)))
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({}…)", self.0.short_hash())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_display_is_short_hash() {
        for _ in 0..8 {
            let key = SessionToken::generate().storage_key();
            assert_eq!(key.short().to_string(), key.short_hash());
        }
        let key = StorageKey::from_bytes([0xab; 32]);
        assert_eq!(key.short().to_string(), "abababab");
    }

    #[test]
    fn generated_tokens_are_43_chars_and_round_trip() {
        let t = SessionToken::generate();
        assert_eq!(t.expose_secret().len(), TOKEN_LEN);
        let parsed = SessionToken::parse(t.expose_secret()).unwrap();
        assert_eq!(parsed, t);
        assert_eq!(parsed.storage_key(), t.storage_key());
        assert_ne!(SessionToken::generate(), t);
    }

    /// The kept bytes are the text's: for generated, affinity and parsed
    /// tokens, and for their clones.
    #[test]
    fn kept_bytes_are_the_decoded_text() {
        let old = SessionToken::generate().storage_key();
        for t in [
            SessionToken::generate(),
            SessionToken::generate_with_affinity(&old, 12),
            SessionToken::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap(),
        ] {
            let decoded = URL_SAFE_NO_PAD.decode(t.expose_secret()).unwrap();
            assert_eq!(t.secret_bytes().as_slice(), decoded.as_slice());
            assert_eq!(t.clone().secret_bytes().as_slice(), decoded.as_slice());
            assert_eq!(
                SessionToken::parse(t.expose_secret())
                    .unwrap()
                    .storage_key(),
                t.storage_key()
            );
        }
        let t = SessionToken::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap();
        assert_eq!(t.secret_bytes().as_slice(), (0u8..32).collect::<Vec<_>>());
    }

    #[test]
    fn affinity_successors_share_prefix() {
        let old = SessionToken::generate().storage_key();
        for bits in [0u8, 1, 8, 12] {
            let new = SessionToken::generate_with_affinity(&old, bits).storage_key();
            assert!(new.shares_prefix_bits(&old, bits));
            assert_ne!(new, old);
        }
        let other = StorageKey::from_bytes([0xff; 32]);
        let zero = StorageKey::from_bytes([0; 32]);
        assert!(!other.shares_prefix_bits(&zero, 1));
        assert!(other.shares_prefix_bits(&zero, 0));
    }

    #[test]
    fn storage_key_is_the_masked_tail_hash() {
        let t = SessionToken::generate();
        let b: [u8; 32] = t.secret_bytes().as_slice().try_into().unwrap();
        let mut input = b"session-store key\0".to_vec();
        input.extend_from_slice(&b[2..]);
        let h: [u8; 32] = Sha256::digest(&input).into();
        let k = t.storage_key();
        assert_eq!(k.as_bytes()[2..], h[2..]);
        assert_eq!(k.as_bytes()[0], h[0] ^ b[0]);
        assert_eq!(k.as_bytes()[1], h[1] ^ b[1]);
        assert_eq!(
            SessionToken::parse(t.expose_secret())
                .unwrap()
                .storage_key(),
            k
        );
    }

    /// Successors keep the fixed bits, and every other bit of the key head
    /// still varies (they are not a constant or a copy of the predecessor).
    #[test]
    fn affinity_leaves_the_free_bits_random() {
        let old = SessionToken::generate().storage_key();
        for bits in [1u8, 8, 15, 16] {
            let mut seen_or = 0u16;
            let mut seen_and = u16::MAX;
            for _ in 0..256 {
                let t = SessionToken::generate_with_affinity(&old, bits);
                let k = t.storage_key();
                assert!(k.shares_prefix_bits(&old, bits), "{bits}");
                let head = u16::from_be_bytes([k.as_bytes()[0], k.as_bytes()[1]]);
                seen_or |= head;
                seen_and &= head;
                assert_eq!(t.expose_secret().len(), TOKEN_LEN);
            }
            let free = if bits == 16 { 0 } else { u16::MAX >> bits };
            assert_eq!((seen_or ^ seen_and) & free, free, "{bits}: free bits vary");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let t = SessionToken::generate();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(t.expose_secret()));
        let key = format!("{:?}", t.storage_key());
        assert!(!key.contains(&t.storage_key().to_hex()));
    }

    #[test]
    fn malformed_tokens_are_invalid_id() {
        let good = SessionToken::generate();
        let mut non_canonical = good.expose_secret()[..42].to_string();
        non_canonical.push('B'); // last char must leave the low bits zero
        for bad in [
            "",
            "a",
            &"A".repeat(42),
            &"A".repeat(44),
            &"A".repeat(10_000),
            &format!("{}*", &"A".repeat(42)),
            &format!("{}\0", &"A".repeat(42)),
            &format!("{}'", &"A".repeat(42)),
            &format!("{}=", &"A".repeat(42)),
            &format!("{}+", &"A".repeat(42)),
            &format!("{}é", &"A".repeat(41)),
            &format!("{}/{}", &"A".repeat(20), &"A".repeat(22)),
            &format!("{}+{}", &"A".repeat(20), &"A".repeat(22)),
            &format!("{} {}", &"A".repeat(20), &"A".repeat(22)),
            &format!("{}={}", &"A".repeat(20), &"A".repeat(22)),
            &format!("{}\n", &"A".repeat(42)),
            &non_canonical,
        ] {
            assert!(
                matches!(SessionToken::parse(bad), Err(Error::InvalidId)),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn handles_are_not_tokens() {
        let key = SessionToken::generate().storage_key();
        let handle = SessionHandle::new(key);
        let text = handle.to_string();
        assert!(matches!(SessionToken::parse(&text), Err(Error::InvalidId)));
        assert_eq!(SessionHandle::parse(&text).unwrap(), handle);
        assert!(matches!(SessionHandle::parse("zz"), Err(Error::InvalidId)));
    }
}
