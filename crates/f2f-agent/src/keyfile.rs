//! The node key on disk: 32 secret bytes in hex, in a file only its owner can read.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use f2f_core::identity::Keypair;

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("key file: {0}")]
    Io(#[from] std::io::Error),
    /// Others may read it: a leaked node key lets anyone speak as this node.
    #[error("key file {0} is readable by others (mode {1:o}); chmod 600 it")]
    Exposed(String, u32),
    /// Not 64 hex digits of a valid secret key.
    #[error("key file {0} does not hold a key")]
    Malformed(String),
}

/// The key in `path`, or a new one written there (mode 0600) if the file does not exist.
///
/// # Errors
///
/// The file is unreadable, readable by group or others, or malformed; or it cannot be created.
pub fn load_or_create(path: &Path) -> Result<Keypair, KeyFileError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Exposed(shown, mode));
            }
            let bytes: [u8; 32] = (hex::decode(text.trim()).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| KeyFileError::Malformed(shown.clone()))?;
            Keypair::from_secret_bytes(&bytes).map_err(|_| KeyFileError::Malformed(shown))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
            let keypair = Keypair::from_entropy(&seed);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            writeln!(file, "{}", hex::encode(keypair.secret_bytes()))?;
            Ok(keypair)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_persists_with_owner_only_permissions_and_exposure_is_refused() {
        let dir = std::env::temp_dir().join(format!("f2f-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.key");
        let _ = std::fs::remove_file(&path);
        let created = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = load_or_create(&path).unwrap();
        assert_eq!(created.peer_id(), loaded.peer_id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(KeyFileError::Exposed(..))
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "zz").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(KeyFileError::Malformed(..))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
