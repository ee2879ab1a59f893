//! All cryptography of the crate, one concern per file, so that a security
//! review reads this folder alone:
//!
//! - `keyring`: master keys ([`EncryptionKey`]), the [`Keyring`] and the
//!   cache of derived subkeys (HKDF-SHA256);
//! - `frame`: the encrypted frame layout and the associated data that binds a
//!   frame to its row;
//! - `wrapper`: [`Encrypted`], the backend wrapper that seals and opens
//!   records;
//! - `forward`: sealing of the successor token in a renewal forwarder.
//!
//! Tokens themselves (generation, encoding, hashing to storage keys) live in
//! the `token` module.

pub(crate) mod forward;
pub(crate) mod frame;
mod keyring;
mod wrapper;

pub use frame::ENCRYPTION_OVERHEAD;
pub use keyring::{EncryptionKey, Keyring, MAX_ENCRYPTIONS_PER_SUBKEY};
pub use wrapper::{Encrypted, Resealed};
