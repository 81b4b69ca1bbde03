//! The keys directory: one private key and one metadata file per key.
//!
//! ```text
//! keys/
//!   README.md            (committed; everything else is git-ignored)
//!   .lock                (held while keys are generated or rotated)
//!   <kid>.pem            (PKCS#8 private key, mode 0600)
//!   <kid>.json           (KeyMeta: alg, created_at, activates_at)
//! ```
//!
//! Several instances may share the directory. Writers take an exclusive lock
//! on `.lock`; files are written to a temporary name and renamed, so a reader
//! never sees half a key. The metadata file is renamed into place after the
//! key, and readers only consider kids that have metadata.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Alg, KeyError};
use crate::clock::UnixTime;

/// What is known about a key besides its material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMeta {
    /// The key id (RFC 7638 thumbprint of the public key).
    pub kid: String,
    /// The JWS algorithm the key signs with.
    pub alg: Alg,
    /// When the key was generated.
    pub created_at: i64,
    /// When the key starts signing; published from creation on.
    pub activates_at: i64,
}

impl KeyMeta {
    /// When the key starts signing.
    #[must_use]
    pub fn activates(&self) -> UnixTime {
        UnixTime(self.activates_at)
    }
}

/// The keys directory.
#[derive(Debug, Clone)]
pub struct KeyDir {
    path: PathBuf,
}

/// An exclusive lock on the keys directory, released on drop.
#[derive(Debug)]
pub struct DirLock(fs::File);

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl KeyDir {
    /// The directory at `path`, created (owner-only) if missing.
    ///
    /// # Errors
    /// If it cannot be created.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        if !path.exists() {
            fs::create_dir_all(path).map_err(|e| KeyError::io(path, e))?;
            set_mode(path, 0o700)?;
        }
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Takes the writers' lock (blocking until other writers are done).
    ///
    /// # Errors
    /// If the lock file cannot be opened.
    pub fn lock(&self) -> Result<DirLock, KeyError> {
        let p = self.path.join(".lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| KeyError::io(&p, e))?;
        f.lock().map_err(|e| KeyError::io(&p, e))?;
        Ok(DirLock(f))
    }

    /// Every key's metadata, sorted by activation time then kid.
    ///
    /// # Errors
    /// If the directory or a metadata file cannot be read or parsed.
    pub fn list(&self) -> Result<Vec<KeyMeta>, KeyError> {
        let mut metas = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(|e| KeyError::io(&self.path, e))? {
            let entry = entry.map_err(|e| KeyError::io(&self.path, e))?;
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "json") {
                let text = fs::read_to_string(&p).map_err(|e| KeyError::io(&p, e))?;
                let meta: KeyMeta = serde_json::from_str(&text)
                    .map_err(|e| KeyError::Corrupt(format!("{}: {e}", p.display())))?;
                metas.push(meta);
            }
        }
        metas.sort_by(|a, b| (a.activates_at, &a.kid).cmp(&(b.activates_at, &b.kid)));
        Ok(metas)
    }

    /// The private key of `kid`, PEM.
    ///
    /// # Errors
    /// If it cannot be read.
    pub fn read_private(&self, kid: &str) -> Result<Vec<u8>, KeyError> {
        let p = self.path.join(format!("{kid}.pem"));
        fs::read(&p).map_err(|e| KeyError::io(&p, e))
    }

    /// Writes a new key: the private PEM first, then its metadata.
    ///
    /// # Errors
    /// If a file cannot be written.
    pub fn write(&self, meta: &KeyMeta, private_pem: &[u8]) -> Result<(), KeyError> {
        self.write_atomic(&format!("{}.pem", meta.kid), private_pem)?;
        let json = serde_json::to_vec_pretty(meta).map_err(|e| KeyError::Corrupt(e.to_string()))?;
        self.write_atomic(&format!("{}.json", meta.kid), &json)
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), KeyError> {
        let final_path = self.path.join(name);
        let tmp = self.path.join(format!(".{name}.tmp"));
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).map_err(|e| KeyError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| KeyError::io(&tmp, e))?;
        f.sync_all().map_err(|e| KeyError::io(&tmp, e))?;
        fs::rename(&tmp, &final_path).map_err(|e| KeyError::io(&final_path, e))
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| KeyError::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}
