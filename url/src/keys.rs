//! Encryption keys, read from a file or an environment variable, never from
//! a command-line argument (which any user of the machine can read in `ps`).
//!
//! Format: one key per line, `ID=HEX` where `ID` is the key id (a `u32`)
//! and `HEX` the 32-byte key as 64 hex characters. The **first** key is the
//! primary (it encrypts); the others only decrypt. Blank lines and lines
//! starting with `#` are ignored.
//!
//! ```text
//! # new primary first, the old key kept for reading until rekey is done
//! 2=4f1c…(64 hex)
//! 1=9a0b…(64 hex)
//! ```

use session_store_core::config::Vars;
use session_store_core::{EncryptionKey, Error, Keyring, Result};

/// The variable holding the path of a key file (see the module docs).
pub const KEYS_FILE_VAR: &str = "SESSION_STORE_KEYS_FILE";
/// The variable holding the key list itself.
pub const KEYS_VAR: &str = "SESSION_STORE_KEYS";

/// Parses the key list (see the module docs). Errors name the line, never
/// the key.
///
/// # Errors
/// [`Error::Config`] for a malformed line, a repeated id or no key at all.
pub fn parse_keyring(text: &str, source: &str) -> Result<Keyring> {
    let mut keyring: Option<Keyring> = None;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| Error::Config(format!("{source}, line {}: {what}", n + 1));
        let (id, hex_key) = line
            .split_once('=')
            .ok_or_else(|| bad("expected ID=HEX (key id, 64 hex characters)"))?;
        let id: u32 = id
            .trim()
            .parse()
            .map_err(|_| bad("the key id is not a number (0 to 4294967295)"))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut bytes)
            .map_err(|_| bad("the key is not 64 hex characters"))?;
        if ids.contains(&id) {
            return Err(bad("this key id appears twice"));
        }
        ids.push(id);
        let key = EncryptionKey::from_bytes(bytes);
        keyring = Some(match keyring {
            None => Keyring::new(id, key),
            Some(k) => k.with_decrypt_key(id, key),
        });
    }
    keyring.ok_or_else(|| Error::Config(format!("{source}: no key (expected lines ID=HEX)")))
}

/// The keyring from `--keys-file PATH`, else from the variable named by
/// `--keys-env` (default `SESSION_STORE_KEYS`); `None` when neither is set.
///
/// # Errors
/// [`Error::Config`] for an unreadable file or a malformed list.
pub fn load_keyring(file: Option<&std::path::Path>, env: &str) -> Result<Option<Keyring>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("keys file {}: {e}", path.display())))?;
        return parse_keyring(&text, &format!("keys file {}", path.display())).map(Some);
    }
    match std::env::var(env) {
        Ok(text) => parse_keyring(&text, &format!("variable {env}")).map(Some),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::Config(format!("variable {env}: not UTF-8")))
        }
    }
}

/// The keyring an application reads at start: the file named by
/// `SESSION_STORE_KEYS_FILE`, else the list in `SESSION_STORE_KEYS`; `None`
/// when neither is set (no encryption). The `session-store` command reads
/// the same list (`--keys-file`, or `SESSION_STORE_KEYS`), so `rekey` and
/// the application agree on the keys.
///
/// # Errors
/// [`Error::Config`] for an unreadable file or a malformed list (naming the
/// file or the variable and the line, never a key).
pub fn keyring_from_vars(vars: &Vars) -> Result<Option<Keyring>> {
    if let Some(path) = vars.string(KEYS_FILE_VAR) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Config(format!("{KEYS_FILE_VAR}: keys file {path}: {e}")))?;
        return parse_keyring(&text, &format!("keys file {path}")).map(Some);
    }
    match vars.string(KEYS_VAR) {
        Some(text) => parse_keyring(&text, &format!("variable {KEYS_VAR}")).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_key_is_primary_and_errors_name_the_line_not_the_key() {
        let a = "11".repeat(32);
        let b = "22".repeat(32);
        let k = parse_keyring(&format!("# c\n\n2={a}\n1={b}\n"), "t").unwrap();
        assert_eq!(k.primary_id(), 2);
        assert_eq!(k.key_ids().len(), 2);
        let e = parse_keyring(&format!("2={a}\nx{b}"), "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && !e.contains(&b), "{e}");
        let e = parse_keyring(&format!("2={}", &a[..10]), "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("64 hex") && !e.contains(&a[..10]), "{e}");
        assert!(parse_keyring(&format!("2={a}\n2={b}"), "t").is_err());
        assert!(parse_keyring("# nothing", "t").is_err());
    }

    #[test]
    fn an_application_reads_the_file_first_then_the_variable() {
        let a = "11".repeat(32);
        let b = "22".repeat(32);
        let none = keyring_from_vars(&Vars::from_pairs([("X", "y")])).unwrap();
        assert!(none.is_none());
        let k = keyring_from_vars(&Vars::from_pairs([(KEYS_VAR, format!("3={a}"))]))
            .unwrap()
            .unwrap();
        assert_eq!(k.primary_id(), 3);
        let dir = std::env::temp_dir().join(format!("keys-test-{}", std::process::id()));
        std::fs::write(&dir, format!("4={b}\n3={a}\n")).unwrap();
        let path = dir.to_string_lossy().into_owned();
        let k = keyring_from_vars(&Vars::from_pairs([
            (KEYS_FILE_VAR, path.clone()),
            (KEYS_VAR, format!("3={a}")),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(k.primary_id(), 4);
        std::fs::remove_file(&dir).unwrap();
        let e = keyring_from_vars(&Vars::from_pairs([(KEYS_FILE_VAR, path)])).unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.starts_with(KEYS_FILE_VAR)),
            "{e}"
        );
        let e = keyring_from_vars(&Vars::from_pairs([(KEYS_VAR, "1=zz")])).unwrap_err();
        assert!(matches!(&e, Error::Config(m) if !m.contains("zz")), "{e}");
    }
}
